using RagOrleans.Grains.Retrieval;
using Xunit;

namespace RagOrleans.Unit.Tests.Retrieval;

public sealed class MmrRerankerTests
{
    // Relevance 4, 3, 2, 1 normalises to 1, 2/3, 1/3, 0. B duplicates A; C is orthogonal to A; D leans towards C
    // (cos(D, A) = 0.6, cos(D, C) = 0.8).
    private static readonly RerankCandidate A = new(0, 1, 4f, [1f, 0f]);
    private static readonly RerankCandidate B = new(0, 2, 3f, [2f, 0f]);
    private static readonly RerankCandidate C = new(1, 3, 2f, [0f, 1f]);
    private static readonly RerankCandidate D = new(1, 4, 1f, [0.6f, 0.8f]);
    private static readonly RerankCandidate[] Pool = [A, B, C, D];

    [Fact]
    public void Lambda_one_keeps_the_relevance_order()
    {
        var ranked = new MmrReranker(1f).Rerank(Pool, 4);

        Assert.Equal([1L, 2, 3, 4], ranked.Select(r => r.Candidate.Seq));
        Assert.Equal([1, 2, 3, 4], ranked.Select(r => r.PoolRank));
        Assert.Equal(1f, ranked[0].Score, 5);
        Assert.Equal(2f / 3, ranked[1].Score, 5);
        Assert.Equal(0f, ranked[3].Score, 5);
    }

    [Fact]
    public void A_near_duplicate_is_pushed_below_a_less_relevant_but_new_passage()
    {
        // λ = 0.7. Step 1: A (0.7 · 1). Step 2: B = 0.7 · 2/3 − 0.3 · 1 = 0.1667, C = 0.7 · 1/3 − 0.3 · 0 = 0.2333,
        // D = 0 − 0.3 · 0.6 = −0.18, so C. Step 3: B still 0.1667 (max sim 1), D = −0.3 · 0.8 = −0.24, so B; then D.
        var ranked = new MmrReranker(0.7f).Rerank(Pool, 4);

        Assert.Equal([1L, 3, 2, 4], ranked.Select(r => r.Candidate.Seq));
        Assert.Equal([0.7f, 0.233333f, 0.166667f, -0.24f], ranked.Select(r => r.Score).ToArray(), new ToleranceComparer(1e-5f));
        Assert.Null(ranked[0].MaxSimilarity);
        Assert.Equal(0f, ranked[1].MaxSimilarity!.Value, 5);
        Assert.Equal(1f, ranked[2].MaxSimilarity!.Value, 5);
        Assert.Equal(0.8f, ranked[3].MaxSimilarity!.Value, 5);
    }

    [Fact]
    public void Lambda_zero_starts_with_the_most_relevant_then_picks_the_most_diverse()
    {
        // Step 1 ties at 0 for all and goes to the most relevant (A). Then B = −1, C = 0, D = −0.6: C.
        // Then B = −max(1, 0) = −1, D = −max(0.6, 0.8) = −0.8: D, and B last.
        var ranked = new MmrReranker(0f).Rerank(Pool, 4);

        Assert.Equal([1L, 3, 4, 2], ranked.Select(r => r.Candidate.Seq));
    }

    [Fact]
    public void TopK_limits_the_result_and_the_pool_limits_topK()
    {
        Assert.Equal([1L, 3], new MmrReranker().Rerank(Pool, 2).Select(r => r.Candidate.Seq));
        Assert.Equal(4, new MmrReranker().Rerank(Pool, 10).Count);
        Assert.Empty(new MmrReranker().Rerank([], 5));
    }

    [Fact]
    public void Candidates_without_vectors_and_equal_relevance_are_handled()
    {
        // Equal relevance normalises to 1 for everyone; the vectorless candidate is similar to nothing, so after A
        // it outranks A's duplicate.
        RerankCandidate[] pool = [new(0, 1, 5f, [1f, 0f]), new(0, 2, 5f, [1f, 0f]), new(0, 3, 5f)];
        var ranked = new MmrReranker(0.5f).Rerank(pool, 3);

        Assert.Equal([1L, 3, 2], ranked.Select(r => r.Candidate.Seq));
    }

    [Theory]
    [InlineData(-0.01f)]
    [InlineData(1.01f)]
    [InlineData(float.NaN)]
    public void Lambda_outside_zero_to_one_is_rejected(float lambda) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new MmrReranker(lambda));

    [Fact]
    public async Task The_reranker_seam_reports_what_it_needs()
    {
        IReranker reranker = new MmrReranker();
        Assert.Equal("mmr", reranker.Name);
        Assert.True(reranker.NeedsVectors);
        Assert.False(reranker.NeedsText);
        Assert.Equal([1L, 3, 2, 4], (await reranker.RerankAsync("q", Pool, 4)).Select(r => r.Candidate.Seq));
    }

    private sealed class ToleranceComparer(float tolerance) : IEqualityComparer<float>
    {
        public bool Equals(float x, float y) => Math.Abs(x - y) <= tolerance;

        public int GetHashCode(float obj) => 0;
    }
}
