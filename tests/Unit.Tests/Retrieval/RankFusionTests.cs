using RagOrleans.Grains.Retrieval;
using Xunit;

namespace RagOrleans.Unit.Tests.Retrieval;

public sealed class RankFusionTests
{
    [Fact]
    public void An_item_ranked_well_by_both_lists_beats_one_ranked_first_by_only_one()
    {
        IReadOnlyList<RankedCandidate> dense = [new(0, 1, 0.9f), new(0, 2, 0.8f), new(0, 3, 0.7f)];
        IReadOnlyList<RankedCandidate> keyword = [new(0, 4, 12f), new(0, 2, 11f), new(0, 5, 3f)];
        var fused = RankFusion.Fuse([dense, keyword], 3);
        Assert.Equal(2, fused[0].Seq);
        Assert.Equal(1f / 62 + 1f / 62, fused[0].Score, 6);
        Assert.Equal(3, fused.Count);
        Assert.Equal(new long[] { 2, 1, 4 }, fused.Select(f => f.Seq).ToArray());
    }

    [Fact]
    public void Weights_shift_the_balance_and_ties_break_deterministically()
    {
        IReadOnlyList<RankedCandidate> dense = [new(0, 1, 0.9f)];
        IReadOnlyList<RankedCandidate> keyword = [new(1, 1, 5f)];
        Assert.Equal(new[] { 0, 1 }, RankFusion.Fuse([dense, keyword], 2).Select(f => f.Shard).ToArray());
        Assert.Equal(1, RankFusion.Fuse([dense, keyword], 2, weights: [1f, 2f])[0].Shard);
    }

    [Fact]
    public void Merging_per_shard_lists_keeps_the_global_best()
    {
        var merged = RankFusion.MergeByScore([new(0, 1, 0.5f), new(1, 7, 0.9f), new(0, 2, 0.7f), new(1, 8, 0.1f)], 3);
        Assert.Equal(new long[] { 7, 2, 1 }, merged.Select(m => m.Seq).ToArray());
    }
}

public sealed class ConfigurableFusionTests
{
    [Fact]
    public void The_rrf_constant_and_weights_enter_the_score_as_weight_over_k_plus_rank()
    {
        IReadOnlyList<RankedCandidate> dense = [new(0, 1, 0.9f), new(0, 2, 0.8f)];
        IReadOnlyList<RankedCandidate> keyword = [new(0, 2, 7f), new(0, 3, 6f)];

        // k = 10, weights 0.5 (dense) and 2 (keyword): seq 2 = 0.5/12 + 2/11, seq 3 = 2/12, seq 1 = 0.5/11.
        var fused = RankFusion.Fuse([dense, keyword], 3, k: 10, weights: [0.5f, 2f]);

        Assert.Equal([2L, 3, 1], fused.Select(f => f.Seq));
        Assert.Equal((0.5f / 12) + (2f / 11), fused[0].Score, 6);
        Assert.Equal(2f / 12, fused[1].Score, 6);
        Assert.Equal(0.5f / 11, fused[2].Score, 6);
    }

    [Fact]
    public void A_small_constant_favours_first_places_and_a_large_one_favours_agreement()
    {
        // Seq 1 is first in one list only; seq 2 is second in both.
        IReadOnlyList<RankedCandidate> dense = [new(0, 1, 0.9f), new(0, 2, 0.8f)];
        IReadOnlyList<RankedCandidate> keyword = [new(0, 3, 9f), new(0, 2, 8f)];

        // k = 0: 1/1 = 1 for seq 1 against 1/2 + 1/2 = 1 for seq 2 (a tie, broken by location); k = 60: seq 2 wins clearly.
        Assert.Equal(2, RankFusion.Fuse([dense, keyword], 3, k: 60)[0].Seq);
        Assert.Equal(1, RankFusion.Fuse([dense, keyword], 3, k: 0)[0].Seq);
    }
}
