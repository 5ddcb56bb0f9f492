using Orleans.Concurrency;

namespace RagOrleans.Abstractions;

/// <summary>A chunk ready for the index: text, provenance and its embedding.</summary>
[GenerateSerializer, Immutable, Alias("rag.ChunkInput")]
public sealed record ChunkInput(
    [property: Id(0)] int Ordinal,
    [property: Id(1)] string Text,
    [property: Id(2)] int Start,
    [property: Id(3)] int End,
    [property: Id(4)] string? Section,
    [property: Id(5)] int? Page,
    [property: Id(6)] float[] Vector);

/// <summary>Document-level fields every chunk of a document shares.</summary>
[GenerateSerializer, Immutable, Alias("rag.ChunkDocument")]
public sealed record ChunkDocument(
    [property: Id(0)] string DocumentId,
    [property: Id(1)] string? Title,
    [property: Id(2)] string? MetadataJson);

/// <summary>
/// One shard's candidates for a query: chunk-log sequence numbers with their dense (cosine) and keyword
/// (BM25) scores, best first. Text is fetched only for the fused winners (<see cref="IIndexShardGrain.Hydrate"/>).
/// </summary>
[GenerateSerializer, Immutable, Alias("rag.ShardCandidates")]
public sealed record ShardCandidates(
    [property: Id(0)] long[] DenseSeqs,
    [property: Id(1)] float[] DenseScores,
    [property: Id(2)] long[] KeywordSeqs,
    [property: Id(3)] float[] KeywordScores);

/// <summary>Counters of one shard.</summary>
[GenerateSerializer, Immutable, Alias("rag.ShardStats")]
public sealed record ShardStats(
    [property: Id(0)] int Chunks,
    [property: Id(1)] int Documents,
    [property: Id(2)] long Watermark,
    [property: Id(3)] long SnapshotWatermark,
    [property: Id(4)] long IndexBytes,
    [property: Id(5)] string Silo);

/// <summary>What warming one shard did: its size, whether this call activated it, and how long its load took.</summary>
[GenerateSerializer, Immutable, Alias("rag.ShardWarmth")]
public sealed record ShardWarmth(
    [property: Id(0)] int Shard,
    [property: Id(1)] int Chunks,
    [property: Id(2)] long IndexBytes,
    [property: Id(3)] bool WasActive,
    [property: Id(4)] double LoadMilliseconds,
    [property: Id(5)] long ReplayedEntries);

/// <summary>
/// One index shard of a collection: in-memory HNSW over the shard's chunks. Writes are appended to the
/// durable chunk log before they touch memory; activation loads the newest snapshot and replays the log.
/// </summary>
[Alias("rag.IIndexShardGrain")]
public interface IIndexShardGrain : IGrainWithStringKey
{
    /// <summary>Replaces all chunks of a document (durably, then in memory).</summary>
    [Alias("UpsertDocument")] Task UpsertDocument(ChunkDocument document, IReadOnlyList<ChunkInput> chunks);

    /// <summary>Removes all chunks of a document; true if it had any.</summary>
    [Alias("DeleteDocument")] Task<bool> DeleteDocument(string documentId);

    /// <summary>Nearest chunks to a unit query vector, best first.</summary>
    [ReadOnly]
    [Alias("Search")] Task<IReadOnlyList<SearchHit>> Search(float[] queryVector, int topK);

    /// <summary>
    /// Top <paramref name="depth"/> dense candidates (when a vector is given) and keyword candidates (when text is
    /// given), among the chunks that match <paramref name="filterJson"/> (a metadata filter, applied during the walk).
    /// </summary>
    [ReadOnly]
    [Alias("Candidates")] Task<ShardCandidates> Candidates(float[]? queryVector, string? queryText, int depth, string? filterJson, Bm25Settings? bm25 = null);

    /// <summary>The stored embeddings of chunks by log sequence number (null where a chunk is gone), for rerankers.</summary>
    [ReadOnly]
    [Alias("Vectors")] Task<IReadOnlyList<float[]?>> Vectors(long[] seqs);

    /// <summary>The chunks with these sequence numbers, aligned with <paramref name="seqs"/> (null where gone); scores are 0 for the caller to set.</summary>
    [ReadOnly]
    [Alias("Hydrate")] Task<IReadOnlyList<SearchHit?>> Hydrate(long[] seqs);

    /// <summary>Counters.</summary>
    [ReadOnly]
    [Alias("GetStats")] Task<ShardStats> GetStats();

    /// <summary>
    /// Makes sure the shard is active with its index in memory. <paramref name="activeSince"/> is the caller's clock
    /// at the start of its request: an activation that finished before it counts as already warm.
    /// </summary>
    [ReadOnly]
    [Alias("Warm")] Task<ShardWarmth> Warm(DateTimeOffset activeSince);

    /// <summary>Writes a snapshot now if anything changed since the last one.</summary>
    [Alias("Snapshot")] Task<bool> Snapshot();

    /// <summary>Removes the shard's chunk log, snapshots and memory, and deactivates.</summary>
    [Alias("Drop")] Task Drop();
}

/// <summary>One document's ingestion state machine: parse, chunk, embed, index, with retries.</summary>
[Alias("rag.IDocumentGrain")]
public interface IDocumentGrain : IGrainWithStringKey
{
    /// <summary>Starts (or restarts) processing of the stored upload; returns at once.</summary>
    [Alias("Start")] Task Start();

    /// <summary>Completes when the document reaches Indexed or Failed, or the timeout passes.</summary>
    [AlwaysInterleave]
    [Alias("WaitForCompletion")] Task WaitForCompletion(TimeSpan timeout);

    /// <summary>Stops processing and removes the document's chunks and stored content.</summary>
    [Alias("Delete")] Task Delete();
}

/// <summary>What an embedding is for: some models prefix queries.</summary>
public enum EmbeddingKind
{
    /// <summary>A passage to be indexed.</summary>
    Document = 0,
    /// <summary>A search query.</summary>
    Query = 1,
}

/// <summary>The local embedding model (stateless worker; micro-batches concurrent callers).</summary>
[Alias("rag.IEmbedderGrain")]
public interface IEmbedderGrain : IGrainWithIntegerKey
{
    /// <summary>True once the model is loaded on this silo.</summary>
    [Alias("IsReady")] Task<bool> IsReady();

    /// <summary>Unit-length embeddings of <paramref name="texts"/>, in order.</summary>
    [Alias("Embed")] Task<float[][]> Embed(string model, IReadOnlyList<string> texts, EmbeddingKind kind);
}

/// <summary>The response replayed for a repeated request with the same <c>Idempotency-Key</c>.</summary>
[GenerateSerializer, Immutable, Alias("rag.IdempotentResponse")]
public sealed record IdempotentResponse(
    [property: Id(0)] int StatusCode,
    [property: Id(1)] string? Location,
    [property: Id(2)] string Body);

/// <summary>
/// One idempotency key of one tenant (grain key: tenant/SHA-256 of the key). Serializes requests that share a key:
/// the first runs, later ones get its stored response, a concurrent one gets Conflict, and one with a different
/// request fingerprint gets Unprocessable.
/// </summary>
[Alias("rag.IIdempotencyGrain")]
public interface IIdempotencyGrain : IGrainWithStringKey
{
    /// <summary>The stored response when the key was used before with this fingerprint; null when the caller now owns the key and must <see cref="Complete"/> or <see cref="Release"/> it.</summary>
    [Alias("Begin")] Task<IdempotentResponse?> Begin(string fingerprint);

    /// <summary>Stores the response of the request that owns the key.</summary>
    [Alias("Complete")] Task Complete(string fingerprint, IdempotentResponse response);

    /// <summary>Gives the key up without a response (the request failed), so a retry runs it again.</summary>
    [Alias("Release")] Task Release(string fingerprint);
}

/// <summary>Phases of a resumable upload.</summary>
public enum UploadPhase
{
    /// <summary>Accepting parts.</summary>
    Open = 0,
    /// <summary>Parts are being assembled into the document; no part may change.</summary>
    Completing = 1,
    /// <summary>Became <see cref="UploadInfo.DocumentId"/>; its parts are gone.</summary>
    Completed = 2,
}

/// <summary>What a resumable upload will become, fixed when it starts.</summary>
[GenerateSerializer, Immutable, Alias("rag.UploadRequest")]
public sealed record UploadRequest(
    [property: Id(0)] string FileName,
    [property: Id(1)] long? Size,
    [property: Id(2)] string? ContentType,
    [property: Id(3)] string? DocumentId,
    [property: Id(4)] string? Title,
    [property: Id(5)] string? MetadataJson);

/// <summary>One received part: where its bytes are, how many, and their SHA-256 (hex).</summary>
[GenerateSerializer, Immutable, Alias("rag.UploadPart")]
public sealed record UploadPart(
    [property: Id(0)] int Number,
    [property: Id(1)] long Size,
    [property: Id(2)] string Sha256,
    [property: Id(3)] string BlobKey,
    [property: Id(4)] DateTimeOffset ReceivedAt);

/// <summary>A resumable upload's state; <see cref="Parts"/> in part-number order.</summary>
[GenerateSerializer, Immutable, Alias("rag.UploadInfo")]
public sealed record UploadInfo(
    [property: Id(0)] string UploadId,
    [property: Id(1)] UploadRequest Request,
    [property: Id(2)] UploadPhase Phase,
    [property: Id(3)] IReadOnlyList<UploadPart> Parts,
    [property: Id(4)] long ReceivedBytes,
    [property: Id(5)] DateTimeOffset CreatedAt,
    [property: Id(6)] string? DocumentId);

/// <summary>
/// One resumable upload of a collection (key: tenant/collection/uploadId). Holds the part list; the parts' bytes
/// are streamed by the frontend straight into the blob store, one blob per received copy of a part.
/// </summary>
[Alias("rag.IUploadGrain")]
public interface IUploadGrain : IGrainWithStringKey
{
    /// <summary>Starts the upload; Conflict if it exists.</summary>
    [Alias("Create")] Task<UploadInfo> Create(UploadRequest request);

    /// <summary>The upload, or NotFound.</summary>
    [AlwaysInterleave]
    [Alias("Get")] Task<UploadInfo> Get();

    /// <summary>
    /// Records a stored copy of a part, replacing (and deleting) any earlier copy of the same number. TooLarge when the
    /// parts would exceed <paramref name="maxBytes"/>, Conflict unless the upload is open; the new blob is deleted then.
    /// </summary>
    [Alias("CommitPart")] Task<UploadInfo> CommitPart(UploadPart part, long maxBytes);

    /// <summary>
    /// Freezes the parts for assembly and returns them (Invalid unless numbered 1..n without gaps). A completed
    /// upload is returned as it is, with its document id.
    /// </summary>
    [Alias("BeginComplete")] Task<UploadInfo> BeginComplete();

    /// <summary>Marks the upload completed as <paramref name="documentId"/> and removes its parts.</summary>
    [Alias("FinishComplete")] Task<UploadInfo> FinishComplete(string documentId);

    /// <summary>Re-opens the upload after a failed assembly.</summary>
    [Alias("AbortComplete")] Task AbortComplete();

    /// <summary>Removes the upload and every stored part.</summary>
    [Alias("Abort")] Task Abort();
}
