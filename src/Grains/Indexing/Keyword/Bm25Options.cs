namespace RagOrleans.Grains.Indexing.Keyword;

/// <summary>
/// BM25 parameters of <see cref="Bm25Index"/>. The defaults are the ones Anserini uses for its BEIR BM25 runs
/// (k1 = 0.9, b = 0.4), which suit short passages better than the textbook 1.2 / 0.75.
/// </summary>
public sealed record Bm25Options
{
    /// <summary>Term-frequency saturation: 0 scores presence only; larger values let repeated terms count for longer.</summary>
    public float K1 { get; init; } = 0.9f;

    /// <summary>Document-length normalisation strength, 0 (none) to 1 (full).</summary>
    public float B { get; init; } = 0.4f;

    internal void Validate()
    {
        if (!float.IsFinite(K1) || K1 < 0f)
        {
            throw new ArgumentOutOfRangeException(nameof(K1), K1, "K1 must be a finite non-negative number.");
        }

        if (!float.IsFinite(B) || B < 0f || B > 1f)
        {
            throw new ArgumentOutOfRangeException(nameof(B), B, "B must be between 0 and 1.");
        }
    }
}
