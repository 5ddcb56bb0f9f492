using System.Text;

namespace RagOrleans.Grains.Chat;

/// <summary>A retrieved passage offered to <see cref="ExtractiveAnswerer"/>, best-ranked first.</summary>
/// <param name="CitationNumber">The number shown as <c>[n]</c> for sentences quoted from this passage.</param>
/// <param name="Text">The passage (chunk) text.</param>
/// <param name="RetrievalScore">The retriever's score; informational, the list order is the rank.</param>
public sealed record AnswerPassage(int CitationNumber, string Text, float RetrievalScore);

/// <summary>A sentence quoted in an answer.</summary>
/// <param name="Text">The sentence as in the passage, trimmed and whitespace-collapsed.</param>
/// <param name="CitationNumber">The citation number of the passage it was quoted from.</param>
/// <param name="Score">Combined relevance score, including the small rank prior.</param>
public sealed record AnswerSentence(string Text, int CitationNumber, float Score);

/// <summary>An answer composed of quoted sentences, each followed by its citation marker.</summary>
/// <param name="Answer">The text shown to the user.</param>
/// <param name="Sentences">The quoted sentences in answer order; empty when nothing relevant was found.</param>
public sealed record ExtractiveAnswer(string Answer, IReadOnlyList<AnswerSentence> Sentences);

/// <summary>Tuning for <see cref="ExtractiveAnswerer"/>.</summary>
public sealed record ExtractiveAnswerOptions
{
    /// <summary>At most this many sentences are quoted.</summary>
    public int MaxSentences { get; init; } = 4;

    /// <summary>Sentences are added while the answer stays within this many characters (the best one always is).</summary>
    public int MaxChars { get; init; } = 700;

    /// <summary>Minimum relevance (0..1, before the rank prior) a sentence needs to be quoted.</summary>
    public float MinScore { get; init; } = 0.15f;

    /// <summary>Sentences scoring below this fraction of the best sentence are not quoted.</summary>
    public float RelativeScoreCutoff { get; init; } = 0.5f;

    /// <summary>A sentence whose term-set Jaccard similarity to an already chosen one exceeds this is a duplicate.</summary>
    public float DuplicateJaccard { get; init; } = 0.7f;

    /// <summary>
    /// A sentence whose content terms are this share (or more) of another's, counted over the smaller set, is a
    /// duplicate of it: the same statement with extra text around it.
    /// </summary>
    public float DuplicateContainment { get; init; } = 0.9f;

    /// <summary>Weight of the semantic similarity when an embedder is given; lexical gets the rest.</summary>
    public float SemanticWeight { get; init; } = 0.5f;

    /// <summary>Prior added for the best-ranked passage, decaying as 1/(rank+1).</summary>
    public float RankPriorWeight { get; init; } = 0.05f;

    /// <summary>Sentences shorter than this many characters are not quoted.</summary>
    public int MinSentenceChars { get; init; } = 15;

    /// <summary>The answer when nothing is relevant enough.</summary>
    public string NotFoundMessage { get; init; } = "I could not find an answer in the collection.";
}

/// <summary>
/// Composes an answer from retrieved passages without a language model by quoting the sentences most
/// relevant to the question, each followed by the citation marker of its passage.
/// </summary>
/// <remarks>
/// Relevance is IDF-weighted coverage of the question's content terms (stemmed, stop words removed, IDF over
/// all candidate sentences), blended with embedding cosine similarity when an embedder is given. A small prior
/// favours higher-ranked passages. Chosen sentences are ordered by passage rank, then position, so that
/// the answer reads in the order the retriever trusted the sources.
/// </remarks>
public sealed class ExtractiveAnswerer
{
    private static readonly HashSet<string> StopWords = new(StringComparer.Ordinal)
    {
        "a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any", "are", "as", "at",
        "be", "because", "been", "before", "being", "below", "both", "but", "by", "can", "could", "did", "do", "does",
        "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having", "he", "her",
        "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "me", "more",
        "most", "my", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "out",
        "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them",
        "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was",
        "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you",
        "your", "yours", "use", "used", "using", "tell", "explain", "describe", "please", "s", "t", "e.g", "i.e",
    };

    // Words that frame a question ("what is the difference between X and Y") but rarely occur in the answer.
    private static readonly HashSet<string> QuestionFraming = new(StringComparer.Ordinal)
    {
        "difference", "differences", "different", "differ", "between", "compare", "compared", "comparison", "versus", "vs",
        "mean", "means", "meaning", "purpose", "example", "examples",
    };

    private readonly ExtractiveAnswerOptions _options;

    /// <summary>Creates an answerer.</summary>
    public ExtractiveAnswerer(ExtractiveAnswerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
    }

    /// <summary>Composes an answer to <paramref name="question"/> from <paramref name="passages"/>.</summary>
    /// <param name="question">The user's question.</param>
    /// <param name="passages">Retrieved passages, best-ranked first.</param>
    /// <param name="embed">
    /// Optional embedder returning one vector per input string (question first, then the sentences);
    /// vectors are normalised here, so they need not be unit length.
    /// </param>
    public ExtractiveAnswer Compose(string question, IReadOnlyList<AnswerPassage> passages, Func<IReadOnlyList<string>, float[][]>? embed = null)
    {
        ArgumentNullException.ThrowIfNull(question);
        ArgumentNullException.ThrowIfNull(passages);

        var questionTerms = Terms(question, QuestionFraming).Distinct(StringComparer.Ordinal).ToList();
        var candidates = CollectCandidates(passages);
        if (candidates.Count == 0 || (questionTerms.Count == 0 && embed is null))
        {
            return NotFound();
        }

        ScoreLexical(questionTerms, candidates);
        if (embed is not null)
        {
            ScoreSemantic(question, candidates, embed);
        }

        var chosen = Select(candidates);
        if (chosen.Count == 0)
        {
            return NotFound();
        }

        chosen.Sort((a, b) => a.Rank != b.Rank ? a.Rank.CompareTo(b.Rank) : a.Position.CompareTo(b.Position));
        var answer = new StringBuilder();
        var sentences = new List<AnswerSentence>(chosen.Count);
        foreach (var c in chosen)
        {
            if (answer.Length > 0)
            {
                answer.Append(' ');
            }

            answer.Append(c.Text).Append(" [").Append(c.Citation).Append(']');
            sentences.Add(new AnswerSentence(c.Text, c.Citation, c.Score));
        }

        return new ExtractiveAnswer(answer.ToString(), sentences);
    }

    /// <summary>
    /// The candidate sentences of <paramref name="passages"/>, in the order <see cref="Compose(string, IReadOnlyList{AnswerPassage}, float[][])"/>
    /// expects their vectors: lets a caller embed them asynchronously (one batch) before composing.
    /// </summary>
    public IReadOnlyList<string> CandidateSentences(IReadOnlyList<AnswerPassage> passages) => CollectCandidates(passages).ConvertAll(c => c.Text);

    /// <summary>
    /// Composes with precomputed vectors: the question's first, then one per <see cref="CandidateSentences"/> entry.
    /// An empty array means lexical scoring only.
    /// </summary>
    public ExtractiveAnswer Compose(string question, IReadOnlyList<AnswerPassage> passages, float[][] questionAndSentenceVectors) =>
        Compose(question, passages, questionAndSentenceVectors.Length == 0 ? null : _ => questionAndSentenceVectors);

    private ExtractiveAnswer NotFound() => new(_options.NotFoundMessage, []);

    private List<Candidate> CollectCandidates(IReadOnlyList<AnswerPassage> passages)
    {
        var candidates = new List<Candidate>();
        for (var rank = 0; rank < passages.Count; rank++)
        {
            var passage = passages[rank];
            if (string.IsNullOrWhiteSpace(passage.Text))
            {
                continue;
            }

            var position = 0;
            foreach (var span in SentenceSplitter.Split(passage.Text))
            {
                var text = Clean(passage.Text.AsSpan(span.Start, span.Length));
                if (IsNoise(text))
                {
                    continue;
                }

                var terms = Terms(text, null).ToHashSet(StringComparer.Ordinal);
                candidates.Add(new Candidate(text, passage.CitationNumber, rank, position++, terms));
            }
        }

        return candidates;
    }

    private void ScoreLexical(List<string> questionTerms, List<Candidate> candidates)
    {
        if (questionTerms.Count == 0)
        {
            return;
        }

        // IDF over the candidate sentences: a term in every sentence (the topic of all passages) says little about
        // which sentence answers; a term absent from all of them still counts in the denominator at full weight,
        // so a question about something the passages never mention scores low everywhere.
        var n = candidates.Count;
        var weights = new double[questionTerms.Count];
        double total = 0;
        for (var t = 0; t < questionTerms.Count; t++)
        {
            var df = candidates.Count(c => c.Terms.Contains(questionTerms[t]));
            weights[t] = Math.Log(1 + ((double)n / Math.Max(1, df)));
            total += weights[t];
        }

        foreach (var c in candidates)
        {
            double matched = 0;
            for (var t = 0; t < questionTerms.Count; t++)
            {
                if (c.Terms.Contains(questionTerms[t]))
                {
                    matched += weights[t];
                }
            }

            c.Lexical = total > 0 ? (float)(matched / total) : 0f;
        }
    }

    private static void ScoreSemantic(string question, List<Candidate> candidates, Func<IReadOnlyList<string>, float[][]> embed)
    {
        var inputs = new List<string>(candidates.Count + 1) { question };
        inputs.AddRange(candidates.Select(c => c.Text));
        var vectors = embed(inputs);
        if (vectors is null || vectors.Length != inputs.Count || vectors[0] is null)
        {
            return;
        }

        var q = Normalize(vectors[0]);
        for (var i = 0; i < candidates.Count; i++)
        {
            var v = vectors[i + 1];
            if (v is null || v.Length != q.Length)
            {
                continue;
            }

            var s = Normalize(v);
            double dot = 0;
            for (var k = 0; k < q.Length; k++)
            {
                dot += q[k] * s[k];
            }

            candidates[i].Semantic = (float)Math.Max(0, dot);
        }
    }

    private List<Candidate> Select(List<Candidate> candidates)
    {
        var semanticWeight = candidates.Any(c => c.Semantic.HasValue) ? Math.Clamp(_options.SemanticWeight, 0f, 1f) : 0f;
        foreach (var c in candidates)
        {
            c.Relevance = ((1 - semanticWeight) * c.Lexical) + (semanticWeight * (c.Semantic ?? 0f));
            c.Score = c.Relevance + (_options.RankPriorWeight / (c.Rank + 1));
        }

        var ordered = candidates
            .Where(c => c.Relevance >= _options.MinScore && c.Relevance > 0)
            .OrderByDescending(c => c.Score)
            .ThenBy(c => c.Rank)
            .ThenBy(c => c.Position)
            .ToList();
        var chosen = new List<Candidate>();
        if (ordered.Count == 0)
        {
            return chosen;
        }

        var floor = ordered[0].Relevance * _options.RelativeScoreCutoff;
        var chars = 0;
        foreach (var c in ordered)
        {
            if (chosen.Count >= _options.MaxSentences)
            {
                break;
            }

            if (c.Relevance < floor || chosen.Any(s => IsDuplicate(s, c)))
            {
                continue;
            }

            var added = c.Text.Length + 4 + (chosen.Count > 0 ? 1 : 0);
            if (chosen.Count > 0 && chars + added > _options.MaxChars)
            {
                continue;
            }

            chosen.Add(c);
            chars += added;
        }

        return chosen;
    }

    /// <summary>
    /// Near-duplicates: the same sentence quoted by overlapping chunks, possibly with extra words around it in one
    /// copy (a chunk boundary cut it, or a list marker or heading was glued on). Similar term sets (Jaccard), one
    /// text containing the other (ignoring case, punctuation and spacing) or one term set almost contained in the
    /// other all count.
    /// </summary>
    private bool IsDuplicate(Candidate chosen, Candidate candidate)
    {
        if (chosen.Key.Length > 0 && candidate.Key.Length > 0 &&
            (chosen.Key.Contains(candidate.Key, StringComparison.Ordinal) || candidate.Key.Contains(chosen.Key, StringComparison.Ordinal)))
        {
            return true;
        }

        if (Jaccard(chosen.Terms, candidate.Terms) > _options.DuplicateJaccard)
        {
            return true;
        }

        var smaller = chosen.Terms.Count <= candidate.Terms.Count ? chosen.Terms : candidate.Terms;
        var larger = ReferenceEquals(smaller, chosen.Terms) ? candidate.Terms : chosen.Terms;
        return smaller.Count >= 3 && smaller.Count(larger.Contains) >= _options.DuplicateContainment * smaller.Count;
    }

    /// <summary>Letters and digits only, lower-cased: "Reminders, unlike timers, persist." → "reminderunliketimerspersist".</summary>
    private static string ContainmentKey(string text)
    {
        var sb = new StringBuilder(text.Length);
        foreach (var ch in text)
        {
            if (char.IsLetterOrDigit(ch))
            {
                sb.Append(char.ToLowerInvariant(ch));
            }
        }

        return sb.ToString();
    }

    private static double Jaccard(HashSet<string> a, HashSet<string> b)
    {
        if (a.Count == 0 && b.Count == 0)
        {
            return 1;
        }

        var intersection = a.Count(b.Contains);
        return (double)intersection / (a.Count + b.Count - intersection);
    }

    /// <summary>Trims, drops a leading list marker and collapses whitespace, keeping the wording intact.</summary>
    private static string Clean(ReadOnlySpan<char> sentence)
    {
        sentence = sentence.Trim();
        if (sentence.Length > 2 && sentence[0] is '-' or '*' or '+' or '•' && char.IsWhiteSpace(sentence[1]))
        {
            sentence = sentence[2..].TrimStart();
        }

        return Common.Whitespace.Collapse(sentence);
    }

    /// <summary>Code, table rows, bare URLs and fragments read badly as an answer.</summary>
    private bool IsNoise(string sentence)
    {
        if (sentence.Length < _options.MinSentenceChars || SentenceSplitter.IsCodeLike(sentence))
        {
            return true;
        }

        int letters = 0, words = 0;
        var inWord = false;
        foreach (var c in sentence)
        {
            if (char.IsLetter(c))
            {
                letters++;
            }

            if (char.IsWhiteSpace(c))
            {
                inWord = false;
            }
            else if (!inWord)
            {
                inWord = true;
                words++;
            }
        }

        return words < 3 || letters < sentence.Length * 0.6 ||
               sentence.StartsWith("http", StringComparison.OrdinalIgnoreCase) && words == 1 ||
               sentence.Contains(" | ", StringComparison.Ordinal);
    }

    /// <summary>Lower-cased, lightly stemmed content terms.</summary>
    internal static IEnumerable<string> Terms(string text, HashSet<string>? extraStopWords)
    {
        var sb = new StringBuilder();
        for (var i = 0; i <= text.Length; i++)
        {
            var c = i < text.Length ? text[i] : ' ';
            if (char.IsLetterOrDigit(c))
            {
                sb.Append(char.ToLowerInvariant(c));
                continue;
            }

            if (sb.Length > 0)
            {
                var word = sb.ToString();
                sb.Clear();
                if (!StopWords.Contains(word) && extraStopWords?.Contains(word) != true)
                {
                    yield return Stem(word);
                }
            }
        }
    }

    /// <summary>
    /// A deliberately small suffix stripper: enough to match "reminders"/"reminder" and "timers"/"timer",
    /// "configured"/"configuring"/"configure", without a full Porter implementation's surprises.
    /// </summary>
    internal static string Stem(string word)
    {
        if (word.Length <= 3 || !char.IsLetter(word[^1]))
        {
            return word;
        }

        if (word.EndsWith("ies", StringComparison.Ordinal) && word.Length > 4)
        {
            return word[..^3] + "y";
        }

        if (word.EndsWith("sses", StringComparison.Ordinal))
        {
            return word[..^2];
        }

        if (word.EndsWith("ing", StringComparison.Ordinal) && word.Length > 5)
        {
            return TrimE(word[..^3]);
        }

        if (word.EndsWith("ed", StringComparison.Ordinal) && word.Length > 4)
        {
            return TrimE(word[..^2]);
        }

        if (word[^1] == 's' && word[^2] is not ('s' or 'u' or 'i'))
        {
            word = word[..^1];
        }

        return TrimE(word);

        // "configure" and "configur(ed)" meet at "configur".
        static string TrimE(string w) => w.Length > 3 && w[^1] == 'e' ? w[..^1] : w;
    }

    private static float[] Normalize(float[] v)
    {
        double norm = 0;
        foreach (var x in v)
        {
            norm += x * x;
        }

        if (norm <= 0)
        {
            return v;
        }

        var inv = (float)(1 / Math.Sqrt(norm));
        var result = new float[v.Length];
        for (var i = 0; i < v.Length; i++)
        {
            result[i] = v[i] * inv;
        }

        return result;
    }

    private sealed class Candidate(string text, int citation, int rank, int position, HashSet<string> terms)
    {
        public string Text { get; } = text;

        public int Citation { get; } = citation;

        public int Rank { get; } = rank;

        public int Position { get; } = position;

        public HashSet<string> Terms { get; } = terms;

        public string Key { get; } = ContainmentKey(text);

        public float Lexical { get; set; }

        public float? Semantic { get; set; }

        public float Relevance { get; set; }

        public float Score { get; set; }
    }
}
