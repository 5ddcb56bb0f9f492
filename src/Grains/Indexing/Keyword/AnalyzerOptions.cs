namespace RagOrleans.Grains.Indexing.Keyword;

/// <summary>Settings of <see cref="TextAnalyzer"/>. Documents and queries must be analysed with equal settings.</summary>
public sealed record AnalyzerOptions
{
    /// <summary>Whether terms are reduced by <see cref="EnglishStemmer"/> (which also strips possessive <c>'s</c>).</summary>
    public bool Stem { get; init; } = true;

    /// <summary>Whether stop words are dropped (they still advance the token position).</summary>
    public bool RemoveStopWords { get; init; } = true;

    /// <summary>
    /// Tokens longer than this many characters (after folding) are dropped, not truncated: in practice they are
    /// sequences, hashes, URLs run together or base64, and a truncated prefix would only produce false matches.
    /// </summary>
    public int MaxTokenLength { get; init; } = 40;

    /// <summary>
    /// The stop list, compared with terms after lower-casing and accent folding but before stemming; <c>null</c> means
    /// <see cref="EnglishStopWords.Snowball"/>. Entries are normalised the same way as text, so "Don’t" and "don't" are
    /// equal. Record equality compares this list by reference.
    /// </summary>
    public IReadOnlyCollection<string>? StopWords { get; init; }

    internal void Validate()
    {
        if (MaxTokenLength < 1 || MaxTokenLength > MaxSupportedTokenLength)
        {
            throw new ArgumentOutOfRangeException(
                nameof(MaxTokenLength), MaxTokenLength, $"MaxTokenLength must be between 1 and {MaxSupportedTokenLength}.");
        }
    }

    // Bounds the analyzer's stack buffer.
    internal const int MaxSupportedTokenLength = 256;
}
