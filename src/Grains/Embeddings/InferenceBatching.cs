namespace RagOrleans.Grains.Embeddings;

/// <summary>
/// Cuts texts sorted by length into the model's inference calls: the limits of <see cref="OnnxEmbeddingOptions"/>
/// (rows, padded tokens, long texts alone, padding waste).
/// </summary>
public static class InferenceBatching
{
    /// <summary>
    /// How many of <paramref name="sortedLengths"/> (token counts, ascending) the next inference call takes: at least one.
    /// </summary>
    /// <param name="sortedLengths">The lengths still to run, shortest first.</param>
    /// <param name="options">The limits.</param>
    public static int NextBatch(ReadOnlySpan<int> sortedLengths, OnnxEmbeddingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (sortedLengths.IsEmpty)
        {
            return 0;
        }

        // Sorted ascending, so the newest member is the longest and sets the padded width.
        var rows = 1;
        long tokens = sortedLengths[0];
        while (rows < sortedLengths.Length && rows < options.MaxBatchSize)
        {
            var next = sortedLengths[rows];
            long padded = (long)(rows + 1) * next;
            if (next > options.LongTextTokens
                || padded > options.MaxBatchTokens
                || padded > options.MaxPaddingRatio * (tokens + next))
            {
                break;
            }

            tokens += next;
            rows++;
        }

        return rows;
    }
}
