using System.Diagnostics;
using RagOrleans.Grains.Embeddings;

namespace RagOrleans.Bench.Embed;

/// <summary>One workload's direct throughput for both models, best of rounds, and the candidate's ratio.</summary>
internal sealed record ModelThroughput(string Workload, double MeanTokens, double BaselineTextsPerSecond, double CandidateTextsPerSecond, double Ratio, double PairedRatioMedian);

/// <summary>Single-query latency for both models, sampled alternately.</summary>
internal sealed record ModelLatency(int Samples, double MeanTokens, double BaselineP50Ms, double CandidateP50Ms, double BaselineP99Ms, double CandidateP99Ms);

internal sealed record ModelComparisonReport(
    string Benchmark,
    string Baseline,
    string Candidate,
    int IntraOpNumThreads,
    int Rounds,
    string Setting,
    double BaselineLoadMs,
    double CandidateLoadMs,
    IReadOnlyList<ModelThroughput> Throughput,
    ModelLatency Latency,
    double MeanCosine,
    double MinCosine,
    RunInfo Run);

/// <summary>
/// Two models on the same texts in the same process, interleaved round by round (and query by query), so machine
/// noise hits both alike: direct <c>Embed</c> throughput for short texts and chunks, and single-query latency.
/// </summary>
internal static class ModelComparison
{
    // The best direct setting for short texts and chunks in the earlier runs (bench/README.md): batches of up to 64.
    private const int MaxBatchSize = 64;
    private const int MaxBatchTokens = 1024;

    public static ModelComparisonReport Run(
        EmbeddingModelDescriptor baseline, EmbeddingModelDescriptor candidate, IReadOnlyList<Workload> workloads, Workload queries,
        int rounds, int latencySamples, int threads, RunInfo run)
    {
        var load = Stopwatch.StartNew();
        using var baseModel = Create(baseline, threads);
        var baseLoadMs = load.Elapsed.TotalMilliseconds;
        load.Restart();
        using var candidateModel = Create(candidate, threads);
        var loadMs = load.Elapsed.TotalMilliseconds;

        // Agreement on the short texts: a quick check that the candidate embeds the same way.
        var a = baseModel.Embed(queries.Texts, EmbeddingPurpose.Document);
        var b = candidateModel.Embed(queries.Texts, EmbeddingPurpose.Document);
        var cosines = a.Zip(b, (x, y) => (double)System.Numerics.Tensors.TensorPrimitives.CosineSimilarity(x, y)).ToArray();

        var throughput = new List<ModelThroughput>();
        foreach (var workload in workloads)
        {
            var baseRounds = new double[rounds];
            var candidateRounds = new double[rounds];
            for (var r = 0; r < rounds; r++)
            {
                baseRounds[r] = TextsPerSecond(baseModel, workload);
                candidateRounds[r] = TextsPerSecond(candidateModel, workload);
                Console.WriteLine($"  {workload.Name} round {r + 1}/{rounds}: {baseline.Name} {baseRounds[r]:F1}, {candidate.Name} {candidateRounds[r]:F1} texts/s");
            }

            throughput.Add(new ModelThroughput(
                workload.Name, workload.MeanTokens, baseRounds.Max(), candidateRounds.Max(), candidateRounds.Max() / baseRounds.Max(),
                Stats.Median(candidateRounds.Select((c, r) => c / baseRounds[r]))));
        }

        for (var i = 0; i < 20; i++)
        {
            baseModel.Embed([queries.Texts[i % queries.Texts.Count]], EmbeddingPurpose.Query);
            candidateModel.Embed([queries.Texts[i % queries.Texts.Count]], EmbeddingPurpose.Query);
        }

        var baseLatency = new List<double>(latencySamples);
        var candidateLatency = new List<double>(latencySamples);
        for (var i = 0; i < latencySamples; i++)
        {
            var text = queries.Texts[i % queries.Texts.Count];
            baseLatency.Add(Time(baseModel, text));
            candidateLatency.Add(Time(candidateModel, text));
        }

        baseLatency.Sort();
        candidateLatency.Sort();
        var latency = new ModelLatency(
            latencySamples, queries.MeanTokens,
            Stats.Percentile(baseLatency, 50), Stats.Percentile(candidateLatency, 50),
            Stats.Percentile(baseLatency, 99), Stats.Percentile(candidateLatency, 99));

        return new ModelComparisonReport(
            "embed-compare", baseline.Name, candidate.Name, threads, rounds, $"{MaxBatchSize}/{MaxBatchTokens}", baseLoadMs, loadMs,
            throughput, latency, cosines.Average(), cosines.Min(), run.Finish());
    }

    public static void Print(ModelComparisonReport report)
    {
        Console.WriteLine();
        Console.WriteLine($"direct Embed ({report.Setting}), best of {report.Rounds} rounds; load: {report.Baseline} {report.BaselineLoadMs:F0} ms, {report.Candidate} {report.CandidateLoadMs:F0} ms");
        Console.WriteLine($"{"workload",-10} {"tokens",7} {report.Baseline + " texts/s",28} {report.Candidate + " texts/s",30} {"ratio",7} {"paired",7}");
        foreach (var t in report.Throughput)
        {
            Console.WriteLine($"{t.Workload,-10} {t.MeanTokens,7:F1} {t.BaselineTextsPerSecond,28:F1} {t.CandidateTextsPerSecond,30:F1} {t.Ratio,7:F2} {t.PairedRatioMedian,7:F2}");
        }

        var l = report.Latency;
        Console.WriteLine(
            $"single query ({l.Samples} x {l.MeanTokens:F1} tokens, alternating): p50 {l.BaselineP50Ms:F2} -> {l.CandidateP50Ms:F2} ms ({l.BaselineP50Ms / l.CandidateP50Ms:F2}x), " +
            $"p99 {l.BaselineP99Ms:F2} -> {l.CandidateP99Ms:F2} ms");
        Console.WriteLine($"cosine {report.Candidate} vs {report.Baseline} on the short texts: mean {report.MeanCosine:F4}, min {report.MinCosine:F4}");
        Console.WriteLine($"peak RSS {report.Run.PeakRssBytes / 1e6:F1} MB; load average at start {string.Join(' ', report.Run.LoadAverageAtStart)}, at end {string.Join(' ', report.Run.LoadAverageAtEnd)}");
    }

    private static OnnxEmbeddingModel Create(EmbeddingModelDescriptor model, int threads) => new(new OnnxEmbeddingOptions
    {
        Model = model,
        IntraOpNumThreads = threads,
        MaxBatchSize = MaxBatchSize,
        MaxBatchTokens = MaxBatchTokens,
    });

    private static double TextsPerSecond(OnnxEmbeddingModel model, Workload workload)
    {
        var watch = Stopwatch.StartNew();
        model.Embed(workload.Texts, EmbeddingPurpose.Document);
        return workload.Texts.Count / watch.Elapsed.TotalSeconds;
    }

    private static double Time(OnnxEmbeddingModel model, string text)
    {
        var start = Stopwatch.GetTimestamp();
        model.Embed([text], EmbeddingPurpose.Query);
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }
}
