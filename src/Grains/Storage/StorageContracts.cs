using RagOrleans.Abstractions;

namespace RagOrleans.Grains.Storage;

/// <summary>Kinds of chunk-log entries.</summary>
public enum ChunkOp : byte
{
    /// <summary>Adds one chunk.</summary>
    Add = 1,
    /// <summary>Removes every chunk of a document added at a lower sequence number.</summary>
    DeleteDocument = 2,
}

/// <summary>
/// One entry of a shard's chunk log. Sequence numbers are assigned by the shard (its single writer)
/// and strictly increase; a snapshot records the highest sequence number it contains (its watermark).
/// </summary>
public sealed record ChunkLogEntry(
    long Seq,
    ChunkOp Op,
    string DocumentId,
    int Ordinal,
    string? Text,
    float[]? Vector,
    int Start,
    int End,
    string? Section,
    int? Page,
    string? Title,
    string? MetadataJson);

/// <summary>The durable, ordered log of a shard's writes: the source of truth for its index.</summary>
public interface IChunkLog
{
    /// <summary>
    /// Atomically removes the Add rows of <paramref name="replacedDocumentId"/> (when given) and appends
    /// <paramref name="entries"/>. Returns only after the transaction committed.
    /// </summary>
    Task AppendAsync(string shardKey, IReadOnlyList<ChunkLogEntry> entries, string? replacedDocumentId, CancellationToken cancellationToken = default);

    /// <summary>Entries with a sequence number above <paramref name="afterSeq"/>, in order, vectors included.</summary>
    IAsyncEnumerable<ChunkLogEntry> ReadAfterAsync(string shardKey, long afterSeq, CancellationToken cancellationToken = default);

    /// <summary>The Add entries with the given sequence numbers, without vectors, in no particular order.</summary>
    Task<IReadOnlyList<ChunkLogEntry>> GetAsync(string shardKey, IReadOnlyList<long> seqs, CancellationToken cancellationToken = default);

    /// <summary>Highest sequence number in the log, or 0.</summary>
    Task<long> MaxSeqAsync(string shardKey, CancellationToken cancellationToken = default);

    /// <summary>Drops DeleteDocument entries at or below <paramref name="watermark"/>: a snapshot covers them.</summary>
    Task CompactAsync(string shardKey, long watermark, CancellationToken cancellationToken = default);

    /// <summary>Removes the whole log of a shard.</summary>
    Task DeleteShardAsync(string shardKey, CancellationToken cancellationToken = default);
}

/// <summary>A snapshot opened for reading.</summary>
public sealed record SnapshotHandle(long Watermark, Stream Content) : IAsyncDisposable
{
    /// <inheritdoc />
    public ValueTask DisposeAsync() => Content.DisposeAsync();
}

/// <summary>Stores index snapshots; only the newest complete one matters, older ones are removed later.</summary>
public interface ISnapshotStore
{
    /// <summary>Writes a snapshot with <paramref name="write"/> and makes it the newest only once it is complete.</summary>
    Task SaveAsync(string shardKey, long watermark, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken = default);

    /// <summary>The newest complete snapshot, or null.</summary>
    Task<SnapshotHandle?> OpenLatestAsync(string shardKey, CancellationToken cancellationToken = default);

    /// <summary>Removes every snapshot of a shard.</summary>
    Task DeleteAsync(string shardKey, CancellationToken cancellationToken = default);
}

/// <summary>Uploaded document content, keyed by tenant/collection/document.</summary>
public interface IBlobStore
{
    /// <summary>Stores <paramref name="content"/> durably under <paramref name="key"/>, replacing any previous content.</summary>
    Task PutAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken = default);

    /// <summary>The content, or null if absent.</summary>
    Task<byte[]?> GetAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>
    /// Stores everything <paramref name="content"/> yields under <paramref name="key"/>, reading it in bounded slices
    /// (never the whole content in memory); the blob replaces any previous one only once complete. Returns its length.
    /// </summary>
    Task<long> PutStreamAsync(string key, Stream content, CancellationToken cancellationToken = default);

    /// <summary>The content for sequential reading, or null if absent.</summary>
    Task<Stream?> OpenReadAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>Renames a blob, replacing any blob at <paramref name="to"/>; false if <paramref name="from"/> is absent.</summary>
    Task<bool> MoveAsync(string from, string to, CancellationToken cancellationToken = default);

    /// <summary>Removes one blob.</summary>
    Task DeleteAsync(string key, CancellationToken cancellationToken = default);

    /// <summary>Removes every blob whose key starts with <paramref name="prefix"/> followed by '/'.</summary>
    Task DeletePrefixAsync(string prefix, CancellationToken cancellationToken = default);
}

/// <summary>The registry of documents and their ingestion state.</summary>
public interface IDocumentStore
{
    /// <summary>Inserts or replaces a document's record.</summary>
    Task UpsertAsync(string tenantId, string collection, DocumentInfo document, CancellationToken cancellationToken = default);

    /// <summary>
    /// Replaces an existing record; false, writing nothing, when there is none (deleted meanwhile): a pipeline that
    /// finishes after its document was deleted must not bring the record back.
    /// </summary>
    Task<bool> UpdateAsync(string tenantId, string collection, DocumentInfo document, CancellationToken cancellationToken = default);

    /// <summary>
    /// Moves an existing record's pipeline step and progress (and its update time), leaving every other field as it is;
    /// false when there is no record. One statement that touches no index, so per-step progress stays cheap.
    /// </summary>
    Task<bool> UpdateProgressAsync(
        string tenantId, string collection, string documentId, DocumentStep step, int? progressPercent, DateTimeOffset updatedAt,
        CancellationToken cancellationToken = default);

    /// <summary>One record, or null.</summary>
    Task<DocumentInfo?> GetAsync(string tenantId, string collection, string documentId, CancellationToken cancellationToken = default);

    /// <summary>Records in id order after <paramref name="afterId"/>, only those in <paramref name="status"/> when given.</summary>
    Task<IReadOnlyList<DocumentInfo>> ListAsync(
        string tenantId, string collection, string? afterId, int limit, DocumentStatus? status = null, CancellationToken cancellationToken = default);

    /// <summary>The oldest record of the collection whose content has this SHA-256 (hex), or null.</summary>
    Task<DocumentInfo?> FindByHashAsync(string tenantId, string collection, string contentHash, CancellationToken cancellationToken = default);

    /// <summary>Removes a record; false if it was absent.</summary>
    Task<bool> DeleteAsync(string tenantId, string collection, string documentId, CancellationToken cancellationToken = default);

    /// <summary>Removes every record of a collection.</summary>
    Task DeleteCollectionAsync(string tenantId, string collection, CancellationToken cancellationToken = default);

    /// <summary>Document count and chunk count (of indexed documents) of a collection.</summary>
    Task<(long Documents, long Chunks)> CountAsync(string tenantId, string collection, CancellationToken cancellationToken = default);

    /// <summary>Documents still queued or processing (to resume after a restart).</summary>
    Task<IReadOnlyList<(string TenantId, string Collection, string DocumentId)>> ListUnfinishedAsync(int limit, CancellationToken cancellationToken = default);
}

/// <summary>Chat history, one row per turn.</summary>
public interface IConversationStore
{
    /// <summary>Appends a turn.</summary>
    Task AppendAsync(string tenantId, string userId, string conversationId, string collection, ChatTurn turn, CancellationToken cancellationToken = default);

    /// <summary>The turns of a conversation, oldest first.</summary>
    Task<IReadOnlyList<ChatTurn>> GetAsync(string tenantId, string userId, string conversationId, CancellationToken cancellationToken = default);

    /// <summary>
    /// One user's conversations, most recently active first (ties by id, descending), after the opaque
    /// <paramref name="cursor"/> of a previous page.
    /// </summary>
    Task<ConversationPage> ListAsync(string tenantId, string userId, string? cursor, int limit, CancellationToken cancellationToken = default);

    /// <summary>Removes one conversation's turns; returns how many there were.</summary>
    Task<int> DeleteAsync(string tenantId, string userId, string conversationId, CancellationToken cancellationToken = default);

    /// <summary>Removes every conversation of a tenant.</summary>
    Task DeleteTenantAsync(string tenantId, CancellationToken cancellationToken = default);
}

/// <summary>The first response to a request that carried an <c>Idempotency-Key</c>, kept until it expires.</summary>
/// <param name="Fingerprint">Hash of what the request asked for: a reused key with another fingerprint is refused.</param>
public sealed record IdempotencyRecord(string Fingerprint, int StatusCode, string? Location, string Body, DateTimeOffset CreatedAt, DateTimeOffset ExpiresAt);

/// <summary>Durable idempotency keys, per tenant; keys are stored hashed.</summary>
public interface IIdempotencyStore
{
    /// <summary>The record of a key unless absent or expired at <paramref name="now"/>.</summary>
    Task<IdempotencyRecord?> GetAsync(string tenantId, string keyHash, DateTimeOffset now, CancellationToken cancellationToken = default);

    /// <summary>Stores (or replaces an expired) record of a key.</summary>
    Task SaveAsync(string tenantId, string keyHash, IdempotencyRecord record, CancellationToken cancellationToken = default);

    /// <summary>Removes the records expired at <paramref name="now"/>; returns how many.</summary>
    Task<int> PurgeExpiredAsync(DateTimeOffset now, CancellationToken cancellationToken = default);

    /// <summary>Removes every record of a tenant.</summary>
    Task DeleteTenantAsync(string tenantId, CancellationToken cancellationToken = default);
}
