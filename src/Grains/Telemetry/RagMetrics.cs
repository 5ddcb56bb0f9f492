using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Options;

namespace RagOrleans.Grains.Telemetry;

/// <summary>Settings of the service's telemetry (<c>Rag:Telemetry</c>).</summary>
public sealed class TelemetryOptions
{
    /// <summary>The configuration section.</summary>
    public const string Section = "Rag:Telemetry";

    /// <summary>How many of the busiest tenants get their own metric label; the rest are <c>other</c>.</summary>
    public int TopTenants { get; set; } = 20;

    /// <summary>
    /// Debug switch: lets logs and spans carry document and query text. Off by default because that text is
    /// the tenants' data.
    /// </summary>
    public bool LogContent { get; set; }
}

/// <summary>
/// The service's own metrics, on the <see cref="MeterName"/> meter. One instance per process (a singleton),
/// shared by the frontend and the grains it hosts. Durations are in seconds, as OpenTelemetry's semantic
/// conventions and Prometheus expect.
/// </summary>
public sealed class RagMetrics : IDisposable
{
    /// <summary>The meter name to export.</summary>
    public const string MeterName = "RagOrleans";

    private static readonly double[] LatencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
    private static readonly double[] BatchBuckets = [1, 2, 4, 8, 16, 32, 64, 128];

    private readonly Meter _meter;
    private readonly Histogram<double> _ingestionStep;
    private readonly Counter<long> _ingestedDocuments;
    private readonly Counter<long> _chunkEmbeddings;
    private readonly Histogram<int> _embeddingBatch;
    private readonly Counter<long> _embeddedTexts;
    private readonly Histogram<double> _embeddingDuration;
    private readonly Histogram<double> _searchStage;
    private readonly Histogram<double> _search;
    private readonly Counter<long> _refusals;
    private readonly UpDownCounter<long> _tenants;
    private readonly ConcurrentDictionary<object, Func<long>> _shards = new(ReferenceEqualityComparer.Instance);
    private readonly ConcurrentDictionary<object, Func<(int Waiting, int Running)>> _backlogs = new(ReferenceEqualityComparer.Instance);

    /// <summary>Creates the instruments on a meter from <paramref name="meterFactory"/> (or a standalone meter).</summary>
    public RagMetrics(IMeterFactory? meterFactory = null, IOptions<TelemetryOptions>? options = null)
    {
        _meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        Tenants = new TenantLabeler(options?.Value.TopTenants ?? new TelemetryOptions().TopTenants);
        LogContent = options?.Value.LogContent ?? false;

        _ingestionStep = _meter.CreateHistogram("rag.ingestion.step.duration", "s",
            "Time of one ingestion step (parse, chunk, embed, index) of one document.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        _ingestedDocuments = _meter.CreateCounter<long>("rag.ingestion.documents", "{document}",
            "Ingestion attempts that ended, by outcome (indexed, failed, retried).");
        _chunkEmbeddings = _meter.CreateCounter<long>("rag.ingestion.chunk_embeddings", "{chunk}",
            "Where document chunks got their embeddings: source=indexed (the document's own stored chunk, same text), cache (this silo's cache), model.");
        _meter.CreateObservableGauge("rag.ingestion.backlog", ObserveBacklog, "{document}",
            "Documents waiting for an ingestion slot (state=waiting) or being ingested (state=running) on this process.");

        _embeddingBatch = _meter.CreateHistogram("rag.embedding.batch.size", "{text}",
            "Texts per model run, by purpose (query, document).",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = BatchBuckets.Select(b => (int)b).ToArray() });
        _embeddedTexts = _meter.CreateCounter<long>("rag.embedding.texts", "{text}",
            "Texts embedded by the model; its rate is the embedding throughput.");
        _embeddingDuration = _meter.CreateHistogram("rag.embedding.duration", "s",
            "Time of one model run (one batch).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });

        _searchStage = _meter.CreateHistogram("rag.search.stage.duration", "s",
            "Time of one search stage: embed, dense, keyword, fuse, hydrate.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        _search = _meter.CreateHistogram("rag.search.duration", "s",
            "Time of a whole search inside the cluster, by mode and (bounded) tenant.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });

        _meter.CreateObservableGauge("rag.index.shards.active", () => (long)_shards.Count, "{shard}",
            "Index shards active on this process.");
        _meter.CreateObservableGauge("rag.index.memory", ObserveIndexMemory, "By",
            "Estimated memory of the active index shards on this process.");
        _tenants = _meter.CreateUpDownCounter<long>("rag.tenants.active", "{tenant}",
            "Tenant grains active on this process.");
        _refusals = _meter.CreateCounter<long>("rag.refusals", "{request}",
            "Requests refused by a quota or a rate limit, by reason and (bounded) tenant.");
    }

    /// <summary>The debug switch <see cref="TelemetryOptions.LogContent"/>: spans may carry query text.</summary>
    public bool LogContent { get; }

    /// <summary>The bounded tenant label of this process.</summary>
    public TenantLabeler Tenants { get; }

    /// <summary>Records one ingestion step of one document.</summary>
    public void IngestionStep(string step, TimeSpan elapsed) =>
        _ingestionStep.Record(elapsed.TotalSeconds, new KeyValuePair<string, object?>("step", step));

    /// <summary>Counts an ingestion attempt that ended with <paramref name="outcome"/> (indexed, failed, retried).</summary>
    public void IngestionEnded(string outcome) =>
        _ingestedDocuments.Add(1, new KeyValuePair<string, object?>("outcome", outcome));

    /// <summary>Counts chunks whose embedding came from <paramref name="source"/> (indexed, cache, model).</summary>
    public void ChunkEmbeddings(string source, int count)
    {
        if (count > 0)
        {
            _chunkEmbeddings.Add(count, new KeyValuePair<string, object?>("source", source));
        }
    }

    /// <summary>Reports a source of ingestion backlog until the returned handle is disposed.</summary>
    public IDisposable TrackBacklog(Func<(int Waiting, int Running)> backlog)
    {
        var key = new object();
        _backlogs[key] = backlog;
        return new Untrack(() => _backlogs.TryRemove(key, out _));
    }

    /// <summary>Records one model run.</summary>
    public void EmbeddingBatch(string purpose, int size, TimeSpan elapsed)
    {
        var tag = new KeyValuePair<string, object?>("purpose", purpose);
        _embeddingBatch.Record(size, tag);
        _embeddedTexts.Add(size, tag);
        _embeddingDuration.Record(elapsed.TotalSeconds, tag);
    }

    /// <summary>Records one search stage (embed, dense, keyword, fuse, hydrate).</summary>
    public void SearchStage(string stage, TimeSpan elapsed) =>
        _searchStage.Record(elapsed.TotalSeconds, new KeyValuePair<string, object?>("stage", stage));

    /// <summary>Records one whole search and counts it as the tenant's traffic.</summary>
    public void Search(string tenantId, string mode, TimeSpan elapsed) =>
        _search.Record(elapsed.TotalSeconds,
            new KeyValuePair<string, object?>("mode", mode),
            new KeyValuePair<string, object?>("tenant", Tenants.Observe(tenantId)));

    /// <summary>Counts a request refused by a quota or rate limit; callers name the <paramref name="reason"/> (quota, rate_limit).</summary>
    public void Refused(string reason, string? tenantId) =>
        _refusals.Add(1,
            new KeyValuePair<string, object?>("reason", reason),
            new KeyValuePair<string, object?>("tenant", Tenants.Label(tenantId)));

    /// <summary>Reports an active shard and its memory until the returned handle is disposed.</summary>
    public IDisposable TrackShard(Func<long> estimatedMemoryBytes)
    {
        var key = new object();
        _shards[key] = estimatedMemoryBytes;
        return new Untrack(() => _shards.TryRemove(key, out _));
    }

    /// <summary>A tenant grain activated (+1) or deactivated (-1).</summary>
    public void TenantActive(int delta) => _tenants.Add(delta);

    /// <summary>Elapsed time since <paramref name="startTimestamp"/> (<see cref="Stopwatch.GetTimestamp"/>).</summary>
    public static TimeSpan Since(long startTimestamp) => Stopwatch.GetElapsedTime(startTimestamp);

    public void Dispose() => _meter.Dispose();

    private IEnumerable<Measurement<int>> ObserveBacklog()
    {
        int waiting = 0, running = 0;
        foreach (var source in _backlogs.Values)
        {
            var (w, r) = source();
            waiting += w;
            running += r;
        }

        return
        [
            new Measurement<int>(waiting, new KeyValuePair<string, object?>("state", "waiting")),
            new Measurement<int>(running, new KeyValuePair<string, object?>("state", "running")),
        ];
    }

    private long ObserveIndexMemory()
    {
        long total = 0;
        foreach (var estimate in _shards.Values)
        {
            try
            {
                total += estimate();
            }
            catch (InvalidOperationException)
            {
                // A shard changing under the scrape: its estimate is skipped for this one scrape.
            }
        }

        return total;
    }

    private sealed class Untrack(Action untrack) : IDisposable
    {
        private int _done;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0)
            {
                untrack();
            }
        }
    }
}
