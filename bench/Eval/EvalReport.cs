using System.Globalization;
using System.Text.Json.Serialization;

namespace RagOrleans.Bench.Eval;

/// <summary>A published nDCG@10 / Recall@100 for context (SciFact <em>test</em> split; this harness runs train).</summary>
internal sealed record PublishedScore(string System, double Ndcg10, double Recall100, string Source);

/// <summary>Whether hybrid beat both single modes, and the targets of issue 5.</summary>
internal sealed record Verdict(bool HybridBeatsKeyword, bool HybridBeatsVector, bool HybridBeatsBoth, IReadOnlyDictionary<string, TargetCheck> Targets);

/// <summary>An nDCG@10 target of issue 5 and whether this run met it.</summary>
internal sealed record TargetCheck(double Target, double Measured, bool Met);

/// <summary>The summary written with <c>--json FILE</c>; the snake-case names are the ones issue 5 asks for.</summary>
internal sealed record EvalReport(
    string Benchmark,
    string Url,
    string Tenant,
    string Collection,
    string Model,
    string CorpusPath,
    string QueriesPath,
    string QrelsPath,
    [property: JsonPropertyName("docs")] int Docs,
    int CorpusDocs,
    int? LimitDocs,
    [property: JsonPropertyName("queries")] int Queries,
    int TopK,
    int Concurrency,
    int Seed,
    [property: JsonPropertyName("ingest_s")] double IngestSeconds,
    IngestSummary Ingest,
    [property: JsonPropertyName("modes")] IReadOnlyDictionary<string, ModeSummary> Modes,
    Verdict Verdict,
    IReadOnlyList<PublishedScore> Published,
    RunInfo Run,
    IReadOnlyList<QueryResult> PerQuery)
{
    /// <summary>Published SciFact test-split figures (see shared/data/README.md §1).</summary>
    public static readonly PublishedScore[] SciFactPublished =
    [
        new("BM25 multifield (BEIR paper)", 0.665, 0.908, "castorini/anserini regressions-beir-v1.0.0-scifact-multifield"),
        new("BM25 flat (title+text)", 0.679, 0.925, "castorini/anserini regressions-beir-v1.0.0-scifact-flat"),
        new("all-MiniLM-L6-v2 dense", 0.645, 0.925, "embeddings-benchmark/mtebpaper results/all-MiniLM-L6-v2/SciFact.json"),
    ];

    /// <summary>nDCG@10 targets of issue 5 (MiniLM).</summary>
    public static readonly Dictionary<string, double> Targets = new(StringComparer.Ordinal)
    {
        ["keyword"] = 0.66,
        ["vector"] = 0.64,
        ["hybrid"] = 0.70,
    };

    public static Verdict Judge(IReadOnlyDictionary<string, ModeSummary> modes)
    {
        var hybrid = modes["hybrid"].Ndcg10;
        var keyword = hybrid > modes["keyword"].Ndcg10;
        var vector = hybrid > modes["vector"].Ndcg10;
        return new Verdict(
            keyword,
            vector,
            keyword && vector,
            Targets.ToDictionary(t => t.Key, t => new TargetCheck(t.Value, modes[t.Key].Ndcg10, modes[t.Key].Ndcg10 >= t.Value), StringComparer.Ordinal));
    }

    public void Print()
    {
        var isMiniLm = Model.Contains("MiniLM", StringComparison.OrdinalIgnoreCase);
        string Label(string mode) => mode switch
        {
            "keyword" => "keyword (BM25, baseline)",
            "vector" => $"vector ({Model})",
            _ => "hybrid (RRF)",
        };
        string Reference(string mode) => mode switch
        {
            "keyword" => "0.665 multifield / 0.679 flat",
            "vector" when isMiniLm => "0.645 (MTEB)",
            _ => "-",
        };

        Console.WriteLine();
        Console.WriteLine(F($"{Docs} documents ({Ingest.Chunks} chunks), {Queries} queries, topK {TopK} chunks deduplicated to documents"));
        Console.WriteLine(F($"{"mode",-36} {"nDCG@10",8} {"x BM25",7} {"R@10",7} {"R@100",7} {"x BM25",7} {"MRR@10",7} {"docs/list",9} {"p50 ms",8} {"p99 ms",8} {"cached p50",10} {"+/- vs BM25",12}  published nDCG@10 (test split)"));
        foreach (var (mode, s) in Evaluation.Modes.Select(m => (m, Modes[m])))
        {
            var wins = mode == Evaluation.Baseline ? "-" : $"{s.QueriesBetterThanKeyword}/{s.QueriesWorseThanKeyword}";
            Console.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"{Label(mode),-36} {s.Ndcg10,8:F4} {s.Ndcg10VsKeyword,7:F3} {s.Recall10,7:F4} {s.Recall100,7:F4} {s.Recall100VsKeyword,7:F3} {s.Mrr10,7:F4} " +
                $"{s.MeanDocumentsPerList,9:F1} {s.P50Ms,8:F1} {s.P99Ms,8:F1} {(double.IsNaN(s.CachedEmbeddingP50Ms) ? "-" : s.CachedEmbeddingP50Ms.ToString("F1", CultureInfo.InvariantCulture)),10} {wins,12}  {Reference(mode)}"));
        }

        Console.WriteLine(
            "p50/p99: calls that embedded their query (keyword: all); cached p50: vector/hybrid calls whose query vector the service had cached " +
            "from the other mode. +/- vs BM25: queries with higher/lower nDCG@10 than keyword.");
        Console.WriteLine();
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"ingest: {Ingest.Indexed}/{Ingest.Documents} indexed, {Ingest.Failed.Count} failed, {Ingest.Chunks} chunks in {Ingest.IngestSeconds:F1} s " +
            $"({Ingest.DocumentsPerSecond:F1} docs/s, {Ingest.ChunksPerSecond:F1} chunks/s; server-side span {Ingest.ServerSpanSeconds:F1} s; uploads accepted in {Ingest.UploadSeconds:F1} s)"));
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"hybrid beats keyword: {YesNo(Verdict.HybridBeatsKeyword)} ({Modes["hybrid"].Ndcg10:F4} vs {Modes["keyword"].Ndcg10:F4}), " +
            $"vector: {YesNo(Verdict.HybridBeatsVector)} ({Modes["hybrid"].Ndcg10:F4} vs {Modes["vector"].Ndcg10:F4}) => beats both: {YesNo(Verdict.HybridBeatsBoth)}"));
        Console.WriteLine("issue 5 targets (nDCG@10): " + string.Join(", ", Verdict.Targets.Select(t => F($"{t.Key} >= {t.Value.Target:F2}: {t.Value.Measured:F4} {(t.Value.Met ? "met" : "NOT met")}"))));
        Console.WriteLine($"load average {string.Join(' ', Run.LoadAverageAtStart.Select(F))} at start, {string.Join(' ', Run.LoadAverageAtEnd.Select(F))} at end");
    }

    private static string YesNo(bool value) => value ? "yes" : "NO";

    private static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    private static string F(double d) => d.ToString("F2", CultureInfo.InvariantCulture);
}
