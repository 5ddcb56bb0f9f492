using System.Reflection;
using RagOrleans.Bench;
using RagOrleans.Bench.Embed;
using RagOrleans.Grains.Embeddings;

// Usage: Embed [--model minilm] [--short 640] [--chunks 64] [--ingested-db rag.db [--ingested-collection NAME]] [--rounds 5] [--latency 500] [--threads 1] [--throughput 1] [--direct-only 1] [--retime-best N] [--json FILE]
//        Embed --compare minilm-int8 [--model minilm] ...: direct Embed of both models interleaved in one run, and the ratios.
var parsed = new BenchArgs(args);
var run = RunInfo.Start();
var sharedData = BenchPaths.SharedData();
var rounds = parsed.Int("rounds", 5);
EmbedBenchmark.WorkerNiceness = parsed.Int("worker-niceness", EmbedBenchmark.WorkerNiceness);

// The batcher's model runs the service's default intra-op threads, as production does; the direct grid tries one caller
// on two threads and one caller per core on one thread (and this setting) whatever it is.
var threads = parsed.Int("threads", new OnnxEmbeddingOptions().IntraOpNumThreads);
var descriptor = parsed.String("model") is { } modelName ? EmbeddingModelCatalog.Resolve(modelName) : EmbeddingModelCatalog.Default;
WordPieceTokenizer tokenizer;
using (var vocab = Assembly.Load(new AssemblyName(descriptor.ResourceAssembly)).GetManifestResourceStream(descriptor.VocabResourceName)
    ?? throw new InvalidOperationException($"{descriptor.VocabResourceName} not found."))
{
    tokenizer = WordPieceTokenizer.FromVocab(vocab, descriptor.LowerCase);
}

var shortTexts = Workloads.Short(sharedData, tokenizer, parsed.Int("short", 640));
// --ingested-db DB: the chunks a service ingested (its rag.db) instead of freshly cut ones, so bench/Ingest's rate
// can be set against the model's limit on the very same texts.
var chunks = parsed.String("ingested-db") is { } database
    ? Workloads.Ingested(database, tokenizer, parsed.Int("chunks", 64), parsed.String("ingested-collection"))
    : Workloads.Chunks(sharedData, tokenizer, parsed.Int("chunks", 64));
Console.WriteLine($"model {descriptor.Name}, {threads} intra-op threads, {Environment.ProcessorCount} cores, load average {string.Join(' ', run.LoadAverageAtStart)}");

if (parsed.String("compare") is { } candidateName)
{
    var candidate = EmbeddingModelCatalog.Resolve(candidateName);
    Console.WriteLine($"comparing {candidate.Name} against {descriptor.Name}");
    var comparison = ModelComparison.Run(descriptor, candidate, [shortTexts, chunks], shortTexts, rounds, parsed.Int("latency", 500), threads, run);
    ModelComparison.Print(comparison);
    if (parsed.Json is { } comparisonJson)
    {
        JsonReport.Write(comparisonJson, comparison);
    }

    return 0;
}

// --throughput 0 measures only the query latency (quick check of the latency path); --direct-only 1 only the direct grid.
var directOnly = parsed.Int("direct-only", 0) == 1;
var retimeBest = parsed.Int("retime-best", 0);
var results = parsed.Int("throughput", 1) == 0
    ? []
    : new List<WorkloadResult>
    {
        EmbedBenchmark.RunWorkload(shortTexts, rounds, threads, descriptor, directOnly, retimeBest),
        EmbedBenchmark.RunWorkload(chunks, rounds, threads, descriptor, directOnly, retimeBest),
    };
var latency = EmbedBenchmark.QueryLatency(shortTexts, parsed.Int("latency", 500), threads, descriptor);

Console.WriteLine();
Console.WriteLine($"{"workload",-21} {"path",-30} {"texts/s",9} {"tokens/s",9} {"x direct",9} {"x paired",9} {"/cpu-s",8} {"x cpu",6} {"/call",6} {"p50 ms",8} {"p99 ms",8}");
foreach (var w in results)
{
    foreach (var t in w.Results)
    {
        var path = t.LatencyP50Ms is null ? t.Path : $"{t.Path} x{t.Callers}";
        Console.WriteLine(
            $"{w.Name,-21} {path,-30} {t.BestTextsPerSecond,9:F1} {t.BestTokensPerSecond,9:F0} {t.RatioVsDirect,9:F2} {t.PairedRatioMedian,9:F2} {t.BestTextsPerCpuSecond,8:F1} {t.CpuRatioVsDirect,6:F2} {t.MeanTextsPerModelCall?.ToString("F1", System.Globalization.CultureInfo.InvariantCulture) ?? "-",6} " +
            $"{t.LatencyP50Ms?.ToString("F1", System.Globalization.CultureInfo.InvariantCulture) ?? "-",8} {t.LatencyP99Ms?.ToString("F1", System.Globalization.CultureInfo.InvariantCulture) ?? "-",8}");
    }

    // tTxC: C threads calling one session of T intra-op threads at once.
    Console.WriteLine($"{string.Empty,-21} best direct setting: {w.BestSetting.Label}; service setting (batcher's model, bound rows) {w.BatcherModelSetting.Label}, batcher workers {w.BatcherWorkers}; direct grid:");
    foreach (var batch in w.DirectGrid.GroupBy(g => g.Setting.Batch))
    {
        Console.WriteLine(
            $"{string.Empty,-23} {batch.Key.Label,-20} " +
            string.Join(", ", batch.Select(g => $"t{g.Setting.IntraOpNumThreads}x{g.Setting.Callers} {g.TextsPerSecond,7:F1}/s ({g.RatioVsBest:F2}) {g.TextsPerCpuSecond,7:F1}/cpu-s")));
    }
}

foreach (var l in latency)
{
    Console.WriteLine(
        $"single query, {l.Path} ({l.Samples} x {l.MeanTokens:F1} tokens, 1 caller): p50 {l.P50Ms:F2} ms, p90 {l.P90Ms:F2} ms, p99 {l.P99Ms:F2} ms " +
        $"({l.P50Ms / latency[0].P50Ms:F2}x direct p50)");
}

var report = new EmbedReport("embed", descriptor.Name, threads, rounds, results, latency, run.Finish());
Console.WriteLine($"peak RSS {report.Run.PeakRssBytes / 1e6:F1} MB; load average at end {string.Join(' ', report.Run.LoadAverageAtEnd)}");
if (parsed.Json is { } json)
{
    JsonReport.Write(json, report);
}

return 0;
