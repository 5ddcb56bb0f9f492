namespace RagOrleans.Grains.Chat;

/// <summary>A sentence as a character span of the text it was split from.</summary>
/// <param name="Start">Offset of the first character.</param>
/// <param name="Length">Number of characters; the span never starts or ends with whitespace.</param>
public readonly record struct SentenceSpan(int Start, int Length)
{
    /// <summary>Offset just past the last character.</summary>
    public int End => Start + Length;
}

/// <summary>
/// Rule-based sentence splitter for English prose mixed with document structure.
/// </summary>
/// <remarks>
/// Lines are first grouped: blank lines separate groups; list items (with their indented continuation
/// lines), headings, table rows and code-like lines stand alone, and so does a short line (a title); longer
/// prose lines are treated as hard-wrapped and joined with the next prose line. Code lines are never split. Inside a group a sentence ends at <c>. ! ? …</c> (plus closing quotes or
/// brackets) followed by whitespace, unless the word is a known abbreviation or initial, the dot is part of a
/// number, or the next word starts in lower case (dialogue attribution, "e.g" without its last dot).
/// </remarks>
public static class SentenceSplitter
{
    // Hard-wrapped prose (e.g. Project Gutenberg) wraps at ~70 columns; a line well short of that that is
    // followed by more text is a title or a deliberate break.
    private const int ShortLineLength = 40;

    // Never end a sentence: titles before names, Latin, months, dotted initialisms.
    private static readonly HashSet<string> NeverFinal = new(StringComparer.Ordinal)
    {
        "mr", "mrs", "ms", "dr", "prof", "st", "mt", "capt", "col", "gen", "lt", "sgt", "rev", "hon", "messrs", "mme", "mlle",
        "e.g", "i.e", "eg", "ie", "cf", "viz", "vs", "approx", "ca", "incl", "resp", "esp", "dept",
        "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
        "u.s", "u.k", "u.n", "e.u", "a.m", "p.m", "ph.d",
    };

    // End a sentence only when the next word is capitalised: they often close a sentence.
    private static readonly HashSet<string> MaybeFinal = new(StringComparer.Ordinal)
    {
        "etc", "al", "inc", "ltd", "co", "corp", "jr", "sr",
    };

    // Abbreviations before a number: "No. 5", "Fig. 3", "pp. 10".
    private static readonly HashSet<string> BeforeNumber = new(StringComparer.Ordinal)
    {
        "no", "nos", "fig", "figs", "p", "pp", "vol", "ch", "sec", "eq", "art", "ver", "v",
    };

    /// <summary>Splits the whole text into sentences.</summary>
    public static IReadOnlyList<SentenceSpan> Split(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Split(text, 0, text.Length);
    }

    /// <summary>Splits <c>text[start..(start + length)]</c>; returned offsets are relative to <paramref name="text"/>.</summary>
    public static IReadOnlyList<SentenceSpan> Split(string text, int start, int length)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(start + length, text.Length, nameof(length));

        var result = new List<SentenceSpan>();
        var end = start + length;
        var groupStart = -1;
        var groupEnd = -1;
        var groupIsCode = false;
        var previous = LineKind.None;
        var previousShort = false;
        var pos = start;
        while (pos < end)
        {
            var nl = text.IndexOf('\n', pos, end - pos);
            var lineEnd = nl < 0 ? end : nl;
            var line = text.AsSpan(pos, lineEnd - pos);
            var trimmed = line.Trim();
            pos = nl < 0 ? end : nl + 1;
            if (trimmed.IsEmpty)
            {
                FlushGroup();
                previous = LineKind.None;
                continue;
            }

            var indented = char.IsWhiteSpace(line[0]);
            var kind = Classify(trimmed);
            var joins = previous switch
            {
                // An indented plain line continues a list item's text.
                LineKind.ListItem => kind == LineKind.Prose && indented,
                LineKind.Prose => kind == LineKind.Prose && !previousShort,
                _ => false,
            };
            if (!joins)
            {
                FlushGroup();
                groupStart = lineEnd - line.Length + (line.Length - line.TrimStart().Length);
                groupIsCode = kind == LineKind.Code;
                previous = kind;
            }

            groupEnd = lineEnd - (line.Length - line.TrimEnd().Length);
            previousShort = trimmed.Length < ShortLineLength;
        }

        FlushGroup();
        return result;

        void FlushGroup()
        {
            if (groupStart < 0)
            {
                return;
            }

            if (groupIsCode)
            {
                result.Add(new SentenceSpan(groupStart, groupEnd - groupStart));
            }
            else
            {
                SplitProse(text, groupStart, groupEnd, result);
            }

            groupStart = -1;
        }
    }

    private enum LineKind
    {
        None,
        Prose,
        ListItem,
        Heading,
        TableRow,
        Code,
    }

    private static LineKind Classify(ReadOnlySpan<char> line)
    {
        if (IsCodeLike(line) || line.StartsWith("```"))
        {
            return LineKind.Code;
        }

        if (line.Length >= 2 && line[0] is '-' or '*' or '+' or '•' or '·' or '▪' or '–' && char.IsWhiteSpace(line[1]))
        {
            return LineKind.ListItem;
        }

        var digits = 0;
        while (digits < line.Length && digits < 4 && char.IsAsciiDigit(line[digits]))
        {
            digits++;
        }

        if (digits > 0 && digits + 1 < line.Length && line[digits] is '.' or ')' && line[digits + 1] == ' ')
        {
            return LineKind.ListItem;
        }

        if (line[0] == '#')
        {
            var hashes = 0;
            while (hashes < line.Length && line[hashes] == '#')
            {
                hashes++;
            }

            if (hashes <= 6 && (hashes == line.Length || line[hashes] == ' '))
            {
                return LineKind.Heading;
            }
        }

        return line[0] == '|' || line.Contains(" | ", StringComparison.Ordinal) ? LineKind.TableRow : LineKind.Prose;
    }

    private static void SplitProse(string text, int start, int end, List<SentenceSpan> result)
    {
        var sentenceStart = start;
        var i = start;
        while (i < end)
        {
            var c = text[i];
            if (!IsTerminal(c))
            {
                i++;
                continue;
            }

            var terminalStart = i;
            var j = i + 1;
            while (j < end && IsTerminal(text[j]))
            {
                j++;
            }

            var terminalEnd = j;
            while (j < end && IsCloser(text[j]))
            {
                j++;
            }

            var fullWidth = c is '。' or '！' or '？';
            if (j < end && !char.IsWhiteSpace(text[j]) && !fullWidth)
            {
                // "3.14", "example.com", "Foo.Bar()", "?!x" are not sentence ends.
                i = j;
                continue;
            }

            if (j >= end || IsBoundary(text, sentenceStart, terminalStart, terminalEnd, NextWordStart(text, j, end)))
            {
                AddTrimmed(text, sentenceStart, j, result);
                sentenceStart = j;
            }

            i = j;
        }

        AddTrimmed(text, sentenceStart, end, result);
    }

    private static bool IsBoundary(string text, int sentenceStart, int terminalStart, int terminalEnd, int next)
    {
        if (next < 0)
        {
            return true;
        }

        var nextChar = text[next];
        var terminalCount = terminalEnd - terminalStart;
        var ellipsis = text[terminalStart] == '…' || (terminalCount >= 3 && text[terminalStart] == '.');
        if (ellipsis)
        {
            return char.IsUpper(nextChar);
        }

        if (char.IsLower(nextChar))
        {
            return false;
        }

        if (text[terminalStart] != '.' || terminalCount != 1)
        {
            return true;
        }

        var word = WordBefore(text, sentenceStart, terminalStart);
        if (word.Length == 0)
        {
            return true;
        }

        var lower = word.ToLowerInvariant();
        if (NeverFinal.Contains(lower))
        {
            return false;
        }

        if (MaybeFinal.Contains(lower))
        {
            return char.IsUpper(nextChar);
        }

        if (BeforeNumber.Contains(lower) && char.IsDigit(nextChar))
        {
            return false;
        }

        // A single capital is an initial ("J. R. R. Tolkien"); dotted letters are an initialism ("N.A.T.O.").
        if (word.Length == 1 && char.IsUpper(word[0]))
        {
            return false;
        }

        return !IsDottedInitialism(word);
    }

    private static string WordBefore(string text, int sentenceStart, int terminalStart)
    {
        var k = terminalStart;
        while (k > sentenceStart && !char.IsWhiteSpace(text[k - 1]) && text[k - 1] is not ('(' or '[' or '"' or '\'' or '“' or '‘'))
        {
            k--;
        }

        return text[k..terminalStart];
    }

    private static bool IsDottedInitialism(string word)
    {
        if (word.Length < 3)
        {
            return false;
        }

        for (var k = 0; k < word.Length; k++)
        {
            var expectLetter = k % 2 == 0;
            if (expectLetter ? !char.IsLetter(word[k]) : word[k] != '.')
            {
                return false;
            }
        }

        return true;
    }

    private static int NextWordStart(string text, int from, int end)
    {
        for (var k = from; k < end; k++)
        {
            var c = text[k];
            if (char.IsWhiteSpace(c) || c is '"' or '\'' or '“' or '‘' or '(' or '[' or '«' or '*' or '_')
            {
                continue;
            }

            return k;
        }

        return -1;
    }

    private static void AddTrimmed(string text, int start, int end, List<SentenceSpan> result)
    {
        while (start < end && char.IsWhiteSpace(text[start]))
        {
            start++;
        }

        while (end > start && char.IsWhiteSpace(text[end - 1]))
        {
            end--;
        }

        if (end > start)
        {
            result.Add(new SentenceSpan(start, end - start));
        }
    }

    private static bool IsTerminal(char c) => c is '.' or '!' or '?' or '…' or '。' or '！' or '？';

    private static bool IsCloser(char c) => c is '"' or '\'' or '”' or '’' or ')' or ']' or '»' or '*' or '_';

    /// <summary>Heuristic for source-code lines, which must not be split at their dots.</summary>
    internal static bool IsCodeLike(ReadOnlySpan<char> line)
    {
        line = line.Trim();
        if (line.IsEmpty)
        {
            return false;
        }

        if (line.StartsWith("//") || line.StartsWith("/*") || line.StartsWith("```") || line.Contains("=>", StringComparison.Ordinal))
        {
            return true;
        }

        var last = line[^1];
        if (last is '{' or '}' || line is "(" or ")" or ");" or "});")
        {
            return true;
        }

        return last == ';' && line.IndexOfAny('(', '=') >= 0;
    }
}
