namespace RagOrleans.Grains.Indexing.Keyword;

/// <summary>One keyword search result.</summary>
/// <param name="Id">The document id given to <see cref="Bm25Index.Add"/>.</param>
/// <param name="Score">BM25 score; results are sorted descending (ties by ascending id).</param>
public readonly record struct KeywordHit(int Id, float Score);
