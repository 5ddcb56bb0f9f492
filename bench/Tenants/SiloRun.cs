using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Runtime;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Hosting;
using RagOrleans.Grains.Indexing;
using RagOrleans.Grains.Storage;

namespace RagOrleans.Bench.Tenants;

/// <summary>
/// Many tenants on ONE real silo (embedded hosting, the service's own services): every tenant's 1,000-chunk shard
/// snapshot is saved through the silo's <see cref="ISnapshotStore"/>, then each tenant's shard grain is called in turn,
/// so each call is a cold activation that loads its snapshot. Idle shards must leave memory (ShardMemoryGovernor,
/// <c>Rag:ShardMemory</c>) for the process to stay bounded; a sampler records RSS, heap and resident activations.
/// </summary>
/// <remarks>
/// Options: --tenants N (10000) --chunks C (1000) --templates T (8 different shards) --distinct K (tenants): with K below N, only K snapshots are written
/// and tenant t reads tenant (t mod K)'s, to spare the disk (a 1,000-chunk snapshot is 1.8 MB);
/// --parallel P (2) concurrent callers; --data DIR (/tmp/rag-bench-tenants-silo, wiped). Bound the process with
/// DOTNET_GCHeapHardLimit: the governor reads memory load against it.
/// </remarks>
internal static class SiloRun
{
    private const string Collection = "docs";

    public static async Task<SiloReport> RunAsync(string[] args, BenchArgs parsed, Func<int, int, ShardIndex> build, RunInfo run)
    {
        var tenants = parsed.Int("tenants", 10_000);
        var chunks = parsed.Int("chunks", 1000);
        var distinct = Math.Min(tenants, parsed.Int("distinct", tenants));
        var parallel = parsed.Int("parallel", 2);
        var dataDir = Array.IndexOf(args, "--data") is var d and >= 0 ? args[d + 1] : "/tmp/rag-bench-tenants-silo";
        if (Directory.Exists(dataDir))
        {
            Directory.Delete(dataDir, recursive: true);
        }

        Directory.CreateDirectory(dataDir);
        var gc = GC.GetGCMemoryInfo();
        Console.WriteLine($"silo: {tenants:N0} tenants x {chunks:N0} chunks, {distinct:N0} distinct snapshots, {parallel} callers; " +
            $"memory available to the GC {gc.TotalAvailableMemoryBytes / 1048576.0:N0} MB (heap hard limit: {ShardMemoryGovernor.HasHeapHardLimit(GC.GetConfigurationVariables())}); " +
            $"server GC {System.Runtime.GCSettings.IsServerGC}");

        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Rag:DataDir"] = dataDir,
            ["Rag:Dashboard"] = "false",
            ["Orleans:SiloPort"] = "21477",
            ["Orleans:GatewayPort"] = "31477",
            ["Rag:ShardMemory:MinIdle"] = "00:00:02",
            ["Rag:ShardMemory:PollInterval"] = "00:00:01",
        });
        builder.Configuration.AddEnvironmentVariables();
        builder.Logging.AddFilter(level => level >= LogLevel.Warning).AddSimpleConsole(o => o.SingleLine = true);
        builder.Logging.AddFilter("RagOrleans.Grains.Indexing.ShardMemoryGovernor", LogLevel.None);
        builder.UseOrleans(silo =>
        {
            silo.UseRagSilo(builder.Configuration);
            if (distinct < tenants)
            {
                silo.Services.AddSingleton<ISnapshotStore>(sp =>
                    new SharedSnapshots(new FileSnapshotStore(Path.Combine(dataDir, "snapshots")), distinct));
            }
        });
        using var host = builder.Build();
        await host.StartAsync();
        var grains = host.Services.GetRequiredService<IGrainFactory>();
        var governor = host.Services.GetRequiredService<ShardMemoryGovernor>();

        // Seed through the service's own store: 8 different shards built in-process, saved under every tenant's key.
        var watch = Stopwatch.StartNew();
        var templates = Enumerable.Range(0, parsed.Int("templates", 8)).Select(t =>
        {
            using var buffer = new MemoryStream();
            build(chunks, 1000 + t).WriteTo(buffer);
            return buffer.ToArray();
        }).ToArray();
        var store = host.Services.GetRequiredService<ISnapshotStore>();
        for (var t = 0; t < distinct; t++)
        {
            var bytes = templates[t % templates.Length];
            await store.SaveAsync(ShardKey(t), chunks, (stream, ct) => stream.WriteAsync(bytes, ct).AsTask());
        }

        // Real collections, so each activation's settings call finds its collection (as in the service) rather than
        // taking the not-found path.
        var created = 0;
        for (var t = 0; t < tenants; t++)
        {
            try
            {
                await grains.GetGrain<ICollectionGrain>(Ids.Key($"t{t:D5}", Collection)).Create(new CollectionSettings("all-minilm-l6-v2", 384, 1, 256, 32));
                created++;
            }
            catch (RagException ex)
            {
                Console.WriteLine($"  collection of tenant {t} not created ({ex.Kind}: {ex.Message}); shards take the not-found path");
                break;
            }
        }

        Console.WriteLine($"  created {created:N0} collections; seeded {distinct:N0} snapshots ({distinct * (double)templates[0].Length / 1073741824.0:F1} GB) in {watch.Elapsed.TotalSeconds:F0} s");
        ProcessStats.Settle();
        var baseRss = ProcessStats.RssBytes();
        var baseHeap = GC.GetTotalMemory(forceFullCollection: true);
        var baseActivations = await ShardActivations(grains);
        Console.WriteLine($"  silo up, seeded: RSS {baseRss / 1048576.0:F0} MB, heap {baseHeap / 1048576.0:F0} MB, {baseActivations} shard activations");

        var cycles = await ActivationCyclesAsync(grains, parsed.Int("cycles", 0), Math.Min(tenants, parsed.Int("cycle-tenants", 20)), chunks);

        var samples = new List<SiloSample>();
        var touched = 0;
        var done = new CancellationTokenSource();
        var started = Stopwatch.StartNew();
        var sampler = Task.Run(async () =>
        {
            while (!done.IsCancellationRequested)
            {
                var info = GC.GetGCMemoryInfo();
                var sample = new SiloSample(started.Elapsed.TotalSeconds, Volatile.Read(ref touched), await ShardActivations(grains),
                    ProcessStats.RssBytes(), GC.GetTotalMemory(false), governor.ResidentBytes, info.MemoryLoadBytes * 100.0 / info.TotalAvailableMemoryBytes);
                lock (samples)
                {
                    samples.Add(sample);
                }

                if (samples.Count % 20 == 1)
                {
                    Console.WriteLine($"  t={sample.Seconds,5:F0} s: touched {sample.Touched,6:N0}, resident shards {sample.ResidentShards,6:N0}, " +
                        $"RSS {sample.RssBytes / 1048576.0,7:N0} MB, heap {sample.HeapBytes / 1048576.0,7:N0} MB, shards' estimate {sample.ShardBytes / 1048576.0,7:N0} MB, " +
                        $"GC memory load {sample.MemoryLoadPercent:F0}%");
                }

                try
                {
                    await Task.Delay(1000, done.Token);
                }
                catch (OperationCanceledException)
                {
                }
            }
        });

        // Each tenant in turn: the call activates the shard, which loads its snapshot (a cold start) and answers.
        var latencies = new double[tenants];
        var next = -1;
        var callers = Enumerable.Range(0, parallel).Select(_ => Task.Run(async () =>
        {
            for (var t = Interlocked.Increment(ref next); t < tenants; t = Interlocked.Increment(ref next))
            {
                var start = Stopwatch.GetTimestamp();
                var stats = await grains.GetGrain<IIndexShardGrain>(ShardKey(t)).GetStats();
                latencies[t] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                if (stats.Chunks != chunks)
                {
                    throw new InvalidDataException($"Tenant {t}: {stats.Chunks} chunks, expected {chunks}.");
                }

                Interlocked.Increment(ref touched);
            }
        })).ToArray();
        await Task.WhenAll(callers);
        var touchSeconds = started.Elapsed.TotalSeconds;
        Console.WriteLine($"  touched {tenants:N0} tenants in {touchSeconds:F0} s ({tenants / touchSeconds:F0}/s); idling 15 s");
        await Task.Delay(TimeSpan.FromSeconds(15));
        await done.CancelAsync();
        await sampler;

        // A second touch of a few tenants released long ago: they come back from their snapshots.
        var again = new List<double>();
        for (var t = 0; t < Math.Min(200, tenants); t++)
        {
            var start = Stopwatch.GetTimestamp();
            await grains.GetGrain<IIndexShardGrain>(ShardKey(t)).GetStats();
            again.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }

        var final = samples[^1];
        var peak = samples.MaxBy(s => s.RssBytes)!;
        var maxResident = samples.Max(s => s.ResidentShards);

        // Memory per resident tenant at the sample holding the most: the shards' own estimate (what the governor weighs;
        // the density mode checks it against the measured heap) and RSS above the seeded baseline (garbage included).
        var fullest = samples.MaxBy(s => s.ResidentShards)!;
        var heapPerTenant = fullest.ShardBytes / (double)Math.Max(1, fullest.ResidentShards);
        var rssPerTenant = (fullest.RssBytes - baseRss) / (double)Math.Max(1, fullest.ResidentShards);
        Array.Sort(latencies);
        again.Sort();
        var report = new SiloReport("tenants-silo", tenants, chunks, distinct, parallel, gc.TotalAvailableMemoryBytes, baseRss, baseHeap,
            peak.RssBytes, final.RssBytes, maxResident, final.ResidentShards, heapPerTenant, heapPerTenant / chunks, rssPerTenant,
            touchSeconds, Stats.Percentile(latencies, 50), Stats.Percentile(latencies, 99), latencies[^1],
            Stats.Percentile(again, 50), Stats.Percentile(again, 99), cycles, samples, run.Finish());
        Console.WriteLine($"  resident shards: max {maxResident:N0}, after idling {final.ResidentShards:N0} of {tenants:N0} touched");
        Console.WriteLine($"  RSS: seeded {baseRss / 1048576.0:F0} MB, peak {peak.RssBytes / 1048576.0:F0} MB, end {final.RssBytes / 1048576.0:F0} MB");
        Console.WriteLine($"  per resident tenant ({fullest.ResidentShards:N0} resident): shard estimate {heapPerTenant / 1048576.0:F2} MB = {report.HeapBytesPerVector:F0} B per vector; " +
            $"RSS above the seeded silo {rssPerTenant / 1048576.0:F2} MB");
        Console.WriteLine($"  cold activation through the grain: p50 {report.ActivationP50Ms:F1} ms, p99 {report.ActivationP99Ms:F1} ms, max {report.ActivationMaxMs:F1} ms; " +
            $"re-activation of released tenants p50 {report.ReactivationP50Ms:F1} ms, p99 {report.ReactivationP99Ms:F1} ms");
        await host.StopAsync();
        return report;
    }

    /// <summary>
    /// The grain path of a cold activation, repeated: <paramref name="rounds"/> times, one caller touches tenants
    /// 0..<paramref name="count"/>-1 in turn (each call activates the shard: collection settings, snapshot open,
    /// ShardIndex.ReadFrom, log replay) and then every idle activation is deactivated, so the next round is cold again.
    /// Between rounds the shards' arrays go where a deactivation sends them (ShardArrayPool, or the GC with
    /// Rag:ShardMemory:RecycleLimitBytes=0).
    /// </summary>
    private static async Task<CycleReport?> ActivationCyclesAsync(IGrainFactory grains, int rounds, int count, int chunks)
    {
        if (rounds <= 0)
        {
            return null;
        }

        var management = grains.GetGrain<IManagementGrain>(0);
        var latencies = new List<double>(rounds * count);
        var firstRound = new List<double>(count);
        var (rentedBefore, reusedBefore) = ShardArrayPool.Counts;
        var gen2Before = GC.CollectionCount(2);
        var pauseBefore = GC.GetTotalPauseDuration();
        var faultsBefore = 0L;
        for (var r = 0; r < rounds; r++)
        {
            for (var t = 0; t < count; t++)
            {
                var start = Stopwatch.GetTimestamp();
                var stats = await grains.GetGrain<IIndexShardGrain>(ShardKey(t)).GetStats();
                var ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                if (stats.Chunks != chunks)
                {
                    throw new InvalidDataException($"Tenant {t}: {stats.Chunks} chunks, expected {chunks}.");
                }

                (r == 0 ? firstRound : latencies).Add(ms);
            }

            if (r == 0)
            {
                faultsBefore = LoadMeter.ProcessMinorFaults();
            }

            // Asked again until every shard is gone: one that was still finishing a call is skipped by a collection.
            var wait = Stopwatch.StartNew();
            do
            {
                await management.ForceActivationCollection(TimeSpan.Zero);
                await Task.Delay(50);
            }
            while (await ShardActivations(grains) > 0 && wait.Elapsed < TimeSpan.FromSeconds(30));
        }

        var (rented, reused) = ShardArrayPool.Counts;
        latencies.Sort();
        firstRound.Sort();
        var report = new CycleReport(rounds, count, ShardArrayPool.LimitBytes, Stats.Percentile(firstRound, 50), firstRound[^1],
            latencies.Count, Stats.Percentile(latencies, 50), Stats.Percentile(latencies, 99), latencies.Count > 0 ? latencies[^1] : double.NaN,
            rented - rentedBefore, reused - reusedBefore, GC.CollectionCount(2) - gen2Before, (GC.GetTotalPauseDuration() - pauseBefore).TotalMilliseconds,
            (LoadMeter.ProcessMinorFaults() - faultsBefore) / (double)Math.Max(1, latencies.Count));
        Console.WriteLine($"  activation cycles: {rounds} rounds x {count} tenants, array pool limit {report.PoolLimitBytes / 1048576.0:F0} MB; " +
            $"first round (nothing released yet) p50 {report.FirstRoundP50Ms:F1} ms, max {report.FirstRoundMaxMs:F1} ms; " +
            $"later rounds ({report.Activations} activations) p50 {report.P50Ms:F1} ms, p99 {report.P99Ms:F1} ms, max {report.MaxMs:F1} ms; " +
            $"arrays reused {report.ArraysReused:N0} of {report.ArraysRented:N0}; gen2 GCs {report.Gen2Collections}, GC pause {report.GcPauseMs:F0} ms; " +
            $"process page faults per later activation {report.PageFaultsPerActivation:F0}");
        return report;
    }

    private static string ShardKey(int tenant) => Ids.Key($"t{tenant:D5}", Collection, "0");

    private static async Task<int> ShardActivations(IGrainFactory grains)
    {
        var stats = await grains.GetGrain<IManagementGrain>(0).GetSimpleGrainStatistics();
        return stats.Where(s => s.GrainType.Contains("IndexShard", StringComparison.Ordinal)).Sum(s => s.ActivationCount);
    }

    /// <summary>Tenant t reads tenant (t mod K)'s snapshot: the service's store and load path, K files on disk.</summary>
    private sealed class SharedSnapshots(ISnapshotStore inner, int distinct) : ISnapshotStore
    {
        public Task SaveAsync(string shardKey, long watermark, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken = default) =>
            inner.SaveAsync(Map(shardKey), watermark, write, cancellationToken);

        public Task<SnapshotHandle?> OpenLatestAsync(string shardKey, CancellationToken cancellationToken = default) =>
            inner.OpenLatestAsync(Map(shardKey), cancellationToken);

        public Task DeleteAsync(string shardKey, CancellationToken cancellationToken = default) => inner.DeleteAsync(Map(shardKey), cancellationToken);

        private string Map(string shardKey)
        {
            var parts = Ids.Split(shardKey, 3);
            var tenant = int.Parse(parts[0].AsSpan(1), System.Globalization.CultureInfo.InvariantCulture);
            return ShardKey(tenant % distinct);
        }
    }
}

internal sealed record SiloSample(double Seconds, int Touched, int ResidentShards, long RssBytes, long HeapBytes, long ShardBytes, double MemoryLoadPercent);

internal sealed record SiloReport(string Benchmark, int Tenants, int ChunksPerTenant, int DistinctSnapshots, int Callers, long GcAvailableBytes,
    long SeededRssBytes, long SeededHeapBytes, long PeakRssBytes, long EndRssBytes, int MaxResidentShards, int EndResidentShards,
    double HeapBytesPerResidentTenant, double HeapBytesPerVector, double RssBytesPerResidentTenant, double TouchSeconds,
    double ActivationP50Ms, double ActivationP99Ms, double ActivationMaxMs, double ReactivationP50Ms, double ReactivationP99Ms,
    CycleReport? ActivationCycles, IReadOnlyList<SiloSample> Samples, RunInfo Run);

internal sealed record CycleReport(int Rounds, int TenantsPerRound, long PoolLimitBytes, double FirstRoundP50Ms, double FirstRoundMaxMs, int Activations,
    double P50Ms, double P99Ms, double MaxMs, long ArraysRented, long ArraysReused, int Gen2Collections, double GcPauseMs, double PageFaultsPerActivation);
