namespace RagOrleans.Grains.Retrieval;

/// <summary>A candidate offered to a reranker: its location, first-stage relevance, and what a reranker may read.</summary>
/// <param name="Shard">Shard that holds the chunk.</param>
/// <param name="Seq">Chunk-log sequence number in that shard.</param>
/// <param name="Relevance">First-stage score (fused, cosine or BM25); higher is better. Candidates arrive best first.</param>
/// <param name="Vector">The chunk's embedding, when the reranker asks for vectors; null if unavailable.</param>
/// <param name="Text">The chunk's text, when the reranker asks for texts (a cross-encoder will); null otherwise.</param>
public sealed record RerankCandidate(int Shard, long Seq, float Relevance, float[]? Vector = null, string? Text = null);

/// <summary>A reranked result: the candidate, its first-stage rank (1-based), and the reranker's own score and diagnostics.</summary>
/// <param name="Candidate">The candidate as offered.</param>
/// <param name="PoolRank">Its 1-based place in the first-stage list.</param>
/// <param name="Score">The reranker's score at the moment it chose this candidate.</param>
/// <param name="MaxSimilarity">For diversity rerankers: the highest similarity to a candidate chosen before it (null for the first pick or when not applicable).</param>
public sealed record RerankedCandidate(RerankCandidate Candidate, int PoolRank, float Score, float? MaxSimilarity);

/// <summary>
/// The second stage of search: reorders a first-stage candidate pool. MMR is built in; a cross-encoder
/// implements the same contract (it asks for <see cref="NeedsText"/> and ignores vectors).
/// </summary>
public interface IReranker
{
    /// <summary>The name used in explain output and in requests.</summary>
    string Name { get; }

    /// <summary>True if candidates must carry their vectors.</summary>
    bool NeedsVectors { get; }

    /// <summary>True if candidates must carry their text.</summary>
    bool NeedsText { get; }

    /// <summary>Returns up to <paramref name="topK"/> candidates of <paramref name="pool"/> (best first on input) in the new order.</summary>
    ValueTask<IReadOnlyList<RerankedCandidate>> RerankAsync(string query, IReadOnlyList<RerankCandidate> pool, int topK, CancellationToken cancellationToken = default);
}

/// <summary>
/// Maximal marginal relevance (Carbonell and Goldstein, 1998): greedily picks the candidate maximising
/// λ·relevance − (1 − λ)·max cosine similarity to the already chosen ones, so near-duplicates of a chosen
/// passage give way to passages that add something. λ = 1 keeps the first-stage order; λ = 0 ignores relevance
/// after the first pick.
/// </summary>
/// <remarks>
/// First-stage scores live on unrelated scales (RRF ≈ 0.03, BM25 ≈ 10, cosine ≈ 0.5), while similarity is a cosine
/// in [−1, 1]; relevance is therefore min-max normalised over the pool to [0, 1] before mixing, which makes λ mean
/// the same thing in every search mode. A candidate without a vector counts as similar to nothing.
/// </remarks>
public sealed class MmrReranker : IReranker
{
    /// <summary>The customary balance, leaning towards relevance.</summary>
    public const float DefaultLambda = 0.7f;

    private readonly float _lambda;

    /// <summary>Creates the reranker; <paramref name="lambda"/> must lie in [0, 1].</summary>
    public MmrReranker(float lambda = DefaultLambda)
    {
        if (!float.IsFinite(lambda) || lambda < 0f || lambda > 1f)
        {
            throw new ArgumentOutOfRangeException(nameof(lambda), lambda, "lambda must be between 0 and 1.");
        }

        _lambda = lambda;
    }

    /// <summary>The relevance/diversity balance.</summary>
    public float Lambda => _lambda;

    public string Name => "mmr";

    public bool NeedsVectors => true;

    public bool NeedsText => false;

    public ValueTask<IReadOnlyList<RerankedCandidate>> RerankAsync(string query, IReadOnlyList<RerankCandidate> pool, int topK, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(Rerank(pool, topK));

    /// <summary>The synchronous core of <see cref="RerankAsync"/>.</summary>
    public IReadOnlyList<RerankedCandidate> Rerank(IReadOnlyList<RerankCandidate> pool, int topK)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(topK, 0);
        var n = pool.Count;
        var take = Math.Min(topK, n);
        if (take == 0)
        {
            return [];
        }

        var relevance = NormalisedRelevance(pool);
        var norms = new float[n];
        for (var i = 0; i < n; i++)
        {
            norms[i] = pool[i].Vector is { } v ? MathF.Sqrt(Dot(v, v)) : 0f;
        }

        // maxSim[i]: highest similarity of candidate i to anything chosen so far; updated once per pick, so the
        // whole run costs topK × pool similarity computations.
        var maxSim = new float[n];
        Array.Fill(maxSim, float.NegativeInfinity);
        var chosen = new bool[n];
        var result = new List<RerankedCandidate>(take);
        for (var step = 0; step < take; step++)
        {
            var best = -1;
            var bestScore = float.NegativeInfinity;
            for (var i = 0; i < n; i++)
            {
                if (chosen[i])
                {
                    continue;
                }

                var score = Score(relevance[i], step == 0 ? 0f : maxSim[i]);

                // Ties go to the more relevant candidate, then to the earlier one: input order is relevance order.
                if (best < 0 || score > bestScore || (score == bestScore && relevance[i] > relevance[best]))
                {
                    best = i;
                    bestScore = score;
                }
            }

            chosen[best] = true;
            result.Add(new RerankedCandidate(pool[best], best + 1, bestScore, step == 0 ? null : maxSim[best]));
            for (var i = 0; i < n; i++)
            {
                if (!chosen[i])
                {
                    maxSim[i] = Math.Max(maxSim[i], Cosine(pool[i].Vector, norms[i], pool[best].Vector, norms[best]));
                }
            }
        }

        return result;
    }

    private float Score(float relevance, float maxSimilarity) => (_lambda * relevance) - ((1f - _lambda) * maxSimilarity);

    private static float[] NormalisedRelevance(IReadOnlyList<RerankCandidate> pool)
    {
        var min = float.PositiveInfinity;
        var max = float.NegativeInfinity;
        foreach (var c in pool)
        {
            min = Math.Min(min, c.Relevance);
            max = Math.Max(max, c.Relevance);
        }

        var result = new float[pool.Count];
        var range = max - min;
        for (var i = 0; i < result.Length; i++)
        {
            // All equal: every candidate is as relevant as the best.
            result[i] = range > 0f ? (pool[i].Relevance - min) / range : 1f;
        }

        return result;
    }

    private static float Cosine(float[]? a, float normA, float[]? b, float normB)
    {
        if (a is null || b is null || normA == 0f || normB == 0f || a.Length != b.Length)
        {
            return 0f;
        }

        return Dot(a, b) / (normA * normB);
    }

    private static float Dot(float[] a, float[] b) => System.Numerics.Tensors.TensorPrimitives.Dot(a, b);
}
