namespace RagOrleans.Grains.Indexing;

/// <summary>Tuning knobs of <see cref="HnswIndex"/> (names follow the HNSW paper and hnswlib).</summary>
public sealed record HnswOptions
{
    /// <summary>Links per node on the upper layers; layer 0 allows <c>2 * M</c>.</summary>
    public int M { get; init; } = 16;

    /// <summary>Size of the dynamic candidate list while inserting; higher builds a better graph, slower.</summary>
    public int EfConstruction { get; init; } = 200;

    /// <summary>Default size of the dynamic candidate list while searching (used when a call passes <c>ef &lt;= 0</c>).</summary>
    public int EfSearch { get; init; } = 64;

    /// <summary>Seed for level generation: the same inputs and seed give the same graph and the same results.</summary>
    public int Seed { get; init; } = 42;

    /// <summary>Below this many live items a search scans every item exactly instead of walking the graph.</summary>
    public int ExactSearchThreshold { get; init; }

    internal void Validate()
    {
        if (M < 2 || M > MaxM)
        {
            throw new ArgumentOutOfRangeException(nameof(M), M, $"M must be between 2 and {MaxM}.");
        }

        if (EfConstruction < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(EfConstruction), EfConstruction, "EfConstruction must be at least 1.");
        }

        if (EfSearch < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(EfSearch), EfSearch, "EfSearch must be at least 1.");
        }

        if (ExactSearchThreshold < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(ExactSearchThreshold), ExactSearchThreshold, "ExactSearchThreshold must not be negative.");
        }
    }

    // Bounds the per-search stack buffer (2 * M ints) and keeps link arrays well inside array limits.
    internal const int MaxM = 512;
}
