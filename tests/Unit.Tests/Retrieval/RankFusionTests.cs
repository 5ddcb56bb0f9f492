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
