using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Storage;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Collections;
using RagOrleans.Grains.Indexing.Keyword;
using RagOrleans.Grains.Retrieval;
using RagOrleans.Grains.Storage;
using RagOrleans.Grains.Telemetry;

namespace RagOrleans.Grains.Indexing;

/// <summary>
/// A shard's in-memory index. Every write goes to the chunk log (committed) before memory; activation
/// loads the newest snapshot and replays the log after the snapshot's watermark, so losing a snapshot or
/// the process loses nothing that was acknowledged.
/// </summary>
[GrainType("index-shard"), CollectionAgeLimit(Minutes = 60)]
public sealed class IndexShardGrain(
    IChunkLog log,
    ISnapshotStore snapshots,
    IOptions<RagOptions> options,
    RagMetrics metrics,
    ShardMemoryGovernor memory,
    [FromKeyedServices(RagStorage.GrainStateProvider)] IGrainStorage collectionStates,
    ILogger<IndexShardGrain> logger) : Grain, IIndexShardGrain, IIncomingGrainCallFilter
{
    private ShardMemoryGovernor.Registration? _memory;
    private IDisposable? _tracked;
    private ShardIndex _index = null!;
    private long _watermark;
    private long _snapshotWatermark;
    private IGrainTimer? _snapshotTimer;
    private VectorQuantization _quantization;
    private DateTimeOffset _activatedAt;
    private double _loadMilliseconds;
    private long _replayed;

    private string ShardKey => this.GetPrimaryKeyString();

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var key = Ids.Split(ShardKey, 3);
        var started = TimeProvider.System.GetTimestamp();
        _quantization = await ReadQuantizationAsync(key[0], key[1]);
        _index = new ShardIndex(HnswOptions());
        await using (var snapshot = await snapshots.OpenLatestAsync(ShardKey, cancellationToken))
        {
            if (snapshot is not null)
            {
                try
                {
                    _index = ShardIndex.ReadFrom(snapshot.Content, HnswOptions());
                    _watermark = _snapshotWatermark = snapshot.Watermark;
                }
                catch (InvalidDataException ex)
                {
                    // A damaged snapshot only costs time: the log alone rebuilds the index.
                    logger.LogWarning(ex, "Shard {Shard}: snapshot at {Watermark} unreadable; rebuilding from the chunk log", ShardKey, snapshot.Watermark);
                    _index = new ShardIndex(HnswOptions());
                    _watermark = _snapshotWatermark = 0;
                }
            }
        }

        var replayed = 0;
        await foreach (var entry in log.ReadAfterAsync(ShardKey, _watermark, cancellationToken))
        {
            _index.Apply(entry);
            _watermark = entry.Seq;
            replayed++;
        }

        _loadMilliseconds = TimeProvider.System.GetElapsedTime(started).TotalMilliseconds;
        _replayed = replayed;
        _activatedAt = TimeProvider.System.GetUtcNow();
        logger.LogInformation("Shard {Shard} activated: {Chunks} chunks, snapshot watermark {Snapshot}, {Replayed} log entries replayed in {ElapsedMs:F0} ms",
            ShardKey, _index.Count, _snapshotWatermark, replayed, _loadMilliseconds);
        _tracked = metrics.TrackShard(() => _index.EstimatedMemoryBytes);

        // The runtime's own shedding counts activations; the governor releases the biggest idle shards first.
        var context = GrainContext;
        _memory = memory.Register(ShardKey, () => _index.EstimatedMemoryBytes, () => context.Deactivate(
            new DeactivationReason(DeactivationReasonCode.HighMemoryPressure, "Idle shard released under memory pressure")));
        _snapshotTimer = this.RegisterGrainTimer(
            static (self, ct) => self.SnapshotIfChangedAsync(ct),
            this,
            new GrainTimerCreationOptions { DueTime = options.Value.SnapshotInterval, Period = options.Value.SnapshotInterval, Interleave = false, KeepAlive = false });
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        _snapshotTimer?.Dispose();
        _tracked?.Dispose();
        _memory?.Dispose();
        if (reason.ReasonCode != DeactivationReasonCode.ApplicationRequested || _index.Count > 0)
        {
            try
            {
                var written = await SnapshotIfChangedAsync(cancellationToken);
                logger.LogInformation("Shard {Shard} deactivated ({Reason}): {Chunks} chunks, snapshot at {Watermark}{Written}",
                    ShardKey, reason.ReasonCode, _index.Count, _snapshotWatermark, written ? " (written now)" : " (already current)");
            }
            catch (Exception ex)
            {
                logger.LogWarning(ex, "Shard {Shard}: snapshot on deactivation failed; the chunk log still has everything", ShardKey);
            }
        }

        // An int8 graph maps its float vectors from a scratch file; release it now rather than at finalization.
        _index.Dispose();
    }

    /// <summary>Every call marks the shard as in use, so the memory governor leaves it alone.</summary>
    public Task Invoke(IIncomingGrainCallContext context)
    {
        _memory?.Touch();
        return context.Invoke();
    }

    public async Task UpsertDocument(ChunkDocument document, IReadOnlyList<ChunkInput> chunks)
    {
        var entries = new List<ChunkLogEntry>(chunks.Count + 1);
        var seq = _watermark;
        var replaced = _index.HasDocument(document.DocumentId);
        if (replaced)
        {
            entries.Add(new ChunkLogEntry(++seq, ChunkOp.DeleteDocument, document.DocumentId, 0, null, null, 0, 0, null, null, null, null));
        }

        foreach (var c in chunks)
        {
            entries.Add(new ChunkLogEntry(++seq, ChunkOp.Add, document.DocumentId, c.Ordinal, c.Text, c.Vector, c.Start, c.End, c.Section, c.Page, document.Title, document.MetadataJson));
        }

        // Durable first (old rows of the document go in the same transaction), memory second.
        await log.AppendAsync(ShardKey, entries, document.DocumentId);
        foreach (var e in entries)
        {
            _index.Apply(e);
        }

        _watermark = seq;
    }

    public async Task<bool> DeleteDocument(string documentId)
    {
        if (!_index.HasDocument(documentId))
        {
            return false;
        }

        var entry = new ChunkLogEntry(_watermark + 1, ChunkOp.DeleteDocument, documentId, 0, null, null, 0, 0, null, null, null, null);
        await log.AppendAsync(ShardKey, [entry], documentId);
        _index.Apply(entry);
        _watermark = entry.Seq;
        return true;
    }

    public async Task<IReadOnlyList<SearchHit>> Search(float[] queryVector, int topK)
    {
        var hits = _index.Search(queryVector, topK, Math.Max(options.Value.EfSearch, topK));
        var seqs = new long[hits.Count];
        for (var i = 0; i < hits.Count; i++)
        {
            seqs[i] = hits[i].Seq;
        }

        var rows = await Hydrate(seqs);
        var result = new List<SearchHit>(hits.Count);
        for (var i = 0; i < rows.Count; i++)
        {
            if (rows[i] is { } row)
            {
                result.Add(row with { Score = hits[i].Score });
            }
        }

        return result;
    }

    public Task<ShardCandidates> Candidates(float[]? queryVector, string? queryText, int depth, string? filterJson, Bm25Settings? bm25 = null)
    {
        var filter = filterJson is null ? null : MetadataFilter.Parse(filterJson);
        var parameters = bm25 is null ? null : new Bm25Options { K1 = bm25.Validate().K1, B = bm25.B };
        using var activity = RagActivity.Start("rag.shard.candidates");
        IReadOnlyList<(long Seq, float Score)> dense = [];
        if (queryVector is not null)
        {
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            dense = _index.Search(queryVector, depth, Math.Max(options.Value.EfSearch, depth), filter);
            metrics.SearchStage("dense", RagMetrics.Since(started));
        }

        IReadOnlyList<(long Seq, float Score)> keyword = [];
        if (!string.IsNullOrWhiteSpace(queryText))
        {
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            keyword = _index.SearchKeywords(queryText, depth, filter, parameters);
            metrics.SearchStage("keyword", RagMetrics.Since(started));
        }

        activity?.SetTag("rag.shard", ShardKey);
        activity?.SetTag("rag.shard.dense", dense.Count);
        activity?.SetTag("rag.shard.keyword", keyword.Count);
        var (denseSeqs, denseScores) = Split(dense);
        var (keywordSeqs, keywordScores) = Split(keyword);
        return Task.FromResult(new ShardCandidates(denseSeqs, denseScores, keywordSeqs, keywordScores));
    }

    // One pass, exact-size arrays: this runs on every search, and LINQ would enumerate each list twice.
    private static (long[] Seqs, float[] Scores) Split(IReadOnlyList<(long Seq, float Score)> hits)
    {
        if (hits.Count == 0)
        {
            return ([], []);
        }

        var seqs = new long[hits.Count];
        var scores = new float[hits.Count];
        for (var i = 0; i < seqs.Length; i++)
        {
            (seqs[i], scores[i]) = hits[i];
        }

        return (seqs, scores);
    }

    public Task<IReadOnlyList<float[]?>> Vectors(long[] seqs) => Task.FromResult(_index.VectorsOf(seqs));

    public async Task<IReadOnlyList<SearchHit?>> Hydrate(long[] seqs)
    {
        if (seqs.Length == 0)
        {
            return [];
        }

        var rows = await log.GetAsync(ShardKey, seqs);
        var bySeq = new Dictionary<long, ChunkLogEntry>(rows.Count);
        foreach (var row in rows)
        {
            bySeq[row.Seq] = row;
        }

        var result = new SearchHit?[seqs.Length];
        for (var i = 0; i < seqs.Length; i++)
        {
            if (bySeq.TryGetValue(seqs[i], out var row))
            {
                result[i] = new SearchHit(row.DocumentId, ChunkId(row.DocumentId, row.Ordinal), row.Text ?? "", 0f,
                    row.Title, row.Section, row.MetadataJson, row.Start, row.End, row.Page);
            }
        }

        return result;
    }

    public async Task<IReadOnlyList<StoredChunkVector>> DocumentVectors(string documentId)
    {
        var seqs = _index.SeqsOf(documentId);
        if (seqs.Count == 0)
        {
            return [];
        }

        // Vectors from memory, texts from the log (memory keeps no text): both describe the same committed rows.
        var vectors = _index.VectorsOf(seqs);
        var rows = await log.GetAsync(ShardKey, seqs);
        var vectorOf = new Dictionary<long, float[]>(seqs.Count);
        for (var i = 0; i < seqs.Count; i++)
        {
            if (vectors[i] is { } v)
            {
                vectorOf[seqs[i]] = v;
            }
        }

        var result = new List<StoredChunkVector>(rows.Count);
        foreach (var row in rows)
        {
            if (row.Text is not null && vectorOf.TryGetValue(row.Seq, out var vector))
            {
                result.Add(new StoredChunkVector(row.Text, row.Section, row.Title, vector));
            }
        }

        return result;
    }

    public Task<ShardStats> GetStats() =>
        Task.FromResult(new ShardStats(_index.Count, _index.DocumentCount, _watermark, _snapshotWatermark, _index.EstimatedMemoryBytes, RuntimeIdentity));

    public Task<ShardWarmth> Warm(DateTimeOffset activeSince)
    {
        var shard = int.Parse(Ids.Split(ShardKey, 3)[2], System.Globalization.CultureInfo.InvariantCulture);
        return Task.FromResult(new ShardWarmth(shard, _index.Count, _index.EstimatedMemoryBytes, _activatedAt < activeSince, _loadMilliseconds, _replayed));
    }

    public Task<bool> Snapshot() => SnapshotIfChangedAsync(CancellationToken.None);

    public async Task Drop()
    {
        _snapshotTimer?.Dispose();
        await log.DeleteShardAsync(ShardKey);
        await snapshots.DeleteAsync(ShardKey);
        _index.Dispose();
        _index = new ShardIndex(HnswOptions());
        _watermark = _snapshotWatermark = 0;
        DeactivateOnIdle();
    }

    /// <summary>Chunk ids are stable: the document id and the chunk's ordinal in it.</summary>
    public static string ChunkId(string documentId, int ordinal) =>
        string.Concat(documentId, "#", ordinal.ToString(System.Globalization.CultureInfo.InvariantCulture));

    private async Task<bool> SnapshotIfChangedAsync(CancellationToken cancellationToken)
    {
        if (_watermark == _snapshotWatermark)
        {
            return false;
        }

        var watermark = _watermark;
        var index = _index;
        await snapshots.SaveAsync(ShardKey, watermark, (stream, ct) =>
        {
            index.WriteTo(stream);
            return Task.CompletedTask;
        }, cancellationToken);
        _snapshotWatermark = watermark;
        await log.CompactAsync(ShardKey, watermark, cancellationToken);
        logger.LogDebug("Shard {Shard}: snapshot at {Watermark}", ShardKey, watermark);
        return true;
    }

    private HnswOptions HnswOptions() => new()
    {
        ExactSearchThreshold = options.Value.ExactSearchThreshold,
        EfSearch = options.Value.EfSearch,
        Quantization = _quantization,
    };

    /// <summary>
    /// The collection's vector storage mode, read once per activation: a new graph needs it before its first vector.
    /// Read from the collection grain's persisted state, not by calling the grain: the collection may be the very
    /// caller waiting on this activation while it deactivates itself (silo shutdown), and a deactivating grain answers
    /// nothing until its running requests finish — a cycle that only the 30 s response timeout broke. The setting is
    /// written before the collection's first shard exists and never changes, so the stored copy is current. A
    /// collection that is gone (being dropped) leaves float32.
    /// </summary>
    private async Task<VectorQuantization> ReadQuantizationAsync(string tenant, string collection)
    {
        var stored = new GrainState<CollectionState>();
        await collectionStates.ReadStateAsync(CollectionGrain.StateName, GrainId.Create(CollectionGrain.GrainTypeName, Ids.Key(tenant, collection)), stored);
        return stored.State is { Exists: true, Settings.EffectiveVectorQuantization: VectorQuantizations.Int8 } ? VectorQuantization.Int8 : VectorQuantization.None;
    }
}

/// <summary>
/// The in-memory part of a shard, free of Orleans: the HNSW over chunk vectors plus the mapping from
/// graph ids to chunk-log sequence numbers and from documents to their graph ids.
/// </summary>
public sealed class ShardIndex(HnswOptions hnswOptions) : IDisposable
{
    private const uint Magic = 0x44485352; // "RSHD"
    private const int FormatVersion = 4;

    private HnswIndex? _hnsw;
    private Bm25Index _keywords = new();
    private long[] _seqOf = new long[256];
    private DocumentAttributes?[] _attributesOf = new DocumentAttributes?[256];
    private readonly Dictionary<string, List<int>> _documents = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DocumentAttributes> _attributes = new(StringComparer.Ordinal);

    // Log order is id order, so _seqOf ascends and a binary search maps a sequence number back to its id without a
    // hash table per shard (about 30 bytes per chunk). Only a log that was not applied in order needs this fallback.
    private Dictionary<long, int>? _idOfSeq;

    /// <summary>Live chunks.</summary>
    public int Count => _hnsw?.Count ?? 0;

    /// <summary>Documents with at least one chunk.</summary>
    public int DocumentCount => _documents.Count;

    /// <summary>Approximate bytes held.</summary>
    public long EstimatedMemoryBytes =>
        (_hnsw?.EstimatedMemoryBytes ?? 0) + _keywords.EstimatedMemoryBytes + (_seqOf.LongLength * (sizeof(long) + IntPtr.Size))
        + (_documents.Count * DocumentBytes) + ((_idOfSeq?.Count ?? 0) * 28L);

    // A document's share of the maps: its id list, attributes and two dictionary entries, without its strings.
    private const long DocumentBytes = 160;

    /// <summary>True if the document has chunks here.</summary>
    public bool HasDocument(string documentId) => _documents.ContainsKey(documentId);

    /// <summary>Applies one log entry.</summary>
    public void Apply(ChunkLogEntry entry)
    {
        switch (entry.Op)
        {
            case ChunkOp.Add:
                _hnsw ??= new HnswIndex(entry.Vector!.Length, VectorMetric.Cosine, hnswOptions);
                var id = _hnsw.Add(entry.Vector);
                if (id >= _seqOf.Length)
                {
                    Array.Resize(ref _seqOf, Math.Max(_seqOf.Length * 2, id + 1));
                    Array.Resize(ref _attributesOf, _seqOf.Length);
                }

                if (_idOfSeq is null && id > 0 && entry.Seq <= _seqOf[id - 1])
                {
                    _idOfSeq = BuildSeqMap(id);
                }

                _seqOf[id] = entry.Seq;
                if (_idOfSeq is not null)
                {
                    _idOfSeq[entry.Seq] = id;
                }

                if (!_attributes.TryGetValue(entry.DocumentId, out var attributes))
                {
                    _attributes[entry.DocumentId] = attributes = new DocumentAttributes(entry.DocumentId, entry.Title, entry.MetadataJson);
                }

                _attributesOf[id] = attributes;
                _keywords.Add(id, KeywordText(entry));
                if (!_documents.TryGetValue(entry.DocumentId, out var ids))
                {
                    _documents[entry.DocumentId] = ids = [];
                }

                ids.Add(id);
                break;
            case ChunkOp.DeleteDocument:
                _attributes.Remove(entry.DocumentId);
                if (_documents.Remove(entry.DocumentId, out var removed))
                {
                    foreach (var r in removed)
                    {
                        _hnsw!.Delete(r);
                        _keywords.Remove(r);
                        _attributesOf[r] = null;
                        _idOfSeq?.Remove(_seqOf[r]);
                    }
                }

                break;
            default:
                throw new InvalidDataException($"Unknown chunk-log op {entry.Op}.");
        }
    }

    /// <summary>Best <paramref name="k"/> chunks as (log sequence number, cosine similarity).</summary>
    public IReadOnlyList<(long Seq, float Score)> Search(ReadOnlySpan<float> query, int k, int ef, MetadataFilter? filter = null)
    {
        if (_hnsw is null || _hnsw.Count == 0)
        {
            return [];
        }

        if (query.Length != _hnsw.Dimensions)
        {
            throw RagException.Invalid($"Query vector has {query.Length} dimensions; the index has {_hnsw.Dimensions}.");
        }

        var hits = _hnsw.Search(query, k, ef, Predicate(filter));
        var result = new (long, float)[hits.Count];
        for (var i = 0; i < hits.Count; i++)
        {
            result[i] = (_seqOf[hits[i].Id], 1f - hits[i].Distance);
        }

        return result;
    }

    /// <summary>Log sequence numbers of a document's live chunks (empty when it has none).</summary>
    public IReadOnlyList<long> SeqsOf(string documentId) =>
        _documents.TryGetValue(documentId, out var ids) ? ids.ConvertAll(id => _seqOf[id]) : [];

    /// <summary>Copies of the live chunks' vectors by log sequence number; null for a chunk that is not (or no longer) here.</summary>
    public IReadOnlyList<float[]?> VectorsOf(IReadOnlyList<long> seqs)
    {
        var result = new float[]?[seqs.Count];
        for (var i = 0; i < result.Length; i++)
        {
            if (_hnsw is not null && IdOf(seqs[i]) is var id and >= 0 && !_hnsw.IsDeleted(id))
            {
                result[i] = _hnsw.GetVector(id).ToArray();
            }
        }

        return result;
    }

    /// <summary>The graph id holding log entry <paramref name="seq"/>, or -1 if none ever did.</summary>
    private int IdOf(long seq)
    {
        if (_idOfSeq is not null)
        {
            return _idOfSeq.TryGetValue(seq, out var id) ? id : -1;
        }

        var found = Array.BinarySearch(_seqOf, 0, _hnsw?.TotalCount ?? 0, seq);
        return found >= 0 ? found : -1;
    }

    private Dictionary<long, int> BuildSeqMap(int count)
    {
        var map = new Dictionary<long, int>(count + 1);
        for (var id = 0; id < count; id++)
        {
            if (_attributesOf[id] is not null)
            {
                map[_seqOf[id]] = id;
            }
        }

        return map;
    }

    /// <summary>Best <paramref name="k"/> chunks by BM25 as (log sequence number, score), with k1/b overridden if <paramref name="parameters"/> is given.</summary>
    public IReadOnlyList<(long Seq, float Score)> SearchKeywords(string query, int k, MetadataFilter? filter = null, Bm25Options? parameters = null)
    {
        var hits = _keywords.Search(query, k, Predicate(filter), parameters);
        var result = new (long, float)[hits.Count];
        for (var i = 0; i < hits.Count; i++)
        {
            result[i] = (_seqOf[hits[i].Id], hits[i].Score);
        }

        return result;
    }

    private Func<int, bool>? Predicate(MetadataFilter? filter) =>
        filter is null ? null : id => _attributesOf[id] is { } attributes && filter.Matches(attributes);

    /// <summary>Keyword matching sees the chunk in its context, like the embedding does.</summary>
    private static string KeywordText(ChunkLogEntry entry) =>
        string.Concat(entry.Title, "\n", entry.Section, "\n", entry.Text);

    /// <summary>Writes the shard snapshot: checksummed id maps, then the HNSW's and the keyword index's own checksummed formats.</summary>
    public void WriteTo(Stream stream) => WriteTo(stream, Bm25Index.SnapshotVersion);

    /// <summary>Writes the snapshot with the keyword index in an older format, so tests can prove such snapshots still load.</summary>
    internal void WriteTo(Stream stream, int keywordVersion)
    {
        var maps = new MemoryStream();
        using (var writer = new BinaryWriter(maps, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            var total = _hnsw?.TotalCount ?? 0;
            writer.Write(total);
            writer.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(_seqOf.AsSpan(0, total)));
            writer.Write(_documents.Count);
            foreach (var (doc, ids) in _documents)
            {
                writer.Write(doc);
                var attributes = _attributes[doc];
                writer.Write(attributes.Title ?? "");
                writer.Write(attributes.Title is not null);
                writer.Write(attributes.MetadataJson ?? "");
                writer.Write(attributes.MetadataJson is not null);
                writer.Write(ids.Count);
                foreach (var id in ids)
                {
                    writer.Write(id);
                }
            }

            writer.Write(_hnsw is not null);
        }

        var bytes = maps.GetBuffer().AsSpan(0, (int)maps.Length);
        using (var header = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            header.Write(Magic);
            header.Write(FormatVersion);
            header.Write(bytes.Length);
            header.Write(Crc32C.Update(0, bytes));
            header.Write(bytes);
        }

        _hnsw?.WriteTo(stream);
        _keywords.WriteTo(stream, keywordVersion);
    }

    /// <summary>
    /// Releases the shard's big arrays for the next shard that loads (<see cref="ShardArrayPool"/>) and an int8 graph's
    /// memory-mapped vectors. The index is empty afterwards.
    /// </summary>
    public void Dispose()
    {
        _hnsw?.Dispose();
        _keywords.Release();
    }

    /// <summary>Reads a snapshot written by <see cref="WriteTo"/>; InvalidDataException if damaged.</summary>
    public static ShardIndex ReadFrom(Stream stream, HnswOptions hnswOptions)
    {
        try
        {
            using var reader = new BinaryReader(stream, System.Text.Encoding.UTF8, leaveOpen: true);
            if (reader.ReadUInt32() != Magic)
            {
                throw new InvalidDataException("Not a shard snapshot.");
            }

            var version = reader.ReadInt32();
            if (version != FormatVersion)
            {
                throw new InvalidDataException($"Unsupported shard snapshot version {version}.");
            }

            var length = reader.ReadInt32();
            var crc = reader.ReadUInt32();
            if (length < 0 || (stream.CanSeek && length > stream.Length - stream.Position))
            {
                throw new InvalidDataException("Shard snapshot header is damaged (impossible length).");
            }

            var bytes = reader.ReadBytes(length);
            if (bytes.Length != length)
            {
                throw new InvalidDataException("Shard snapshot is truncated.");
            }

            if (Crc32C.Update(0, bytes) != crc)
            {
                throw new InvalidDataException("Shard snapshot id maps fail their checksum; the data is corrupt.");
            }

            var index = new ShardIndex(hnswOptions);
            using var maps = new BinaryReader(new MemoryStream(bytes, writable: false), System.Text.Encoding.UTF8);
            var total = maps.ReadInt32();
            if (total < 0 || total > (bytes.Length - 4) / sizeof(long))
            {
                throw new InvalidDataException("Shard snapshot id maps declare an impossible chunk count.");
            }

            index._seqOf = new long[Math.Max(256, total)];
            index._attributesOf = new DocumentAttributes?[index._seqOf.Length];
            System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(bytes.AsSpan(4, total * sizeof(long))).CopyTo(index._seqOf);
            maps.BaseStream.Position = 4 + ((long)total * sizeof(long));
            var docs = maps.ReadInt32();
            if (docs < 0)
            {
                throw new InvalidDataException("Shard snapshot id maps declare negative counts.");
            }

            index._documents.EnsureCapacity(docs);
            index._attributes.EnsureCapacity(docs);
            for (var d = 0; d < docs; d++)
            {
                var doc = maps.ReadString();
                var title = maps.ReadString();
                var hasTitle = maps.ReadBoolean();
                var metadata = maps.ReadString();
                var hasMetadata = maps.ReadBoolean();
                var attributes = new DocumentAttributes(doc, hasTitle ? title : null, hasMetadata ? metadata : null);
                index._attributes[doc] = attributes;
                var n = maps.ReadInt32();
                if (n < 0 || n > total)
                {
                    throw new InvalidDataException($"Shard snapshot document '{doc}' declares {n} chunks.");
                }

                var ids = new List<int>(n);
                for (var i = 0; i < n; i++)
                {
                    var id = maps.ReadInt32();
                    if ((uint)id >= (uint)total)
                    {
                        throw new InvalidDataException($"Shard snapshot document '{doc}' names unknown chunk {id}.");
                    }

                    ids.Add(id);
                    index._attributesOf[id] = attributes;
                }

                index._documents[doc] = ids;
            }

            // Snapshots of logs applied out of order (none this code writes) need the hash map back.
            for (var id = 1; id < total; id++)
            {
                if (index._seqOf[id] <= index._seqOf[id - 1])
                {
                    index._idOfSeq = index.BuildSeqMap(total);
                    break;
                }
            }

            if (maps.ReadBoolean())
            {
                index._hnsw = HnswIndex.ReadFrom(stream);
            }

            index._keywords = Bm25Index.ReadFrom(stream);

            return index;
        }
        catch (EndOfStreamException ex)
        {
            throw new InvalidDataException("Shard snapshot is truncated.", ex);
        }
    }
}
