namespace RagOrleans.Grains.Indexing;

public sealed partial class HnswIndex
{
    // Cost model, in units of one sequential (exact-scan) distance, deciding between a filtered graph walk and an
    // exact scan of the matching items. A filter keeping a fraction s of the items makes the walk expand roughly
    // 1/s times as many nodes before ef matching ones are found, and a graph distance is a random memory access
    // (several times dearer than a streamed one). Calibrated on 20k x 384 so the switch sits where the measured
    // QPS of both paths cross (around 20% selectivity at ef 64).
    private const double WalkCostPerEf = 20.0;

    // A delegate call plus a tombstone check costs a small fraction of a 128..384-d distance.
    private const double FilterCallCost = 0.1;
    private const double TombstoneCheckCost = 0.01;
    private const int SelectivitySamples = 256;

    /// <summary>
    /// Approximate k nearest live neighbours of <paramref name="query"/>, best first.
    /// </summary>
    /// <param name="query">Exactly <see cref="Dimensions"/> floats (L2-normalised for <see cref="VectorMetric.Cosine"/>).</param>
    /// <param name="k">Maximum number of results.</param>
    /// <param name="ef">Size of the dynamic candidate list; <see cref="HnswOptions.EfSearch"/> when &lt;= 0; raised to k.</param>
    /// <param name="filter">
    /// Optional predicate on ids, applied during the graph walk: rejected and deleted nodes are still traversed
    /// for navigation but never returned, so a selective filter still yields min(k, matching) results. When the
    /// filter is estimated to keep so few items that a walk would cost more than scanning them, the matching
    /// items are scanned exactly instead. The filter must be thread-safe if searches run concurrently.
    /// </param>
    public IReadOnlyList<VectorHit> Search(ReadOnlySpan<float> query, int k, int ef = 0, Func<int, bool>? filter = null)
    {
        ValidateQuery(query);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        int max = Math.Min(k, _live);
        if (max == 0)
        {
            return Array.Empty<VectorHit>();
        }

        var buffer = new VectorHit[max];
        int written = Search(query, max, buffer, ef, filter);
        if (written < max)
        {
            Array.Resize(ref buffer, written);
        }

        return buffer;
    }

    /// <summary>
    /// Allocation-free variant of <see cref="Search(ReadOnlySpan{float}, int, int, Func{int, bool}?)"/>: writes at most
    /// min(<paramref name="k"/>, <paramref name="destination"/>.Length) hits, best first.
    /// </summary>
    /// <returns>The number of hits written.</returns>
    public int Search(ReadOnlySpan<float> query, int k, Span<VectorHit> destination, int ef = 0, Func<int, bool>? filter = null)
    {
        ValidateQuery(query);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        k = Math.Min(Math.Min(k, destination.Length), _live);
        if (k == 0)
        {
            return 0;
        }

        if (UsesExactSearch)
        {
            return ExactSearch(query, k, filter, destination);
        }

        ef = Math.Max(ef <= 0 ? _options.EfSearch : ef, k);
        return _metric == VectorMetric.Cosine
            ? GraphSearch<CosineKernel>(query, k, ef, filter, destination, allowExactFallback: true)
            : GraphSearch<L2Kernel>(query, k, ef, filter, destination, allowExactFallback: true);
    }

    /// <summary>
    /// Small-tenant tier: below <see cref="HnswOptions.ExactSearchThreshold"/> live items a scan is faster than the
    /// walk and exact, so searches take it. Re-evaluated on every search, so an index crosses back and forth as it
    /// grows and shrinks. The graph is built when the index first reaches the threshold (see
    /// <see cref="GraphDeferred"/>) and maintained from then on.
    /// </summary>
    internal bool UsesExactSearch => _live < _options.ExactSearchThreshold || _entryPoint < 0;

    /// <summary>Exact k nearest live neighbours by a full scan (ties broken by lower id), best first.</summary>
    /// <param name="query">Exactly <see cref="Dimensions"/> floats.</param>
    /// <param name="k">Maximum number of results.</param>
    /// <param name="filter">Optional predicate on ids; only matching live items are returned.</param>
    public IReadOnlyList<VectorHit> SearchExact(ReadOnlySpan<float> query, int k, Func<int, bool>? filter = null)
    {
        ValidateQuery(query);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        int max = Math.Min(k, _live);
        if (max == 0)
        {
            return Array.Empty<VectorHit>();
        }

        var buffer = new VectorHit[max];
        int written = ExactSearch(query, max, filter, buffer);
        if (written < max)
        {
            Array.Resize(ref buffer, written);
        }

        return buffer;
    }

    /// <summary>Graph walk only, never the exact fallback: lets tests exercise filtering during the walk itself.</summary>
    internal int SearchGraphOnly(ReadOnlySpan<float> query, int k, Span<VectorHit> destination, int ef, Func<int, bool>? filter)
    {
        ValidateQuery(query);
        k = Math.Min(Math.Min(k, destination.Length), _live);
        if (k <= 0)
        {
            return 0;
        }

        ef = Math.Max(ef <= 0 ? _options.EfSearch : ef, k);
        return _metric == VectorMetric.Cosine
            ? GraphSearch<CosineKernel>(query, k, ef, filter, destination, allowExactFallback: false)
            : GraphSearch<L2Kernel>(query, k, ef, filter, destination, allowExactFallback: false);
    }

    private void ValidateQuery(ReadOnlySpan<float> query)
    {
        if (query.Length != _dims)
        {
            throw new ArgumentException($"Expected a query of {_dims} dimensions, got {query.Length}.", nameof(query));
        }
    }

    private int ExactSearch(ReadOnlySpan<float> query, int k, Func<int, bool>? filter, Span<VectorHit> destination)
    {
        var scratch = HnswSearchScratch.Rent(0);
        try
        {
            return _metric == VectorMetric.Cosine
                ? ExactScan<CosineKernel>(query, k, filter, scratch, destination)
                : ExactScan<L2Kernel>(query, k, filter, scratch, destination);
        }
        finally
        {
            scratch.Return();
        }
    }

    private unsafe int ExactScan<TDist>(ReadOnlySpan<float> query, int k, Func<int, bool>? filter, HnswSearchScratch s, Span<VectorHit> destination)
        where TDist : struct, IDistanceKernel
    {
        float* vectors = FloatBase;
        fixed (float* q = query)
        fixed (byte* deleted = _deleted)
        {
            return filter is null
                ? ExactScanCore<TDist, AllowLive>(q, vectors, k, new AllowLive(deleted), s, destination)
                : ExactScanCore<TDist, AllowLiveMatching>(q, vectors, k, new AllowLiveMatching(deleted, filter), s, destination);
        }
    }

    private unsafe int ExactScanCore<TDist, TFilter>(float* q, float* vectors, int k, TFilter filter, HnswSearchScratch s, Span<VectorHit> destination)
        where TDist : struct, IDistanceKernel
        where TFilter : struct, INodeFilter
    {
        s.EnsureResultCapacity(k + 1);
        s.ResultCount = 0;
        int dims = _dims;
        int count = _count;
        for (int id = 0; id < count; id++)
        {
            if (!filter.Allows(id))
            {
                continue;
            }

            float d = TDist.Distance(q, vectors + ((nint)id * dims), dims);
            if (s.ResultCount < k)
            {
                s.PushResultOrdered(d, id);
            }
            else if (d < s.Results[0].Distance)
            {
                // Ids ascend, so an equal distance never displaces the current worst (which has a lower id).
                s.PopResultOrdered();
                s.PushResultOrdered(d, id);
            }
        }

        int written = s.ResultCount;
        for (int i = written - 1; i >= 0; i--)
        {
            var hit = s.PopResultOrdered();
            destination[i] = new VectorHit(hit.Id, hit.Distance);
        }

        return written;
    }

    private unsafe int GraphSearch<TDist>(ReadOnlySpan<float> query, int k, int ef, Func<int, bool>? filter, Span<VectorHit> destination, bool allowExactFallback)
        where TDist : struct, IDistanceKernel
    {
        if (_entryPoint < 0)
        {
            return ExactSearch(query, k, filter, destination);
        }

        bool restricted = filter is not null || _live < _count;
        int budget = int.MaxValue;
        if (restricted && allowExactFallback)
        {
            double selectivity = filter is null ? (double)_live / _count : EstimateSelectivity(filter);
            double walkCost = WalkCostPerEf * ef / selectivity;
            double exactCost = (selectivity * _count) + (_count * (filter is null ? TombstoneCheckCost : FilterCallCost));
            if (walkCost > exactCost)
            {
                return ExactSearch(query, k, filter, destination);
            }

            // A walk that overruns its estimate by this much is stuck in a sparse region: scanning is cheaper.
            budget = (int)Math.Min(int.MaxValue, Math.Max(4 * walkCost, exactCost));
        }

        var s = HnswSearchScratch.Rent(_count);
        try
        {
            s.EnsureResultCapacity(ef + 1);
            bool complete;
            float* vectors = FloatBase;
            fixed (float* q = query)
            fixed (int* links0 = _links0)
            fixed (int* upper = _upperLinks)
            fixed (int* upperOffset = _upperOffset)
            fixed (byte* deleted = _deleted)
            {
                var g = new Graph(vectors, links0, upper, upperOffset, _dims, _stride0, _strideUpper, _maxM0);
                if (_quantized)
                {
                    complete = !restricted
                        ? WalkQuantized<TDist, AllowAll>(g, q, query, ef, s, default, budget)
                        : filter is null
                            ? WalkQuantized<TDist, AllowLive>(g, q, query, ef, s, new AllowLive(deleted), budget)
                            : WalkQuantized<TDist, AllowLiveMatching>(g, q, query, ef, s, new AllowLiveMatching(deleted, filter), budget);
                }
                else
                {
                    int current = _entryPoint;
                    float currentDistance = TDist.Distance(q, g.Vector(current), _dims);
                    for (int level = _maxLevel; level > 0; level--)
                    {
                        GreedyClosest<TDist, NoLocks>(g, q, level, ref current, ref currentDistance, default);
                    }

                    complete = !restricted
                        ? SearchLayer<TDist, AllowAll, NoLocks>(g, q, current, currentDistance, ef, 0, s, default, budget, default)
                        : filter is null
                            ? SearchLayer<TDist, AllowLive, NoLocks>(g, q, current, currentDistance, ef, 0, s, new AllowLive(deleted), budget, default)
                            : SearchLayer<TDist, AllowLiveMatching, NoLocks>(g, q, current, currentDistance, ef, 0, s, new AllowLiveMatching(deleted, filter), budget, default);
                }

                if (allowExactFallback && (!complete || s.ResultCount < k))
                {
                    // Too few matches reachable (or the walk overran): only a scan can guarantee min(k, matching).
                    return ExactScan<TDist>(query, k, filter, s, destination);
                }
            }

            while (s.ResultCount > k)
            {
                s.PopResult();
            }

            int written = s.ResultCount;
            for (int i = written - 1; i >= 0; i--)
            {
                var hit = s.PopResult();
                destination[i] = new VectorHit(hit.Id, hit.Distance);
            }

            return written;
        }
        finally
        {
            s.Return();
        }
    }

    /// <summary>Fraction of all ids that are live and pass the filter, from an evenly strided sample.</summary>
    private double EstimateSelectivity(Func<int, bool> filter)
    {
        int samples = Math.Min(_count, SelectivitySamples);
        int matches = 0;
        for (int i = 0; i < samples; i++)
        {
            int id = (int)((long)i * _count / samples);
            if (_deleted[id] == 0 && filter(id))
            {
                matches++;
            }
        }

        // Half a match when none were seen: small but non-zero, so the cost model still prefers a scan.
        return Math.Max(matches, 0.5) / samples;
    }
}
