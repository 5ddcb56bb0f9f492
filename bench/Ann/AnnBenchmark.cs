using System.Diagnostics;
using RagOrleans.Grains.Indexing;

namespace RagOrleans.Bench.Ann;

/// <summary>Settings of one run; the HNSW parameters are the service's defaults.</summary>
internal sealed record AnnSettings(int K, int M, int EfConstruction, int[] EfValues, int Rounds, int RoundMilliseconds);

internal sealed record BuildResult(int Threads, double Seconds, double InsertsPerSecond);

/// <summary>Single-thread throughput: the best and median of interleaved rounds (the machine is shared).</summary>
internal sealed record QpsResult(double BestQps, double MedianQps, double[] RoundQps, double MicrosecondsPerQueryAtBest);

/// <param name="Recall">Recall@k against the exact top-k.</param>
/// <param name="SpeedupVsBruteForce">Best HNSW QPS / best brute-force QPS.</param>
/// <param name="PairedSpeedupMedian">Median over rounds of (HNSW QPS / brute-force QPS of the same round): robust to load drifting across the run.</param>
internal sealed record EfResult(int Ef, double Recall, QpsResult Qps, double SpeedupVsBruteForce, double PairedSpeedupMedian);

/// <param name="IndexEstimatedBytes">HnswIndex.EstimatedMemoryBytes (allocated arrays, capacity = N).</param>
/// <param name="SnapshotBytes">Size of HnswIndex.WriteTo output.</param>
/// <param name="RawVectorBytes">4 x dimensions: what the vectors alone need.</param>
/// <param name="RssBeforeBuildBytes">After loading the data, before the index exists.</param>
internal sealed record MemoryResult(
    long IndexEstimatedBytes,
    double EstimatedBytesPerVector,
    long SnapshotBytes,
    double SnapshotBytesPerVector,
    int RawVectorBytes,
    long RssBeforeBuildBytes,
    long RssAfterBuildBytes,
    long ManagedHeapAfterBuildBytes);

internal sealed record AnnReport(
    string Benchmark,
    string Dataset,
    string Metric,
    int Dimensions,
    int BaseCount,
    int QueryCount,
    AnnSettings Settings,
    double? BruteForceRecallVsShippedGroundTruth,
    BuildResult Build,
    QpsResult BruteForce,
    IReadOnlyList<EfResult> Sweep,
    MemoryResult Memory,
    RunInfo Run);

internal static class AnnBenchmark
{
    public static AnnReport Run(AnnDataset data, AnnSettings settings, RunInfo run)
    {
        var n = data.Base.Length;
        var dims = data.Dimensions;
        var k = settings.K;
        Console.WriteLine($"{data.Name}: {n} x {dims}-d base, {data.Queries.Length} queries, {data.Metric}, k={k}, M={settings.M}, efConstruction={settings.EfConstruction}");
        Console.WriteLine($"machine: {Environment.ProcessorCount} cores, load average {string.Join(' ', run.LoadAverageAtStart)}");

        ProcessStats.Settle();
        var rssBefore = ProcessStats.RssBytes();

        // ExactSearchThreshold = 0: always walk the graph, so small sets measure HNSW rather than the exact fallback.
        var options = new HnswOptions { M = settings.M, EfConstruction = settings.EfConstruction, ExactSearchThreshold = 0 };
        var index = new HnswIndex(dims, data.Metric, options, initialCapacity: n);
        var watch = Stopwatch.StartNew();
        foreach (var vector in data.Base)
        {
            index.Add(vector);
        }

        watch.Stop();
        var build = new BuildResult(1, watch.Elapsed.TotalSeconds, n / watch.Elapsed.TotalSeconds);
        Console.WriteLine($"build (1 thread): {build.Seconds:F2} s, {build.InsertsPerSecond:F0} inserts/s");

        ProcessStats.Settle();
        var memory = MeasureMemory(index, dims, rssBefore);
        Console.WriteLine(
            $"memory: {memory.EstimatedBytesPerVector:F0} B/vector in memory, {memory.SnapshotBytesPerVector:F0} B/vector snapshot " +
            $"(raw vector {memory.RawVectorBytes} B); RSS {Mb(memory.RssBeforeBuildBytes)} -> {Mb(memory.RssAfterBuildBytes)} MB");

        // Ground truth from the same exact scan that is timed as the baseline; siftsmall's shipped one is a cross-check.
        var exact = data.Queries.Select(q => index.SearchExact(q, k).Select(h => h.Id).ToArray()).ToArray();
        double? exactVsShipped = data.GroundTruth is { } shipped ? MeanRecall(exact, shipped, k) : null;
        var truth = data.GroundTruth ?? exact;
        if (exactVsShipped is { } agreement)
        {
            Console.WriteLine($"brute force vs shipped ground truth: recall@{k} {agreement:F4}");
        }

        var destination = new VectorHit[k];
        var recalls = new double[settings.EfValues.Length];
        for (var e = 0; e < settings.EfValues.Length; e++)
        {
            var found = new int[data.Queries.Length][];
            for (var q = 0; q < data.Queries.Length; q++)
            {
                var count = index.Search(data.Queries[q], k, destination, settings.EfValues[e]);
                found[q] = destination.AsSpan(0, count).ToArray().Select(h => h.Id).ToArray();
            }

            recalls[e] = MeanRecall(found, truth, k);
        }

        // Rounds interleave baseline and every ef so a burst of load from other users hits all of them alike.
        var exactRounds = new double[settings.Rounds];
        var efRounds = new double[settings.EfValues.Length][];
        for (var e = 0; e < efRounds.Length; e++)
        {
            efRounds[e] = new double[settings.Rounds];
        }

        for (var r = 0; r < settings.Rounds; r++)
        {
            exactRounds[r] = Qps(q => index.SearchExact(data.Queries[q], k), data.Queries.Length, settings.RoundMilliseconds);
            for (var e = 0; e < settings.EfValues.Length; e++)
            {
                var ef = settings.EfValues[e];
                efRounds[e][r] = Qps(q => index.Search(data.Queries[q], k, destination, ef), data.Queries.Length, settings.RoundMilliseconds);
            }

            Console.WriteLine($"round {r + 1}/{settings.Rounds}: brute force {exactRounds[r]:F0} QPS, " +
                string.Join(", ", settings.EfValues.Select((ef, e) => $"ef{ef} {efRounds[e][r]:F0}")));
        }

        var bruteForce = Summarize(exactRounds);
        var sweep = new List<EfResult>();
        for (var e = 0; e < settings.EfValues.Length; e++)
        {
            var qps = Summarize(efRounds[e]);
            var paired = Stats.Median(efRounds[e].Select((v, r) => v / exactRounds[r]));
            sweep.Add(new EfResult(settings.EfValues[e], recalls[e], qps, qps.BestQps / bruteForce.BestQps, paired));
        }

        PrintTable(k, bruteForce, exactVsShipped, sweep);
        GC.KeepAlive(index);
        return new AnnReport(
            "ann", data.Name, data.Metric.ToString(), dims, n, data.Queries.Length, settings, exactVsShipped, build, bruteForce, sweep, memory, run.Finish());
    }

    private static MemoryResult MeasureMemory(HnswIndex index, int dims, long rssBefore)
    {
        var rssAfter = ProcessStats.RssBytes();
        var heap = GC.GetTotalMemory(forceFullCollection: false);
        using var snapshot = new MemoryStream();
        index.WriteTo(snapshot);
        var n = (double)index.Count;
        return new MemoryResult(
            index.EstimatedMemoryBytes, index.EstimatedMemoryBytes / n, snapshot.Length, snapshot.Length / n, dims * sizeof(float), rssBefore, rssAfter, heap);
    }

    private static double Qps(Action<int> search, int queries, int minMilliseconds)
    {
        long done = 0;
        var watch = Stopwatch.StartNew();
        do
        {
            for (var q = 0; q < queries; q++)
            {
                search(q);
            }

            done += queries;
        }
        while (watch.ElapsedMilliseconds < minMilliseconds);
        return done / watch.Elapsed.TotalSeconds;
    }

    private static QpsResult Summarize(double[] rounds)
    {
        var best = rounds.Max();
        return new QpsResult(best, Stats.Median(rounds), rounds, 1e6 / best);
    }

    private static double MeanRecall(int[][] found, int[][] truth, int k)
    {
        double sum = 0;
        for (var q = 0; q < found.Length; q++)
        {
            var expected = truth[q].Take(k).ToHashSet();
            sum += found[q].Take(k).Count(expected.Contains) / (double)Math.Min(k, expected.Count);
        }

        return sum / found.Length;
    }

    private static void PrintTable(int k, QpsResult bruteForce, double? exactRecall, List<EfResult> sweep)
    {
        Console.WriteLine();
        Console.WriteLine($"{"search",-12} {"recall@" + k,10} {"QPS best",10} {"QPS median",11} {"us/query",9} {"x brute",8} {"x paired",9}");
        Console.WriteLine($"{"brute force",-12} {exactRecall ?? 1.0,10:F4} {bruteForce.BestQps,10:F0} {bruteForce.MedianQps,11:F0} {bruteForce.MicrosecondsPerQueryAtBest,9:F1} {1.0,8:F2} {1.0,9:F2}");
        foreach (var r in sweep)
        {
            Console.WriteLine($"{"hnsw ef=" + r.Ef,-12} {r.Recall,10:F4} {r.Qps.BestQps,10:F0} {r.Qps.MedianQps,11:F0} {r.Qps.MicrosecondsPerQueryAtBest,9:F1} {r.SpeedupVsBruteForce,8:F2} {r.PairedSpeedupMedian,9:F2}");
        }

        Console.WriteLine();
    }

    private static string Mb(long bytes) => (bytes / 1e6).ToString("F1", System.Globalization.CultureInfo.InvariantCulture);
}
