namespace RagOrleans.Grains.Retrieval;

/// <summary>A candidate in one ranked list: where it lives and its score in that list.</summary>
public readonly record struct RankedCandidate(int Shard, long Seq, float Score);

/// <summary>A fused result: the candidate's location and its fused score.</summary>
public readonly record struct FusedCandidate(int Shard, long Seq, float Score);

/// <summary>
/// Reciprocal rank fusion (Cormack et al., 2009): score = Σ weight / (k + rank). It needs no score
/// calibration between lists, which is why it fuses cosine similarities and BM25 scores safely.
/// </summary>
public static class RankFusion
{
    /// <summary>The customary constant; larger values flatten the advantage of the very first ranks.</summary>
    public const int DefaultK = 60;

    /// <summary>Merges per-shard lists into one global list, best first (ties broken by location, for determinism).</summary>
    public static List<RankedCandidate> MergeByScore(IEnumerable<RankedCandidate> candidates, int limit)
    {
        var all = candidates.ToList();
        all.Sort(static (a, b) => b.Score != a.Score ? b.Score.CompareTo(a.Score) : a.Shard != b.Shard ? a.Shard.CompareTo(b.Shard) : a.Seq.CompareTo(b.Seq));
        if (all.Count > limit)
        {
            all.RemoveRange(limit, all.Count - limit);
        }

        return all;
    }

    /// <summary>Fuses ranked lists (each best first) and returns the best <paramref name="topK"/>.</summary>
    public static List<FusedCandidate> Fuse(IReadOnlyList<IReadOnlyList<RankedCandidate>> lists, int topK, int k = DefaultK, IReadOnlyList<float>? weights = null)
    {
        var scores = new Dictionary<(int, long), float>();
        for (var l = 0; l < lists.Count; l++)
        {
            var weight = weights is null ? 1f : weights[l];
            var list = lists[l];
            for (var rank = 0; rank < list.Count; rank++)
            {
                var key = (list[rank].Shard, list[rank].Seq);
                scores[key] = scores.GetValueOrDefault(key) + (weight / (k + rank + 1));
            }
        }

        var fused = scores.Select(kv => new FusedCandidate(kv.Key.Item1, kv.Key.Item2, kv.Value)).ToList();
        fused.Sort(static (a, b) => b.Score != a.Score ? b.Score.CompareTo(a.Score) : a.Shard != b.Shard ? a.Shard.CompareTo(b.Shard) : a.Seq.CompareTo(b.Seq));
        if (fused.Count > topK)
        {
            fused.RemoveRange(topK, fused.Count - topK);
        }

        return fused;
    }
}
