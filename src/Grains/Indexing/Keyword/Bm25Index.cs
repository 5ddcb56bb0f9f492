namespace RagOrleans.Grains.Indexing.Keyword;

/// <summary>
/// In-memory BM25 inverted index over documents with caller-assigned dense integer ids (the same id space as the
/// vector index, so filters and rank fusion share ids).
/// </summary>
/// <remarks>
/// <para>Layout: the term dictionary maps each term to a dense term id; each term owns two parallel growable arrays,
/// document ids (<c>int[]</c>) and term frequencies (<c>ushort[]</c>, saturating at 65,535, far beyond where BM25's
/// k1 saturation stops caring); document lengths and states are flat arrays indexed by document id. There is no
/// object per posting or per document.</para>
/// <para>Deletes are tombstones: <see cref="Remove"/> is O(1), searches skip removed documents and compute their
/// document frequencies over live documents only, and the postings are compacted in one pass once removed postings
/// reach a quarter of the total. A removed id can never be added again, so it can never be returned again.</para>
/// <para>Scoring is Robertson's BM25 with Lucene's IDF, summed over query terms (a term repeated in the query counts
/// repeatedly): <c>idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))</c> with
/// <c>idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))</c>, where N, df and avgdl cover live documents only and a
/// document's length is its number of indexed terms (stop words excluded).</para>
/// <para>Threading: any number of concurrent <see cref="Search"/> calls are safe with each other; <see cref="Add"/>,
/// <see cref="Remove"/> and <see cref="ReadFrom"/>'s result need a single writer that never runs concurrently with
/// searches; the caller guarantees that.</para>
/// </remarks>
public sealed partial class Bm25Index
{
    private const byte Absent = 0;
    private const byte Live = 1;
    private const byte Removed = 2;

    // Compaction rewrites every posting list, so it waits until it can drop a sizeable share of them.
    private const int CompactionDivisor = 4;
    private const int MinDeadPostingsForCompaction = 1024;

    private readonly Bm25Options _options;
    private readonly TextAnalyzer _analyzer;
    private readonly Dictionary<string, int> _termIds;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _termLookup;

    private string[] _terms;
    private Postings[] _postings;
    private int _termCount;

    private byte[] _docState;
    private int[] _docLength;
    private int[] _docUniqueTerms;
    private int _idSpace;
    private int _live;
    private long _totalLength;
    private long _postingCount;
    private long _deadPostings;

    // Term ids of the document being added; reused across Add calls (single writer).
    private int[] _addScratch = new int[256];

    /// <summary>Creates an empty index.</summary>
    /// <param name="options">BM25 parameters; defaults when null.</param>
    /// <param name="analyzerOptions">Text analysis for documents and queries; defaults when null.</param>
    public Bm25Index(Bm25Options? options = null, AnalyzerOptions? analyzerOptions = null)
        : this(options, analyzerOptions, termCapacity: 1024, idCapacity: 1024)
    {
    }

    private Bm25Index(Bm25Options? options, AnalyzerOptions? analyzerOptions, int termCapacity, int idCapacity)
    {
        _options = options ?? new Bm25Options();
        _options.Validate();
        _analyzer = new TextAnalyzer(analyzerOptions);
        _termIds = new Dictionary<string, int>(termCapacity, StringComparer.Ordinal);
        _termLookup = _termIds.GetAlternateLookup<ReadOnlySpan<char>>();
        _terms = new string[Math.Max(termCapacity, 16)];
        _postings = new Postings[_terms.Length];
        _docState = new byte[Math.Max(idCapacity, 16)];
        _docLength = new int[_docState.Length];
        _docUniqueTerms = new int[_docState.Length];
    }

    /// <summary>BM25 parameters in force.</summary>
    public Bm25Options Options => _options;

    /// <summary>The analyzer applied to documents and queries.</summary>
    public TextAnalyzer Analyzer => _analyzer;

    /// <summary>Number of live (added and not removed) documents.</summary>
    public int Count => _live;

    /// <summary>One more than the largest id ever added (live or removed); the size of the id space the index covers.</summary>
    public int TotalCount => _idSpace;

    /// <summary>Number of distinct terms in the dictionary (terms whose documents were all removed included).</summary>
    public int TermCount => _termCount;

    /// <summary>Average length, in terms, of the live documents (0 when there are none).</summary>
    public double AverageDocumentLength => _live == 0 ? 0 : (double)_totalLength / _live;

    /// <summary>Approximate heap bytes held by the index (allocated capacity, not just the used part).</summary>
    public long EstimatedMemoryBytes
    {
        get
        {
            const int ArrayHeader = 24;
            const int StringHeader = 22;
            long bytes = 3L * ArrayHeader + _docState.Length + (_docLength.Length * 4L) + (_docUniqueTerms.Length * 4L);
            bytes += ArrayHeader + (_terms.Length * 8L) + ArrayHeader + (_postings.Length * (long)PostingsSize);

            // Dictionary<string,int>: a 24-byte entry plus a 4-byte bucket per slot, with ~1/3 slack from doubling.
            bytes += (2L * ArrayHeader) + (_termIds.Count * 28L * 4 / 3);
            for (var t = 0; t < _termCount; t++)
            {
                ref readonly var p = ref _postings[t];
                bytes += StringHeader + (2L * _terms[t].Length);
                bytes += (2L * ArrayHeader) + (p.Ids.Length * 4L) + (p.Tfs.Length * 2L);
            }

            return bytes + (_addScratch.Length * 4L);
        }
    }

    /// <summary>Whether <paramref name="id"/> is a live document.</summary>
    public bool Contains(int id) => (uint)id < (uint)_idSpace && _docState[id] == Live;

    /// <summary>Whether <paramref name="id"/> was added and later removed.</summary>
    public bool IsRemoved(int id) => (uint)id < (uint)_idSpace && _docState[id] == Removed;

    /// <summary>Analyses <paramref name="text"/> and indexes it under <paramref name="id"/>. Single writer only.</summary>
    /// <param name="id">
    /// A non-negative id that has never been added before (ids are never reused, even after removal). Ids should be
    /// dense: per-document arrays are sized by the largest id.
    /// </param>
    /// <param name="text">The document text; an empty text indexes an empty document that no query matches.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="id"/> is negative or beyond the largest array size.</exception>
    /// <exception cref="InvalidOperationException"><paramref name="id"/> is live or was removed.</exception>
    public void Add(int id, ReadOnlySpan<char> text)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(id);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(id, Array.MaxLength);
        if (id < _idSpace && _docState[id] != Absent)
        {
            throw new InvalidOperationException(_docState[id] == Live
                ? $"Document {id} is already in the keyword index."
                : $"Document {id} was removed from the keyword index; removed ids are never reused.");
        }

        var sink = new AddSink(this);
        _analyzer.Analyze(text, ref sink);
        var termIds = _addScratch.AsSpan(0, sink.Count);

        EnsureIdCapacity(id + 1);
        termIds.Sort();
        var unique = 0;
        for (var i = 0; i < termIds.Length;)
        {
            var term = termIds[i];
            var run = 1;
            while (i + run < termIds.Length && termIds[i + run] == term)
            {
                run++;
            }

            _postings[term].Append(id, (ushort)Math.Min(run, ushort.MaxValue));
            unique++;
            i += run;
        }

        _docState[id] = Live;
        _docLength[id] = termIds.Length;
        _docUniqueTerms[id] = unique;
        _idSpace = Math.Max(_idSpace, id + 1);
        _live++;
        _totalLength += termIds.Length;
        _postingCount += unique;
    }

    /// <summary>Removes a document; it is never returned by a search again and its id cannot be added again. Single writer only.</summary>
    /// <returns><c>false</c> when the id is not a live document.</returns>
    public bool Remove(int id)
    {
        if (!Contains(id))
        {
            return false;
        }

        _docState[id] = Removed;
        _live--;
        _totalLength -= _docLength[id];
        _deadPostings += _docUniqueTerms[id];
        if (_deadPostings >= MinDeadPostingsForCompaction && _deadPostings * CompactionDivisor >= _postingCount)
        {
            Compact();
        }

        return true;
    }

    /// <summary>Drops the postings of removed documents now rather than when enough have accumulated. Single writer only.</summary>
    public void Compact()
    {
        if (_deadPostings == 0)
        {
            return;
        }

        for (var t = 0; t < _termCount; t++)
        {
            _postings[t].RemoveWhereNotLive(_docState);
        }

        _postingCount -= _deadPostings;
        _deadPostings = 0;
    }

    private int InternTerm(ReadOnlySpan<char> term)
    {
        if (_termLookup.TryGetValue(term, out var termId))
        {
            return termId;
        }

        termId = _termCount;
        if (termId == _terms.Length)
        {
            var capacity = _terms.Length * 2;
            Array.Resize(ref _terms, capacity);
            Array.Resize(ref _postings, capacity);
        }

        var text = term.ToString();
        _terms[termId] = text;
        _postings[termId] = Postings.Create();
        _termIds.Add(text, termId);
        _termCount++;
        return termId;
    }

    private void EnsureIdCapacity(int size)
    {
        if (size <= _docState.Length)
        {
            return;
        }

        var capacity = (int)Math.Min(Array.MaxLength, Math.Max(size, 2L * _docState.Length));
        Array.Resize(ref _docState, capacity);
        Array.Resize(ref _docLength, capacity);
        Array.Resize(ref _docUniqueTerms, capacity);
    }

    private static readonly int PostingsSize = System.Runtime.CompilerServices.Unsafe.SizeOf<Postings>();

    /// <summary>One term's posting list: parallel document-id and term-frequency arrays, appended in insertion order.</summary>
    private struct Postings
    {
        public int[] Ids;
        public ushort[] Tfs;
        public int Count;

        // Most terms occur in one or two documents, so lists start tiny and double.
        public static Postings Create() => new() { Ids = new int[2], Tfs = new ushort[2] };

        public static Postings FromArrays(int[] ids, ushort[] tfs) => new() { Ids = ids, Tfs = tfs, Count = ids.Length };

        public void Append(int id, ushort tf)
        {
            if (Count == Ids.Length)
            {
                var capacity = Ids.Length * 2;
                Array.Resize(ref Ids, capacity);
                Array.Resize(ref Tfs, capacity);
            }

            Ids[Count] = id;
            Tfs[Count] = tf;
            Count++;
        }

        public void RemoveWhereNotLive(byte[] state)
        {
            var kept = 0;
            for (var i = 0; i < Count; i++)
            {
                var id = Ids[i];
                if (state[id] == Live)
                {
                    Ids[kept] = id;
                    Tfs[kept] = Tfs[i];
                    kept++;
                }
            }

            Count = kept;
            if (kept <= Ids.Length / 4)
            {
                // Give memory back when a list mostly emptied out; the next Append doubles again if needed.
                var capacity = Math.Max(2, kept);
                Array.Resize(ref Ids, capacity);
                Array.Resize(ref Tfs, capacity);
            }
        }

        public readonly int CountLive(byte[] state)
        {
            var live = 0;
            for (var i = 0; i < Count; i++)
            {
                if (state[Ids[i]] == Live)
                {
                    live++;
                }
            }

            return live;
        }
    }

    /// <summary>Collects the term ids of a document being added, creating dictionary entries for new terms.</summary>
    private struct AddSink(Bm25Index index) : ITermSink
    {
        public int Count { get; private set; }

        public void Add(ReadOnlySpan<char> term, int position)
        {
            var termId = index.InternTerm(term);
            if (Count == index._addScratch.Length)
            {
                Array.Resize(ref index._addScratch, index._addScratch.Length * 2);
            }

            index._addScratch[Count++] = termId;
        }
    }
}
