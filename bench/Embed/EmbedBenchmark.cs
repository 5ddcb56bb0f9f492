using System.Diagnostics;
using RagOrleans.Grains.Embeddings;

namespace RagOrleans.Bench.Embed;

/// <summary>One OnnxEmbeddingModel batching setting; the batcher inherits it because it calls the same model.</summary>
/// <remarks>The grid's own settings cut by rows and tokens only; the service default adds its long-text and padding limits.</remarks>
internal sealed record BatchSetting(int MaxBatchSize, int MaxBatchTokens, int LongTextTokens = int.MaxValue, double MaxPaddingRatio = double.PositiveInfinity)
{
    public string Label =>
        $"{MaxBatchSize}/{MaxBatchTokens}" +
        (LongTextTokens == int.MaxValue ? "" : $"/long>{LongTextTokens}:1") +
        (double.IsPositiveInfinity(MaxPaddingRatio) ? "" : $"/pad<={MaxPaddingRatio:0.##}");

    public OnnxEmbeddingOptions Options(EmbeddingModelDescriptor model, int threads) => new()
    {
        Model = model,
        IntraOpNumThreads = threads,
        MaxBatchSize = MaxBatchSize,
        MaxBatchTokens = MaxBatchTokens,
        LongTextTokens = LongTextTokens,
        MaxPaddingRatio = MaxPaddingRatio,
    };
}

/// <summary>One direct setting's best-of-rounds figures; <see cref="DirectSetting.Callers"/> threads call the model at once.</summary>
internal sealed record GridPoint(DirectSetting Setting, double TextsPerSecond, double TokensPerSecond, double RatioVsBest, double TextsPerCpuSecond);

/// <param name="Setting">How a direct path called the model (null for the batcher paths).</param>
/// <param name="RatioVsDirect">Best texts/s / best direct texts/s.</param>
/// <param name="PairedRatioMedian">Median over rounds of (texts/s / direct texts/s of the same round).</param>
/// <param name="BestTextsPerCpuSecond">Texts per second of the process's CPU time (user + system): the work each path
/// spends per text, which other processes on the machine distort much less than wall-clock throughput.</param>
/// <param name="CpuRatioVsDirect">Best texts per CPU second / the baseline's.</param>
/// <param name="MeanTextsPerModelCall">Texts per model call the batcher formed: how well it batches, independent of how
/// fast the machine is; for the bound rows, the texts each direct call hands the model (null for the baseline).</param>
/// <param name="LatencyP50Ms">Per-request latency through the batcher (null for direct calls).</param>
internal sealed record Throughput(
    string Path,
    DirectSetting? Setting,
    int Callers,
    double BestTextsPerSecond,
    double MedianTextsPerSecond,
    double BestTokensPerSecond,
    double RatioVsDirect,
    double PairedRatioMedian,
    double[] RoundTextsPerSecond,
    double BestTextsPerCpuSecond,
    double CpuRatioVsDirect,
    double? MeanTextsPerModelCall,
    double? LatencyP50Ms,
    double? LatencyP99Ms);

/// <param name="BestSetting">The direct setting of the baseline: the best of the whole grid.</param>
/// <param name="BatcherModelSetting">The service's model setting, which the batcher runs on; its callers are those of
/// the "N at a time" bound rows (the model's ParallelCalls: one per core when the session has one intra-op thread).</param>
/// <param name="BatcherWorkers">The batcher's worker threads (its default: the model's ParallelCalls).</param>
internal sealed record WorkloadResult(
    string Name,
    string Source,
    int Texts,
    double MeanTokens,
    long TotalTokens,
    IReadOnlyList<GridPoint> DirectGrid,
    DirectSetting BestSetting,
    DirectSetting BatcherModelSetting,
    int BatcherWorkers,
    IReadOnlyList<Throughput> Results,
    DirectSetting? RetimedSetting,
    IReadOnlyList<double> Retimed);

internal sealed record LatencyResult(string Path, string Texts, int Samples, double MeanTokens, double P50Ms, double P90Ms, double P99Ms, double MaxMs);

internal sealed record EmbedReport(
    string Benchmark,
    string Model,
    int IntraOpNumThreads,
    int Rounds,
    IReadOnlyList<WorkloadResult> Workloads,
    IReadOnlyList<LatencyResult> QueryLatency,
    RunInfo Run);

internal static class EmbedBenchmark
{
    // Small, default and large batches: short texts gain from big batches, ~200-token chunks are fastest nearly alone
    // (attention grows with the square of the length), so the best setting differs per workload.
    // Batch 1 is the reference setting for long chunks; the last entry is the service default (long texts alone).
    // 8/128: with one thread per call, small batches of short texts may beat big ones (4/64 lost to it on 2 cores).
    private static readonly OnnxEmbeddingOptions ServiceDefaults = new();

    /// <summary>The batcher workers' nice increment (<c>--worker-niceness</c>); the service's default unless set.</summary>
    public static int WorkerNiceness { get; set; } = new EmbeddingBatcherOptions().WorkerNiceness;

    // Every batcher path of the bench: cache off (the workloads cycle through a few hundred texts, and cache hits would
    // measure a dictionary), workers at the chosen priority.
    private static EmbeddingBatcherOptions BatcherOptions => new() { QueryCacheCapacity = 0, WorkerNiceness = WorkerNiceness };

    private static readonly BatchSetting DefaultSetting = new(
        ServiceDefaults.MaxBatchSize, ServiceDefaults.MaxBatchTokens, ServiceDefaults.LongTextTokens, ServiceDefaults.MaxPaddingRatio);

    private static readonly BatchSetting[] Batches = [new(1, 512), new(8, 128), new(16, 256), new(32, 512), new(64, 1024), DefaultSetting];

    // Closed-loop callers, each awaiting its text before sending the next, can never form a batch larger than their
    // number: 16 callers cap the batcher at the batch-16 direct figure. 64 (the best direct batch for short texts) is
    // the loaded service that the throughput target is about, where at least a full batch is waiting; 16 shows a
    // moderately loaded one. 256 is a backlog deeper than one round (64 texts a worker), so each round is the batcher's
    // own pick: length-sorted across more texts than 64 closed-loop callers ever offer at once.
    private static readonly int[] ConcurrentCallers = [16, 64, 256];

    /// <summary>
    /// How the direct paths call the model: one caller on a session of up to two intra-op threads (the old default), and
    /// one caller per core sharing a one-thread session (on 2 cores ~1.2x faster for chunks and ~1.5x for short texts
    /// than one caller on two threads). The service's own setting (<paramref name="threads"/>) is always among them:
    /// as many callers as the model takes calls at once (<see cref="OnnxEmbeddingModel.ParallelCalls"/>, the batcher's workers).
    /// </summary>
    private static (int Threads, int Callers)[] CallingForms(int threads)
    {
        var cores = Environment.ProcessorCount;
        return new[] { (Math.Min(2, cores), 1), (1, cores), (threads, Math.Max(1, cores / threads)) }.Distinct().ToArray();
    }

    public static WorkloadResult RunWorkload(Workload workload, int rounds, int threads, EmbeddingModelDescriptor model, bool directOnly = false, int retimeBest = 0)
    {
        // Direct only: the grid alone, for a quick limit (bench/Ingest's ratio), without the bound rows and batcher paths.
        int[] concurrentCallers = directOnly ? [] : ConcurrentCallers;
        Console.WriteLine($"{workload.Name}: {workload.Texts.Count} texts ({workload.Source}), {workload.MeanTokens:F1} tokens each on average");
        var forms = CallingForms(threads);
        var grid = Batches.SelectMany(b => forms.Select(f => new DirectSetting(b, f.Threads, f.Callers))).ToArray();

        // The bound rows and the batcher run on the service's setting: its batching, its intra-op threads, and (for the
        // bound rows) as many callers as that setting is meant to be called from.
        using var productionModel = Create(model, DefaultSetting, threads);
        var production = new DirectSetting(DefaultSetting, threads, productionModel.ParallelCalls);
        var models = grid.Select(s => Create(model, s.Batch, s.IntraOpNumThreads)).ToArray();
        try
        {
            // The whole list split into the model's own calls beforehand (planning, not serving: left out of the time, in
            // the direct paths' favour); a one-caller setting hands the model the whole list in one call, as before.
            var plans = grid.Select((s, g) => s.Callers == 1 ? null : DirectCalls.ModelCalls(workload.Texts, s.Batch, models[g], EmbeddingPurpose.Document)).ToArray();

            // Settings with the same intra-op threads share one ONNX session; one concurrent warm-up per session.
            var warmUp = workload.Texts.Take(32).ToList();
            foreach (var g in forms.Select(f => Array.FindIndex(grid, s => s.IntraOpNumThreads == f.Threads && s.Callers == f.Callers)))
            {
                DirectCalls.Run(models[g], DirectCalls.Slices(warmUp, warmUp.Count, grid[g].Callers), grid[g].Callers);
            }

            // The batcher runs on the service's default setting, as in production. A second batcher without the
            // regroup pause (RegroupWait 0) shows in the same run what that pause buys under concurrency.
            var counting = new CountingModel(productionModel);
            var countingNoRegroup = new CountingModel(productionModel);
            using var batcher = new EmbeddingBatcher(counting, BatcherOptions);
            using var noRegroup = new EmbeddingBatcher(countingNoRegroup, BatcherOptions with { RegroupWait = TimeSpan.Zero });
            var paths = new List<(string Name, EmbeddingBatcher Batcher, CountingModel Counter, int Callers)>();
            if (!directOnly)
            {
                paths.Add(("EmbeddingBatcher", batcher, counting, 1));
                paths.AddRange(concurrentCallers.Select(n => ("EmbeddingBatcher", batcher, counting, n)));
                paths.AddRange(concurrentCallers.Select(n => ("batcher, no regroup", noRegroup, countingNoRegroup, n)));
            }

            var direct = grid.Select(_ => new double[rounds]).ToArray();
            var directCpu = grid.Select(_ => new double[rounds]).ToArray();

            // The direct figure sorts the whole list by length before batching; N closed-loop callers only ever offer
            // N texts at once, so no batcher can sort more than those. Direct calls of N texts in arrival order, on
            // the production setting, are that bound: the batcher's own cost is its distance from them. With several
            // callers, each N-text slice is split among them (N/C texts a call), so still no more than N are in flight.
            var slices = concurrentCallers.Select(n => DirectCalls.Slices(workload.Texts, n, production.Callers)).ToArray();
            var sliced = concurrentCallers.Select(_ => new double[rounds]).ToArray();
            var slicedCpu = concurrentCallers.Select(_ => new double[rounds]).ToArray();
            var through = paths.Select(_ => new double[rounds]).ToArray();
            var throughCpu = paths.Select(_ => new double[rounds]).ToArray();
            var latencies = paths.Select(_ => new List<double>()).ToArray();
            var calls = paths.Select(_ => new CountingModel.Tally()).ToArray();

            // Every path in every round, interleaved: load from other users of the machine comes in bursts, and
            // this way a burst hits all paths alike instead of one of them.
            for (var r = 0; r < rounds; r++)
            {
                for (var g = 0; g < grid.Length; g++)
                {
                    (direct[g][r], directCpu[g][r]) = plans[g] is { } plan
                        ? Timed(workload, () => DirectCalls.Run(models[g], plan, grid[g].Callers))
                        : Timed(workload, () => Direct(models[g], workload));
                }

                for (var c = 0; c < concurrentCallers.Length; c++)
                {
                    var slice = slices[c];
                    (sliced[c][r], slicedCpu[c][r]) = Timed(workload, () => DirectCalls.Run(productionModel, slice, production.Callers));
                }

                for (var p = 0; p < paths.Count; p++)
                {
                    var path = paths[p];
                    (through[p][r], throughCpu[p][r]) = Timed(workload, () => ThroughBatcher(path.Batcher, workload, path.Callers, latencies[p]));
                    path.Counter.MoveTo(calls[p]);
                }

                Console.WriteLine(
                    $"  round {r + 1}/{rounds}: direct " + string.Join(", ", grid.Select((s, g) => $"{s.Label} {direct[g][r]:F1}")) +
                    "; " + string.Join(", ", paths.Select((path, p) => $"{path.Name} x{path.Callers} {through[p][r]:F1}")) + " texts/s");
            }

            // Baseline = the direct setting with the best best-of-rounds throughput over the whole grid (whatever its
            // threads and callers), compared round by round too.
            var bestIndex = Enumerable.Range(0, grid.Length).MaxBy(g => direct[g].Max());
            var baseline = direct[bestIndex];

            // That figure is the largest of many noisy timings (every setting, every round), so it overstates the setting
            // that won it (the winner's curse), and a setting can win by noise alone. --retime-best N times the grid's
            // three best settings again, N rounds interleaved, apart from the timings that picked them: the best median
            // of those is a limit with little of that bias: a maximum of three medians (RetimedSetting, Retimed).
            var candidates = Enumerable.Range(0, grid.Length).OrderByDescending(g => direct[g].Max()).Take(retimeBest > 0 ? 3 : 0).ToArray();
            var retimes = candidates.Select(_ => new double[retimeBest]).ToArray();
            for (var i = 0; i < retimeBest; i++)
            {
                for (var k = 0; k < candidates.Length; k++)
                {
                    var g = candidates[k];
                    retimes[k][i] = (plans[g] is { } plan
                        ? Timed(workload, () => DirectCalls.Run(models[g], plan, grid[g].Callers))
                        : Timed(workload, () => Direct(models[g], workload))).Wall;
                }
            }

            var retimedBest = candidates.Length == 0 ? -1 : Enumerable.Range(0, candidates.Length).MaxBy(k => Stats.Median(retimes[k]));
            foreach (var (g, k) in candidates.Select((g, k) => (g, k)))
            {
                Console.WriteLine($"  timed again: {grid[g].Label} t{grid[g].IntraOpNumThreads}x{grid[g].Callers} " +
                    string.Join(", ", retimes[k].Select(x => x.ToString("F1", System.Globalization.CultureInfo.InvariantCulture))) +
                    $" texts/s, median {Stats.Median(retimes[k]):F1} (grid {direct[g].Max():F1})");
            }

            var gridPoints = grid.Select((s, g) => new GridPoint(s, direct[g].Max(), direct[g].Max() * workload.MeanTokens, direct[g].Max() / baseline.Max(), directCpu[g].Max())).ToList();
            var results = new List<Throughput>
            {
                Summarize("direct Embed (baseline)", grid[bestIndex], 1, baseline, baseline, directCpu[bestIndex], directCpu[bestIndex], workload, null, null),
            };
            for (var c = 0; c < concurrentCallers.Length; c++)
            {
                var n = concurrentCallers[c];
                var name = production.Callers == 1 ? $"direct, {n} a call" : $"direct, {n} at a time t{threads}x{production.Callers}";
                results.Add(Summarize(name, production, 1, sliced[c], baseline, slicedCpu[c], directCpu[bestIndex], workload, null, n / (double)production.Callers));
            }

            for (var p = 0; p < paths.Count; p++)
            {
                results.Add(Summarize(paths[p].Name, null, paths[p].Callers, through[p], baseline, throughCpu[p], directCpu[bestIndex], workload, latencies[p], calls[p].Mean));
            }

            return new WorkloadResult(
                workload.Name, workload.Source, workload.Texts.Count, workload.MeanTokens, workload.TotalTokens, gridPoints, grid[bestIndex], production, batcher.Workers, results,
                retimedBest < 0 ? null : grid[candidates[retimedBest]], retimedBest < 0 ? [] : retimes[retimedBest]);
        }
        finally
        {
            foreach (var m in models)
            {
                m.Dispose();
            }
        }
    }

    private static OnnxEmbeddingModel Create(EmbeddingModelDescriptor model, BatchSetting setting, int threads) => new(setting.Options(model, threads));

    /// <summary>
    /// One caller, one query at a time: the latency a user's search pays for embedding its query, through the batcher
    /// and, as the same-run baseline, by calling the model directly on the caller's thread (alternating sample by sample).
    /// </summary>
    public static LatencyResult[] QueryLatency(Workload queries, int samples, int threads, EmbeddingModelDescriptor descriptor)
    {
        using var model = new OnnxEmbeddingModel(new OnnxEmbeddingOptions { Model = descriptor, IntraOpNumThreads = threads });

        using var batcher = new EmbeddingBatcher(model, BatcherOptions);
        for (var i = 0; i < 20; i++)
        {
            batcher.EmbedAsync(queries.Texts[i % queries.Texts.Count], EmbeddingPurpose.Query).AsTask().GetAwaiter().GetResult();
            model.Embed([queries.Texts[i % queries.Texts.Count]], EmbeddingPurpose.Query);
        }

        var direct = new List<double>(samples);
        var through = new List<double>(samples);
        for (var i = 0; i < samples; i++)
        {
            var text = queries.Texts[i % queries.Texts.Count];
            var start = Stopwatch.GetTimestamp();
            model.Embed([text], EmbeddingPurpose.Query);
            direct.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);

            // A caller that awaits, as a request handler does (the batcher may complete it synchronously).
            start = Stopwatch.GetTimestamp();
            batcher.EmbedAsync(text, EmbeddingPurpose.Query).AsTask().GetAwaiter().GetResult();
            through.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }

        return [Latency("direct Embed (baseline)", direct), Latency("EmbeddingBatcher", through)];

        LatencyResult Latency(string path, List<double> latencies)
        {
            latencies.Sort();
            return new LatencyResult(
                path, queries.Name, samples, queries.MeanTokens,
                Stats.Percentile(latencies, 50), Stats.Percentile(latencies, 90), Stats.Percentile(latencies, 99), latencies[^1]);
        }
    }

    /// <returns>Texts per wall-clock second and per second of the process's CPU time.</returns>
    private static (double Wall, double Cpu) Timed(Workload workload, Action run)
    {
        using var process = Process.GetCurrentProcess();
        var cpu = process.TotalProcessorTime;
        var watch = Stopwatch.StartNew();
        run();
        var wall = watch.Elapsed.TotalSeconds;
        process.Refresh();
        var cpuSeconds = (process.TotalProcessorTime - cpu).TotalSeconds;
        return (workload.Texts.Count / wall, workload.Texts.Count / Math.Max(cpuSeconds, 1e-6));
    }

    private static void Direct(OnnxEmbeddingModel model, Workload workload) =>
        // The whole list in one call: the model sorts by length and batches by its own limits, its best case.
        model.Embed(workload.Texts, EmbeddingPurpose.Document);

    private static void ThroughBatcher(EmbeddingBatcher batcher, Workload workload, int callers, List<double> latencies)
    {
        var texts = workload.Texts;
        var perRequest = new double[texts.Count];
        var next = -1;
        var tasks = Enumerable.Range(0, callers).Select(_ => Task.Run(async () =>
        {
            // Each caller awaits its text before taking the next, like a request handler; they share one work queue
            // so all callers finish together and none idles while others still have texts.
            int i;
            while ((i = Interlocked.Increment(ref next)) < texts.Count)
            {
                var start = Stopwatch.GetTimestamp();
                await batcher.EmbedAsync(texts[i], EmbeddingPurpose.Document).ConfigureAwait(false);
                perRequest[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
        })).ToArray();
        Task.WaitAll(tasks);
        latencies.AddRange(perRequest);
    }

    private static Throughput Summarize(
        string path, DirectSetting? setting, int callers, double[] rounds, double[] direct, double[] cpu, double[] directCpu, Workload workload, List<double>? latencies, double? textsPerCall)
    {
        var best = rounds.Max();
        double? p50 = null, p99 = null;
        if (latencies is not null)
        {
            latencies.Sort();
            p50 = Stats.Percentile(latencies, 50);
            p99 = Stats.Percentile(latencies, 99);
        }

        return new Throughput(
            path,
            setting,
            callers,
            best,
            Stats.Median(rounds),
            best * workload.MeanTokens,
            best / direct.Max(),
            Stats.Median(rounds.Select((v, r) => v / direct[r])),
            rounds,
            cpu.Max(),
            cpu.Max() / directCpu.Max(),
            textsPerCall,
            p50,
            p99);
    }
}

/// <summary>Counts the batcher's model calls and texts, to show the batches it forms.</summary>
internal sealed class CountingModel(IEmbeddingModel inner) : IEmbeddingModel
{
    private long _calls;
    private long _texts;

    public EmbeddingModelDescriptor Descriptor => inner.Descriptor;

    public ITokenCounter Tokenizer => inner.Tokenizer;

    // Passed on: the batcher runs as many workers as the model takes calls at once.
    public int ParallelCalls => inner.ParallelCalls;

    public float[][] Embed(IReadOnlyList<string> texts, EmbeddingPurpose purpose)
    {
        Interlocked.Increment(ref _calls);
        Interlocked.Add(ref _texts, texts.Count);
        return inner.Embed(texts, purpose);
    }

    // Counted as one call: the figure shows the rounds the batcher forms; the model splits them itself.
    public void EmbedInGroups(IReadOnlyList<string> texts, EmbeddingPurpose purpose, EmbeddedGroup groupDone)
    {
        Interlocked.Increment(ref _calls);
        Interlocked.Add(ref _texts, texts.Count);
        inner.EmbedInGroups(texts, purpose, groupDone);
    }

    /// <summary>Adds the counts so far to <paramref name="tally"/> and starts again from zero.</summary>
    public void MoveTo(Tally tally)
    {
        tally.Calls += Interlocked.Exchange(ref _calls, 0);
        tally.Texts += Interlocked.Exchange(ref _texts, 0);
    }

    internal sealed class Tally
    {
        public long Calls { get; set; }

        public long Texts { get; set; }

        public double? Mean => Calls == 0 ? null : Texts / (double)Calls;
    }
}
