using System.Buffers;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;

namespace RagOrleans.Grains.Embeddings;

/// <summary>A text encoded for a BERT-style model: [CLS] pieces… [SEP], unpadded.</summary>
/// <param name="InputIds">Vocabulary ids, starting with [CLS] and ending with [SEP].</param>
/// <param name="AttentionMask">All ones (no padding), one per id.</param>
/// <param name="TokenTypeIds">All zeros (single segment), one per id.</param>
/// <param name="Truncated">True when the text had more word pieces than fit and the tail was dropped.</param>
public sealed record EncodedInput(long[] InputIds, long[] AttentionMask, long[] TokenTypeIds, bool Truncated)
{
    /// <summary>Number of ids, special tokens included.</summary>
    public int Length => InputIds.Length;
}

/// <summary>
/// BERT WordPiece tokenizer reproducing HuggingFace's BertNormalizer + BertPreTokenizer + WordPiece pipeline
/// (the "fast" tokenizer sentence-transformers runs): clean text, isolate CJK ideographs, strip accents and
/// lower-case (uncased models), split on whitespace and punctuation, then greedy longest-match word pieces.
/// </summary>
/// <remarks>
/// Written here rather than configured from Microsoft.ML.Tokenizers because its BertTokenizer (2.0.1) drops
/// symbols such as <c>| ^ = &lt; &gt; $ + ~ →</c> and glues words across \n, \t and \r (dotnet/machinelearning#7724,
/// #7725), and because we need piece offsets into the original text and an allocation-free count.
/// Instances are immutable and thread-safe.
/// </remarks>
public sealed class WordPieceTokenizer : ITokenCounter
{
    /// <summary>Words longer than this (in code points, after normalisation) become a single [UNK], as in BERT.</summary>
    public const int MaxCharsPerWord = 100;

    // Big enough for MaxCharsPerWord code points even when every one is a surrogate pair or decomposes under NFD;
    // anything longer is [UNK] anyway so its characters need not be kept.
    private const int WordBufferSize = 512;
    private const string ContinuationPrefix = "##";

    private static readonly CharKind[] AsciiKinds = BuildAsciiKinds();

    // Normalised form (NFD, non-spacing marks removed, lower-cased) of each BMP char, filled lazily; racing writers
    // store equal strings, so no locking is needed.
    private static readonly string?[] UncasedBmpMap = new string?[0x10000];

    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _wordStarts;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _continuations;
    private readonly int _maxWordStartLength;
    private readonly int _maxContinuationLength;
    private readonly (string Text, int Id)[] _specialTokens;
    private readonly bool _lowerCase;
    private readonly string[] _tokens;

    private WordPieceTokenizer(List<string> tokens, bool lowerCase)
    {
        _lowerCase = lowerCase;
        _tokens = [.. tokens];
        var wordStarts = new Dictionary<string, int>(tokens.Count, StringComparer.Ordinal);
        var continuations = new Dictionary<string, int>(tokens.Count / 4, StringComparer.Ordinal);
        for (var id = 0; id < tokens.Count; id++)
        {
            var token = tokens[id];
            if (token.Length == 0)
            {
                continue;
            }

            // Later duplicates win, as in HuggingFace's vocab loaders.
            wordStarts[token] = id;
            _maxWordStartLength = Math.Max(_maxWordStartLength, token.Length);
            if (token.Length > ContinuationPrefix.Length && token.StartsWith(ContinuationPrefix, StringComparison.Ordinal))
            {
                continuations[token[ContinuationPrefix.Length..]] = id;
                _maxContinuationLength = Math.Max(_maxContinuationLength, token.Length - ContinuationPrefix.Length);
            }
        }

        _wordStarts = wordStarts.GetAlternateLookup<ReadOnlySpan<char>>();
        _continuations = continuations.GetAlternateLookup<ReadOnlySpan<char>>();
        VocabularySize = tokens.Count;
        UnkId = Require(wordStarts, "[UNK]");
        ClsId = Require(wordStarts, "[CLS]");
        SepId = Require(wordStarts, "[SEP]");
        PadId = wordStarts.GetValueOrDefault("[PAD]", 0);

        // HuggingFace registers these as added tokens matched verbatim in the raw text (before normalisation),
        // so a literal "[SEP]" inside a document is the separator token, not "[", "sep", "]".
        _specialTokens = new[] { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" }
            .Where(wordStarts.ContainsKey)
            .Select(t => (t, wordStarts[t]))
            .ToArray();
    }

    private enum CharKind : byte
    {
        Word,
        Space,
        Removed,
        Punctuation,
        Cjk,
    }

    /// <summary>Number of entries in the vocabulary.</summary>
    public int VocabularySize { get; }

    /// <summary>Id of [UNK].</summary>
    public int UnkId { get; }

    /// <summary>Id of [CLS], prepended to every encoded input.</summary>
    public int ClsId { get; }

    /// <summary>Id of [SEP], appended to every encoded input.</summary>
    public int SepId { get; }

    /// <summary>Id of [PAD], used to pad batches.</summary>
    public int PadId { get; }

    /// <summary>The vocabulary entry for <paramref name="id"/> (continuation pieces keep their "##").</summary>
    public string IdToToken(int id) => _tokens[id];

    /// <summary>Loads a BERT vocab.txt (one token per line, id = line number).</summary>
    /// <param name="vocab">The vocab.txt content; read to the end, not disposed.</param>
    /// <param name="lowerCase">True for uncased models: lower-case and strip accents before matching.</param>
    public static WordPieceTokenizer FromVocab(Stream vocab, bool lowerCase = true)
    {
        ArgumentNullException.ThrowIfNull(vocab);
        var tokens = new List<string>(32_000);
        using var reader = new StreamReader(vocab, Encoding.UTF8, detectEncodingFromByteOrderMarks: true, leaveOpen: true);
        while (reader.ReadLine() is { } line)
        {
            // The packaged vocab has CRLF line ends; HuggingFace trims trailing whitespace too.
            tokens.Add(line.TrimEnd());
        }

        return new WordPieceTokenizer(tokens, lowerCase);
    }

    /// <inheritdoc />
    public int CountTokens(ReadOnlySpan<char> text)
    {
        var sink = new CountSink();
        Tokenize(text, ref sink);
        return sink.Count;
    }

    /// <summary>
    /// Encodes <paramref name="text"/> as [CLS] pieces [SEP], keeping at most <paramref name="maxTokens"/> ids in all.
    /// </summary>
    /// <param name="text">Text to encode.</param>
    /// <param name="maxTokens">Upper bound on the result length, special tokens included; at least 2.</param>
    public EncodedInput Encode(string text, int maxTokens)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 2);
        // Canonical decomposition expands a char to at most 4, each at most one piece, so this bound never truncates.
        var capacity = (int)Math.Min(maxTokens, (4L * text.Length) + 2);
        var rented = ArrayPool<int>.Shared.Rent(capacity);
        try
        {
            var length = EncodeInto(text, rented, 0, capacity, out var truncated);
            var ids = new long[length];
            var mask = new long[length];
            for (var i = 0; i < length; i++)
            {
                ids[i] = rented[i];
                mask[i] = 1;
            }

            return new EncodedInput(ids, mask, new long[length], truncated);
        }
        finally
        {
            ArrayPool<int>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// All word pieces of <paramref name="text"/> (no [CLS]/[SEP], no truncation), each with the span
    /// [Start, End) of the original characters it came from.
    /// </summary>
    public IReadOnlyList<(int Id, int Start, int End)> EncodeWithOffsets(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var sink = new OffsetSink(new List<(int Id, int Start, int End)>(text.Length / 4 + 4));
        Tokenize(text, ref sink);
        return sink.Pieces;
    }

    /// <summary>
    /// Writes [CLS] pieces [SEP] into <paramref name="destination"/> from <paramref name="offset"/> on, at most
    /// <paramref name="maxTokens"/> ids, and returns how many were written. A text that cannot fit is cut after as
    /// many pieces as fit.
    /// </summary>
    internal int EncodeInto(ReadOnlySpan<char> text, int[] destination, int offset, int maxTokens, out bool truncated)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 2);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offset + maxTokens, destination.Length);
        destination[offset] = ClsId;
        var sink = new ArraySink(destination, offset, maxTokens - 2);
        Tokenize(text, ref sink);
        destination[offset + sink.Count + 1] = SepId;
        truncated = sink.Truncated;
        return sink.Count + 2;
    }

    private static int Require(Dictionary<string, int> vocab, string token) =>
        vocab.TryGetValue(token, out var id) ? id : throw new InvalidDataException($"The vocabulary has no {token} token.");

    private void Tokenize<TSink>(ReadOnlySpan<char> text, ref TSink sink)
        where TSink : struct, ITokenSink
    {
        var word = new WordBuffer(
            stackalloc char[WordBufferSize], stackalloc int[WordBufferSize], stackalloc int[WordBufferSize], stackalloc int[WordBufferSize], stackalloc int[WordBufferSize]);
        var i = 0;
        while (i < text.Length)
        {
            var c = text[i];
            if (c < 128)
            {
                switch (AsciiKinds[c])
                {
                    case CharKind.Word:
                        word.Append(_lowerCase && c is >= 'A' and <= 'Z' ? (char)(c | 0x20) : c, i, i + 1);
                        word.EndRune();
                        break;
                    case CharKind.Space:
                        if (!Flush(ref word, ref sink))
                        {
                            return;
                        }

                        break;
                    case CharKind.Punctuation:
                        if (c == '[' && TryMatchSpecial(text[i..], out var specialId, out var specialLength))
                        {
                            if (!Flush(ref word, ref sink) || !sink.Add(specialId, i, i + specialLength))
                            {
                                return;
                            }

                            i += specialLength;
                            continue;
                        }

                        if (!Flush(ref word, ref sink))
                        {
                            return;
                        }

                        word.Append(c, i, i + 1);
                        word.EndRune();
                        if (!Flush(ref word, ref sink))
                        {
                            return;
                        }

                        break;
                }

                i++;
                continue;
            }

            // Unpaired surrogates decode as U+FFFD, which BERT's cleaning removes.
            Rune.DecodeFromUtf16(text[i..], out var rune, out var consumed);
            var end = i + consumed;
            switch (Classify(rune))
            {
                case CharKind.Space:
                    if (!Flush(ref word, ref sink))
                    {
                        return;
                    }

                    break;
                case CharKind.Cjk:
                    if (!Flush(ref word, ref sink))
                    {
                        return;
                    }

                    AppendMapped(ref word, rune, i, end, splitPunctuation: false, ref sink);
                    if (!Flush(ref word, ref sink))
                    {
                        return;
                    }

                    break;
                case CharKind.Word:
                    if (!AppendMapped(ref word, rune, i, end, splitPunctuation: true, ref sink))
                    {
                        return;
                    }

                    break;
            }

            i = end;
        }

        Flush(ref word, ref sink);
    }

    // Punctuation is judged after normalisation, as HuggingFace's pre-tokenizer runs on normalised text:
    // e.g. U+1FEF GREEK VARIA (a symbol) decomposes to '`', which is punctuation.
    private bool AppendMapped<TSink>(ref WordBuffer word, Rune rune, int start, int end, bool splitPunctuation, ref TSink sink)
        where TSink : struct, ITokenSink
    {
        ReadOnlySpan<char> mapped = _lowerCase ? MapUncased(rune) : rune.ToString();
        var j = 0;
        while (j < mapped.Length)
        {
            Rune.DecodeFromUtf16(mapped[j..], out var m, out var n);
            var isPunctuation = splitPunctuation && IsPunctuation(m);
            if (isPunctuation && !Flush(ref word, ref sink))
            {
                return false;
            }

            for (var k = 0; k < n; k++)
            {
                word.Append(mapped[j + k], start, end);
            }

            word.EndRune();
            if (isPunctuation && !Flush(ref word, ref sink))
            {
                return false;
            }

            j += n;
        }

        return true;
    }

    private bool TryMatchSpecial(ReadOnlySpan<char> text, out int id, out int length)
    {
        foreach (var (token, tokenId) in _specialTokens)
        {
            if (text.StartsWith(token, StringComparison.Ordinal))
            {
                id = tokenId;
                length = token.Length;
                return true;
            }
        }

        id = 0;
        length = 0;
        return false;
    }

    // Emits the buffered word as word pieces (or one [UNK]) and clears the buffer; false when the sink is full.
    private bool Flush<TSink>(ref WordBuffer word, ref TSink sink)
        where TSink : struct, ITokenSink
    {
        if (word.Length == 0 && !word.Overflow)
        {
            return true;
        }

        try
        {
            if (word.Overflow)
            {
                return sink.Add(UnkId, word.FirstStart, word.LastEnd);
            }

            var chars = word.Chars[..word.Length];
            var pieces = 0;
            var start = 0;
            while (start < chars.Length)
            {
                var lookup = start == 0 ? _wordStarts : _continuations;
                var end = Math.Min(chars.Length, start + (start == 0 ? _maxWordStartLength : _maxContinuationLength));
                var id = -1;
                for (; end > start; end--)
                {
                    if (lookup.TryGetValue(chars[start..end], out id))
                    {
                        break;
                    }
                }

                if (end == start)
                {
                    // BERT marks the whole word unknown when any part of it cannot be matched.
                    return sink.Add(UnkId, word.FirstStart, word.LastEnd);
                }

                word.PieceIds[pieces] = id;
                word.PieceStarts[pieces] = start;
                pieces++;
                start = end;
            }

            for (var p = 0; p < pieces; p++)
            {
                var pieceEnd = p + 1 < pieces ? word.PieceStarts[p + 1] : chars.Length;
                if (!sink.Add(word.PieceIds[p], word.Starts[word.PieceStarts[p]], word.Ends[pieceEnd - 1]))
                {
                    return false;
                }
            }

            return true;
        }
        finally
        {
            word.Clear();
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsPunctuation(Rune rune)
    {
        if (rune.Value < 128)
        {
            return AsciiKinds[rune.Value] == CharKind.Punctuation;
        }

        var category = Rune.GetUnicodeCategory(rune);
        return category is >= UnicodeCategory.ConnectorPunctuation and <= UnicodeCategory.OtherPunctuation;
    }

    private static CharKind Classify(Rune rune)
    {
        var cp = rune.Value;
        if (cp == 0xFFFD)
        {
            return CharKind.Removed;
        }

        if (IsCjkIdeograph(cp))
        {
            return CharKind.Cjk;
        }

        return Rune.GetUnicodeCategory(rune) switch
        {
            UnicodeCategory.SpaceSeparator or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator => CharKind.Space,

            // HuggingFace's fast normaliser treats every "Other" category as control and drops it.
            UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.OtherNotAssigned
                or UnicodeCategory.PrivateUse or UnicodeCategory.Surrogate => CharKind.Removed,
            _ => CharKind.Word,
        };
    }

    // The CJK Unified Ideographs blocks BERT isolates; kana and hangul are deliberately not included.
    private static bool IsCjkIdeograph(int cp) =>
        cp is (>= 0x4E00 and <= 0x9FFF)
            or (>= 0x3400 and <= 0x4DBF)
            or (>= 0x20000 and <= 0x2A6DF)
            or (>= 0x2A700 and <= 0x2B73F)
            or (>= 0x2B740 and <= 0x2B81F)
            or (>= 0x2B820 and <= 0x2CEAF)
            or (>= 0xF900 and <= 0xFAFF)
            or (>= 0x2F800 and <= 0x2FA1F);

    private static string MapUncased(Rune rune)
    {
        if (rune.IsBmp)
        {
            return UncasedBmpMap[rune.Value] ??= ComputeUncased(rune);
        }

        return ComputeUncased(rune);
    }

    // Strip accents, then lower-case, in that order like HuggingFace's BertNormalizer; the order matters for
    // U+0130 (İ), whose full lower-case mapping would otherwise leave a combining dot.
    private static string ComputeUncased(Rune rune)
    {
        var decomposed = rune.ToString().Normalize(NormalizationForm.FormD);
        var builder = new StringBuilder(decomposed.Length);
        foreach (var part in decomposed.EnumerateRunes())
        {
            if (Rune.GetUnicodeCategory(part) != UnicodeCategory.NonSpacingMark)
            {
                builder.Append(Rune.ToLowerInvariant(part).ToString());
            }
        }

        return builder.ToString();
    }

    private static CharKind[] BuildAsciiKinds()
    {
        var kinds = new CharKind[128];
        for (var c = 0; c < 128; c++)
        {
            kinds[c] = c switch
            {
                '\t' or '\n' or '\r' or ' ' => CharKind.Space,
                < 32 or 127 => CharKind.Removed,
                (>= 33 and <= 47) or (>= 58 and <= 64) or (>= 91 and <= 96) or (>= 123 and <= 126) => CharKind.Punctuation,
                _ => CharKind.Word,
            };
        }

        return kinds;
    }

    private interface ITokenSink
    {
        // Returns false when no more tokens are wanted.
        bool Add(int id, int start, int end);
    }

    private struct CountSink : ITokenSink
    {
        public int Count;

        public bool Add(int id, int start, int end)
        {
            Count++;
            return true;
        }
    }

    // Writes pieces after the [CLS] slot of the destination.
    private struct ArraySink(int[] destination, int offset, int capacity) : ITokenSink
    {
        private readonly int[] _destination = destination;
        private readonly int _offset = offset;
        private readonly int _capacity = capacity;

        public int Count;

        public bool Truncated;

        public bool Add(int id, int start, int end)
        {
            if (Count == _capacity)
            {
                Truncated = true;
                return false;
            }

            _destination[_offset + ++Count] = id;
            return true;
        }
    }

    private readonly struct OffsetSink(List<(int Id, int Start, int End)> pieces) : ITokenSink
    {
        public List<(int Id, int Start, int End)> Pieces { get; } = pieces;

        public bool Add(int id, int start, int end)
        {
            Pieces.Add((id, start, end));
            return true;
        }
    }

    // One pre-tokenized word in normalised form, with the original-text span of each normalised char.
    private ref struct WordBuffer(Span<char> chars, Span<int> starts, Span<int> ends, Span<int> pieceIds, Span<int> pieceStarts)
    {
        public readonly Span<char> Chars = chars;
        public readonly Span<int> Starts = starts;
        public readonly Span<int> Ends = ends;
        public readonly Span<int> PieceIds = pieceIds;
        public readonly Span<int> PieceStarts = pieceStarts;
        public int Length;
        public int Runes;
        public bool Overflow;
        public int FirstStart;
        public int LastEnd;

        public void Append(char c, int start, int end)
        {
            if (Length == 0 && !Overflow)
            {
                FirstStart = start;
            }

            LastEnd = end;
            if (Overflow)
            {
                return;
            }

            if (Length == Chars.Length)
            {
                Overflow = true;
                return;
            }

            Chars[Length] = c;
            Starts[Length] = start;
            Ends[Length] = end;
            Length++;
        }

        public void EndRune()
        {
            if (++Runes > MaxCharsPerWord)
            {
                Overflow = true;
            }
        }

        public void Clear()
        {
            Length = 0;
            Runes = 0;
            Overflow = false;
        }
    }
}
