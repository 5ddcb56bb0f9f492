using RagOrleans.Grains.Chat;
using RagOrleans.Grains.Embeddings;

namespace RagOrleans.Grains.Ingestion;

/// <summary>Size limits for <see cref="TextChunker"/>, in word pieces as counted by <see cref="ITokenCounter"/>.</summary>
public sealed record ChunkingOptions
{
    /// <summary>Hard upper bound for a chunk; the embedding model would silently truncate anything longer.</summary>
    public int MaxTokens { get; init; } = 254;

    /// <summary>The size chunks are filled up to before a new one is started.</summary>
    public int TargetTokens { get; init; } = 200;

    /// <summary>How much of the end of a chunk is repeated at the start of the next one in the same section.</summary>
    public int OverlapTokens { get; init; } = 32;
}

/// <summary>
/// A piece of a document sized for embedding.
/// </summary>
/// <param name="Index">Zero-based position of the chunk in the document.</param>
/// <param name="Text">Exactly <c>ParsedDocument.Text[Start..End]</c>.</param>
/// <param name="Start">Offset of the first character in <see cref="ParsedDocument.Text"/>.</param>
/// <param name="End">Offset just past the last character (exclusive).</param>
/// <param name="HeadingPath">The heading path of the section the chunk belongs to.</param>
/// <param name="Page">The page of the section the chunk belongs to.</param>
/// <param name="TokenCount">Word pieces in <paramref name="Text"/>, special tokens excluded.</param>
public sealed record TextChunk(int Index, string Text, int Start, int End, string? HeadingPath, int? Page, int TokenCount);

/// <summary>
/// Splits a <see cref="ParsedDocument"/> into overlapping chunks of about
/// <see cref="ChunkingOptions.TargetTokens"/> and never more than <see cref="ChunkingOptions.MaxTokens"/> word pieces.
/// </summary>
/// <remarks>
/// <para>Consecutive sections with the same heading path and page form one stream; a chunk never spans
/// two different heading paths or pages, so its <see cref="TextChunk.HeadingPath"/> is exact (small sections
/// simply give small chunks). Plain text therefore flows across its paragraph sections.</para>
/// <para>Within a stream, breaks are preferred at paragraph ends, then sentence ends; sentences longer than
/// the limit are split between words, and words longer than the limit between characters.
/// Each sentence is counted once; the final chunk text is counted once more to guarantee the limit even for
/// counters that are not additive over whitespace.</para>
/// </remarks>
public sealed class TextChunker
{
    private readonly ITokenCounter _tokens;
    private readonly ChunkingOptions _options;

    /// <summary>Creates a chunker.</summary>
    /// <exception cref="ArgumentException">The options are inconsistent.</exception>
    public TextChunker(ITokenCounter tokens, ChunkingOptions options)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentNullException.ThrowIfNull(options);
        if (options.MaxTokens < 1 || options.TargetTokens < 1 || options.TargetTokens > options.MaxTokens ||
            options.OverlapTokens < 0 || options.OverlapTokens >= options.TargetTokens)
        {
            throw new ArgumentException("Require 0 < TargetTokens <= MaxTokens and 0 <= OverlapTokens < TargetTokens.", nameof(options));
        }

        _tokens = tokens;
        _options = options;
    }

    /// <summary>Chunks the document; the result is in document order and indexed from zero.</summary>
    public IReadOnlyList<TextChunk> Chunk(ParsedDocument doc)
    {
        ArgumentNullException.ThrowIfNull(doc);
        var chunks = new List<TextChunk>();
        var sections = doc.Sections;
        var i = 0;
        while (i < sections.Count)
        {
            var j = i + 1;
            while (j < sections.Count &&
                   string.Equals(sections[j].HeadingPath, sections[i].HeadingPath, StringComparison.Ordinal) &&
                   sections[j].Page == sections[i].Page)
            {
                j++;
            }

            var units = new List<Unit>();
            for (var k = i; k < j; k++)
            {
                AddUnits(doc.Text, sections[k], units);
            }

            Pack(doc.Text, units, sections[i].HeadingPath, sections[i].Page, chunks);
            i = j;
        }

        return chunks;
    }

    /// <summary>A sentence, or a piece of an over-long sentence: the smallest thing a chunk is built from.</summary>
    private readonly record struct Unit(int Start, int End, int Tokens, bool ParagraphStart);

    private void AddUnits(string text, DocumentSection section, List<Unit> units)
    {
        var end = Math.Min(text.Length, section.Start + section.Length);
        foreach (var (pStart, pEnd) in Paragraphs(text, section.Start, end))
        {
            var paragraphStart = true;
            foreach (var sentence in SentenceSplitter.Split(text, pStart, pEnd - pStart))
            {
                var count = _tokens.CountTokens(text.AsSpan(sentence.Start, sentence.Length));
                if (count <= _options.MaxTokens)
                {
                    units.Add(new Unit(sentence.Start, sentence.End, count, paragraphStart));
                }
                else
                {
                    SplitLongSentence(text, sentence.Start, sentence.End, paragraphStart, units);
                }

                paragraphStart = false;
            }
        }
    }

    /// <summary>Paragraphs are runs of non-blank lines.</summary>
    private static IEnumerable<(int Start, int End)> Paragraphs(string text, int start, int end)
    {
        var paraStart = -1;
        var paraEnd = -1;
        var pos = start;
        while (pos < end)
        {
            var nl = text.IndexOf('\n', pos, end - pos);
            var lineEnd = nl < 0 ? end : nl;
            if (text.AsSpan(pos, lineEnd - pos).IsWhiteSpace())
            {
                if (paraStart >= 0)
                {
                    yield return (paraStart, paraEnd);
                    paraStart = -1;
                }
            }
            else
            {
                if (paraStart < 0)
                {
                    paraStart = pos;
                }

                paraEnd = lineEnd;
            }

            pos = nl < 0 ? end : nl + 1;
        }

        if (paraStart >= 0)
        {
            yield return (paraStart, paraEnd);
        }
    }

    /// <summary>
    /// Splits between words into pieces that leave room for the overlap, so consecutive pieces still share context.
    /// </summary>
    private void SplitLongSentence(string text, int start, int end, bool paragraphStart, List<Unit> units)
    {
        var pieceLimit = _options.TargetTokens - _options.OverlapTokens;
        var pieceStart = -1;
        var pieceEnd = -1;
        var pieceTokens = 0;
        foreach (var (wStart, wEnd) in Words(text, start, end))
        {
            var count = _tokens.CountTokens(text.AsSpan(wStart, wEnd - wStart));
            if (count > _options.TargetTokens)
            {
                Flush();
                SplitLongWord(text, wStart, wEnd, count, ref paragraphStart, units);
                continue;
            }

            if (pieceStart >= 0 && pieceTokens + count > pieceLimit)
            {
                Flush();
            }

            if (pieceStart < 0)
            {
                pieceStart = wStart;
            }

            pieceEnd = wEnd;
            pieceTokens += count;
        }

        Flush();

        void Flush()
        {
            if (pieceStart >= 0)
            {
                units.Add(new Unit(pieceStart, pieceEnd, pieceTokens, paragraphStart));
                paragraphStart = false;
                pieceStart = -1;
                pieceTokens = 0;
            }
        }
    }

    /// <summary>Cuts a word (a base64 blob, a minified line) into character runs that each fit the target.</summary>
    private void SplitLongWord(string text, int start, int end, int wordTokens, ref bool paragraphStart, List<Unit> units)
    {
        var charsPerToken = (double)(end - start) / Math.Max(1, wordTokens);
        var guess = Math.Max(1, (int)(_options.TargetTokens * charsPerToken * 0.9));
        var pos = start;
        while (pos < end)
        {
            var cut = SafeCut(text, pos, Math.Min(end, pos + guess));
            var count = _tokens.CountTokens(text.AsSpan(pos, cut - pos));
            while (count > _options.TargetTokens && cut - pos > 1)
            {
                cut = SafeCut(text, pos, pos + Math.Max(1, (cut - pos) * 3 / 4));
                count = _tokens.CountTokens(text.AsSpan(pos, cut - pos));
            }

            units.Add(new Unit(pos, cut, count, paragraphStart));
            paragraphStart = false;
            pos = cut;
        }
    }

    /// <summary>Moves a cut off the middle of a surrogate pair, never to or before <paramref name="from"/>.</summary>
    private static int SafeCut(string text, int from, int cut)
    {
        if (cut < text.Length && cut - 1 > from && char.IsHighSurrogate(text[cut - 1]) && char.IsLowSurrogate(text[cut]))
        {
            cut--;
        }

        return cut;
    }

    private static IEnumerable<(int Start, int End)> Words(string text, int start, int end)
    {
        var i = start;
        while (i < end)
        {
            while (i < end && char.IsWhiteSpace(text[i]))
            {
                i++;
            }

            var wStart = i;
            while (i < end && !char.IsWhiteSpace(text[i]))
            {
                i++;
            }

            if (i > wStart)
            {
                yield return (wStart, i);
            }
        }
    }

    private void Pack(string text, List<Unit> units, string? headingPath, int? page, List<TextChunk> chunks)
    {
        if (units.Count == 0)
        {
            return;
        }

        // Tokens from each unit to the end of its paragraph, for "would this paragraph still fit?".
        var paragraphRest = new int[units.Count];
        for (var k = units.Count - 1; k >= 0; k--)
        {
            paragraphRest[k] = units[k].Tokens + (k + 1 < units.Count && !units[k + 1].ParagraphStart ? paragraphRest[k + 1] : 0);
        }

        var target = _options.TargetTokens;
        var chunkStart = units[0].Start;
        var firstUnit = 0;
        var current = 0;
        for (var i = 0; i < units.Count; i++)
        {
            var unit = units[i];
            if (i > firstUnit || current > 0)
            {
                var overTarget = current + unit.Tokens > target;
                var paragraphBreak = unit.ParagraphStart && current >= target / 2 && current + paragraphRest[i] > target;
                if (overTarget || paragraphBreak)
                {
                    Emit(text, chunkStart, units[i - 1].End, headingPath, page, chunks);
                    (chunkStart, current) = Overlap(text, units, firstUnit, i);
                    firstUnit = i;
                }
            }

            current += unit.Tokens;
        }

        Emit(text, chunkStart, units[^1].End, headingPath, page, chunks);
    }

    /// <summary>
    /// Where the chunk starting at unit <paramref name="next"/> begins: whole trailing sentences of the previous
    /// chunk up to the overlap budget, or the tail words of its last sentence when that alone is too long.
    /// Never the whole previous chunk, and never so much that the next unit no longer fits the target.
    /// </summary>
    private (int Start, int Tokens) Overlap(string text, List<Unit> units, int previousFirst, int next)
    {
        var budget = Math.Min(_options.OverlapTokens, _options.TargetTokens - units[next].Tokens);
        if (budget <= 0)
        {
            return (units[next].Start, 0);
        }

        var tokens = 0;
        var start = units[next].Start;
        for (var k = next - 1; k > previousFirst && tokens + units[k].Tokens <= budget; k--)
        {
            tokens += units[k].Tokens;
            start = units[k].Start;
        }

        if (tokens > 0)
        {
            return (start, tokens);
        }

        var last = units[next - 1];
        var words = Words(text, last.Start, last.End).ToList();
        for (var w = words.Count - 1; w > 0; w--)
        {
            var count = _tokens.CountTokens(text.AsSpan(words[w].Start, words[w].End - words[w].Start));
            if (tokens + count > budget)
            {
                break;
            }

            tokens += count;
            start = words[w].Start;
        }

        return (start, tokens);
    }

    private void Emit(string text, int start, int end, string? headingPath, int? page, List<TextChunk> chunks)
    {
        while (start < end && char.IsWhiteSpace(text[start]))
        {
            start++;
        }

        while (end > start && char.IsWhiteSpace(text[end - 1]))
        {
            end--;
        }

        if (end <= start)
        {
            return;
        }

        var count = _tokens.CountTokens(text.AsSpan(start, end - start));
        if (count > _options.MaxTokens && end - start > 1)
        {
            // Only reachable with a counter that is not additive over whitespace, or pieces of one word
            // landing in the same chunk: halve at the whitespace nearest the middle until it fits.
            var mid = SplitPoint(text, start, end);
            Emit(text, start, mid, headingPath, page, chunks);
            Emit(text, mid, end, headingPath, page, chunks);
            return;
        }

        chunks.Add(new TextChunk(chunks.Count, text[start..end], start, end, headingPath, page, count));
    }

    private static int SplitPoint(string text, int start, int end)
    {
        var mid = start + ((end - start) / 2);
        for (var d = 0; d < (end - start) / 2; d++)
        {
            if (mid - d > start && char.IsWhiteSpace(text[mid - d]))
            {
                return mid - d;
            }

            if (mid + d < end && char.IsWhiteSpace(text[mid + d]))
            {
                return mid + d;
            }
        }

        return Math.Max(start + 1, SafeCut(text, start, mid));
    }
}
