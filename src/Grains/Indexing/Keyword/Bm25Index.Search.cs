using System.Buffers;
using System.Runtime.InteropServices;

namespace RagOrleans.Grains.Indexing.Keyword;

public sealed partial class Bm25Index
{
    // Below this ratio of postings to id space a dictionary accumulator beats clearing and scanning a dense array.
    private const int DenseAccumulatorRatio = 16;

    // Marks a document the filter rejected, so the filter runs once per document rather than once per posting.
    private const float Rejected = -1f;

    /// <summary>Returns the <paramref name="k"/> live documents with the highest BM25 score for <paramref name="query"/>.</summary>
    /// <param name="query">Query text, analysed like documents; terms absent from the index are ignored.</param>
    /// <param name="k">Maximum number of results.</param>
    /// <param name="filter">
    /// Optional predicate over ids; only documents it accepts are scored, so up to <paramref name="k"/> accepted
    /// matches are returned however selective it is. Called at most once per matching document.
    /// </param>
    /// <param name="parameters">
    /// k1 and b for this query instead of the index's own; the postings keep raw term frequencies and lengths, so
    /// both parameters act at query time and a collection's settings need not be known when the index is built.
    /// </param>
    /// <returns>Hits sorted by descending score, ties by ascending id; empty when nothing matches.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="k"/> is less than 1, or <paramref name="parameters"/> is out of range.</exception>
    public IReadOnlyList<KeywordHit> Search(ReadOnlySpan<char> query, int k, Func<int, bool>? filter = null, Bm25Options? parameters = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        parameters?.Validate();
        var options = parameters ?? _options;
        if (_live == 0)
        {
            return [];
        }

        var sink = new QuerySink(this);
        _analyzer.Analyze(query, ref sink);
        var terms = sink.Terms;
        if (terms is null)
        {
            return [];
        }

        // A term repeated in the query adds its contribution again (as Lucene's duplicated SHOULD clauses do).
        terms.Sort();
        var weights = new List<(int Term, float Weight)>(terms.Count);
        var n = (double)_live;
        long postings = 0;
        for (var i = 0; i < terms.Count;)
        {
            var term = terms[i];
            var repeats = 1;
            while (i + repeats < terms.Count && terms[i + repeats] == term)
            {
                repeats++;
            }

            i += repeats;
            ref readonly var list = ref _postings[term];
            var df = _deadPostings == 0 ? list.Count : CountLive(list);
            if (df == 0)
            {
                continue;
            }

            var idf = Math.Log(1.0 + ((n - df + 0.5) / (df + 0.5)));
            weights.Add((term, (float)(repeats * idf * (options.K1 + 1.0))));
            postings += list.Count;
        }

        if (weights.Count == 0)
        {
            return [];
        }

        var avgdl = (double)_totalLength / _live;
        var norm = new LengthNorm(options.K1, options.B, avgdl);
        return postings * DenseAccumulatorRatio >= _idSpace
            ? SearchDense(weights, norm, k, filter)
            : SearchSparse(weights, norm, k, filter);
    }

    private KeywordHit[] SearchDense(List<(int Term, float Weight)> weights, LengthNorm norm, int k, Func<int, bool>? filter)
    {
        var scores = ArrayPool<float>.Shared.Rent(_idSpace);
        try
        {
            var acc = scores.AsSpan(0, _idSpace);
            acc.Clear();
            var checkState = _deadPostings != 0;
            foreach (var (term, weight) in weights)
            {
                ref readonly var list = ref _postings[term];
                var ids = IdsOf(list);
                var tfs = TfsOf(list);
                for (var i = 0; i < ids.Length; i++)
                {
                    var id = ids[i];
                    ref var score = ref acc[id];
                    if (score == 0f)
                    {
                        if ((checkState && _docState[id] != Live) || (filter is not null && !filter(id)))
                        {
                            score = Rejected;
                            continue;
                        }
                    }
                    else if (score < 0f)
                    {
                        continue;
                    }

                    score += norm.Score(weight, tfs[i], _docLength[id]);
                }
            }

            var top = new TopK(k);
            for (var id = 0; id < acc.Length; id++)
            {
                if (acc[id] > 0f)
                {
                    top.Offer(id, acc[id]);
                }
            }

            return top.ToSortedArray();
        }
        finally
        {
            ArrayPool<float>.Shared.Return(scores);
        }
    }

    private KeywordHit[] SearchSparse(List<(int Term, float Weight)> weights, LengthNorm norm, int k, Func<int, bool>? filter)
    {
        var acc = new Dictionary<int, float>();
        var checkState = _deadPostings != 0;
        foreach (var (term, weight) in weights)
        {
            ref readonly var list = ref _postings[term];
            var ids = IdsOf(list);
            var tfs = TfsOf(list);
            for (var i = 0; i < ids.Length; i++)
            {
                var id = ids[i];
                ref var score = ref CollectionsMarshal.GetValueRefOrAddDefault(acc, id, out var exists);
                if (!exists)
                {
                    if ((checkState && _docState[id] != Live) || (filter is not null && !filter(id)))
                    {
                        score = Rejected;
                        continue;
                    }
                }
                else if (score < 0f)
                {
                    continue;
                }

                score += norm.Score(weight, tfs[i], _docLength[id]);
            }
        }

        var top = new TopK(k);
        foreach (var (id, score) in acc)
        {
            if (score > 0f)
            {
                top.Offer(id, score);
            }
        }

        return top.ToSortedArray();
    }

    /// <summary>The per-posting part of BM25, with the length normalisation folded into two constants per query.</summary>
    private readonly struct LengthNorm(float k1, float b, double avgdl)
    {
        // k1 * (1 - b + b * dl / avgdl) = c0 + c1 * dl
        private readonly float _c0 = k1 * (1f - b);
        private readonly float _c1 = avgdl > 0 ? (float)(k1 * b / avgdl) : 0f;

        public float Score(float weight, ushort tf, int length) => weight * tf / (tf + _c0 + (_c1 * length));
    }

    /// <summary>Resolves query terms to term ids without allocating strings; unknown terms are skipped.</summary>
    private struct QuerySink(Bm25Index index) : ITermSink
    {
        public List<int>? Terms { get; private set; }

        public void Add(ReadOnlySpan<char> term, int position)
        {
            if (index.FindTerm(term) is var termId and >= 0)
            {
                (Terms ??= []).Add(termId);
            }
        }
    }

    /// <summary>Bounded min-heap keeping the k best (score desc, id asc) hits seen so far.</summary>
    private struct TopK(int k)
    {
        // Grows towards k by doubling, so a huge k with few matches allocates only what the matches need.
        private KeywordHit[] _items = new KeywordHit[Math.Min(k, 64)];
        private int _count;

        public void Offer(int id, float score)
        {
            var hit = new KeywordHit(id, score);
            if (_count < k)
            {
                if (_count == _items.Length)
                {
                    Array.Resize(ref _items, (int)Math.Min(k, _items.Length * 2L));
                }

                _items[_count] = hit;
                SiftUp(_count++);
            }
            else if (Worse(_items[0], hit))
            {
                _items[0] = hit;
                SiftDown(0);
            }
        }

        public readonly KeywordHit[] ToSortedArray()
        {
            var result = _items.AsSpan(0, _count).ToArray();
            Array.Sort(result, static (x, y) => x.Score != y.Score ? y.Score.CompareTo(x.Score) : x.Id.CompareTo(y.Id));
            return result;
        }

        /// <summary>Whether <paramref name="a"/> ranks below <paramref name="b"/>.</summary>
        private static bool Worse(KeywordHit a, KeywordHit b) => a.Score < b.Score || (a.Score == b.Score && a.Id > b.Id);

        private readonly void SiftUp(int i)
        {
            var items = _items;
            while (i > 0)
            {
                var parent = (i - 1) / 2;
                if (!Worse(items[i], items[parent]))
                {
                    break;
                }

                (items[i], items[parent]) = (items[parent], items[i]);
                i = parent;
            }
        }

        private readonly void SiftDown(int i)
        {
            var items = _items;
            while (true)
            {
                var left = (2 * i) + 1;
                if (left >= _count)
                {
                    break;
                }

                var worst = left + 1 < _count && Worse(items[left + 1], items[left]) ? left + 1 : left;
                if (!Worse(items[worst], items[i]))
                {
                    break;
                }

                (items[i], items[worst]) = (items[worst], items[i]);
                i = worst;
            }
        }
    }
}
