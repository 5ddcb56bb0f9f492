using System.Diagnostics;
using System.Text.Json.Serialization;

namespace RagOrleans.Bench.Eval;

/// <summary>One query's scores in one mode.</summary>
/// <remarks>
/// <see cref="ColdEmbedding"/>: the call had to embed the query text. The service caches query vectors, so of
/// vector and hybrid only the first to run embeds a given query; the second measures search and fusion alone.
/// Keyword search never embeds and counts as cold.
/// </remarks>
internal sealed record QueryScore(double Ndcg10, double Recall10, double Recall100, double Mrr10, double Ms, bool ColdEmbedding, int Documents);

/// <summary>One query's scores in every mode.</summary>
internal sealed record QueryResult(string Id, IReadOnlyDictionary<string, QueryScore> Modes);

/// <summary>
/// A mode's means over the queries. The property names marked with <see cref="JsonPropertyNameAttribute"/> are the
/// ones issue 5 asks for; the ratios are against the keyword (BM25) mode of the same run. The latency
/// percentiles are over the calls that embedded their query (all keyword calls; about half of the vector and
/// hybrid calls), the cached ones over the rest (NaN for keyword).
/// </summary>
internal sealed record ModeSummary(
    [property: JsonPropertyName("ndcg10")] double Ndcg10,
    [property: JsonPropertyName("recall10")] double Recall10,
    [property: JsonPropertyName("recall100")] double Recall100,
    [property: JsonPropertyName("mrr10")] double Mrr10,
    [property: JsonPropertyName("p50_ms")] double P50Ms,
    [property: JsonPropertyName("p99_ms")] double P99Ms,
    double MeanMs,
    int ColdSamples,
    double CachedEmbeddingP50Ms,
    double CachedEmbeddingP99Ms,
    double MeanDocumentsPerList,
    double Ndcg10VsKeyword,
    double Recall100VsKeyword,
    int QueriesBetterThanKeyword,
    int QueriesWorseThanKeyword);

/// <summary>Runs every query in every mode through the search API and scores the rankings.</summary>
internal static class Evaluation
{
    /// <summary>The keyword mode (BM25) is the baseline of the ratios.</summary>
    public const string Baseline = "keyword";

    public static readonly string[] Modes = [Baseline, "vector", "hybrid"];

    /// <summary>Every order of the three modes: cycling through them puts each mode first, and vector before hybrid, equally often.</summary>
    private static readonly string[][] Orders =
    [
        ["keyword", "vector", "hybrid"], ["vector", "hybrid", "keyword"], ["hybrid", "keyword", "vector"],
        ["keyword", "hybrid", "vector"], ["hybrid", "vector", "keyword"], ["vector", "keyword", "hybrid"],
    ];

    /// <summary>Not from the data set, so the service's query-vector cache holds none of the evaluated queries beforehand.</summary>
    private static readonly string[] WarmupQueries =
    [
        "warm-up: protein folding in the endoplasmic reticulum",
        "warm-up: randomized controlled trial of vitamin D supplementation",
        "warm-up: T cell activation and cytokine release",
        "warm-up: gene expression in tumour cells",
        "warm-up: cardiovascular risk factors in adults",
    ];

    public static async Task<List<QueryResult>> Run(
        RagClient user, string collection, IReadOnlyList<EvalQuery> queries,
        IReadOnlyDictionary<string, IReadOnlyDictionary<string, int>> qrels, int topK)
    {
        // Warm-up (untimed, unscored): activates the collection, shards and embedder, fills JIT.
        foreach (var text in WarmupQueries)
        {
            foreach (var mode in Modes)
            {
                await user.Search(collection, text, topK, mode);
            }
        }

        var results = new List<QueryResult>(queries.Count);
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < queries.Count; i++)
        {
            var q = queries[i];
            var judgments = qrels[q.Id];
            var scores = new Dictionary<string, QueryScore>(StringComparer.Ordinal);

            // Interleaved and rotated: each query runs once in every mode, in all six orders in turn, so a burst
            // of load from another process lands on all modes alike and vector and hybrid embed the query
            // first equally often.
            var embedded = false;
            foreach (var mode in Orders[i % Orders.Length])
            {
                var cold = mode == Baseline || !embedded;
                embedded |= mode != Baseline;
                var start = Stopwatch.GetTimestamp();
                var hits = await user.Search(collection, q.Text, topK, mode);
                var ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                var ranking = Metrics.DedupeByDocument(hits.Select(h => h.DocumentId));
                scores[mode] = new QueryScore(
                    Metrics.Ndcg(ranking, judgments, 10),
                    Metrics.Recall(ranking, judgments, 10),
                    Metrics.Recall(ranking, judgments, 100),
                    Metrics.ReciprocalRank(ranking, judgments, 10),
                    ms,
                    cold,
                    ranking.Count);
            }

            results.Add(new QueryResult(q.Id, scores));
            if ((i + 1) % 100 == 0)
            {
                Console.WriteLine($"  {i + 1}/{queries.Count} queries x {Modes.Length} modes ({clock.Elapsed.TotalSeconds:F0} s)");
            }
        }

        return results;
    }

    public static Dictionary<string, ModeSummary> Summarize(IReadOnlyList<QueryResult> results)
    {
        double Mean(string mode, Func<QueryScore, double> f) => results.Average(r => f(r.Modes[mode]));
        var baseNdcg = Mean(Baseline, s => s.Ndcg10);
        var baseRecall = Mean(Baseline, s => s.Recall100);

        var summary = new Dictionary<string, ModeSummary>(StringComparer.Ordinal);
        foreach (var mode in Modes)
        {
            var cold = results.Select(r => r.Modes[mode]).Where(s => s.ColdEmbedding).Select(s => s.Ms).Order().ToList();
            var cached = results.Select(r => r.Modes[mode]).Where(s => !s.ColdEmbedding).Select(s => s.Ms).Order().ToList();
            var ndcg = Mean(mode, s => s.Ndcg10);
            var recall100 = Mean(mode, s => s.Recall100);
            summary[mode] = new ModeSummary(
                ndcg,
                Mean(mode, s => s.Recall10),
                recall100,
                Mean(mode, s => s.Mrr10),
                Stats.Percentile(cold, 50),
                Stats.Percentile(cold, 99),
                results.Average(r => r.Modes[mode].Ms),
                cold.Count,
                Stats.Percentile(cached, 50),
                Stats.Percentile(cached, 99),
                Mean(mode, s => s.Documents),
                baseNdcg > 0 ? ndcg / baseNdcg : double.NaN,
                baseRecall > 0 ? recall100 / baseRecall : double.NaN,
                results.Count(r => r.Modes[mode].Ndcg10 > r.Modes[Baseline].Ndcg10 + 1e-12),
                results.Count(r => r.Modes[mode].Ndcg10 < r.Modes[Baseline].Ndcg10 - 1e-12));
        }

        return summary;
    }
}
