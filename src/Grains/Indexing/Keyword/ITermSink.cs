namespace RagOrleans.Grains.Indexing.Keyword;

/// <summary>
/// Receives the terms of <see cref="TextAnalyzer.Analyze{TSink}(ReadOnlySpan{char}, ref TSink)"/> without a string
/// being allocated per term; implement it on a struct so the call is specialised and inlined.
/// </summary>
public interface ITermSink
{
    /// <summary>Called once per term, in text order.</summary>
    /// <param name="term">The analysed term; only valid during the call.</param>
    /// <param name="position">Token ordinal in the text; stop words and dropped tokens leave gaps.</param>
    void Add(ReadOnlySpan<char> term, int position);
}
