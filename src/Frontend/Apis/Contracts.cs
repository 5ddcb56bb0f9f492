using System.Text.Json;
using RagOrleans.Abstractions;

namespace RagOrleans.Frontend.Apis;

/// <summary>Body of POST /v1/tenants.</summary>
public sealed record CreateTenantRequest(string? Id, string? Name);

/// <summary>A tenant; <see cref="AdminKey"/> only in the creation response.</summary>
public sealed record TenantResponse(string Id, string Name, DateTimeOffset CreatedAt, string? AdminKey = null, string? AdminKeyId = null)
{
    public static TenantResponse From(TenantInfo t) => new(t.Id, t.Name, t.CreatedAt);
}

/// <summary>Body of POST /v1/keys.</summary>
public sealed record CreateKeyRequest(string? Role, string? UserId);

/// <summary>A key; <see cref="Key"/> only in the creation response.</summary>
public sealed record KeyResponse(string Id, string Role, string UserId, DateTimeOffset CreatedAt, string? Key = null)
{
    public static KeyResponse From(ApiKeyInfo k, string? key = null) => new(k.Id, k.Role, k.UserId, k.CreatedAt, key);
}

/// <summary>Body of POST /v1/collections: the embedding model and BM25 parameters are fixed here for the collection's life.</summary>
public sealed record CreateCollectionRequest(string? Name, int? Shards, string? Model = null, Bm25Request? Bm25 = null, string? VectorQuantization = null);

/// <summary>BM25 parameters in a request; an omitted one takes its default (k1 0.9, b 0.4).</summary>
public sealed record Bm25Request(float? K1, float? B);

/// <summary>BM25 parameters of a collection.</summary>
public sealed record Bm25Response(float K1, float B);

/// <summary>A collection with its counts.</summary>
public sealed record CollectionResponse(string Name, DateTimeOffset CreatedAt, string Model, int Dimensions, int Shards, long DocumentCount, long ChunkCount, Bm25Response Bm25,
    string VectorQuantization)
{
    public static CollectionResponse From(CollectionInfo c) =>
        new(c.Name, c.CreatedAt, c.Settings.Model, c.Settings.Dimensions, c.Settings.ShardCount, c.DocumentCount, c.ChunkCount,
            new Bm25Response(c.Settings.EffectiveBm25.K1, c.Settings.EffectiveBm25.B), c.Settings.EffectiveVectorQuantization);
}

/// <summary>One shard after a prewarm: whether it was already in memory and what its load from the snapshot took.</summary>
public sealed record PrewarmShardResponse(int Shard, int Chunks, long IndexBytes, bool WasActive, double LoadMs, long ReplayedLogEntries);

/// <summary>Response of POST /v1/collections/{name}/prewarm.</summary>
public sealed record PrewarmResponse(string Collection, int ShardsWarmed, int ShardsAlreadyActive, long Chunks, double ElapsedMs, IReadOnlyList<PrewarmShardResponse> Shards)
{
    public static PrewarmResponse From(CollectionPrewarm p)
    {
        var shards = new PrewarmShardResponse[p.Shards.Count];
        var already = 0;
        long chunks = 0;
        for (var i = 0; i < shards.Length; i++)
        {
            var s = p.Shards[i];
            shards[i] = new PrewarmShardResponse(s.Shard, s.Chunks, s.IndexBytes, s.WasActive, s.LoadMilliseconds, s.ReplayedEntries);
            already += s.WasActive ? 1 : 0;
            chunks += s.Chunks;
        }

        return new(p.Collection, shards.Length - already, already, chunks, p.ElapsedMilliseconds, shards);
    }
}

/// <summary>JSON body of POST /v1/collections/{name}/documents.</summary>
public sealed record AddDocumentRequest(string? Id, string? Title, string? Text, JsonElement? Metadata, string? Format);

/// <summary>
/// A document and its ingestion state: <see cref="Step"/> is the last pipeline step completed and
/// <see cref="ProgressPercent"/> the share of chunks embedded once chunking is done. <see cref="Duplicate"/> is
/// true only in an upload response that found the same content already in the collection (nothing new was queued).
/// </summary>
public sealed record DocumentResponse(
    string Id, string? Title, DocumentStatus Status, int ChunkCount, string? Error, string SourceType, string? FileName,
    long SizeBytes, string ContentHash, JsonElement? Metadata, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, int Attempts,
    DocumentStep Step, int? ProgressPercent, bool Duplicate = false)
{
    public static DocumentResponse From(DocumentInfo d, bool duplicate = false) => new(
        d.Id, d.Title, d.Status, d.ChunkCount, d.Error, d.SourceType, d.FileName, d.SizeBytes, d.ContentHash,
        Json.Parse(d.MetadataJson), d.CreatedAt, d.UpdatedAt, d.Attempts, d.Step, d.ProgressPercent, duplicate);
}

/// <summary>A page of documents.</summary>
public sealed record DocumentListResponse(IReadOnlyList<DocumentResponse> Documents, string? NextCursor);

/// <summary>Body of POST /v1/collections/{name}/search.</summary>
public sealed record SearchRequest(
    string? Query, int? TopK, SearchMode? Mode, bool? Explain, JsonElement? Filter,
    string? Rerank = null, float? Lambda = null, int? RrfK = null, SearchWeights? Weights = null);

/// <summary>Weights of the ranked lists in hybrid fusion; an omitted one is 1.</summary>
public sealed record SearchWeights(float? Vector, float? Keyword);

/// <summary>One search result.</summary>
public sealed record SearchResult(string DocumentId, string ChunkId, string Text, float Score, string? Title, string? Section, int? Page, JsonElement? Metadata, SearchExplanation? Explain)
{
    public static SearchResult From(SearchHit h) => new(h.DocumentId, h.ChunkId, h.Text, h.Score, h.Title, h.Section, h.Page, Json.Parse(h.MetadataJson), h.Explain);
}

/// <summary>Search results, best first.</summary>
public sealed record SearchResponse(IReadOnlyList<SearchResult> Results);

/// <summary>A cited passage; <see cref="Number"/> matches the [n] markers in the answer.</summary>
public sealed record CitationResponse(int Number, string DocumentId, string ChunkId, string Text, float Score, string? Title, string? Section)
{
    public static CitationResponse From(Citation c) => new(c.Number, c.DocumentId, c.ChunkId, c.Text, c.Score, c.Title, c.Section);
}

internal static class Json
{
    public static JsonElement? Parse(string? json)
    {
        if (json is null)
        {
            return null;
        }

        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.Clone();
    }
}
