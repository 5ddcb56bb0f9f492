using System.Collections.Frozen;
using System.Globalization;
using System.Text;

namespace RagOrleans.Grains.Indexing.Keyword;

/// <summary>
/// Turns text into index terms: Unicode word splitting, invariant lower-casing, accent folding, stop-word removal and
/// English stemming. The same instance analyses documents and queries.
/// </summary>
/// <remarks>
/// <para><b>Tokens.</b> A token is a run of letters and decimal digits (combining marks ride along and are folded away).
/// Everything else separates tokens, so hyphenated words, <c>snake_case</c>, <c>3.5</c> and e-mail addresses split
/// into their parts. An apostrophe (<c>'</c>, <c>’</c>, <c>ʼ</c>) stays inside a token when a letter or digit follows it,
/// as Snowball's apostrophe note asks: "don't" and "O'Neil" stay whole, and the stemmer strips possessive <c>'s</c>;
/// leading and trailing apostrophes are quotation marks and go.</para>
/// <para><b>Folding.</b> Tokens are lower-cased with the invariant culture and compatibility-decomposed (NFKD) with
/// their combining marks dropped, so "Éclair" → "eclair", fullwidth "ＡＢＣ" → "abc" and the "ﬁ" ligature → "fi";
/// letters that do not decompose are mapped by hand (ß → ss, æ → ae, œ → oe, ø → o, ł → l, đ/ð → d, þ → th, ı → i).
/// ASCII tokens, the vast majority, take a fast path with no normalisation call and no allocation.</para>
/// <para><b>Digits.</b> Digit runs are tokens ("2019"); letters and digits together are one token ("covid19", "il6").
/// Tokens containing a digit or any letter outside a-z are never stemmed (the stemmer only knows English).</para>
/// <para><b>CJK.</b> Han, Hiragana and Katakana runs are not segmented into words (that needs a dictionary); each run is
/// indexed as overlapping character bigrams (one unigram for a single character), the approach of Lucene's
/// CJKAnalyzer, so queries match any shared two-character sequence. Hangul is written with spaces and is tokenised
/// like other letters.</para>
/// <para>Thread-safe: analysis keeps its working state on the stack.</para>
/// </remarks>
public sealed class TextAnalyzer
{
    private readonly FrozenSet<string> _stopWords;
    private readonly FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> _stopLookup;
    private readonly bool _stem;
    private readonly bool _removeStopWords;
    private readonly int _maxTokenLength;

    /// <summary>Creates an analyzer.</summary>
    /// <param name="options">Settings; defaults when null.</param>
    public TextAnalyzer(AnalyzerOptions? options = null)
    {
        Options = options ?? new AnalyzerOptions();
        Options.Validate();
        _stem = Options.Stem;
        _removeStopWords = Options.RemoveStopWords;
        _maxTokenLength = Options.MaxTokenLength;

        // Stop words go through the same folding as text so the comparison is on equal terms.
        var words = new List<string>();
        var parts = new List<string>();
        foreach (var word in Options.StopWords ?? EnglishStopWords.Snowball)
        {
            parts.Clear();
            var sink = new ListSink(parts);
            Tokenize(word, ref sink, applyFilters: false);

            // An entry that splits into several tokens ("e-mail") can never equal a single term.
            if (parts.Count == 1)
            {
                words.Add(parts[0]);
            }
        }

        _stopWords = words.ToFrozenSet(StringComparer.Ordinal);
        _stopLookup = _stopWords.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>The settings in force.</summary>
    public AnalyzerOptions Options { get; }

    /// <summary>The stop list in force, folded like text; consulted only when <see cref="AnalyzerOptions.RemoveStopWords"/> is on.</summary>
    public IReadOnlySet<string> StopWords => _stopWords;

    /// <summary>Appends the terms of <paramref name="text"/> to <paramref name="terms"/>, in text order.</summary>
    /// <param name="text">Any text.</param>
    /// <param name="terms">Receives one string per term (duplicates included).</param>
    public void Analyze(ReadOnlySpan<char> text, List<string> terms)
    {
        ArgumentNullException.ThrowIfNull(terms);
        var sink = new ListSink(terms);
        Analyze(text, ref sink);
    }

    /// <summary>Feeds the terms of <paramref name="text"/> and their positions to <paramref name="sink"/> without allocating per term.</summary>
    /// <typeparam name="TSink">A struct sink, so the per-term call is specialised.</typeparam>
    /// <param name="text">Any text.</param>
    /// <param name="sink">Receives each term.</param>
    public void Analyze<TSink>(ReadOnlySpan<char> text, ref TSink sink)
        where TSink : struct, ITermSink
        => Tokenize(text, ref sink, applyFilters: true);

    private void Tokenize<TSink>(ReadOnlySpan<char> text, ref TSink sink, bool applyFilters)
        where TSink : struct, ITermSink
    {
        Span<char> buffer = stackalloc char[AnalyzerOptions.MaxSupportedTokenLength];
        var position = 0;
        var i = 0;
        while (i < text.Length)
        {
            var kind = Classify(text, i, out var width);
            if (kind == CharKind.Cjk)
            {
                var start = i;
                i += width;
                while (i < text.Length && Classify(text, i, out width) == CharKind.Cjk)
                {
                    i += width;
                }

                EmitCjk(text[start..i], ref position, ref sink);
                continue;
            }

            if (kind != CharKind.Word)
            {
                // Separators, and combining marks with no letter to attach to.
                i += width;
                continue;
            }

            var tokenStart = i;
            var ascii = text[i] < 128;
            i += width;
            while (i < text.Length)
            {
                var c = text[i];
                var next = Classify(text, i, out width);
                if (next is CharKind.Word or CharKind.Mark)
                {
                    ascii &= c < 128;
                    i += width;
                }
                else if (IsApostrophe(c) && i + 1 < text.Length && Classify(text, i + 1, out _) == CharKind.Word)
                {
                    ascii &= c == '\'';
                    i++;
                }
                else
                {
                    break;
                }
            }

            var token = text[tokenStart..i];
            var length = ascii ? LowerAscii(token, buffer) : Fold(token, buffer);
            if (length <= 0)
            {
                // Too long (or nothing left after folding): dropped, but it still occupied a position.
                position++;
                continue;
            }

            var term = buffer[..length];
            if (applyFilters)
            {
                if (_removeStopWords && _stopLookup.Contains(term))
                {
                    position++;
                    continue;
                }

                if (_stem && length > 2 && IsStemmable(term))
                {
                    term = term[..EnglishStemmer.Stem(term)];
                }
            }

            sink.Add(term, position++);
        }
    }

    /// <summary>Lower-cases an ASCII token into <paramref name="buffer"/>; -1 when longer than the limit.</summary>
    private int LowerAscii(ReadOnlySpan<char> token, Span<char> buffer)
    {
        if (token.Length > _maxTokenLength)
        {
            return -1;
        }

        for (var j = 0; j < token.Length; j++)
        {
            var c = token[j];
            buffer[j] = c is >= 'A' and <= 'Z' ? (char)(c | 0x20) : c;
        }

        return token.Length;
    }

    /// <summary>NFKD, drop combining marks, lower-case, map undecomposable letters; -1 when the result is too long.</summary>
    private int Fold(ReadOnlySpan<char> token, Span<char> buffer)
    {
        // NFKD expands at most ~18x (U+FDFA); a stack buffer covers ordinary tokens, the rest take one allocation.
        Span<char> decomposed = token.Length <= 64 ? stackalloc char[token.Length * 4] : default;
        scoped ReadOnlySpan<char> source;
        if (!decomposed.IsEmpty && token.TryNormalize(decomposed, out var written, NormalizationForm.FormKD))
        {
            source = decomposed[..written];
        }
        else
        {
            source = token.ToString().Normalize(NormalizationForm.FormKD);
        }

        var n = 0;
        for (var j = 0; j < source.Length; j++)
        {
            var c = source[j];
            if (char.IsHighSurrogate(c) && j + 1 < source.Length && char.IsLowSurrogate(source[j + 1]))
            {
                // Astral letters (e.g. mathematical alphanumerics were already decomposed by NFKD) are kept as is.
                if (n + 2 > _maxTokenLength)
                {
                    return -1;
                }

                buffer[n++] = c;
                buffer[n++] = source[++j];
                continue;
            }

            if (IsApostrophe(c))
            {
                c = '\'';
            }
            else
            {
                var category = CharUnicodeInfo.GetUnicodeCategory(c);
                if (!IsLetterOrDigit(category))
                {
                    // Combining marks, and punctuation that compatibility decomposition can introduce (ŀ → l·).
                    continue;
                }

                c = char.ToLowerInvariant(c);
            }

            var expansion = c switch
            {
                'ß' => "ss",
                'æ' => "ae",
                'œ' => "oe",
                'ø' => "o",
                'ł' => "l",
                'đ' or 'ð' => "d",
                'þ' => "th",
                'ı' => "i",
                'ħ' => "h",
                'ŧ' => "t",
                _ => null,
            };

            if (expansion is null)
            {
                if (n + 1 > _maxTokenLength)
                {
                    return -1;
                }

                buffer[n++] = c;
            }
            else
            {
                if (n + expansion.Length > _maxTokenLength)
                {
                    return -1;
                }

                expansion.CopyTo(buffer[n..]);
                n += expansion.Length;
            }
        }

        return ContainsConjoiningJamo(buffer[..n]) ? Recompose(buffer, n) : n;
    }

    private static bool ContainsConjoiningJamo(ReadOnlySpan<char> term) => term.ContainsAnyInRange('\u1100', '\u11FF');

    /// <summary>
    /// NFKD splits Hangul syllables into conjoining jamo; composing them again keeps Korean terms in their written form
    /// (and within the length limit as written).
    /// </summary>
    private static int Recompose(Span<char> buffer, int length)
    {
        Span<char> composed = stackalloc char[length];
        if (!((ReadOnlySpan<char>)buffer[..length]).TryNormalize(composed, out var written, NormalizationForm.FormC))
        {
            return length;
        }

        composed[..written].CopyTo(buffer);
        return written;
    }

    /// <summary>Overlapping bigrams of a Han/Kana run (a single character is emitted alone).</summary>
    private static void EmitCjk<TSink>(ReadOnlySpan<char> run, ref int position, ref TSink sink)
        where TSink : struct, ITermSink
    {
        var firstWidth = run.Length > 1 && char.IsSurrogatePair(run[0], run[1]) ? 2 : 1;
        if (firstWidth == run.Length)
        {
            sink.Add(run, position++);
            return;
        }

        var previous = 0;
        var current = firstWidth;
        while (current < run.Length)
        {
            var width = current + 1 < run.Length && char.IsSurrogatePair(run[current], run[current + 1]) ? 2 : 1;
            sink.Add(run[previous..(current + width)], position++);
            previous = current;
            current += width;
        }
    }

    private static bool IsStemmable(ReadOnlySpan<char> term)
    {
        foreach (var c in term)
        {
            if (c is not ((>= 'a' and <= 'z') or '\''))
            {
                return false;
            }
        }

        return true;
    }

    private static bool IsApostrophe(char c) => c is '\'' or '\u2019' or '\u02BC' or '\uFF07';

    private static bool IsLetterOrDigit(UnicodeCategory category) => category is UnicodeCategory.UppercaseLetter
        or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter or UnicodeCategory.ModifierLetter
        or UnicodeCategory.OtherLetter or UnicodeCategory.DecimalDigitNumber;

    private enum CharKind : byte
    {
        Separator,
        Word,
        Mark,
        Cjk,
    }

    // One byte per ASCII character saves a category lookup on the hot path.
    private static readonly CharKind[] AsciiKinds = BuildAsciiKinds();

    private static CharKind[] BuildAsciiKinds()
    {
        var kinds = new CharKind[128];
        for (var c = 0; c < 128; c++)
        {
            kinds[c] = char.IsAsciiLetterOrDigit((char)c) ? CharKind.Word : CharKind.Separator;
        }

        return kinds;
    }

    private static CharKind Classify(ReadOnlySpan<char> text, int index, out int width)
    {
        var c = text[index];
        width = 1;
        if (c < 128)
        {
            return AsciiKinds[c];
        }

        int codePoint = c;
        if (char.IsHighSurrogate(c))
        {
            if (index + 1 >= text.Length || !char.IsLowSurrogate(text[index + 1]))
            {
                return CharKind.Separator;
            }

            codePoint = char.ConvertToUtf32(c, text[index + 1]);
            width = 2;
        }
        else if (char.IsLowSurrogate(c))
        {
            return CharKind.Separator;
        }

        // The modifier-letter apostrophe is a letter to Unicode but an apostrophe to a reader.
        if (codePoint == 0x02BC)
        {
            return CharKind.Separator;
        }

        // Invisible joiners and soft hyphens (common in PDF and HTML extracts) must not split "infor\u00ADmation";
        // riding along as marks, they are dropped by folding.
        if (codePoint is 0x00AD or 0x200C or 0x200D or 0x2060 or 0xFEFF)
        {
            return CharKind.Mark;
        }

        var category = CharUnicodeInfo.GetUnicodeCategory(codePoint);
        if (IsLetterOrDigit(category))
        {
            return IsCjk(codePoint) ? CharKind.Cjk : CharKind.Word;
        }

        return category is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark
            or UnicodeCategory.EnclosingMark
            ? CharKind.Mark
            : CharKind.Separator;
    }

    private static bool IsCjk(int cp) =>
        cp is (>= 0x3040 and <= 0x30FF) // Hiragana, Katakana
            or (>= 0x31F0 and <= 0x31FF) // Katakana phonetic extensions
            or (>= 0x3400 and <= 0x4DBF) // Han extension A
            or (>= 0x4E00 and <= 0x9FFF) // Han unified ideographs
            or (>= 0xF900 and <= 0xFAFF) // Han compatibility ideographs
            or (>= 0xFF66 and <= 0xFF9F) // Halfwidth Katakana
            or (>= 0x20000 and <= 0x3134F); // Han extensions B-G

    /// <summary>Collects terms as strings for the list-based overload.</summary>
    private readonly struct ListSink(List<string> terms) : ITermSink
    {
        public void Add(ReadOnlySpan<char> term, int position) => terms.Add(term.ToString());
    }
}
