using Microsoft.Data.Sqlite;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Storage;
using Xunit;

namespace RagOrleans.Unit.Tests.Storage;

public sealed class IngestionStoresTests
{
    private readonly string _path = System.IO.Path.Combine(TestData.NewTempDir("sqlite-ingest"), "rag.db");

    [Fact]
    public async Task Connections_read_the_file_through_the_configured_memory_map_and_zero_turns_it_off()
    {
        foreach (var (bytes, expected) in new[] { (SqliteDatabase.DefaultMmapBytes, SqliteDatabase.DefaultMmapBytes), (0L, 0L), (1L << 20, 1L << 20) })
        {
            var database = bytes == SqliteDatabase.DefaultMmapBytes ? new SqliteDatabase(_path) : new SqliteDatabase(_path, bytes);

            // Twice: a pooled connection comes back with the setting, and a fresh one gets it.
            for (var i = 0; i < 2; i++)
            {
                await using var connection = await database.OpenAsync();
                await using var command = connection.CreateCommand();
                command.CommandText = "PRAGMA mmap_size;";
                Assert.Equal(expected, Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture));

                // The durability and deletion settings come back with a pooled connection too (they are set once per handle).
                command.CommandText = "PRAGMA synchronous;";
                Assert.Equal(2L, await command.ExecuteScalarAsync());
                command.CommandText = "PRAGMA secure_delete;";
                Assert.Equal(1L, await command.ExecuteScalarAsync());
            }
        }

        Assert.Throws<ArgumentOutOfRangeException>(() => new SqliteDatabase(_path, -1));
    }

    [Fact]
    public async Task A_writer_that_finds_the_write_lock_taken_waits_in_sqlites_busy_handler_and_then_commits()
    {
        var database = new SqliteDatabase(_path);
        var store = new SqliteDocumentStore(database);

        // SQLite's own busy handler retries within milliseconds of the lock coming free; without it Microsoft.Data.Sqlite
        // retries after a blocking 150 ms sleep. Pooled and fresh connections both carry the setting.
        for (var i = 0; i < 2; i++)
        {
            await using var connection = await database.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = "PRAGMA busy_timeout;";
            Assert.Equal(30_000L, Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture));
        }

        var doc = new DocumentInfo("d", null, DocumentStatus.Queued, 0, null, "text", null, 10, "h", null, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, 0);
        await using (var holder = await database.OpenAsync())
        {
            await using var tx = (SqliteTransaction)await holder.BeginTransactionAsync();
            await using (var write = holder.CreateCommand())
            {
                write.Transaction = tx;
                write.CommandText = "CREATE TABLE lock_holder (x INTEGER)";
                await write.ExecuteNonQueryAsync();
            }

            // Microsoft.Data.Sqlite runs "async" commands synchronously, so the waiting writer needs its own thread.
            var waiting = Task.Run(() => store.UpsertAsync("t", "c", doc));
            await Task.Delay(100);
            Assert.False(waiting.IsCompleted, "the second writer must wait while the first holds the write lock");
            await tx.CommitAsync();
            await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        }

        Assert.Equal(DocumentStatus.Queued, (await store.GetAsync("t", "c", "d"))!.Status);
    }

    [Fact]
    public async Task Documents_filter_by_status_with_paging_find_by_hash_and_keep_step_and_progress()
    {
        var store = new SqliteDocumentStore(new SqliteDatabase(_path));
        var t0 = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000);
        DocumentInfo Doc(string id, DocumentStatus status, string hash, int minutes) =>
            new(id, null, status, 0, null, "text", null, 10, hash, null, t0.AddMinutes(minutes), t0, 0);
        await store.UpsertAsync("t", "c", Doc("a", DocumentStatus.Failed, "h1", 3));
        await store.UpsertAsync("t", "c", Doc("b", DocumentStatus.Indexed, "h2", 2) with { Step = DocumentStep.Indexed, ProgressPercent = 100 });
        await store.UpsertAsync("t", "c", Doc("c", DocumentStatus.Failed, "h2", 1) with { Step = DocumentStep.Chunked, ProgressPercent = 40 });
        await store.UpsertAsync("t", "c", Doc("d", DocumentStatus.Failed, "h3", 0));
        await store.UpsertAsync("t", "other", Doc("e", DocumentStatus.Failed, "h1", 0));

        Assert.Equal(["a", "c"], (await store.ListAsync("t", "c", null, 2, DocumentStatus.Failed)).Select(d => d.Id));
        Assert.Equal(["d"], (await store.ListAsync("t", "c", "c", 2, DocumentStatus.Failed)).Select(d => d.Id));
        Assert.Equal(["b"], (await store.ListAsync("t", "c", null, 10, DocumentStatus.Indexed)).Select(d => d.Id));
        Assert.Empty(await store.ListAsync("t", "c", null, 10, DocumentStatus.Queued));
        Assert.Equal(4, (await store.ListAsync("t", "c", null, 10)).Count);

        // The oldest document with the content wins; other collections do not count.
        Assert.Equal("c", (await store.FindByHashAsync("t", "c", "h2"))!.Id);
        Assert.Equal("a", (await store.FindByHashAsync("t", "c", "h1"))!.Id);
        Assert.Null(await store.FindByHashAsync("t", "c", "h9"));

        var c = (await store.GetAsync("t", "c", "c"))!;
        Assert.Equal((DocumentStep.Chunked, 40), (c.Step, c.ProgressPercent));
        var a = (await store.GetAsync("t", "c", "a"))!;
        Assert.Equal((DocumentStep.Received, (int?)null), (a.Step, a.ProgressPercent));
    }

    [Fact]
    public async Task Updates_change_only_an_existing_record_and_never_bring_back_a_deleted_one()
    {
        var store = new SqliteDocumentStore(new SqliteDatabase(_path));
        var t0 = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000);
        var doc = new DocumentInfo("d", "Title", DocumentStatus.Processing, 0, null, "text", "d.txt", 10, "h", "{\"k\":1}", t0, t0, 1);
        await store.UpsertAsync("t", "c", doc);

        // Progress moves the step, the percentage and the update time, and nothing else.
        Assert.True(await store.UpdateProgressAsync("t", "c", "d", DocumentStep.Chunked, 40, t0.AddSeconds(1)));
        Assert.Equal(doc with { Step = DocumentStep.Chunked, ProgressPercent = 40, UpdatedAt = t0.AddSeconds(1) }, await store.GetAsync("t", "c", "d"));

        var indexed = doc with { Status = DocumentStatus.Indexed, ChunkCount = 3, Step = DocumentStep.Indexed, ProgressPercent = 100, UpdatedAt = t0.AddSeconds(2) };
        Assert.True(await store.UpdateAsync("t", "c", indexed));
        Assert.Equal(indexed, await store.GetAsync("t", "c", "d"));
        Assert.Equal(["d"], (await store.ListAsync("t", "c", null, 10, DocumentStatus.Indexed)).Select(x => x.Id));

        // A pipeline that ends after its document was deleted writes nothing.
        Assert.True(await store.DeleteAsync("t", "c", "d"));
        Assert.False(await store.UpdateProgressAsync("t", "c", "d", DocumentStep.Embedded, 100, t0.AddSeconds(3)));
        Assert.False(await store.UpdateAsync("t", "c", indexed));
        Assert.Null(await store.GetAsync("t", "c", "d"));
        Assert.Empty(await store.ListAsync("t", "c", null, 10));
    }

    [Fact]
    public async Task A_version_1_database_gains_the_new_columns_and_keeps_its_rows()
    {
        // The version-1 documents table as the previous build created it, with one row.
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(_path)!);
        await using (var connection = new SqliteConnection($"Data Source={_path}"))
        {
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = """
                CREATE TABLE schema_version (version INTEGER NOT NULL);
                INSERT INTO schema_version VALUES (1);
                CREATE TABLE documents (
                    tenant TEXT NOT NULL, collection TEXT NOT NULL, id TEXT NOT NULL,
                    title TEXT, status INTEGER NOT NULL, chunk_count INTEGER NOT NULL, error TEXT,
                    source_type TEXT NOT NULL, file_name TEXT, size_bytes INTEGER NOT NULL, content_hash TEXT NOT NULL,
                    metadata TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, attempts INTEGER NOT NULL,
                    PRIMARY KEY (tenant, collection, id)) WITHOUT ROWID;
                INSERT INTO documents VALUES ('t', 'c', 'old', NULL, 2, 5, NULL, 'text', NULL, 10, 'h', NULL, 0, 0, 1);
                """;
            await command.ExecuteNonQueryAsync();
        }

        SqliteConnection.ClearAllPools();
        var store = new SqliteDocumentStore(new SqliteDatabase(_path));
        var old = (await store.GetAsync("t", "c", "old"))!;
        Assert.Equal((DocumentStatus.Indexed, 5, DocumentStep.Received, (int?)null), (old.Status, old.ChunkCount, old.Step, old.ProgressPercent));
        await store.UpsertAsync("t", "c", old with { Step = DocumentStep.Indexed, ProgressPercent = 100 });
        Assert.Equal(DocumentStep.Indexed, (await store.GetAsync("t", "c", "old"))!.Step);

        // Opening again is a no-op.
        _ = new SqliteDatabase(_path);
        Assert.Single(await store.ListAsync("t", "c", null, 10));
    }

    [Fact]
    public async Task A_version_2_database_keeps_its_chunk_log_and_chat_turns_in_rowid_tables()
    {
        // Versions 1 and 2 made both tables WITHOUT ROWID; their rows are large (text and a 1.5 KB vector; a chat turn).
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(_path)!);
        var longText = string.Concat(Enumerable.Repeat("a chunk of text ", 150));
        var vector = Enumerable.Range(0, 384).Select(i => i / 384f).ToArray();
        var turn = new ChatTurn("what?", "this. [1]", [], DateTimeOffset.FromUnixTimeSeconds(1_700_000_000));
        await using (var connection = new SqliteConnection($"Data Source={_path}"))
        {
            await connection.OpenAsync();
            await using var command = connection.CreateCommand();
            command.CommandText = """
                CREATE TABLE schema_version (version INTEGER NOT NULL);
                INSERT INTO schema_version VALUES (2);
                CREATE TABLE chunk_log (
                    shard TEXT NOT NULL, seq INTEGER NOT NULL, op INTEGER NOT NULL, doc_id TEXT NOT NULL,
                    ordinal INTEGER NOT NULL, text TEXT, vector BLOB, start_offset INTEGER NOT NULL, end_offset INTEGER NOT NULL,
                    section TEXT, page INTEGER, title TEXT, metadata TEXT,
                    PRIMARY KEY (shard, seq)) WITHOUT ROWID;
                CREATE INDEX chunk_log_doc ON chunk_log (shard, doc_id);
                CREATE TABLE conversation_turns (
                    tenant TEXT NOT NULL, user_id TEXT NOT NULL, conversation TEXT NOT NULL, seq INTEGER NOT NULL,
                    collection TEXT NOT NULL, turn TEXT NOT NULL,
                    PRIMARY KEY (tenant, user_id, conversation, seq)) WITHOUT ROWID;
                INSERT INTO conversation_turns VALUES ('t', 'u', 'conv', 1, 'c', $turn);
                """;
            command.Parameters.AddWithValue("$turn", System.Text.Json.JsonSerializer.Serialize(turn, new System.Text.Json.JsonSerializerOptions(System.Text.Json.JsonSerializerDefaults.Web)));
            await command.ExecuteNonQueryAsync();
            command.CommandText = "INSERT INTO chunk_log VALUES ($s, $seq, 1, $d, $seq, $text, $v, 0, 10, 'Intro', 3, 'Title', '{\"k\":\"v\"}')";
            command.Parameters.Clear();
            var (s, seq, d) = (command.Parameters.Add("$s", SqliteType.Text), command.Parameters.Add("$seq", SqliteType.Integer), command.Parameters.Add("$d", SqliteType.Text));
            command.Parameters.AddWithValue("$text", longText);
            command.Parameters.AddWithValue("$v", System.Runtime.InteropServices.MemoryMarshal.AsBytes(vector.AsSpan()).ToArray());
            foreach (var (shard, n, doc) in new[] { ("t/c/0", 2L, "d1"), ("t/c/0", 1L, "d1"), ("t/c/0", 3L, "d2"), ("t/c/1", 1L, "d3") })
            {
                (s.Value, seq.Value, d.Value) = (shard, n, doc);
                await command.ExecuteNonQueryAsync();
            }
        }

        SqliteConnection.ClearAllPools();
        var database = new SqliteDatabase(_path);
        await using (var connection = await database.OpenAsync())
        {
            await using var command = connection.CreateCommand();
            command.CommandText = "SELECT group_concat(sql, ';') FROM sqlite_master WHERE name IN ('chunk_log', 'conversation_turns', 'chunk_log_doc')";
            var schema = (string)(await command.ExecuteScalarAsync())!;
            Assert.DoesNotContain("WITHOUT ROWID", schema, StringComparison.OrdinalIgnoreCase);
            Assert.Contains("chunk_log_doc", schema);
            command.CommandText = "SELECT version FROM schema_version";
            Assert.Equal(3L, await command.ExecuteScalarAsync());
        }

        var log = new SqliteChunkLog(database);
        var rows = await SqliteStoresTests.ToListAsync(log.ReadAfterAsync("t/c/0", 0));
        Assert.Equal(new long[] { 1, 2, 3 }, rows.Select(r => r.Seq).ToArray());
        Assert.All(rows, r =>
        {
            Assert.Equal((longText, "Intro", 3, "Title", "{\"k\":\"v\"}"), (r.Text, r.Section, r.Page, r.Title, r.MetadataJson));
            Assert.Equal(vector, r.Vector);
        });
        Assert.Single(await SqliteStoresTests.ToListAsync(log.ReadAfterAsync("t/c/1", 0)));

        // The key still refuses a duplicate, and the document index still serves a replacement.
        await Assert.ThrowsAsync<SqliteException>(() => log.AppendAsync("t/c/0", [rows[0]], null));
        await log.AppendAsync("t/c/0", [rows[0] with { Seq = 4, Ordinal = 0 }], replacedDocumentId: "d1");
        Assert.Equal(new long[] { 3, 4 }, (await SqliteStoresTests.ToListAsync(log.ReadAfterAsync("t/c/0", 0))).Select(r => r.Seq).ToArray());

        var turns = new SqliteConversationStore(database);
        Assert.Equal("this. [1]", Assert.Single(await turns.GetAsync("t", "u", "conv")).Answer);
        await turns.AppendAsync("t", "u", "conv", "c", turn with { Answer = "again" });
        Assert.Equal(["this. [1]", "again"], (await turns.GetAsync("t", "u", "conv")).Select(x => x.Answer));

        // Opening again leaves the upgraded tables alone.
        _ = new SqliteDatabase(_path);
        Assert.Equal(2, (await SqliteStoresTests.ToListAsync(log.ReadAfterAsync("t/c/0", 0))).Count);
    }

    [Fact]
    public async Task Idempotency_keys_expire_are_purged_and_go_with_their_tenant()
    {
        var store = new SqliteIdempotencyStore(new SqliteDatabase(_path));
        var now = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000);
        var record = new IdempotencyRecord("fp", 202, "/v1/x", "{\"id\":\"x\"}", now, now.AddHours(24));
        await store.SaveAsync("t", "k1", record);
        await store.SaveAsync("t", "k2", record with { ExpiresAt = now.AddMinutes(1) });
        await store.SaveAsync("u", "k1", record with { Fingerprint = "other" });

        Assert.Equal(record, await store.GetAsync("t", "k1", now));
        Assert.Equal("other", (await store.GetAsync("u", "k1", now))!.Fingerprint);
        Assert.NotNull(await store.GetAsync("t", "k2", now));
        Assert.Null(await store.GetAsync("t", "k2", now.AddMinutes(1)));

        Assert.Equal(1, await store.PurgeExpiredAsync(now.AddHours(1)));
        Assert.Null(await store.GetAsync("t", "k2", now));
        await store.DeleteTenantAsync("t");
        Assert.Null(await store.GetAsync("t", "k1", now));
        Assert.NotNull(await store.GetAsync("u", "k1", now));
    }
}
