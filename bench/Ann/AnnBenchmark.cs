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

/// <summary>Build with several insert threads (HnswIndex.AddBatch) and the recall of the graph it makes.</summary>
internal sealed record ParallelBuildResult(int Threads, double Seconds, double InsertsPerSecond, double RecallAtEf64, double SequentialRecallAtEf64);

/// <summary>Two threads querying one index at once: total QPS over both.</summary>
internal sealed record TwoThreadResult(int Ef, double Recall, double BestQps, double MedianQps);

/// <param name="HeapBytes">EstimatedMemoryBytes of the int8 index (codes, scales, graph).</param>
/// <param name="VectorHeapBytesPerVector">In-memory vector bytes per vector: codes + scale (+ squared norm for L2).</param>
/// <param name="VectorReduction">float32 bytes / in-memory int8 vector bytes.</param>
internal sealed record QuantizedResult(
    double BuildSeconds, long HeapBytes, double VectorHeapBytesPerVector, double VectorReduction, long MappedBytes, IReadOnlyList<QuantizedEf> Sweep);

internal sealed record QuantizedEf(int Ef, double Recall, double FloatRecall, double RecallLoss, double BestQps, double FloatBestQps);

/// <summary>One line of the targets table.</summary>
internal sealed record TargetRow(string Target, string Reached, bool? Met);

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
    ParallelBuildResult ParallelBuild,
    IReadOnlyList<TwoThreadResult> TwoThreads,
    QuantizedResult Int8,
    IReadOnlyList<TargetRow> Targets,
    RunInfo Run);

internal static class AnnBenchmark
{
    // hnswlib on this machine kind (issue 9): M=16, efConstruction=200, 20k real MiniLM vectors.
    internal static readonly (double Recall, double Qps)[] HnswlibReference = [(0.955, 9400), (0.973, 7600), (0.992, 4100), (0.998, 2400)];
    private const double HnswlibBuildSeconds2Threads = 6.5;

    public static AnnReport Run(AnnDataset data, AnnSettings settings, RunInfo run, double? referenceQpsAt95, string? plotPath)
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

        var twoThreads = TwoThreadQps(index, data, settings, recalls);
        var parallel = ParallelBuild(data, settings, truth, recalls[Array.IndexOf(settings.EfValues, 64)]);
        var int8 = Int8(data, settings, truth, recalls, sweep);
        var targets = Targets(data, index, sweep, parallel, memory, int8, referenceQpsAt95);
        if (plotPath is not null)
        {
            try
            {
                AnnPlot.Write(plotPath, data.Name, sweep, twoThreads, int8);
                Console.WriteLine($"plot: {plotPath}");
            }
            catch (Exception ex) when (ex is TypeInitializationException or DllNotFoundException or EntryPointNotFoundException)
            {
                // A missing or mismatched native Skia library must not cost the measurements of a long run.
                Console.Error.WriteLine($"plot skipped: {ex.GetBaseException().Message}");
            }
        }

        GC.KeepAlive(index);
        return new AnnReport(
            "ann", data.Name, data.Metric.ToString(), dims, n, data.Queries.Length, settings, exactVsShipped, build, bruteForce, sweep, memory,
            parallel, twoThreads, int8, targets, run.Finish());
    }

    private static List<TwoThreadResult> TwoThreadQps(HnswIndex index, AnnDataset data, AnnSettings settings, double[] recalls)
    {
        var results = new List<TwoThreadResult>();
        for (var e = 0; e < settings.EfValues.Length; e++)
        {
            var ef = settings.EfValues[e];
            var rounds = new double[settings.Rounds];
            for (var r = 0; r < settings.Rounds; r++)
            {
                // Each thread walks its own half of the queries, repeatedly, for the round's duration.
                var counts = new long[2];
                var watch = Stopwatch.StartNew();
                var threads = Enumerable.Range(0, 2).Select(t => new Thread(() =>
                {
                    var destination = new VectorHit[settings.K];
                    long done = 0;
                    do
                    {
                        for (var q = t; q < data.Queries.Length; q += 2)
                        {
                            index.Search(data.Queries[q], settings.K, destination, ef);
                            done++;
                        }
                    }
                    while (watch.ElapsedMilliseconds < settings.RoundMilliseconds);
                    counts[t] = done;
                })).ToArray();
                foreach (var thread in threads)
                {
                    thread.Start();
                }

                foreach (var thread in threads)
                {
                    thread.Join();
                }

                rounds[r] = (counts[0] + counts[1]) / watch.Elapsed.TotalSeconds;
            }

            results.Add(new TwoThreadResult(ef, recalls[e], rounds.Max(), Stats.Median(rounds)));
            Console.WriteLine($"2 threads ef={ef}: {rounds.Max():F0} QPS best, {Stats.Median(rounds):F0} median");
        }

        return results;
    }

    private static ParallelBuildResult ParallelBuild(AnnDataset data, AnnSettings settings, int[][] truth, double sequentialRecall64)
    {
        const int threads = 2;
        var rows = Flatten(data.Base);
        var options = new HnswOptions { M = settings.M, EfConstruction = settings.EfConstruction, ExactSearchThreshold = 0 };
        using var index = new HnswIndex(data.Dimensions, data.Metric, options, initialCapacity: data.Base.Length);
        var watch = Stopwatch.StartNew();
        index.AddBatch(rows, threads);
        watch.Stop();
        var recall = Recall(index, data, truth, settings.K, 64);
        var result = new ParallelBuildResult(threads, watch.Elapsed.TotalSeconds, data.Base.Length / watch.Elapsed.TotalSeconds, recall, sequentialRecall64);
        Console.WriteLine($"build ({threads} threads): {result.Seconds:F2} s, {result.InsertsPerSecond:F0} inserts/s; recall@{settings.K} at ef 64 {recall:F4} (1-thread graph {sequentialRecall64:F4})");
        return result;
    }

    private static QuantizedResult Int8(AnnDataset data, AnnSettings settings, int[][] truth, double[] floatRecalls, List<EfResult> floatSweep)
    {
        var options = new HnswOptions
        {
            M = settings.M, EfConstruction = settings.EfConstruction, ExactSearchThreshold = 0, Quantization = VectorQuantization.Int8,
        };
        using var index = new HnswIndex(data.Dimensions, data.Metric, options, initialCapacity: data.Base.Length);
        var watch = Stopwatch.StartNew();
        index.AddBatch(Flatten(data.Base), 2);
        watch.Stop();
        var n = data.Base.Length;
        var vectorBytes = data.Dimensions + sizeof(float) + (data.Metric == VectorMetric.L2 ? sizeof(float) : 0);
        var sweep = new List<QuantizedEf>();
        var destination = new VectorHit[settings.K];
        for (var e = 0; e < settings.EfValues.Length; e++)
        {
            var ef = settings.EfValues[e];
            var recall = Recall(index, data, truth, settings.K, ef);
            var best = Enumerable.Range(0, settings.Rounds)
                .Max(_ => Qps(q => index.Search(data.Queries[q], settings.K, destination, ef), data.Queries.Length, settings.RoundMilliseconds));
            sweep.Add(new QuantizedEf(ef, recall, floatRecalls[e], floatRecalls[e] - recall, best, floatSweep[e].Qps.BestQps));
            Console.WriteLine($"int8 ef={ef}: recall@{settings.K} {recall:F4} (float {floatRecalls[e]:F4}, loss {floatRecalls[e] - recall:F4}), {best:F0} QPS (float {floatSweep[e].Qps.BestQps:F0})");
        }

        var result = new QuantizedResult(
            watch.Elapsed.TotalSeconds, index.EstimatedMemoryBytes, vectorBytes, data.Dimensions * sizeof(float) / (double)vectorBytes, index.MappedVectorBytes, sweep);
        Console.WriteLine($"int8: build (2 threads) {result.BuildSeconds:F2} s; heap {Mb(result.HeapBytes)} MB; {vectorBytes} B/vector in memory vs {data.Dimensions * 4} float32 ({result.VectorReduction:F2}x less); {Mb(result.MappedBytes)} MB float32 in the mapped file");
        return result;
    }

    private static List<TargetRow> Targets(
        AnnDataset data, HnswIndex index, List<EfResult> sweep, ParallelBuildResult parallel, MemoryResult memory, QuantizedResult int8, double? referenceQpsAt95)
    {
        static double? BestAt(IEnumerable<EfResult> sweep, double recall) =>
            sweep.Where(r => r.Recall >= recall).Select(r => (double?)r.Qps.BestQps).DefaultIfEmpty(null).Max();

        var rows = new List<TargetRow>();
        var at95 = BestAt(sweep, 0.95);
        var at99 = BestAt(sweep, 0.99);
        rows.Add(new TargetRow("1-thread QPS at recall@10 >= 0.95 >= 9,400 (hnswlib, 20k)", at95 is { } a ? $"{a:F0}" : "recall not reached", at95 >= 9400));
        rows.Add(new TargetRow("1-thread QPS at recall@10 >= 0.99 >= 4,100 (hnswlib, 20k)", at99 is { } b ? $"{b:F0}" : "recall not reached", at99 >= 4100));
        if (referenceQpsAt95 is { } reference)
        {
            rows.Add(new TargetRow($"QPS at recall >= 0.95 >= 60% of the 20k figure ({reference:F0})", at95 is { } c ? $"{c:F0} = {100 * c / reference:F0}%" : "recall not reached", at95 >= 0.6 * reference));
        }

        rows.Add(new TargetRow($"2-thread build <= 2 x {HnswlibBuildSeconds2Threads} s", $"{parallel.Seconds:F2} s", parallel.Seconds <= 2 * HnswlibBuildSeconds2Threads));

        // Raw float32 rows plus the links the graph needs (layer-0 lists with their counts, and the upper lists).
        var linkBytes = index.EstimatedMemoryBytes - ((long)data.Base.Length * data.Dimensions * sizeof(float));
        var rawPlusLinks = ((long)data.Base.Length * data.Dimensions * sizeof(float)) + ((long)data.Base.Length * (1 + (2 * 16)) * sizeof(int));
        rows.Add(new TargetRow(
            "index memory <= 1.2 x (raw float32 + layer-0 links)",
            $"{memory.IndexEstimatedBytes / (double)rawPlusLinks:F3} x ({Mb(memory.IndexEstimatedBytes)} MB, links etc. {Mb(linkBytes)} MB)",
            memory.IndexEstimatedBytes <= 1.2 * rawPlusLinks));
        rows.Add(new TargetRow(
            "process RSS growth for the index <= 1.2 x (raw + links)",
            $"{(memory.RssAfterBuildBytes - memory.RssBeforeBuildBytes) / (double)rawPlusLinks:F3} x",
            memory.RssAfterBuildBytes - memory.RssBeforeBuildBytes <= 1.2 * rawPlusLinks));
        rows.Add(new TargetRow("int8: >= 3x less vector memory", $"{int8.VectorReduction:F2}x", int8.VectorReduction >= 3));
        var worstLoss = int8.Sweep.Max(e => e.RecallLoss);
        rows.Add(new TargetRow("int8: recall@10 loss <= 0.01 at the same ef", $"worst {worstLoss:F4} over ef {string.Join('/', int8.Sweep.Select(e => e.Ef))}", worstLoss <= 0.01));

        Console.WriteLine();
        Console.WriteLine($"targets ({data.Name}):");
        foreach (var row in rows)
        {
            Console.WriteLine($"  [{(row.Met is null ? "  " : row.Met.Value ? "ok" : "NO")}] {row.Target,-62} {row.Reached}");
        }

        Console.WriteLine();
        return rows;
    }

    private static double Recall(HnswIndex index, AnnDataset data, int[][] truth, int k, int ef)
    {
        var destination = new VectorHit[k];
        var found = new int[data.Queries.Length][];
        for (var q = 0; q < data.Queries.Length; q++)
        {
            var count = index.Search(data.Queries[q], k, destination, ef);
            found[q] = destination.AsSpan(0, count).ToArray().Select(h => h.Id).ToArray();
        }

        return MeanRecall(found, truth, k);
    }

    internal static float[] Flatten(float[][] rows)
    {
        var flat = new float[rows.Length * rows[0].Length];
        for (var i = 0; i < rows.Length; i++)
        {
            rows[i].CopyTo(flat, i * rows[0].Length);
        }

        return flat;
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

    internal static double Qps(Action<int> search, int queries, int minMilliseconds)
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
