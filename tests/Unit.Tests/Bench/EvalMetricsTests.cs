using RagOrleans.Bench.Eval;
using Xunit;

namespace RagOrleans.Unit.Tests.Bench;

/// <summary>
/// The evaluation harness's metrics against rankings computed by hand, with trec_eval's conventions
/// (linear graded gain, ideal DCG from every judgment of the query, unjudged documents worth nothing).
/// </summary>
public sealed class EvalMetricsTests
{
    private static readonly Dictionary<string, int> Graded = new(StringComparer.Ordinal) { ["a"] = 1, ["b"] = 1, ["c"] = 2, ["n"] = 0 };

    [Fact]
    public void Ndcg_uses_linear_graded_gain_and_an_ideal_from_all_judgments()
    {
        // c (grade 2) at rank 2 and a (grade 1) at rank 4; b is judged relevant but never retrieved.
        // DCG = 2/log2(3) + 1/log2(5) = 1.261860 + 0.430677; IDCG = 2/1 + 1/log2(3) + 1/log2(4) = 2 + 0.630930 + 0.5.
        var ndcg = Metrics.Ndcg(["x", "c", "y", "a"], Graded, 10);
        Assert.Equal(0.540586, ndcg, 6);
    }

    [Fact]
    public void Ndcg_is_one_for_the_ideal_order_and_zero_when_nothing_relevant_is_in_the_cut()
    {
        Assert.Equal(1.0, Metrics.Ndcg(["c", "a", "b"], Graded, 10), 12);
        Assert.Equal(1.0, Metrics.Ndcg(["c", "b", "a", "x"], Graded, 10), 12);
        Assert.Equal(0.0, Metrics.Ndcg(["x", "c"], Graded, 1), 12);
        Assert.Equal(0.0, Metrics.Ndcg(["n", "x"], Graded, 10), 12);
    }

    [Fact]
    public void Ndcg_cut_at_k_truncates_the_ideal_too()
    {
        // At k=1 the ideal is c alone (gain 2); retrieving a (gain 1) first gives 1/2.
        Assert.Equal(0.5, Metrics.Ndcg(["a", "c"], Graded, 1), 12);

        // Binary judgment, the only relevant document at rank 3: 1/log2(4) = 0.5.
        Assert.Equal(0.5, Metrics.Ndcg(["x", "y", "a"], new Dictionary<string, int> { ["a"] = 1 }, 10), 12);
    }

    [Fact]
    public void Recall_counts_relevant_documents_within_the_cut()
    {
        Assert.Equal(2.0 / 3, Metrics.Recall(["x", "c", "y", "a"], Graded, 10), 12);
        Assert.Equal(1.0 / 3, Metrics.Recall(["x", "c", "y", "a"], Graded, 2), 12);
        Assert.Equal(0.0, Metrics.Recall(["n"], Graded, 10), 12);
    }

    [Fact]
    public void Reciprocal_rank_is_that_of_the_first_relevant_document()
    {
        Assert.Equal(0.5, Metrics.ReciprocalRank(["x", "c", "y", "a"], Graded, 10), 12);
        Assert.Equal(0.0, Metrics.ReciprocalRank(["x", "c"], Graded, 1), 12);
        Assert.Equal(1.0 / 3, Metrics.ReciprocalRank(["n", "x", "b"], Graded, 10), 12);
    }

    [Fact]
    public void Chunk_hits_become_a_document_ranking_at_the_best_chunk()
    {
        Assert.Equal(["d1", "d2", "d3"], Metrics.DedupeByDocument(["d1", "d2", "d1", "d3", "d2"]));
    }

    [Fact]
    public void The_harness_self_check_passes() => Metrics.SelfCheck();
}
