using System.Runtime.CompilerServices;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace RagOrleans.Grains.Storage;

/// <summary>
/// The embedded mode's single SQLite file. WAL journal so readers never block the writer, and
/// synchronous=FULL so a committed transaction survives a crash: acknowledged writes rely on it. secure_delete
/// zeroes what a delete frees. Reads go through a memory map of the file (mmap_size), so a search's chunk rows cost
/// no read system call: in a VM a system call is expensive, and searches read rows at every request.
/// </summary>
public sealed class SqliteDatabase
{
    private const int SchemaVersion = 3;

    /// <summary>
    /// Default of <see cref="RagOptions.SqliteMmapBytes"/>: 256 MiB. The mapped pages are the file's page cache, shared,
    /// but each pooled connection maps the file on its own and a process's resident size counts a page once per mapping
    /// that touched it: with SQLite's ceiling (~2 GiB) a 1,000-tenant silo reported over 9.5 GB resident against 4.8 GB
    /// before its searches. 256 MiB keeps that overcount bounded and still maps all of a small or medium database.
    /// </summary>
    public const long DefaultMmapBytes = 256L * 1024 * 1024;

    // A writer that finds the write lock taken waits inside SQLite's own busy handler, which retries after 1, 2, 5, 10 ...
    // ms. Without it (busy_timeout 0, Microsoft.Data.Sqlite's default) SQLITE_BUSY returns to Microsoft.Data.Sqlite, which
    // retries after a blocking Thread.Sleep(150): a document write that met another one's commit stalled its grain
    // turn and a thread-pool thread for 150 ms at a time (a probe: 151-153 ms against 20-23 ms for a lock held 10 ms).
    private const int BusyTimeoutMilliseconds = 30_000;

    // Rows of these two tables are large (a chunk's text and 1.5 KB vector; a chat turn with its answer and sources), so
    // they are rowid tables with the key in a separate index: see RebuildWithRowids.
    private const string ChunkLogColumns = """
        shard TEXT NOT NULL, seq INTEGER NOT NULL, op INTEGER NOT NULL, doc_id TEXT NOT NULL,
        ordinal INTEGER NOT NULL, text TEXT, vector BLOB, start_offset INTEGER NOT NULL, end_offset INTEGER NOT NULL,
        section TEXT, page INTEGER, title TEXT, metadata TEXT,
        PRIMARY KEY (shard, seq)
        """;

    private const string ConversationTurnColumns = """
        tenant TEXT NOT NULL, user_id TEXT NOT NULL, conversation TEXT NOT NULL, seq INTEGER NOT NULL,
        collection TEXT NOT NULL, turn TEXT NOT NULL,
        PRIMARY KEY (tenant, user_id, conversation, seq)
        """;

    private readonly string _connectionString;

    // secure_delete: deleted rows are overwritten, so a deleted tenant's text does not linger in free pages of the file.
    // mmap_size is per connection, and pooled connections are handed out again with their settings, so it is cheap to
    // repeat with the others.
    private readonly string _sessionPragmas;

    // The session pragmas each pooled native handle already runs with. The pool hands a handle out again with its
    // settings, and the service opens a connection ~16 times per ingested document: parsing and running four pragmas at
    // every open cost ~1 ms of CPU per document (of ~10-15 besides the model). Keyed by handle (weakly: a handle the pool
    // closes goes) and holding the pragma text, so two databases on one file with different settings (one pool) each get theirs.
    private static readonly ConditionalWeakTable<SQLitePCL.sqlite3, string> Configured = new();

    /// <summary>Opens (creating if needed) the database at <paramref name="path"/> and brings its schema up to date.</summary>
    /// <param name="path">The database file.</param>
    /// <param name="mmapBytes">How much of the file is read through a memory map; 0 reads with system calls only.</param>
    /// <param name="logger">Where a schema upgrade that rewrites a table says so (it can take a while on a large file).</param>
    public SqliteDatabase(string path, long mmapBytes = DefaultMmapBytes, ILogger<SqliteDatabase>? logger = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(mmapBytes);
        _sessionPragmas = $"PRAGMA synchronous=FULL; PRAGMA secure_delete=ON; PRAGMA busy_timeout={BusyTimeoutMilliseconds}; PRAGMA mmap_size={mmapBytes.ToString(System.Globalization.CultureInfo.InvariantCulture)};";
        Path = path;
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = true,
            DefaultTimeout = BusyTimeoutMilliseconds / 1000,
        }.ToString();
        Initialize(logger ?? NullLogger<SqliteDatabase>.Instance);
    }

    /// <summary>The database file.</summary>
    public string Path { get; }

    /// <summary>Opens a pooled connection with the session pragmas set.</summary>
    public async Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken = default)
    {
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        Configure(connection);
        return connection;
    }

    /// <summary>Opens a connection synchronously (start-up paths only).</summary>
    public SqliteConnection Open()
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        Configure(connection);
        return connection;
    }

    // Microsoft.Data.Sqlite runs statements synchronously whatever the API, so one synchronous path serves both opens.
    private void Configure(SqliteConnection connection)
    {
        if (Configured.TryGetValue(connection.Handle!, out var applied) && applied == _sessionPragmas)
        {
            return;
        }

        using var pragma = connection.CreateCommand();
        pragma.CommandText = _sessionPragmas;
        pragma.ExecuteNonQuery();
        Configured.AddOrUpdate(connection.Handle!, _sessionPragmas);
    }

    private void Initialize(ILogger logger)
    {
        using var connection = Open();
        using (var wal = connection.CreateCommand())
        {
            // Outside the transaction: SQLite refuses to change the journal mode inside one.
            wal.CommandText = "PRAGMA journal_mode=WAL;";
            wal.ExecuteNonQuery();
        }

        using var tx = connection.BeginTransaction();
        using var command = connection.CreateCommand();
        command.Transaction = tx;

        // Version 3: the chunk log and the conversation turns become rowid tables (versions 1 and 2 made them WITHOUT
        // ROWID). First, so that the statements below recreate what the rewrite dropped (the chunk log's document index).
        RebuildWithRowids(command, logger, "chunk_log", ChunkLogColumns);
        RebuildWithRowids(command, logger, "conversation_turns", ConversationTurnColumns);

        command.CommandText = $"""
            CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS grain_state (
                grain_id TEXT NOT NULL, state_name TEXT NOT NULL, etag TEXT NOT NULL, data BLOB NOT NULL,
                PRIMARY KEY (grain_id, state_name)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS documents (
                tenant TEXT NOT NULL, collection TEXT NOT NULL, id TEXT NOT NULL,
                title TEXT, status INTEGER NOT NULL, chunk_count INTEGER NOT NULL, error TEXT,
                source_type TEXT NOT NULL, file_name TEXT, size_bytes INTEGER NOT NULL, content_hash TEXT NOT NULL,
                metadata TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, attempts INTEGER NOT NULL,
                PRIMARY KEY (tenant, collection, id)) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS documents_unfinished ON documents (status) WHERE status IN (0, 1);
            CREATE TABLE IF NOT EXISTS chunk_log ({ChunkLogColumns});
            CREATE INDEX IF NOT EXISTS chunk_log_doc ON chunk_log (shard, doc_id);
            CREATE TABLE IF NOT EXISTS conversation_turns ({ConversationTurnColumns});
            """;
        command.ExecuteNonQuery();

        // Version 2: pipeline step and progress, status and content-hash lookups, idempotency keys. Columns are
        // added only when missing, so a version-1 file upgrades in place.
        command.CommandText = "SELECT COUNT(*) FROM pragma_table_info('documents') WHERE name = 'step'";
        if (Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture) == 0)
        {
            command.CommandText = """
                ALTER TABLE documents ADD COLUMN step INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE documents ADD COLUMN progress INTEGER;
                """;
            command.ExecuteNonQuery();
        }

        command.CommandText = """
            CREATE INDEX IF NOT EXISTS documents_status ON documents (tenant, collection, status, id);
            CREATE INDEX IF NOT EXISTS documents_hash ON documents (tenant, collection, content_hash);
            CREATE TABLE IF NOT EXISTS idempotency_keys (
                tenant TEXT NOT NULL, key_hash TEXT NOT NULL, fingerprint TEXT NOT NULL,
                status_code INTEGER NOT NULL, location TEXT, body TEXT NOT NULL,
                created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
                PRIMARY KEY (tenant, key_hash)) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS idempotency_keys_expiry ON idempotency_keys (expires_at);
            """;
        command.ExecuteNonQuery();

        command.CommandText = "DELETE FROM schema_version; INSERT INTO schema_version (version) VALUES ($v)";
        command.Parameters.AddWithValue("$v", SchemaVersion);
        command.ExecuteNonQuery();

        tx.Commit();
    }

    /// <summary>
    /// Rebuilds <paramref name="table"/> as a rowid table if an earlier schema made it WITHOUT ROWID. Such a table keeps
    /// whole rows in its b-tree, interior pages included, and a row larger than the ~1 KB a cell of that tree keeps on its
    /// page spills to overflow pages, which every key comparison on the way to a row then reads in full (a chunk-log row
    /// is ~2 KB: the service's CPU per ingested document, the model aside, fell by about a quarter without those reads).
    /// A rowid table keeps only the key in its primary-key index and reads a row's pages once, when the row is fetched.
    /// The table scan of the old table runs in key order, so the new rowids follow the key.
    /// </summary>
    private static void RebuildWithRowids(SqliteCommand command, ILogger logger, string table, string columns)
    {
        command.CommandText = "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = $name";
        command.Parameters.Clear();
        command.Parameters.AddWithValue("$name", table);
        var sql = command.ExecuteScalar() as string;
        command.Parameters.Clear();
        if (sql is null || !sql.Contains("WITHOUT ROWID", StringComparison.OrdinalIgnoreCase))
        {
            return;
        }

        command.CommandText = $"CREATE TABLE {table}_rowid ({columns}); SELECT group_concat(name, ', ') FROM pragma_table_info('{table}_rowid')";
        var names = (string)command.ExecuteScalar()!;
        command.CommandText = $"""
            INSERT INTO {table}_rowid ({names}) SELECT {names} FROM {table};
            DROP TABLE {table};
            ALTER TABLE {table}_rowid RENAME TO {table};
            """;
        logger.LogInformation("Rewriting table {Table} of {Path} as a rowid table (schema version 3); once, and it reads and writes the whole table", table, command.Connection!.DataSource);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        command.ExecuteNonQuery();
        logger.LogInformation("Table {Table} rewritten in {ElapsedMs:F0} ms", table, System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }
}
