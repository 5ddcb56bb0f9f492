namespace RagOrleans.Grains.Indexing.Keyword;

/// <summary>
/// In-memory BM25 inverted index over documents with caller-assigned dense integer ids (the same id space as the
/// vector index, so filters and rank fusion share ids).
/// </summary>
/// <remarks>
/// <para>Layout: no object per term, posting or document, because a silo holds thousands of these. Terms are one
/// <c>char[]</c> with start offsets, found through an open-addressing table of term ids; each term's postings are a
/// slice of two shared arenas, document ids (<c>int[]</c>) and term frequencies (<c>ushort[]</c>, saturating at 65,535,
/// far beyond where BM25's k1 saturation stops caring). A slice that fills up moves to the arena's end with twice the
/// room, and the arenas are repacked once the holes left behind outweigh the postings; a loaded snapshot is packed
/// exactly. Document lengths and states are flat arrays indexed by document id.</para>
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

    // Term dictionary: term t is _termChars[_termStart[t] .. _termStart[t + 1]); _termHash caches its hash and
    // _buckets (a power of two, at most half full) holds term id + 1 per slot, 0 for empty, probed linearly.
    private char[] _termChars;
    private int[] _termStart;
    private int[] _termHash;
    private int[] _buckets;

    // Postings of term t: _postingIds/_postingTfs[_postings[t].Start ..][.. Count], room for Capacity.
    private Postings[] _postings;
    private int[] _postingIds;
    private ushort[] _postingTfs;
    private int _arenaUsed;
    private long _arenaHoles;
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

    private Bm25Index(Bm25Options? options, AnalyzerOptions? analyzerOptions, int termCapacity, int idCapacity,
        int termCharCapacity = -1, int postingCapacity = -1)
    {
        _options = options ?? new Bm25Options();
        _options.Validate();
        _analyzer = new TextAnalyzer(analyzerOptions);
        termCapacity = Math.Max(termCapacity, 1);
        _termChars = new char[termCharCapacity >= 0 ? termCharCapacity : termCapacity * 8];
        _termStart = new int[termCapacity + 1];
        _termHash = new int[termCapacity];
        _buckets = new int[BucketsFor(termCapacity)];
        _postings = new Postings[termCapacity];
        // Uninitialised (possibly a released shard's arenas): only slices below _arenaUsed are read, each written first.
        _postingIds = ShardArrayPool.Rent<int>(postingCapacity >= 0 ? postingCapacity : termCapacity * 2);
        _postingTfs = ShardArrayPool.Rent<ushort>(_postingIds.Length);
        _docState = new byte[Math.Max(idCapacity, 1)];
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

    /// <summary>
    /// Hands the posting arenas to <see cref="ShardArrayPool"/> for the next shard that loads. The index is empty
    /// afterwards (searches find nothing); its owner releases it when it is done with it, as a shard does on deactivation.
    /// </summary>
    internal void Release()
    {
        var (ids, tfs) = (_postingIds, _postingTfs);

        // Empty first, so nothing can reach the arenas through this index once another index owns them.
        _live = 0;
        _termCount = 0;
        _idSpace = 0;
        _totalLength = 0;
        _postingCount = 0;
        _deadPostings = 0;
        _arenaUsed = 0;
        _arenaHoles = 0;
        _buckets = new int[BucketsFor(0)];
        _postingIds = [];
        _postingTfs = [];
        ShardArrayPool.Return(ids);
        ShardArrayPool.Return(tfs);
    }

    /// <summary>Approximate heap bytes held by the index (allocated capacity, not just the used part).</summary>
    public long EstimatedMemoryBytes
    {
        get
        {
            // Every array is allocated once per index, not per term or posting, so their lengths are the whole story.
            const int ArrayHeader = 24;
            long bytes = (11L * ArrayHeader) + _docState.Length + (_docLength.Length * 4L) + (_docUniqueTerms.Length * 4L);
            bytes += (_termChars.Length * 2L) + (_termStart.Length * 4L) + (_termHash.Length * 4L) + (_buckets.Length * 4L);
            bytes += (_postings.Length * (long)PostingsSize) + (_postingIds.Length * 4L) + (_postingTfs.Length * 2L);
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

            Append(term, id, (ushort)Math.Min(run, ushort.MaxValue));
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
            ref var p = ref _postings[t];
            var ids = _postingIds.AsSpan(p.Start, p.Count);
            var tfs = _postingTfs.AsSpan(p.Start, p.Count);
            var kept = 0;
            for (var i = 0; i < ids.Length; i++)
            {
                if (_docState[ids[i]] == Live)
                {
                    ids[kept] = ids[i];
                    tfs[kept] = tfs[i];
                    kept++;
                }
            }

            _arenaHoles += p.Count - kept;
            p.Count = kept;
        }

        _postingCount -= _deadPostings;
        _deadPostings = 0;

        // Gives the removed postings' memory back; the next Append to a list moves it to the end again.
        Repack(extra: 0);
    }

    /// <summary>Term id of <paramref name="term"/>, or -1 when it is not in the dictionary.</summary>
    private int FindTerm(ReadOnlySpan<char> term) => FindTerm(term, string.GetHashCode(term));

    private int FindTerm(ReadOnlySpan<char> term, int hash)
    {
        var mask = _buckets.Length - 1;
        for (var slot = hash & mask; ; slot = (slot + 1) & mask)
        {
            var entry = _buckets[slot] - 1;
            if (entry < 0)
            {
                return -1;
            }

            if (_termHash[entry] == hash && _termChars.AsSpan(_termStart[entry], _termStart[entry + 1] - _termStart[entry]).SequenceEqual(term))
            {
                return entry;
            }
        }
    }

    private int InternTerm(ReadOnlySpan<char> term)
    {
        var hash = string.GetHashCode(term);
        var termId = FindTerm(term, hash);
        return termId >= 0 ? termId : AddTerm(term, hash, capacity: 0);
    }

    /// <summary>Appends a term the dictionary does not hold, with an empty posting list of <paramref name="capacity"/>.</summary>
    private int AddTerm(ReadOnlySpan<char> term, int hash, int capacity)
    {
        var termId = _termCount;
        if (termId == _postings.Length)
        {
            var grown = (int)Math.Min(Array.MaxLength - 1, _postings.Length * 2L);
            Array.Resize(ref _postings, grown);
            Array.Resize(ref _termHash, grown);
            Array.Resize(ref _termStart, grown + 1);
        }

        if ((termId + 1) * 2L > _buckets.Length)
        {
            Rehash(_buckets.Length * 2);
        }

        var start = _termStart[termId];
        if (start + term.Length > _termChars.Length)
        {
            Array.Resize(ref _termChars, (int)Math.Min(Array.MaxLength, Math.Max(start + term.Length, _termChars.Length * 2L)));
        }

        term.CopyTo(_termChars.AsSpan(start));
        _termStart[termId + 1] = start + term.Length;
        _termHash[termId] = hash;
        var mask = _buckets.Length - 1;
        var slot = hash & mask;
        while (_buckets[slot] != 0)
        {
            slot = (slot + 1) & mask;
        }

        _buckets[slot] = termId + 1;
        _postings[termId] = new Postings { Start = _arenaUsed, Count = 0, Capacity = capacity };
        _arenaUsed += capacity;
        _termCount++;
        return termId;
    }

    private void Rehash(int size)
    {
        _buckets = new int[size];
        var mask = size - 1;
        for (var t = 0; t < _termCount; t++)
        {
            var slot = _termHash[t] & mask;
            while (_buckets[slot] != 0)
            {
                slot = (slot + 1) & mask;
            }

            _buckets[slot] = t + 1;
        }
    }

    private static int BucketsFor(int terms) => (int)Math.Min(1 << 30, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(16, terms * 2)));

    private void Append(int termId, int id, ushort tf)
    {
        if (_postings[termId].Count == _postings[termId].Capacity)
        {
            Grow(termId);
        }

        ref var p = ref _postings[termId];
        _postingIds[p.Start + p.Count] = id;
        _postingTfs[p.Start + p.Count] = tf;
        p.Count++;
    }

    /// <summary>Doubles a full posting list: in place when it ends the arena, otherwise by moving it to the end.</summary>
    private void Grow(int termId)
    {
        var capacity = _postings[termId].Capacity;
        var grown = (int)Math.Min(Array.MaxLength, Math.Max(2, capacity * 2L));
        var atEnd = _postings[termId].Start + capacity == _arenaUsed;
        var required = (long)_arenaUsed + (atEnd ? grown - capacity : grown);
        if (required > _postingIds.Length)
        {
            if (_arenaHoles > 1024 && _arenaHoles * 2 > _arenaUsed)
            {
                // Mostly holes: packing frees more than growing would cost, and leaves this list at the end.
                Repack(extra: grown, extraFor: termId);
                return;
            }

            if (required > Array.MaxLength)
            {
                throw new InvalidOperationException("The keyword index holds more postings than an array can.");
            }

            var size = (int)Math.Min(Array.MaxLength, Math.Max(required, _postingIds.Length * 2L));
            Array.Resize(ref _postingIds, size);
            Array.Resize(ref _postingTfs, size);
        }

        ref var p = ref _postings[termId];
        if (atEnd)
        {
            _arenaUsed += grown - capacity;
        }
        else
        {
            _postingIds.AsSpan(p.Start, p.Count).CopyTo(_postingIds.AsSpan(_arenaUsed));
            _postingTfs.AsSpan(p.Start, p.Count).CopyTo(_postingTfs.AsSpan(_arenaUsed));
            _arenaHoles += capacity;
            p.Start = _arenaUsed;
            _arenaUsed += grown;
        }

        p.Capacity = grown;
    }

    /// <summary>
    /// Copies every list into new arenas with no room to spare, except <paramref name="extra"/> slots for
    /// <paramref name="extraFor"/>, placed last so it can keep growing in place.
    /// </summary>
    private void Repack(int extra, int extraFor = -1)
    {
        long live = 0;
        for (var t = 0; t < _termCount; t++)
        {
            live += t == extraFor ? 0 : _postings[t].Count;
        }

        var size = live + (extraFor >= 0 ? extra : 0);
        if (size > Array.MaxLength)
        {
            throw new InvalidOperationException("The keyword index holds more postings than an array can.");
        }

        var ids = new int[size];
        var tfs = new ushort[size];
        var used = 0;
        for (var t = 0; t <= _termCount; t++)
        {
            var term = t == _termCount ? extraFor : t;
            if (term < 0 || (t < _termCount && t == extraFor))
            {
                continue;
            }

            ref var p = ref _postings[term];
            _postingIds.AsSpan(p.Start, p.Count).CopyTo(ids.AsSpan(used));
            _postingTfs.AsSpan(p.Start, p.Count).CopyTo(tfs.AsSpan(used));
            p.Start = used;
            p.Capacity = term == extraFor ? extra : p.Count;
            used += p.Capacity;
        }

        (_postingIds, _postingTfs, _arenaUsed, _arenaHoles) = (ids, tfs, used, 0);
    }

    private ReadOnlySpan<int> IdsOf(in Postings p) => _postingIds.AsSpan(p.Start, p.Count);

    private ReadOnlySpan<ushort> TfsOf(in Postings p) => _postingTfs.AsSpan(p.Start, p.Count);

    private int CountLive(in Postings p)
    {
        var live = 0;
        foreach (var id in IdsOf(p))
        {
            if (_docState[id] == Live)
            {
                live++;
            }
        }

        return live;
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

    /// <summary>One term's posting list: a slice of the shared arenas, appended in insertion order.</summary>
    private struct Postings
    {
        public int Start;
        public int Count;
        public int Capacity;
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
