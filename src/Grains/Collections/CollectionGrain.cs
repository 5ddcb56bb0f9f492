using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Retrieval;
using RagOrleans.Grains.Storage;
using RagOrleans.Grains.Telemetry;

namespace RagOrleans.Grains.Collections;

[GenerateSerializer, Alias("rag.CollectionState")]
public sealed class CollectionState
{
    [Id(0)] public bool Exists { get; set; }
    [Id(1)] public DateTimeOffset CreatedAt { get; set; }
    [Id(2)] public CollectionSettings? Settings { get; set; }

    /// <summary>Resumable uploads started in the collection: their grain state goes when the collection does.</summary>
    [Id(3)] public HashSet<string> Uploads { get; set; } = [];
}

[GrainType(CollectionGrain.GrainTypeName)]
public sealed class CollectionGrain(
    [PersistentState(CollectionGrain.StateName, RagStorage.GrainStateProvider)] IPersistentState<CollectionState> state,
    IDocumentStore documents,
    IBlobStore blobs,
    IOptions<RagOptions> options,
    TimeProvider clock,
    RagMetrics metrics,
    ILogger<CollectionGrain> logger) : Grain, ICollectionGrain
{
    /// <summary>The grain type name, pinned.</summary>
    public const string GrainTypeName = "collection";

    /// <summary>The name of the persisted state (index shards read the settings from it directly).</summary>
    public const string StateName = "collection";

    private const int MaxTopK = 100;
    private const int HybridDepth = 50;
    private const int RerankPoolFactor = 4;
    private const int RerankMinPool = 50;
    private string _tenantId = "";
    private string _name = "";

    // [chat cache] Write version: a random epoch per activation plus a counter of writes. Not persisted: a new
    // activation simply starts a new epoch, which invalidates every cached answer (safe, never stale).
    private readonly string _epoch = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));
    private long _writes;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var parts = Ids.Split(this.GetPrimaryKeyString(), 2);
        (_tenantId, _name) = (parts[0], parts[1]);
        return Task.CompletedTask;
    }

    public async Task<CollectionInfo> Create(CollectionSettings settings)
    {
        EnsureNewWith(settings);

        await Quota.ReserveCollection();
        try
        {
            await Tenant.AddCollection(_name);
        }
        catch
        {
            await Quota.ReleaseCollection(_name, 0, 0, 0);
            throw;
        }

        state.State = new CollectionState { Exists = true, CreatedAt = clock.GetUtcNow(), Settings = settings };
        await state.WriteStateAsync();
        logger.LogInformation("Collection {Collection} of tenant {TenantId} created", _name, _tenantId);
        return new CollectionInfo(_name, state.State.CreatedAt, settings, 0, 0);
    }

    /// <summary>What creating and restoring a collection both require: no collection of that name yet, valid settings.</summary>
    private void EnsureNewWith(CollectionSettings settings)
    {
        if (state.State.Exists)
        {
            throw RagException.Conflict($"Collection '{_name}' already exists.");
        }

        if (settings.ShardCount is < 1 or > 64)
        {
            throw RagException.Invalid("shardCount must be between 1 and 64.");
        }

        settings.Bm25?.Validate();
        VectorQuantizations.Normalize(settings.VectorQuantization);
    }

    public async Task Restore(CollectionSettings settings, DateTimeOffset createdAt)
    {
        EnsureNewWith(settings);

        // State first: once the tenant lists the collection, a cleanup through the tenant's Delete must find it.
        state.State = new CollectionState { Exists = true, CreatedAt = createdAt, Settings = settings };
        await state.WriteStateAsync();
        await Tenant.AddCollection(_name);
        logger.LogInformation("Collection {Collection} of tenant {TenantId} restored", _name, _tenantId);
    }

    public async Task<CollectionInfo> Get()
    {
        var settings = RequireSettings();
        var (docs, chunks) = await documents.CountAsync(_tenantId, _name);
        return new CollectionInfo(_name, state.State.CreatedAt, settings, docs, chunks);
    }

    public Task<CollectionSettings> GetSettings() => Task.FromResult(RequireSettings());

    public async Task<CollectionSettings> RegisterUpload(string uploadId)
    {
        var settings = RequireSettings();
        Ids.RequireName(uploadId, "upload id");
        if (state.State.Uploads.Add(uploadId))
        {
            await state.WriteStateAsync();
        }

        return settings;
    }

    public async Task Delete()
    {
        var settings = RequireSettings();

        // Mark gone first so no new writes are accepted while the data is removed.
        _writes++; // [chat cache]
        state.State.Exists = false;
        await state.WriteStateAsync();
        for (var shard = 0; shard < settings.ShardCount; shard++)
        {
            await Shard(shard).Drop();
        }

        // Uploads keep their own grain state (parts, or the document a completed one became).
        foreach (var uploadId in state.State.Uploads)
        {
            try
            {
                await GrainFactory.Reference<IUploadGrain>(Ids.Key(_tenantId, _name, uploadId)).Abort();
            }
            catch (RagException ex) when (ex.Kind == RagErrorKind.NotFound)
            {
                // Aborted earlier: nothing left.
            }
        }

        var held = await HeldAsync();
        await documents.DeleteCollectionAsync(_tenantId, _name);
        await Quota.ReleaseCollection(_name, held.Documents, held.Bytes, held.Vectors);
        await blobs.DeletePrefixAsync(RagStorage.CollectionBlobPrefix(_tenantId, _name));
        await Tenant.RemoveCollection(_name);
        await state.ClearStateAsync();
        state.State = new CollectionState();
        logger.LogInformation("Collection {Collection} of tenant {TenantId} deleted", _name, _tenantId);
        DeactivateOnIdle();
    }

    public async Task<DocumentAdded> AddDocument(DocumentUpload upload)
    {
        var staged = upload.StagedBlobKey;
        try
        {
            return await AddDocumentCore(upload);
        }
        finally
        {
            _writes++; // [chat cache]
            // A staged blob the document did not take (duplicate, rejected) is not left behind.
            if (staged is not null)
            {
                await blobs.DeleteAsync(staged);
            }
        }
    }

    private async Task<DocumentAdded> AddDocumentCore(DocumentUpload upload)
    {
        RequireSettings();
        var id = upload.Id ?? NewDocumentId();
        Ids.RequireName(id, "document id");
        var length = upload.StagedBlobKey is null ? upload.Content.LongLength : upload.StagedLength;
        if (length == 0)
        {
            throw new RagException(RagErrorKind.Unprocessable, "The document is empty.");
        }

        var limit = options.Value.MaxUploadBytesFor(_tenantId);
        if (length > limit)
        {
            throw new RagException(RagErrorKind.TooLarge, $"The document is {length} bytes; the limit is {limit}.");
        }

        var hash = upload.StagedBlobKey is null
            ? Convert.ToHexStringLower(SHA256.HashData(upload.Content))
            : upload.StagedSha256 ?? throw RagException.Invalid("A staged upload needs its SHA-256.");
        var existing = await documents.GetAsync(_tenantId, _name, id);
        if (existing is not null && existing.ContentHash == hash && existing.Title == upload.Title
            && existing.MetadataJson == upload.MetadataJson && existing.SourceType == upload.SourceType
            && existing.Status != DocumentStatus.Failed)
        {
            // Same content re-sent (a client retry): nothing is indexed twice. If it is still unfinished, its
            // pipeline may have died with a silo: starting it again is harmless when it is alive.
            if (existing.Status is DocumentStatus.Queued or DocumentStatus.Processing)
            {
                await Document(id).Start();
            }

            return new DocumentAdded(existing, Duplicate: true);
        }

        if (upload.Id is null && await documents.FindByHashAsync(_tenantId, _name, hash) is { } sameContent)
        {
            // Without an id the caller cannot mean "replace": identical bytes are the same document. A failed one
            // is returned as it is (its error tells why); POST .../retry re-runs it. An unfinished one is nudged as above.
            if (sameContent.Status is DocumentStatus.Queued or DocumentStatus.Processing)
            {
                await Document(sameContent.Id).Start();
            }

            return new DocumentAdded(sameContent, Duplicate: true);
        }

        // Reserve before the work: the quota grain checks and counts in one turn, so parallel uploads stay exact.
        var charge = new DocumentCharge(Ids.Key(_tenantId, _name, id), existing is null, length,
            existing?.SizeBytes ?? 0, existing?.Status == DocumentStatus.Indexed ? existing.ChunkCount : 0);
        await Quota.ReserveDocument(charge);
        DocumentInfo record;
        try
        {
            var key = RagStorage.DocumentBlobKey(_tenantId, _name, id);
            if (upload.StagedBlobKey is null)
            {
                await blobs.PutAsync(key, upload.Content);
            }
            else if (!await blobs.MoveAsync(upload.StagedBlobKey, key))
            {
                throw RagException.Invalid("The staged upload content is missing.");
            }

            var now = clock.GetUtcNow();
            record = new DocumentInfo(
                id, upload.Title, DocumentStatus.Queued, 0, null, upload.SourceType, upload.FileName,
                length, hash, upload.MetadataJson, existing?.CreatedAt ?? now, now, 0);
            await documents.UpsertAsync(_tenantId, _name, record);
        }
        catch
        {
            await Quota.CancelDocument(charge);
            throw;
        }

        await Document(id).Start();
        return new DocumentAdded(record, Duplicate: false);
    }

    public async Task<DocumentPage> ListDocuments(string? cursor, int limit, DocumentStatus? status = null)
    {
        RequireSettings();
        limit = Math.Clamp(limit, 1, 1000);
        var page = await documents.ListAsync(_tenantId, _name, cursor, limit + 1, status);
        return page.Count > limit
            ? new DocumentPage(page.Take(limit).ToList(), page[limit - 1].Id)
            : new DocumentPage(page, null);
    }

    public async Task<DocumentInfo> RetryDocument(string documentId)
    {
        var record = await GetDocument(documentId);
        if (record.Status != DocumentStatus.Failed)
        {
            throw RagException.Conflict(
                $"Document '{documentId}' is {record.Status.ToString().ToLowerInvariant()}; only failed documents can be retried.");
        }

        record = record with
        {
            Status = DocumentStatus.Queued, Attempts = 0, Error = null, Step = DocumentStep.Received, ProgressPercent = null,
            UpdatedAt = clock.GetUtcNow(),
        };
        await documents.UpsertAsync(_tenantId, _name, record);
        _writes++; // [chat cache]
        await Document(documentId).Start();
        logger.LogInformation("Document {DocumentId} of {TenantId}/{Collection} queued again by a retry", documentId, _tenantId, _name);
        return record;
    }

    public async Task<DocumentInfo> GetDocument(string documentId)
    {
        RequireSettings();
        return await documents.GetAsync(_tenantId, _name, documentId)
            ?? throw RagException.NotFound($"Document '{documentId}' not found in collection '{_name}'.");
    }

    public async Task<DocumentInfo> WaitForDocument(string documentId, TimeSpan timeout)
    {
        await GetDocument(documentId);
        await Document(documentId).WaitForCompletion(timeout);
        return await GetDocument(documentId);
    }

    public async Task DeleteDocument(string documentId)
    {
        await GetDocument(documentId);
        try
        {
            await Document(documentId).Delete();
        }
        finally
        {
            _writes++; // [chat cache]
        }
    }

    /// <summary>[chat cache] See <see cref="ICollectionGrain.GetWriteVersion"/>.</summary>
    public async Task<string?> GetWriteVersion()
    {
        RequireSettings();
        var pending = await documents.ListAsync(_tenantId, _name, null, 1, DocumentStatus.Queued);
        if (pending.Count == 0)
        {
            pending = await documents.ListAsync(_tenantId, _name, null, 1, DocumentStatus.Processing);
        }

        return pending.Count == 0 ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{_epoch}.{_writes}") : null;
    }

    public async Task<CollectionPrewarm> Prewarm()
    {
        var settings = RequireSettings();
        var started = clock.GetTimestamp();
        var since = clock.GetUtcNow();
        var tasks = new Task<ShardWarmth>[settings.ShardCount];
        for (var i = 0; i < tasks.Length; i++)
        {
            tasks[i] = Shard(i).Warm(since);
        }

        var shards = await Task.WhenAll(tasks);
        var elapsed = clock.GetElapsedTime(started).TotalMilliseconds;
        logger.LogInformation("Collection {Collection} of tenant {TenantId} prewarmed: {Shards} shards in {ElapsedMs:F1} ms",
            _name, _tenantId, shards.Length, elapsed);
        return new CollectionPrewarm(_name, shards, elapsed);
    }

    public async Task<IReadOnlyList<SearchHit>> Search(SearchQuery query)
    {
        var settings = RequireSettings();
        if (string.IsNullOrWhiteSpace(query.Query))
        {
            throw RagException.Invalid("The query is empty.");
        }

        var topK = query.TopK;
        if (topK is < 1 or > MaxTopK)
        {
            throw RagException.Invalid($"topK must be between 1 and {MaxTopK}.");
        }

        if (query.FilterJson is not null)
        {
            MetadataFilter.Parse(query.FilterJson);
        }

        query.ValidateRanking();
        using var activity = RagActivity.Start("rag.search", _tenantId, _name);
        activity?.SetTag("rag.search.mode", query.Mode.ToString());
        activity?.SetTag("rag.search.top_k", topK);
        if (metrics.LogContent)
        {
            // Debug switch only: the query is the tenant's data.
            activity?.SetTag("rag.search.query", query.Query);
            logger.LogInformation("Search in {TenantId}/{Collection}: {Query}", _tenantId, _name, query.Query);
        }

        var searchStarted = System.Diagnostics.Stopwatch.GetTimestamp();
        float[]? vector = null;
        if (query.Mode != SearchMode.Keyword)
        {
            var embedStarted = System.Diagnostics.Stopwatch.GetTimestamp();
            using (RagActivity.Start("rag.search.embed"))
            {
                vector = (await GrainFactory.Reference<IEmbedderGrain>(0).Embed(settings.Model, [query.Query], EmbeddingKind.Query))[0];
            }

            metrics.SearchStage("embed", RagMetrics.Since(embedStarted));
        }

        // A reranker reads a pool larger than it returns, or it would have nothing to promote.
        var reranker = Reranker(query);
        var poolSize = reranker is null ? topK : Math.Max(topK * RerankPoolFactor, RerankMinPool);

        // Hybrid fuses deeper lists than it returns: a chunk ranked 30th by one signal and 5th by the other can win.
        var depth = query.Mode == SearchMode.Hybrid ? Math.Max(poolSize, HybridDepth) : poolSize;
        var text = query.Mode == SearchMode.Vector ? null : query.Query;
        var tasks = new Task<ShardCandidates>[settings.ShardCount];
        for (var i = 0; i < tasks.Length; i++)
        {
            tasks[i] = Shard(i).Candidates(vector, text, depth, query.FilterJson, settings.Bm25);
        }

        var perShard = await Task.WhenAll(tasks);
        var fuseStarted = System.Diagnostics.Stopwatch.GetTimestamp();
        var dense = RankFusion.MergeByScore(perShard.SelectMany((c, shard) => c.DenseSeqs.Select((seq, i) => new RankedCandidate(shard, seq, c.DenseScores[i]))), depth);
        var keyword = RankFusion.MergeByScore(perShard.SelectMany((c, shard) => c.KeywordSeqs.Select((seq, i) => new RankedCandidate(shard, seq, c.KeywordScores[i]))), depth);
        var firstStage = query.Mode switch
        {
            SearchMode.Vector => dense.Take(poolSize).Select(c => new FusedCandidate(c.Shard, c.Seq, c.Score)).ToList(),
            SearchMode.Keyword => keyword.Take(poolSize).Select(c => new FusedCandidate(c.Shard, c.Seq, c.Score)).ToList(),
            _ => Fuse(dense, keyword, poolSize, query),
        };

        var winners = firstStage;
        Dictionary<(int, long), RerankExplanation>? reranked = null;
        if (reranker is not null)
        {
            (winners, reranked) = await RerankAsync(reranker, query, firstStage, topK);
        }

        Dictionary<(int, long), SearchExplanation>? explanations = null;
        if (query.Explain)
        {
            explanations = [];
            for (var r = 0; r < dense.Count; r++)
            {
                explanations[(dense[r].Shard, dense[r].Seq)] = new SearchExplanation(r + 1, dense[r].Score, null, null);
            }

            for (var r = 0; r < keyword.Count; r++)
            {
                var key = (keyword[r].Shard, keyword[r].Seq);
                explanations[key] = (explanations.GetValueOrDefault(key) ?? new SearchExplanation(null, null, null, null))
                    with { KeywordRank = r + 1, KeywordScore = keyword[r].Score };
            }

            foreach (var (key, step) in reranked ?? [])
            {
                explanations[key] = (explanations.GetValueOrDefault(key) ?? new SearchExplanation(null, null, null, null)) with { Rerank = step };
            }
        }

        metrics.SearchStage("fuse", RagMetrics.Since(fuseStarted));

        // Fetch text only for the winners, one call per shard that holds any.
        var hydrateStarted = System.Diagnostics.Stopwatch.GetTimestamp();
        var hits = new SearchHit?[winners.Count];
        var hydrations = winners.Select((w, i) => (w, i)).GroupBy(x => x.w.Shard).Select(async group =>
        {
            var items = group.ToList();
            var rows = await Shard(group.Key).Hydrate(items.Select(x => x.w.Seq).ToArray());
            for (var j = 0; j < items.Count; j++)
            {
                if (rows[j] is { } row)
                {
                    hits[items[j].i] = row with
                    {
                        Score = items[j].w.Score,
                        Explain = explanations?.GetValueOrDefault((items[j].w.Shard, items[j].w.Seq)),
                    };
                }
            }
        });
        await Task.WhenAll(hydrations);
        metrics.SearchStage("hydrate", RagMetrics.Since(hydrateStarted));
        metrics.Search(_tenantId, query.Mode.ToString().ToLowerInvariant(), RagMetrics.Since(searchStarted));
        var result = hits.Where(h => h is not null).Select(h => h!).ToList();
        activity?.SetTag("rag.search.hits", result.Count);
        return result;
    }

    private static IReranker? Reranker(SearchQuery query) => query.Rerank switch
    {
        RerankMode.None => null,
        RerankMode.Mmr => new MmrReranker(query.Lambda),
        _ => throw RagException.Invalid($"Unknown rerank '{query.Rerank}'."),
    };

    private static List<FusedCandidate> Fuse(List<RankedCandidate> dense, List<RankedCandidate> keyword, int limit, SearchQuery query)
    {
        // A list weighted 0 is left out rather than fused at 0, so its chunks do not pad the tail with zero scores.
        var lists = new List<IReadOnlyList<RankedCandidate>>(2);
        var weights = new List<float>(2);
        if (query.VectorWeight > 0f)
        {
            lists.Add(dense);
            weights.Add(query.VectorWeight);
        }

        if (query.KeywordWeight > 0f)
        {
            lists.Add(keyword);
            weights.Add(query.KeywordWeight);
        }

        return RankFusion.Fuse(lists, limit, query.RrfK, weights);
    }

    private async Task<(List<FusedCandidate> Winners, Dictionary<(int, long), RerankExplanation> Steps)> RerankAsync(
        IReranker reranker, SearchQuery query, List<FusedCandidate> pool, int topK)
    {
        var vectors = new float[]?[pool.Count];
        if (reranker.NeedsVectors)
        {
            var fetches = pool.Select((c, i) => (c, i)).GroupBy(x => x.c.Shard).Select(async group =>
            {
                var items = group.ToList();
                var found = await Shard(group.Key).Vectors(items.Select(x => x.c.Seq).ToArray());
                for (var j = 0; j < items.Count; j++)
                {
                    vectors[items[j].i] = found[j];
                }
            });
            await Task.WhenAll(fetches);
        }

        var candidates = pool.Select((c, i) => new RerankCandidate(c.Shard, c.Seq, c.Score, vectors[i])).ToList();
        var ranked = await reranker.RerankAsync(query.Query, candidates, topK);
        var lambda = reranker is MmrReranker mmr ? mmr.Lambda : (float?)null;
        var steps = new Dictionary<(int, long), RerankExplanation>(ranked.Count);
        var winners = new List<FusedCandidate>(ranked.Count);
        foreach (var r in ranked)
        {
            winners.Add(new FusedCandidate(r.Candidate.Shard, r.Candidate.Seq, r.Score));
            steps[(r.Candidate.Shard, r.Candidate.Seq)] = new RerankExplanation(reranker.Name, r.PoolRank, r.Candidate.Relevance, pool.Count, r.Score, r.MaxSimilarity, lambda);
        }

        return (winners, steps);
    }

    /// <summary>Stable shard of a document: every chunk of one document lives in one shard.</summary>
    public static int ShardOf(string documentId, int shardCount)
    {
        // FNV-1a: string.GetHashCode is randomised per process and would move documents between restarts.
        var hash = 2166136261u;
        foreach (var c in documentId)
        {
            hash = (hash ^ c) * 16777619u;
        }

        return (int)(hash % (uint)shardCount);
    }

    private static string NewDocumentId() => "doc-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));

    private ITenantGrain Tenant => GrainFactory.Reference<ITenantGrain>(_tenantId);

    private IQuotaGrain Quota => GrainFactory.Reference<IQuotaGrain>(_tenantId);

    /// <summary>What the collection's documents count against the tenant's quota, to give back on delete.</summary>
    private async Task<(long Documents, long Bytes, long Vectors)> HeldAsync()
    {
        long count = 0, bytes = 0, vectors = 0;
        string? cursor = null;
        while (true)
        {
            var page = await documents.ListAsync(_tenantId, _name, cursor, 1000);
            foreach (var d in page)
            {
                count++;
                bytes += d.SizeBytes;
                vectors += d.Status == DocumentStatus.Indexed ? d.ChunkCount : 0;
            }

            if (page.Count < 1000)
            {
                return (count, bytes, vectors);
            }

            cursor = page[^1].Id;
        }
    }

    private IIndexShardGrain Shard(int shard) =>
        GrainFactory.Reference<IIndexShardGrain>(Ids.Key(_tenantId, _name, shard.ToString(System.Globalization.CultureInfo.InvariantCulture)));

    private IDocumentGrain Document(string id) => GrainFactory.Reference<IDocumentGrain>(Ids.Key(_tenantId, _name, id));

    private CollectionSettings RequireSettings() =>
        state.State is { Exists: true, Settings: { } settings }
            ? settings
            : throw RagException.NotFound($"Collection '{_name}' not found.");
}
