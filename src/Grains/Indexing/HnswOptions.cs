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

    /// <summary>How vectors are stored for the graph walk; <see cref="VectorQuantization.Int8"/> uses about 4x less memory.</summary>
    public VectorQuantization Quantization { get; init; }

    /// <summary>
    /// Directory for the memory-mapped float file of an int8 index (the system temp directory when null). Not part
    /// of the snapshot: it is where this process keeps scratch data, not a property of the index.
    /// </summary>
    public string? ScratchDirectory { get; init; }

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

        if (Quantization is not (VectorQuantization.None or VectorQuantization.Int8))
        {
            throw new ArgumentOutOfRangeException(nameof(Quantization), Quantization, "Unknown vector quantization.");
        }

        if (ExactSearchThreshold < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(ExactSearchThreshold), ExactSearchThreshold, "ExactSearchThreshold must not be negative.");
        }
    }

    // Bounds the per-search stack buffer (2 * M ints) and keeps link arrays well inside array limits.
    internal const int MaxM = 512;
}
