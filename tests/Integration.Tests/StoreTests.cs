using RagOrleans.Abstractions;
using RagOrleans.Grains.Storage;
using RagOrleans.Grains.Storage.Postgres;
using Xunit;

namespace RagOrleans.Integration.Tests;

[Collection(PostgresCollection.Name)]
public sealed class ChunkLogTests(PostgresFixture pg)
{
    [Fact]
    public async Task Chunk_log_appends_replaces_reads_after_a_watermark_and_compacts()
    {
        var log = new PostgresChunkLog(pg.DataSource);
        var shard = Shard();
        var other = Shard();
        await log.AppendAsync(shard, [Add(1, "d1", 0, [1f, 0f]), Add(2, "d1", 1, [0f, 1f]), Add(3, "d2", 0, [0.5f, 0.5f])], null);
        Assert.Equal(3, await log.MaxSeqAsync(shard));
        Assert.Equal(0, await log.MaxSeqAsync(other));

        // Replacing d1 removes its old rows in the same transaction as the new ones.
        await log.AppendAsync(shard, [Delete(4, "d1"), Add(5, "d1", 0, [0f, 1f])], "d1");
        var all = await ToListAsync(log.ReadAfterAsync(shard, 0));
        Assert.Equal(new long[] { 3, 4, 5 }, all.Select(e => e.Seq).ToArray());
        Assert.Equal(new[] { 0f, 1f }, all[2].Vector);
        Assert.Equal(ChunkOp.DeleteDocument, all[1].Op);
        Assert.Null(all[1].Vector);
        Assert.Equal(Add(3, "d2", 0, [0.5f, 0.5f]) with { Vector = null }, all[0] with { Vector = null });
        var after = await ToListAsync(log.ReadAfterAsync(shard, 3));
        Assert.Equal(new long[] { 4, 5 }, after.Select(e => e.Seq).ToArray());

        var rows = await log.GetAsync(shard, [3, 4, 5, 99]);
        Assert.Equal(new long[] { 3, 5 }, rows.Select(r => r.Seq).Order().ToArray());
        Assert.All(rows, r => Assert.Null(r.Vector));
        Assert.Equal("text d2 0", rows.Single(r => r.Seq == 3).Text);
        Assert.Empty(await log.GetAsync(shard, []));

        await log.CompactAsync(shard, 4);
        Assert.Equal(new long[] { 3, 5 }, (await ToListAsync(log.ReadAfterAsync(shard, 0))).Select(e => e.Seq).ToArray());
        await log.DeleteShardAsync(shard);
        Assert.Empty(await ToListAsync(log.ReadAfterAsync(shard, 0)));
        Assert.Equal(0, await log.MaxSeqAsync(shard));
    }

    [Fact]
    public async Task Thousands_of_rows_go_through_COPY_and_a_failed_append_leaves_nothing_behind()
    {
        var log = new PostgresChunkLog(pg.DataSource);
        var shard = Shard();
        var random = new Random(7);
        float[] Vector() => [.. Enumerable.Range(0, 384).Select(_ => (float)random.NextDouble())];
        var first = Enumerable.Range(1, 3000)
            .Select(i => new ChunkLogEntry(i, ChunkOp.Add, "doc" + (i % 30), i / 30, "chunk " + i, Vector(), i, i + 10, i % 2 == 0 ? "S" : null, i % 3 == 0 ? i : null, "T", "{\"n\":" + i + "}"))
            .ToList();
        await log.AppendAsync(shard, first, null);
        var read = await ToListAsync(log.ReadAfterAsync(shard, 0));
        Assert.Equal(3000, read.Count);
        for (var i = 0; i < read.Count; i++)
        {
            Assert.Equal(first[i] with { Vector = null }, read[i] with { Vector = null });
            Assert.Equal(first[i].Vector, read[i].Vector);
        }

        // Replace doc7 (100 rows) with 50 new ones and a tombstone, in one transaction.
        var replacement = new List<ChunkLogEntry> { new(3001, ChunkOp.DeleteDocument, "doc7", 0, null, null, 0, 0, null, null, null, null) };
        replacement.AddRange(Enumerable.Range(0, 50).Select(o => Add(3002 + o, "doc7", o, Vector())));
        await log.AppendAsync(shard, replacement, "doc7");
        var afterReplace = await ToListAsync(log.ReadAfterAsync(shard, 0));
        Assert.Equal(3000 - 100 + 51, afterReplace.Count);
        Assert.Equal(51, afterReplace.Count(e => e.DocumentId == "doc7"));
        Assert.Equal(3051, await log.MaxSeqAsync(shard));

        // A duplicate sequence number aborts the whole append: the delete of doc8 rolls back with it.
        await Assert.ThrowsAnyAsync<Npgsql.NpgsqlException>(() => log.AppendAsync(shard, [Add(3052, "doc8", 0, [1f]), Add(5, "doc8", 1, [1f])], "doc8"));
        Assert.Equal(100, (await ToListAsync(log.ReadAfterAsync(shard, 0))).Count(e => e.DocumentId == "doc8"));

        await log.CompactAsync(shard, 3001);
        Assert.DoesNotContain(await ToListAsync(log.ReadAfterAsync(shard, 0)), e => e.Op == ChunkOp.DeleteDocument);
        await log.DeleteShardAsync(shard);
        Assert.Equal(0, await log.MaxSeqAsync(shard));
    }

    internal static string Shard() => "t" + Guid.NewGuid().ToString("N")[..8] + "/c/0";

    private static ChunkLogEntry Add(long seq, string doc, int ordinal, float[] vector) =>
        new(seq, ChunkOp.Add, doc, ordinal, $"text {doc} {ordinal}", vector, 0, 10, "S", null, "Title", null);

    private static ChunkLogEntry Delete(long seq, string doc) => new(seq, ChunkOp.DeleteDocument, doc, 0, null, null, 0, 0, null, null, null, null);

    internal static async Task<List<T>> ToListAsync<T>(IAsyncEnumerable<T> items)
    {
        var list = new List<T>();
        await foreach (var item in items)
        {
            list.Add(item);
        }

        return list;
    }
}

[Collection(PostgresCollection.Name)]
public sealed class SnapshotStoreTests(PostgresFixture pg)
{
    private const int Segment = 64 * 1024;

    [Fact]
    public async Task A_snapshot_of_many_segments_round_trips_byte_for_byte_and_replaces_the_old_version()
    {
        var store = new PostgresSnapshotStore(pg.DataSource, new PostgresSnapshotOptions(Segment));
        var shard = ChunkLogTests.Shard();
        Assert.Null(await store.OpenLatestAsync(shard));

        var first = RandomBytes(650 * 1024, 1);
        await store.SaveAsync(shard, 10, (s, ct) => WriteInPiecesAsync(s, first, ct));
        Assert.Equal(11L, await pg.ScalarAsync<long>("SELECT count(*) FROM snapshot_segments WHERE shard = @s", ("s", shard)));
        Assert.Equal(Segment, await pg.ScalarAsync<int>("SELECT max(length(data)) FROM snapshot_segments WHERE shard = @s", ("s", shard)));
        await AssertLatestAsync(store, shard, 10, first);

        var second = RandomBytes(10 * Segment, 2); // an exact multiple: no empty trailing segment
        await store.SaveAsync(shard, 20, (s, ct) => s.WriteAsync(second, ct).AsTask());
        await AssertLatestAsync(store, shard, 20, second);
        Assert.Equal(1L, await pg.ScalarAsync<long>("SELECT count(DISTINCT version) FROM snapshot_segments WHERE shard = @s", ("s", shard)));
        Assert.Equal(10L, await pg.ScalarAsync<long>("SELECT count(*) FROM snapshot_segments WHERE shard = @s", ("s", shard)));

        // Synchronous writers that dispose the stream (BinaryWriter without leaveOpen) work too.
        var third = RandomBytes(3 * Segment + 17, 3);
        await store.SaveAsync(shard, 30, (s, ct) =>
        {
            using (var writer = new BinaryWriter(s))
            {
                writer.Write(third);
            }

            return Task.CompletedTask;
        });
        await AssertLatestAsync(store, shard, 30, third);

        var empty = Array.Empty<byte>();
        await store.SaveAsync(shard, 31, (s, ct) => Task.CompletedTask);
        await AssertLatestAsync(store, shard, 31, empty);

        await store.DeleteAsync(shard);
        Assert.Null(await store.OpenLatestAsync(shard));
        Assert.Equal(0L, await pg.ScalarAsync<long>("SELECT count(*) FROM snapshot_segments WHERE shard = @s", ("s", shard)));
    }

    [Fact]
    public async Task A_writer_failing_midway_leaves_the_previous_snapshot_current()
    {
        var store = new PostgresSnapshotStore(pg.DataSource, new PostgresSnapshotOptions(Segment));
        var shard = ChunkLogTests.Shard();
        var good = RandomBytes(5 * Segment + 3, 4);
        await store.SaveAsync(shard, 5, (s, ct) => s.WriteAsync(good, ct).AsTask());

        // Several segments are already inserted when the writer throws; none of them may become visible.
        await Assert.ThrowsAsync<IOException>(() => store.SaveAsync(shard, 9, async (s, ct) =>
        {
            await s.WriteAsync(RandomBytes(4 * Segment, 5), ct);
            throw new IOException("writer died");
        }));
        await AssertLatestAsync(store, shard, 5, good);
        Assert.Equal(6L, await pg.ScalarAsync<long>("SELECT count(*) FROM snapshot_segments WHERE shard = @s", ("s", shard)));

        // A stale writer (lower watermark) does not replace a newer snapshot, and its segments are dropped.
        await store.SaveAsync(shard, 4, (s, ct) => s.WriteAsync(RandomBytes(100, 6), ct).AsTask());
        await AssertLatestAsync(store, shard, 5, good);
        Assert.Equal(1L, await pg.ScalarAsync<long>("SELECT count(DISTINCT version) FROM snapshot_segments WHERE shard = @s", ("s", shard)));
    }

    [Fact]
    public async Task An_open_reader_keeps_reading_its_version_while_a_newer_one_replaces_it()
    {
        var store = new PostgresSnapshotStore(pg.DataSource, new PostgresSnapshotOptions(Segment));
        var shard = ChunkLogTests.Shard();
        var old = RandomBytes(8 * Segment, 7);
        await store.SaveAsync(shard, 1, (s, ct) => s.WriteAsync(old, ct).AsTask());

        await using var handle = await store.OpenLatestAsync(shard);
        var head = new byte[Segment + 5];
        await handle!.Content.ReadExactlyAsync(head);

        var newer = RandomBytes(2 * Segment, 8);
        await store.SaveAsync(shard, 2, (s, ct) => s.WriteAsync(newer, ct).AsTask());
        // The old version's rows are already deleted, yet the reader's snapshot still sees them.
        Assert.Equal(1L, await pg.ScalarAsync<long>("SELECT count(DISTINCT version) FROM snapshot_segments WHERE shard = @s", ("s", shard)));

        var rest = new MemoryStream();
        await handle.Content.CopyToAsync(rest);
        Assert.Equal(old, head.Concat(rest.ToArray()).ToArray());
        await AssertLatestAsync(store, shard, 2, newer);
    }

    private static async Task AssertLatestAsync(PostgresSnapshotStore store, string shard, long watermark, byte[] expected)
    {
        await using var latest = await store.OpenLatestAsync(shard);
        Assert.NotNull(latest);
        Assert.Equal(watermark, latest.Watermark);
        var buffer = new MemoryStream();
        await latest.Content.CopyToAsync(buffer, 10_000); // odd buffer size: reads straddle segment boundaries
        Assert.Equal(expected.Length, buffer.Length);
        Assert.True(expected.AsSpan().SequenceEqual(buffer.ToArray()));
    }

    private static async Task WriteInPiecesAsync(Stream stream, byte[] data, CancellationToken cancellationToken)
    {
        for (var offset = 0; offset < data.Length; offset += 7_777)
        {
            await stream.WriteAsync(data.AsMemory(offset, Math.Min(7_777, data.Length - offset)), cancellationToken);
        }
    }

    private static byte[] RandomBytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}

[Collection(PostgresCollection.Name)]
public sealed class DocumentBlobConversationStoreTests(PostgresFixture pg)
{
    [Fact]
    public async Task Document_store_lists_in_id_order_counts_and_finds_unfinished()
    {
        var store = new PostgresDocumentStore(pg.DataSource);
        var t = "t" + Guid.NewGuid().ToString("N")[..8];
        var now = DateTimeOffset.UtcNow;
        DocumentInfo Doc(string id, DocumentStatus status, int chunks) =>
            new(id, "T " + id, status, chunks, null, "text", null, 10, "hash", "{\"a\":1}", now, now, 0);
        await store.UpsertAsync(t, "c", Doc("b", DocumentStatus.Indexed, 3));
        await store.UpsertAsync(t, "c", Doc("a", DocumentStatus.Queued, 0));
        await store.UpsertAsync(t, "c", Doc("c", DocumentStatus.Processing, 0));
        await store.UpsertAsync(t, "c", Doc("B", DocumentStatus.Failed, 9) with { Error = "boom", FileName = "b.txt" });
        await store.UpsertAsync(t, "other", Doc("z", DocumentStatus.Indexed, 7));

        // Ordinal order, as SQLite's BINARY collation gives: upper case before lower case.
        Assert.Equal(new[] { "B", "a", "b", "c" }, (await store.ListAsync(t, "c", null, 10)).Select(d => d.Id).ToArray());
        Assert.Equal(new[] { "c" }, (await store.ListAsync(t, "c", "b", 10)).Select(d => d.Id).ToArray());
        Assert.Equal(new[] { "B", "a" }, (await store.ListAsync(t, "c", null, 2)).Select(d => d.Id).ToArray());
        Assert.Equal((4L, 3L), await store.CountAsync(t, "c"));
        Assert.Equal((0L, 0L), await store.CountAsync(t, "none"));
        var unfinished = (await store.ListUnfinishedAsync(10_000)).Where(u => u.TenantId == t).ToList();
        Assert.Equal(new[] { "a", "c" }, unfinished.Select(u => u.DocumentId).Order(StringComparer.Ordinal).ToArray());

        var read = await store.GetAsync(t, "c", "b");
        Assert.Equal(Doc("b", DocumentStatus.Indexed, 3) with { CreatedAt = read!.CreatedAt, UpdatedAt = read.UpdatedAt }, read);
        Assert.True(Math.Abs((read.CreatedAt - now).TotalMilliseconds) < 1);
        Assert.Equal(TimeSpan.Zero, read.CreatedAt.Offset);
        Assert.Equal("boom", (await store.GetAsync(t, "c", "B"))!.Error);

        // Upsert replaces, including a local-offset time.
        var later = new DateTimeOffset(2030, 5, 6, 7, 8, 9, TimeSpan.FromHours(2));
        await store.UpsertAsync(t, "c", Doc("b", DocumentStatus.Failed, 0) with { UpdatedAt = later, Attempts = 3 });
        var replaced = await store.GetAsync(t, "c", "b");
        Assert.Equal(DocumentStatus.Failed, replaced!.Status);
        Assert.Equal(3, replaced.Attempts);
        Assert.Equal(later, replaced.UpdatedAt);

        Assert.True(await store.DeleteAsync(t, "c", "b"));
        Assert.False(await store.DeleteAsync(t, "c", "b"));
        Assert.Null(await store.GetAsync(t, "c", "b"));
        await store.DeleteCollectionAsync(t, "c");
        Assert.Empty(await store.ListAsync(t, "c", null, 10));
        Assert.Single(await store.ListAsync(t, "other", null, 10));
    }

    [Fact]
    public async Task Blob_store_puts_replaces_gets_and_deletes_by_key_and_prefix()
    {
        var store = new PostgresBlobStore(pg.DataSource);
        var t = "t" + Guid.NewGuid().ToString("N")[..8];
        Assert.Null(await store.GetAsync($"{t}/c/d1"));
        await store.PutAsync($"{t}/c/d1", new byte[] { 1, 2, 3 });
        await store.PutAsync($"{t}/c/d1", new byte[] { 4, 5 });
        await store.PutAsync($"{t}/c/d_2", Array.Empty<byte>());
        await store.PutAsync($"{t}/c%/d3", new byte[] { 9 });
        await store.PutAsync($"{t}/cc/d4", new byte[] { 8 });
        var large = new byte[3 << 20];
        new Random(3).NextBytes(large);
        await store.PutAsync($"{t}/c/big", large.AsMemory(1, large.Length - 1));

        Assert.Equal(new byte[] { 4, 5 }, await store.GetAsync($"{t}/c/d1"));
        Assert.Equal(Array.Empty<byte>(), await store.GetAsync($"{t}/c/d_2"));
        Assert.Equal(large[1..], await store.GetAsync($"{t}/c/big"));

        await store.DeleteAsync($"{t}/c/d1");
        await store.DeleteAsync($"{t}/c/absent");
        Assert.Null(await store.GetAsync($"{t}/c/d1"));

        // The prefix is a path segment: "c" removes c/* only, not "c%" or "cc" (no LIKE wildcards either).
        await store.DeletePrefixAsync($"{t}/c");
        Assert.Null(await store.GetAsync($"{t}/c/d_2"));
        Assert.Null(await store.GetAsync($"{t}/c/big"));
        Assert.Equal(new byte[] { 9 }, await store.GetAsync($"{t}/c%/d3"));
        Assert.Equal(new byte[] { 8 }, await store.GetAsync($"{t}/cc/d4"));
        await store.DeletePrefixAsync(t);
        Assert.Null(await store.GetAsync($"{t}/cc/d4"));
    }

    [Fact]
    public async Task Conversation_store_lists_a_users_conversations_newest_first_and_deletes_one()
    {
        var store = new PostgresConversationStore(pg.DataSource);
        var t = "t" + Guid.NewGuid().ToString("N")[..8];
        var at = new DateTimeOffset(2026, 3, 4, 5, 6, 7, TimeSpan.Zero);
        ChatTurn Turn(string q, int minute) => new(q, "a", [], at.AddMinutes(minute));
        await store.AppendAsync(t, "u1", "old", "kb", Turn("first question", 0));
        await store.AppendAsync(t, "u1", "old", "kb", Turn("follow-up", 10));
        await store.AppendAsync(t, "u1", "new", "docs", Turn("second question", 5));
        await store.AppendAsync(t, "u2", "theirs", "kb", Turn("not mine", 20));

        var page = await store.ListAsync(t, "u1", null, 10);
        Assert.Equal(["old", "new"], page.Conversations.Select(c => c.Id));
        Assert.Equal(new ConversationSummary("old", "kb", "first question", 2, at, at.AddMinutes(10)), page.Conversations[0]);
        Assert.Null(page.NextCursor);
        var first = await store.ListAsync(t, "u1", null, 1);
        Assert.Equal(["new"], (await store.ListAsync(t, "u1", first.NextCursor, 1)).Conversations.Select(c => c.Id));

        Assert.Equal(2, await store.DeleteAsync(t, "u1", "old"));
        Assert.Equal(0, await store.DeleteAsync(t, "u1", "theirs"));
        Assert.Equal(["new"], (await store.ListAsync(t, "u1", null, 10)).Conversations.Select(c => c.Id));
        Assert.Single(await store.GetAsync(t, "u2", "theirs"));
        await store.DeleteTenantAsync(t);
    }

    [Fact]
    public async Task Conversation_store_keeps_turns_in_order_per_conversation_and_deletes_a_tenant()
    {
        var store = new PostgresConversationStore(pg.DataSource);
        var t = "t" + Guid.NewGuid().ToString("N")[..8];
        var at = new DateTimeOffset(2026, 3, 4, 5, 6, 7, TimeSpan.Zero);
        ChatTurn Turn(int i) => new("q" + i, "a" + i, [new Citation(1, "doc" + i, "chunk" + i, "snippet " + i, 0.5f + i, "title", null)], at.AddMinutes(i));
        var none = Array.Empty<Citation>();

        foreach (var i in Enumerable.Range(0, 5))
        {
            await store.AppendAsync(t, "u1", "conv", "c", Turn(i));
        }

        await store.AppendAsync(t, "u2", "conv", "c", Turn(99));
        await store.AppendAsync("other" + t, "u1", "conv", "c", Turn(98));

        var turns = await store.GetAsync(t, "u1", "conv");
        Assert.Equal(["q0", "q1", "q2", "q3", "q4"], turns.Select(x => x.Question));
        Assert.Equal(Turn(3) with { Citations = none }, turns[3] with { Citations = none });
        Assert.Equal(Turn(3).Citations, turns[3].Citations);
        Assert.Single(await store.GetAsync(t, "u2", "conv"));
        Assert.Empty(await store.GetAsync(t, "u1", "other"));

        await store.DeleteTenantAsync(t);
        Assert.Empty(await store.GetAsync(t, "u1", "conv"));
        Assert.Single(await store.GetAsync("other" + t, "u1", "conv"));
        await store.DeleteTenantAsync("other" + t);
    }
}
