namespace RagOrleans.Grains.Indexing;

/// <summary>Distance function used by <see cref="HnswIndex"/>. Smaller distances are always better.</summary>
public enum VectorMetric
{
    /// <summary>
    /// Cosine distance, computed as <c>1 - dot(a, b)</c>. The caller must L2-normalise every vector
    /// (stored and query); the index does not, so it never pays for a norm on the hot path.
    /// </summary>
    Cosine = 0,

    /// <summary>Squared euclidean distance (no square root: it preserves the ordering and is cheaper).</summary>
    L2 = 1,
}
