using RagOrleans.Grains.Storage;

namespace RagOrleans.Grains;

/// <summary>Service configuration, bound from the <c>Rag</c> section.</summary>
public sealed class RagOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Rag";

    /// <summary><c>embedded</c> (default: one process, SQLite + files) or <c>cluster</c>.</summary>
    public string Mode { get; set; } = "embedded";

    /// <summary>Folder of the embedded mode's database, snapshots, blobs and generated operator key.</summary>
    public string DataDir { get; set; } = "./data";

    /// <summary>
    /// Bytes of the embedded mode's SQLite file read through a memory map instead of read calls (0: none). Every search
    /// reads its hits' chunk rows; through the map they cost no system call.
    /// </summary>
    public long SqliteMmapBytes { get; set; } = SqliteDatabase.DefaultMmapBytes;

    /// <summary>The operator's API key; generated into the data folder when unset.</summary>
    public string? OperatorKey { get; set; }

    /// <summary>Largest accepted document upload in bytes (plain or resumable), unless a tenant has its own limit.</summary>
    public long MaxUploadBytes { get; set; } = 32 * 1024 * 1024;

    /// <summary>Per-tenant upload limits overriding <see cref="MaxUploadBytes"/> (<c>Rag:TenantMaxUploadBytes:{tenant}</c>).</summary>
    public Dictionary<string, long> TenantMaxUploadBytes { get; set; } = [];

    /// <summary>The upload limit of a tenant.</summary>
    public long MaxUploadBytesFor(string tenantId) => TenantMaxUploadBytes.TryGetValue(tenantId, out var limit) ? limit : MaxUploadBytes;

    /// <summary>How long the first response to a POST with an <c>Idempotency-Key</c> is kept for replay.</summary>
    public TimeSpan IdempotencyKeyLifetime { get; set; } = TimeSpan.FromHours(24);

    /// <summary>Index shards of a new collection.</summary>
    public int DefaultShardCount { get; set; } = 1;

    /// <summary>How often a changed shard writes a snapshot.</summary>
    public TimeSpan SnapshotInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Ingestion attempts before a document is marked failed.</summary>
    public int IngestionMaxAttempts { get; set; } = 5;

    /// <summary>Delay before the first retry; doubles per attempt (with jitter: each wait is 50–100 % of the nominal one).</summary>
    public TimeSpan IngestionRetryDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Longest nominal wait between two attempts.</summary>
    public TimeSpan IngestionMaxRetryDelay { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Period of the reminder an unfinished document holds. Retries are its due times; between them it ticks at this
    /// period, and a tick that finds no attempt running (the silo that ran one died) starts one. At least Orleans'
    /// <c>ReminderOptions.MinimumReminderPeriod</c> (1 minute unless configured).
    /// </summary>
    public TimeSpan IngestionWatchdogPeriod { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Whether a starting silo, and the survivors of a dead silo, resume unfinished documents at once. Reminders alone
    /// resume them too (within <see cref="IngestionWatchdogPeriod"/>) where the reminder table is durable (cluster
    /// mode); embedded mode keeps reminders in memory, so a restarted process relies on this sweep.
    /// </summary>
    public bool IngestionRecovery { get; set; } = true;

    /// <summary>Document-chunk embeddings kept per silo (by hash of model and text) so repeated chunks skip the model; 0 disables.</summary>
    public int ChunkEmbeddingCacheCapacity { get; set; } = 20_000;

    /// <summary>Embedding batches of one document in flight per silo; a large document spreads its batches over every silo.</summary>
    public int EmbedBatchesInFlightPerSilo { get; set; } = 2;

    /// <summary>
    /// Documents one silo parses and embeds at the same time; the rest wait queued. While one document parses, chunks,
    /// indexes or is stored, the model runs the others' texts; with few small documents in flight it sat idle between
    /// them. Eight, not four, since the model runs one call per core (bench/Ingest, 176 Markdown files, warm service,
    /// alternating: 60.5 -> 73.4 and 66.5 -> 68.5 chunks/s; two, before four, had been 30.2 and 35.6 chunks/s).
    /// </summary>
    public int MaxConcurrentIngestions { get; set; } = 8;

    /// <summary>Optional ONNX model file overriding the one shipped in the model package.</summary>
    public string? ModelPath { get; set; }

    /// <summary>Optional vocab.txt matching <see cref="ModelPath"/>.</summary>
    public string? VocabPath { get; set; }

    /// <summary>
    /// Threads one embedding model call uses. One (the default) runs as many calls at once as there are cores, which
    /// embedded 1.2-1.7x more than one call on every core (bench/README); more suits a machine where the silo must
    /// leave cores to other work, with <c>Rag:Embedding:Batcher:Workers</c> lowered to match.
    /// </summary>
    public int EmbeddingThreadsPerCall { get; set; } = 1;

    /// <summary>HNSW search breadth (ef); raised to top-k when smaller.</summary>
    public int EfSearch { get; set; } = 64;

    /// <summary>
    /// Below this many live chunks a shard scans exactly instead of walking the graph (checked on every search, so a
    /// shard switches as it grows and shrinks). 2,500 is where the measured exact-scan and ef-64 walk QPS cross on
    /// real 384-d vectors (bench/Ann <c>tier</c>, see bench/README.md).
    /// </summary>
    public int ExactSearchThreshold { get; set; } = 2500;

    /// <summary>Resolved absolute data folder.</summary>
    public string ResolvedDataDir => Path.GetFullPath(DataDir);
}
