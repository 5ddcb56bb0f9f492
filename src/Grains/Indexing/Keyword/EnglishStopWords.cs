using System.Collections.Frozen;

namespace RagOrleans.Grains.Indexing.Keyword;

/// <summary>Standard English stop lists for <see cref="AnalyzerOptions.StopWords"/>.</summary>
public static class EnglishStopWords
{
    /// <summary>
    /// The Snowball project's English stop list (snowballstem.org/algorithms/english/stop.txt, 174 words, BSD licence),
    /// including its contractions. It deliberately leaves out words with common homonyms (will, can, may, must, might,
    /// us). This is the analyzer's default.
    /// </summary>
    public static IReadOnlySet<string> Snowball { get; } = FrozenSet.Create(StringComparer.Ordinal,
    [
        "i", "me", "my", "myself", "we", "our", "ours", "ourselves", "you", "your", "yours", "yourself", "yourselves",
        "he", "him", "his", "himself", "she", "her", "hers", "herself", "it", "its", "itself", "they", "them", "their",
        "theirs", "themselves", "what", "which", "who", "whom", "this", "that", "these", "those", "am", "is", "are",
        "was", "were", "be", "been", "being", "have", "has", "had", "having", "do", "does", "did", "doing", "would",
        "should", "could", "ought", "i'm", "you're", "he's", "she's", "it's", "we're", "they're", "i've", "you've",
        "we've", "they've", "i'd", "you'd", "he'd", "she'd", "we'd", "they'd", "i'll", "you'll", "he'll", "she'll",
        "we'll", "they'll", "isn't", "aren't", "wasn't", "weren't", "hasn't", "haven't", "hadn't", "doesn't", "don't",
        "didn't", "won't", "wouldn't", "shan't", "shouldn't", "can't", "cannot", "couldn't", "mustn't", "let's",
        "that's", "who's", "what's", "here's", "there's", "when's", "where's", "why's", "how's", "a", "an", "the",
        "and", "but", "if", "or", "because", "as", "until", "while", "of", "at", "by", "for", "with", "about",
        "against", "between", "into", "through", "during", "before", "after", "above", "below", "to", "from", "up",
        "down", "in", "out", "on", "off", "over", "under", "again", "further", "then", "once", "here", "there", "when",
        "where", "why", "how", "all", "any", "both", "each", "few", "more", "most", "other", "some", "such", "no",
        "nor", "not", "only", "own", "same", "so", "than", "too", "very",
    ]);

    /// <summary>
    /// Lucene's classic English stop set (EnglishAnalyzer.ENGLISH_STOP_WORDS_SET, 33 words), which Anserini's BM25
    /// baselines use.
    /// </summary>
    public static IReadOnlySet<string> Lucene { get; } = FrozenSet.Create(StringComparer.Ordinal,
    [
        "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not",
        "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was",
        "will", "with",
    ]);
}
