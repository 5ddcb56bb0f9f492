using Orleans.Concurrency;

namespace RagOrleans.Abstractions;

/// <summary>Settings fixed when a collection is created.</summary>
[GenerateSerializer, Immutable, Alias("rag.CollectionSettings")]
public sealed record CollectionSettings(
    [property: Id(0)] string Model,
    [property: Id(1)] int Dimensions,
    [property: Id(2)] int ShardCount,
    [property: Id(3)] int ChunkTargetTokens,
    [property: Id(4)] int ChunkOverlapTokens,
    [property: Id(5)] Bm25Settings? Bm25 = null,
    [property: Id(6)] string? VectorQuantization = null)
{
    /// <summary>The BM25 parameters in force: the collection's own, or the defaults for collections created before they were settable.</summary>
    public Bm25Settings EffectiveBm25 => Bm25 ?? Bm25Settings.Default;

    /// <summary>How the shards store vectors for the graph walk: <c>none</c> (float32) or <c>int8</c> (float re-scoring).</summary>
    public string EffectiveVectorQuantization => VectorQuantization ?? VectorQuantizations.None;
}

/// <summary>The vector storage modes a collection can choose at creation.</summary>
public static class VectorQuantizations
{
    /// <summary>float32 vectors in memory (the default).</summary>
    public const string None = "none";

    /// <summary>int8 codes in memory (about 4x less), the float32 vectors memory-mapped for exact re-scoring.</summary>
    public const string Int8 = "int8";

    /// <summary>The canonical name of <paramref name="value"/> (null is <see cref="None"/>); Invalid for anything else.</summary>
    public static string Normalize(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or None => None,
        Int8 => Int8,
        _ => throw RagException.Invalid($"vectorQuantization must be '{None}' or '{Int8}'."),
    };
}

/// <summary>BM25 parameters of a collection's keyword index, fixed at creation.</summary>
/// <param name="K1">Term-frequency saturation, 0 to <see cref="MaxK1"/>.</param>
/// <param name="B">Length normalisation, 0 (none) to 1 (full).</param>
[GenerateSerializer, Immutable, Alias("rag.Bm25Settings")]
public sealed record Bm25Settings([property: Id(0)] float K1, [property: Id(1)] float B)
{
    /// <summary>Largest accepted k1; beyond it term frequency barely saturates and BM25 degenerates to raw tf·idf.</summary>
    public const float MaxK1 = 10f;

    /// <summary>Anserini's BEIR settings (k1 = 0.9, b = 0.4), better than the textbook 1.2 / 0.75 on short passages.</summary>
    public static Bm25Settings Default { get; } = new(0.9f, 0.4f);

    /// <summary>Throws <see cref="RagException"/> (Invalid) unless both parameters are in range.</summary>
    public Bm25Settings Validate()
    {
        if (!float.IsFinite(K1) || K1 < 0f || K1 > MaxK1)
        {
            throw RagException.Invalid($"bm25.k1 must be between 0 and {MaxK1.ToString(System.Globalization.CultureInfo.InvariantCulture)}.");
        }

        if (!float.IsFinite(B) || B < 0f || B > 1f)
        {
            throw RagException.Invalid("bm25.b must be between 0 and 1.");
        }

        return this;
    }
}

/// <summary>A collection as reported to API callers.</summary>
[GenerateSerializer, Immutable, Alias("rag.CollectionInfo")]
public sealed record CollectionInfo(
    [property: Id(0)] string Name,
    [property: Id(1)] DateTimeOffset CreatedAt,
    [property: Id(2)] CollectionSettings Settings,
    [property: Id(3)] long DocumentCount,
    [property: Id(4)] long ChunkCount);

/// <summary>Ingestion states of a document.</summary>
public enum DocumentStatus
{
    /// <summary>Accepted and stored durably; waiting for the pipeline.</summary>
    Queued = 0,
    /// <summary>Being parsed, chunked, embedded or indexed.</summary>
    Processing = 1,
    /// <summary>All chunks are durable in the chunk log and searchable.</summary>
    Indexed = 2,
    /// <summary>Gave up; <see cref="DocumentInfo.Error"/> says why.</summary>
    Failed = 3,
}

/// <summary>The last pipeline step a document completed; steps run in this order.</summary>
public enum DocumentStep
{
    /// <summary>The content is stored; nothing processed yet.</summary>
    Received = 0,
    /// <summary>Text extracted.</summary>
    Parsed = 1,
    /// <summary>Split into chunks.</summary>
    Chunked = 2,
    /// <summary>Every chunk has its embedding.</summary>
    Embedded = 3,
    /// <summary>The chunks are durable in the index and searchable.</summary>
    Indexed = 4,
}

/// <summary>
/// A document upload as it reaches the silo. Small uploads carry <see cref="Content"/>; large ones were streamed
/// at the edge into the blob store and carry <see cref="StagedBlobKey"/> with the length and SHA-256 (hex) measured
/// while streaming, and an empty <see cref="Content"/>.
/// </summary>
[GenerateSerializer, Immutable, Alias("rag.DocumentUpload")]
public sealed record DocumentUpload(
    [property: Id(0)] string? Id,
    [property: Id(1)] string? Title,
    [property: Id(2)] string SourceType,
    [property: Id(3)] string? FileName,
    [property: Id(4)] byte[] Content,
    [property: Id(5)] string? MetadataJson,
    [property: Id(6)] string? StagedBlobKey = null,
    [property: Id(7)] long StagedLength = 0,
    [property: Id(8)] string? StagedSha256 = null);

/// <summary>A document's record and ingestion state.</summary>
[GenerateSerializer, Immutable, Alias("rag.DocumentInfo")]
public sealed record DocumentInfo(
    [property: Id(0)] string Id,
    [property: Id(1)] string? Title,
    [property: Id(2)] DocumentStatus Status,
    [property: Id(3)] int ChunkCount,
    [property: Id(4)] string? Error,
    [property: Id(5)] string SourceType,
    [property: Id(6)] string? FileName,
    [property: Id(7)] long SizeBytes,
    [property: Id(8)] string ContentHash,
    [property: Id(9)] string? MetadataJson,
    [property: Id(10)] DateTimeOffset CreatedAt,
    [property: Id(11)] DateTimeOffset UpdatedAt,
    [property: Id(12)] int Attempts,
    [property: Id(13)] DocumentStep Step = DocumentStep.Received,
    [property: Id(14)] int? ProgressPercent = null);

/// <summary>The outcome of an upload: the document, and whether it already existed with this content (nothing new was queued).</summary>
[GenerateSerializer, Immutable, Alias("rag.DocumentAdded")]
public sealed record DocumentAdded(
    [property: Id(0)] DocumentInfo Document,
    [property: Id(1)] bool Duplicate);

/// <summary>One page of a document listing.</summary>
[GenerateSerializer, Immutable, Alias("rag.DocumentPage")]
public sealed record DocumentPage(
    [property: Id(0)] IReadOnlyList<DocumentInfo> Documents,
    [property: Id(1)] string? NextCursor);

/// <summary>Which ranked lists a search uses.</summary>
public enum SearchMode
{
    /// <summary>Dense and keyword lists fused by reciprocal rank fusion (the default).</summary>
    Hybrid = 0,
    /// <summary>Dense (embedding) similarity only.</summary>
    Vector = 1,
    /// <summary>BM25 keyword relevance only.</summary>
    Keyword = 2,
}

/// <summary>The second stage of a search.</summary>
public enum RerankMode
{
    /// <summary>The first-stage order is final (the default).</summary>
    None = 0,
    /// <summary>Maximal marginal relevance: trades relevance for diversity with <see cref="SearchQuery.Lambda"/>.</summary>
    Mmr = 1,
}

/// <summary>A search request against one collection.</summary>
[GenerateSerializer, Immutable, Alias("rag.SearchQuery")]
public sealed record SearchQuery(
    [property: Id(0)] string Query,
    [property: Id(1)] int TopK,
    [property: Id(2)] SearchMode Mode = SearchMode.Hybrid,
    [property: Id(3)] bool Explain = false,
    [property: Id(4)] string? FilterJson = null,
    [property: Id(5)] RerankMode Rerank = RerankMode.None,
    [property: Id(6)] float Lambda = SearchQuery.DefaultLambda,
    [property: Id(7)] int RrfK = SearchQuery.DefaultRrfK,
    [property: Id(8)] float VectorWeight = 1f,
    [property: Id(9)] float KeywordWeight = 1f)
{
    /// <summary>Default MMR balance between relevance (1) and diversity (0).</summary>
    public const float DefaultLambda = 0.7f;

    /// <summary>Default reciprocal-rank-fusion constant.</summary>
    public const int DefaultRrfK = 60;

    /// <summary>Largest accepted RRF constant.</summary>
    public const int MaxRrfK = 10_000;

    /// <summary>Largest accepted list weight.</summary>
    public const float MaxWeight = 100f;

    /// <summary>Throws <see cref="RagException"/> (Invalid) unless the fusion and rerank parameters are in range.</summary>
    public void ValidateRanking()
    {
        if (!float.IsFinite(Lambda) || Lambda < 0f || Lambda > 1f)
        {
            throw RagException.Invalid("lambda must be between 0 and 1.");
        }

        if (RrfK is < 0 or > MaxRrfK)
        {
            throw RagException.Invalid($"rrfK must be between 0 and {MaxRrfK}.");
        }

        foreach (var (weight, name) in new[] { (VectorWeight, "weights.vector"), (KeywordWeight, "weights.keyword") })
        {
            if (!float.IsFinite(weight) || weight < 0f || weight > MaxWeight)
            {
                throw RagException.Invalid($"{name} must be between 0 and {MaxWeight.ToString(System.Globalization.CultureInfo.InvariantCulture)}.");
            }
        }

        if (VectorWeight == 0f && KeywordWeight == 0f)
        {
            throw RagException.Invalid("weights.vector and weights.keyword must not both be 0.");
        }
    }
}

/// <summary>
/// How a hit was ranked: its place and score in each list that produced it (1-based ranks) and, when a reranker
/// ran, its place and score in the first-stage pool and what the reranker made of it.
/// </summary>
[GenerateSerializer, Immutable, Alias("rag.SearchExplanation")]
public sealed record SearchExplanation(
    [property: Id(0)] int? DenseRank,
    [property: Id(1)] float? DenseScore,
    [property: Id(2)] int? KeywordRank,
    [property: Id(3)] float? KeywordScore,
    [property: Id(4)] RerankExplanation? Rerank = null);

/// <summary>One rerank step behind a hit.</summary>
/// <param name="Method">The reranker, e.g. "mmr".</param>
/// <param name="PoolRank">1-based place in the first-stage (fused) pool the reranker read.</param>
/// <param name="PoolScore">First-stage score in that pool.</param>
/// <param name="PoolSize">How many candidates the reranker read.</param>
/// <param name="Score">The reranker's score when it chose this hit (for MMR: λ·relevance − (1−λ)·maxSimilarity).</param>
/// <param name="MaxSimilarity">MMR: highest cosine similarity to a hit chosen before it; null for the first hit.</param>
/// <param name="Lambda">MMR: the relevance/diversity balance used.</param>
[GenerateSerializer, Immutable, Alias("rag.RerankExplanation")]
public sealed record RerankExplanation(
    [property: Id(0)] string Method,
    [property: Id(1)] int PoolRank,
    [property: Id(2)] float PoolScore,
    [property: Id(3)] int PoolSize,
    [property: Id(4)] float Score,
    [property: Id(5)] float? MaxSimilarity,
    [property: Id(6)] float? Lambda);

/// <summary>One ranked passage.</summary>
[GenerateSerializer, Immutable, Alias("rag.SearchHit")]
public sealed record SearchHit(
    [property: Id(0)] string DocumentId,
    [property: Id(1)] string ChunkId,
    [property: Id(2)] string Text,
    [property: Id(3)] float Score,
    [property: Id(4)] string? Title,
    [property: Id(5)] string? Section,
    [property: Id(6)] string? MetadataJson,
    [property: Id(7)] int Start,
    [property: Id(8)] int End,
    [property: Id(9)] int? Page = null,
    [property: Id(10)] SearchExplanation? Explain = null);

/// <summary>The outcome of <see cref="ICollectionGrain.Prewarm"/>: each shard's state and the whole call's duration.</summary>
[GenerateSerializer, Immutable, Alias("rag.CollectionPrewarm")]
public sealed record CollectionPrewarm(
    [property: Id(0)] string Collection,
    [property: Id(1)] IReadOnlyList<ShardWarmth> Shards,
    [property: Id(2)] double ElapsedMilliseconds);

/// <summary>A collection: settings, document registry, write routing to shards, search fan-out and merge.</summary>
[Alias("rag.ICollectionGrain")]
public interface ICollectionGrain : IGrainWithStringKey
{
    /// <summary>Creates the collection; Conflict if it exists.</summary>
    [Alias("Create")] Task<CollectionInfo> Create(CollectionSettings settings);

    /// <summary>The collection with its counts, or NotFound.</summary>
    [AlwaysInterleave]
    [Alias("Get")] Task<CollectionInfo> Get();

    /// <summary>The settings, or NotFound.</summary>
    [AlwaysInterleave]
    [Alias("GetSettings")] Task<CollectionSettings> GetSettings();

    /// <summary>Records a resumable upload started in the collection (so deleting the collection removes it); NotFound if the collection does not exist.</summary>
    [Alias("RegisterUpload")] Task<CollectionSettings> RegisterUpload(string uploadId);

    /// <summary>
    /// (restore) Creates the collection with settings and creation time from a backup, registering it with its
    /// tenant but reserving no quota (the restore sets the quota's counts itself); Conflict if it exists.
    /// </summary>
    [Alias("Restore")] Task Restore(CollectionSettings settings, DateTimeOffset createdAt);

    /// <summary>Deletes the collection with all documents, chunks, snapshots and blobs.</summary>
    [Alias("Delete")] Task Delete();

    /// <summary>
    /// Stores the upload durably and queues it for ingestion. Idempotent by content: the same content under the
    /// same id, or (without an id) content already in the collection, returns the existing document as a duplicate.
    /// </summary>
    [Alias("AddDocument")] Task<DocumentAdded> AddDocument(DocumentUpload upload);

    /// <summary>Lists documents in id order, after <paramref name="cursor"/>, optionally only those in <paramref name="status"/>.</summary>
    [AlwaysInterleave]
    [Alias("ListDocuments")] Task<DocumentPage> ListDocuments(string? cursor, int limit, DocumentStatus? status = null);

    /// <summary>Re-runs the pipeline of a failed document from its stored content with a fresh attempt count; Conflict unless failed.</summary>
    [Alias("RetryDocument")] Task<DocumentInfo> RetryDocument(string documentId);

    /// <summary>One document, or NotFound.</summary>
    [AlwaysInterleave]
    [Alias("GetDocument")] Task<DocumentInfo> GetDocument(string documentId);

    /// <summary>Waits until the document is indexed or failed, or the timeout passes; returns its state.</summary>
    [AlwaysInterleave]
    [Alias("WaitForDocument")] Task<DocumentInfo> WaitForDocument(string documentId, TimeSpan timeout);

    /// <summary>Deletes a document and its chunks; NotFound if unknown.</summary>
    [Alias("DeleteDocument")] Task DeleteDocument(string documentId);

    /// <summary>Activates every shard of the collection and loads its index, so the next searches find it warm.</summary>
    [AlwaysInterleave]
    [Alias("Prewarm")] Task<CollectionPrewarm> Prewarm();

    /// <summary>Global top-k over all shards, best first.</summary>
    [AlwaysInterleave]
    [Alias("Search")] Task<IReadOnlyList<SearchHit>> Search(SearchQuery query);

    /// <summary>
    /// (chat response cache) The collection's write version: it changes with every document write or delete and
    /// every activation. Null while a document is queued or processing, when the index is still changing.
    /// </summary>
    [Alias("GetWriteVersion")] Task<string?> GetWriteVersion();
}
