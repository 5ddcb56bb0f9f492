namespace RagOrleans.Grains.Indexing;

/// <summary>One search result: an internal id of <see cref="HnswIndex"/> and its distance to the query.</summary>
/// <param name="Id">Dense internal id returned by <see cref="HnswIndex.Add"/>.</param>
/// <param name="Distance">Distance to the query in the index's <see cref="VectorMetric"/>; results are sorted ascending.</param>
public readonly record struct VectorHit(int Id, float Distance);
