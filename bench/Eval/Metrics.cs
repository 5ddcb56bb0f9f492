namespace RagOrleans.Bench.Eval;

/// <summary>
/// Ranking metrics as BEIR computes them (pytrec_eval / trec_eval semantics) for one query:
/// <list type="bullet">
/// <item>nDCG@k: gain = the judgment's grade (linear, trec_eval's <c>ndcg_cut</c>), discount log2(rank + 1);
/// the ideal DCG sorts <em>all</em> judgments of the query by grade, whether or not they were retrieved.</item>
/// <item>Recall@k: relevant (grade &gt; 0) documents in the top k ÷ all relevant documents of the query.</item>
/// <item>MRR@k: 1 / rank of the first relevant document in the top k, 0 if none (BEIR's own <c>mrr</c>).</item>
/// </list>
/// The ranking is a list of distinct document ids, best first; unjudged documents count as grade 0.
/// </summary>
internal static class Metrics
{
    public static double Ndcg(IReadOnlyList<string> ranking, IReadOnlyDictionary<string, int> judgments, int k)
    {
        var dcg = 0.0;
        for (var i = 0; i < Math.Min(k, ranking.Count); i++)
        {
            if (judgments.TryGetValue(ranking[i], out var grade) && grade > 0)
            {
                dcg += grade / Math.Log2(i + 2);
            }
        }

        var ideal = judgments.Values.Where(g => g > 0).OrderDescending().Take(k).Select((g, i) => g / Math.Log2(i + 2)).Sum();
        return ideal > 0 ? dcg / ideal : 0;
    }

    public static double Recall(IReadOnlyList<string> ranking, IReadOnlyDictionary<string, int> judgments, int k)
    {
        var relevant = judgments.Count(j => j.Value > 0);
        if (relevant == 0)
        {
            return 0;
        }

        var found = ranking.Take(k).Count(id => judgments.TryGetValue(id, out var grade) && grade > 0);
        return (double)found / relevant;
    }

    public static double ReciprocalRank(IReadOnlyList<string> ranking, IReadOnlyDictionary<string, int> judgments, int k)
    {
        for (var i = 0; i < Math.Min(k, ranking.Count); i++)
        {
            if (judgments.TryGetValue(ranking[i], out var grade) && grade > 0)
            {
                return 1.0 / (i + 1);
            }
        }

        return 0;
    }

    /// <summary>
    /// Chunk results to a document ranking: a document takes the rank of its best chunk (the first time it
    /// appears in the result order); later chunks of the same document are dropped.
    /// </summary>
    public static List<string> DedupeByDocument(IEnumerable<string> documentIdsInResultOrder)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var ranking = new List<string>();
        foreach (var id in documentIdsInResultOrder)
        {
            if (seen.Add(id))
            {
                ranking.Add(id);
            }
        }

        return ranking;
    }

    /// <summary>Hand-computed cases, run at start-up so a wrong metric can never produce a table.</summary>
    public static void SelfCheck()
    {
        var judged = new Dictionary<string, int>(StringComparer.Ordinal) { ["a"] = 1, ["b"] = 1, ["c"] = 2 };

        // c (grade 2) at rank 2, a at rank 4: DCG = 2/log2(3) + 1/log2(5); ideal = 2/1 + 1/log2(3) + 1/log2(4).
        var ranking = new[] { "x", "c", "y", "a" };
        Check(Ndcg(ranking, judged, 10), (2 / Math.Log2(3) + 1 / Math.Log2(5)) / (2 + 1 / Math.Log2(3) + 0.5), "nDCG graded");
        Check(Ndcg(ranking, judged, 1), 0, "nDCG@1 miss");
        Check(Ndcg(["c", "a", "b"], judged, 10), 1, "nDCG perfect");
        Check(Recall(ranking, judged, 10), 2.0 / 3, "recall");
        Check(Recall(ranking, judged, 2), 1.0 / 3, "recall cut");
        Check(ReciprocalRank(ranking, judged, 10), 0.5, "MRR");
        Check(ReciprocalRank(ranking, judged, 1), 0, "MRR cut");

        // Binary, one relevant document at rank 3 of 10: nDCG = 1/log2(4) = 0.5.
        Check(Ndcg(["x", "y", "a"], new Dictionary<string, int> { ["a"] = 1 }, 10), 0.5, "nDCG binary");
        if (!DedupeByDocument(["d1", "d2", "d1", "d3", "d2"]).SequenceEqual(["d1", "d2", "d3"]))
        {
            throw new InvalidOperationException("metric self-check failed: dedupe");
        }
    }

    private static void Check(double actual, double expected, string what)
    {
        if (Math.Abs(actual - expected) > 1e-12)
        {
            throw new InvalidOperationException($"metric self-check failed: {what}: {actual} != {expected}");
        }
    }
}
