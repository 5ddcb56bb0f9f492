using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace RagOrleans.Grains.Indexing;

/// <summary>
/// In-memory HNSW approximate nearest-neighbour index (Malkov &amp; Yashunin, "Efficient and robust approximate
/// nearest neighbor search using Hierarchical Navigable Small World graphs").
/// </summary>
/// <remarks>
/// <para>Layout is chosen for cache behaviour and zero per-node objects: all vectors live in one row-major
/// <c>float[]</c>; layer-0 links live in one flat <c>int[]</c> with a fixed stride of <c>1 + 2M</c> (count, then ids);
/// the few nodes above layer 0 get a block of <c>level * (1 + M)</c> ints in a second flat pool.</para>
/// <para>Threading: any number of concurrent <see cref="Search(ReadOnlySpan{float}, int, int, Func{int, bool}?)"/>
/// calls are safe with each other. <see cref="Add"/> and <see cref="Delete"/> need a single writer that never
/// runs concurrently with searches; the caller guarantees that.</para>
/// </remarks>
public sealed partial class HnswIndex : IDisposable
{
    // Levels are stored as bytes; with M >= 2 a level above 30 has probability below 2^-30 per insert.
    private const int MaxLevelCap = 30;

    private readonly HnswOptions _options;
    private readonly int _dims;
    private readonly VectorMetric _metric;
    private readonly int _m;
    private readonly int _maxM0;
    private readonly int _stride0;
    private readonly int _strideUpper;
    private readonly double _levelMultiplier;

    private float[] _vectors;

    // Index of the first vector inside _vectors: chosen so vector 0 starts on a 64-byte boundary (the array lives
    // on the pinned object heap, so the address never changes); with dims a multiple of 16 every row is then
    // cache-line aligned and the 512-bit loads never straddle two lines.
    private int _vectorOffset;
    private int[] _links0;
    private int[] _upperLinks;
    private int _upperUsed;
    private int[] _upperOffset;
    private byte[] _levels;
    private byte[] _deleted;
    private int _count;
    private int _live;
    private int _entryPoint = -1;
    private int _maxLevel = -1;
    private ulong _rngState;

    // Int8 mode (see VectorQuantization): codes and per-vector scales in memory (squared norms too for L2, whose
    // distance needs them), exact float rows in a memory-mapped file; _vectors stays empty.
    private readonly bool _quantized;
    private MappedFloatRows? _mapped;
    private sbyte[] _codes = [];
    private float[] _scales = [];
    private float[] _norms = [];


    /// <summary>Creates an empty index.</summary>
    /// <param name="dimensions">Length of every vector.</param>
    /// <param name="metric">Distance function.</param>
    /// <param name="options">Graph parameters; defaults when null.</param>
    /// <param name="initialCapacity">Number of items to reserve room for; the index grows as needed.</param>
    public HnswIndex(int dimensions, VectorMetric metric, HnswOptions? options = null, int initialCapacity = 1024)
        : this(dimensions, metric, options ?? new HnswOptions(), Math.Max(1, initialCapacity), validate: true)
    {
    }

    private HnswIndex(int dimensions, VectorMetric metric, HnswOptions options, int capacity, bool validate)
    {
        if (validate)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(dimensions, 1);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(dimensions, MaxDimensions);
            if (metric is not VectorMetric.Cosine and not VectorMetric.L2)
            {
                throw new ArgumentOutOfRangeException(nameof(metric), metric, "Unknown metric.");
            }

            options.Validate();
        }

        _options = options;
        _dims = dimensions;
        _metric = metric;
        _m = options.M;
        _maxM0 = 2 * options.M;
        _stride0 = 1 + _maxM0;
        _strideUpper = 1 + _m;
        _levelMultiplier = 1.0 / Math.Log(_m);
        _rngState = unchecked((ulong)(long)options.Seed);

        capacity = Math.Max(1, capacity);
        _quantized = options.Quantization == VectorQuantization.Int8;
        if (_quantized)
        {
            _vectors = [];
            _mapped = new MappedFloatRows(_dims, capacity, options.ScratchDirectory);
            _codes = GC.AllocateUninitializedArray<sbyte>(checked(capacity * _dims), pinned: true);
            _scales = new float[capacity];
            _norms = metric == VectorMetric.L2 ? new float[capacity] : [];
        }
        else
        {
            (_vectors, _vectorOffset) = AllocateVectors((long)capacity * _dims);
        }

        // Possibly a released index's array, cleared: a row's unused slots are part of the snapshot.
        _links0 = ShardArrayPool.RentCleared<int>(checked(capacity * _stride0));
        _upperOffset = new int[capacity];
        _levels = new byte[capacity];
        _deleted = new byte[capacity];
        _upperLinks = new int[Math.Max(16, capacity / _m * _strideUpper)];
    }

    private const int MaxDimensions = 1 << 16;

    /// <summary>Length of every vector in the index.</summary>
    public int Dimensions => _dims;

    /// <summary>Distance function of the index.</summary>
    public VectorMetric Metric => _metric;

    /// <summary>Graph parameters the index was built with.</summary>
    public HnswOptions Options => _options;

    /// <summary>Number of live (not deleted) items.</summary>
    public int Count => _live;

    /// <summary>Number of ids ever assigned, including tombstoned ones; the next <see cref="Add"/> returns this value.</summary>
    public int TotalCount => _count;

    /// <summary>How the graph walk reads vectors.</summary>
    public VectorQuantization Quantization => _options.Quantization;

    /// <summary>
    /// Bytes of float32 vectors kept in a memory-mapped file instead of the heap (int8 mode only): pageable by the
    /// operating system and read only to re-score final candidates and for exact scans.
    /// </summary>
    public long MappedVectorBytes => _mapped is null ? 0 : _mapped.CapacityRows * _dims * sizeof(float);

    /// <summary>Approximate heap bytes held by the index's arrays (allocated capacity, not just the used part).</summary>
    public long EstimatedMemoryBytes =>
        ((long)_vectors.Length * sizeof(float))
        + _codes.LongLength
        + ((long)(_scales.Length + _norms.Length) * sizeof(float))
        + ((long)_links0.Length * sizeof(int))
        + ((long)_upperLinks.Length * sizeof(int))
        + ((long)_upperOffset.Length * sizeof(int))
        + _levels.Length
        + _deleted.Length;


    internal int EntryPoint => _entryPoint;

    internal int MaxLevel => _maxLevel;

    internal int GetLevel(int id)
    {
        ValidateId(id);
        return _levels[id];
    }

    /// <summary>Current neighbours of <paramref name="id"/> on <paramref name="level"/> (copied; for tests and diagnostics).</summary>
    internal int[] GetNeighbors(int id, int level)
    {
        ValidateId(id);
        if (level < 0 || level > _levels[id])
        {
            throw new ArgumentOutOfRangeException(nameof(level));
        }

        int start = level == 0 ? id * _stride0 : _upperOffset[id] + ((level - 1) * _strideUpper);
        int[] source = level == 0 ? _links0 : _upperLinks;
        return source.AsSpan(start + 1, source[start]).ToArray();
    }

    /// <summary>Adds a vector and returns its dense internal id (0, 1, 2, ...). Single writer only.</summary>
    /// <param name="vector">Exactly <see cref="Dimensions"/> floats; copied into the index.</param>
    public int Add(ReadOnlySpan<float> vector)
    {
        if (vector.Length != _dims)
        {
            throw new ArgumentException($"Expected a vector of {_dims} dimensions, got {vector.Length}.", nameof(vector));
        }

        if (_count == int.MaxValue)
        {
            throw new InvalidOperationException("The index is full.");
        }

        EnsureCapacity(_count + 1);
        int id = _count;
        StoreVector(id, vector);
        int level = DrawLevel();
        _levels[id] = (byte)level;
        _links0[id * _stride0] = 0;
        if (level > 0)
        {
            int blockSize = level * _strideUpper;
            EnsureUpperCapacity(_upperUsed + blockSize);
            _upperOffset[id] = _upperUsed;
            _upperLinks.AsSpan(_upperUsed, blockSize).Clear();
            _upperUsed += blockSize;
        }
        else
        {
            _upperOffset[id] = -1;
        }

        _count++;
        _live++;

        if (_entryPoint < 0)
        {
            LinkDeferred();
            return id;
        }

        if (_metric == VectorMetric.Cosine)
        {
            Insert<CosineKernel, NoLocks>(id, level, _entryPoint, _maxLevel, default);
        }
        else
        {
            Insert<L2Kernel, NoLocks>(id, level, _entryPoint, _maxLevel, default);
        }

        if (level > _maxLevel)
        {
            _maxLevel = level;
            _entryPoint = id;
        }

        return id;
    }

    /// <summary>
    /// True while the index holds items but no graph: below <see cref="HnswOptions.ExactSearchThreshold"/> live items
    /// every search scans exactly, so linking each insert would be work no search uses (8.8 % of a small collection's
    /// ingestion CPU besides the model, bench/README.md session 19).
    /// </summary>
    internal bool GraphDeferred => _entryPoint < 0 && _count > 0;

    /// <summary>
    /// Links every stored item into the graph, in id order, once the live count reaches the exact-search threshold
    /// (at once when the threshold is 0). The levels were drawn when the items were added, and items are linked in the
    /// order they came, so the graph is the one linking each insert would have built.
    /// </summary>
    private void LinkDeferred()
    {
        if (_entryPoint >= 0 || _count == 0 || _live < _options.ExactSearchThreshold)
        {
            return;
        }

        _entryPoint = 0;
        _maxLevel = _levels[0];
        for (int id = 1; id < _count; id++)
        {
            InsertSequential(id);
        }
    }

    /// <summary>
    /// Tombstones an item: it stays in the graph for navigation but is never returned by a search again.
    /// </summary>
    /// <returns><c>false</c> when the id is unknown or already deleted.</returns>
    public bool Delete(int id)
    {
        if ((uint)id >= (uint)_count || _deleted[id] != 0)
        {
            return false;
        }

        _deleted[id] = 1;
        _live--;
        return true;
    }

    /// <summary>Whether <paramref name="id"/> has been deleted.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The id was never assigned.</exception>
    public bool IsDeleted(int id)
    {
        ValidateId(id);
        return _deleted[id] != 0;
    }

    /// <summary>The stored vector of <paramref name="id"/> (also for deleted ids). Invalidated by the next <see cref="Add"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The id was never assigned.</exception>
    public ReadOnlySpan<float> GetVector(int id)
    {
        ValidateId(id);
        unsafe
        {
            return new ReadOnlySpan<float>(FloatBase + ((nint)id * _dims), _dims);
        }
    }

    /// <summary>
    /// Releases the index's memory: the memory-mapped vector file of an int8 index, or the pinned vector array of a
    /// float32 one (to <see cref="ShardArrayPool"/>, for the next index that loads). The index is empty afterwards.
    /// </summary>
    public void Dispose()
    {
        _mapped?.Dispose();
        _mapped = null;
        var vectors = _vectors;
        var links = _links0;
        if (vectors.Length == 0)
        {
            return;
        }

        // Empty first, so nothing can reach the arrays through this index once another index owns them.
        _vectors = [];
        _links0 = [];
        _vectorOffset = 0;
        _count = 0;
        _live = 0;
        _entryPoint = -1;
        _maxLevel = -1;
        _upperUsed = 0;
        ShardArrayPool.Return(vectors);
        ShardArrayPool.Return(links);
    }

    /// <summary>
    /// First float of vector 0: the pinned array, or the mapping of an int8 index. Stable until the next capacity
    /// growth; every caller is inside a single operation that does not grow the index.
    /// </summary>
    private unsafe float* FloatBase => _quantized
        ? (_mapped ?? throw new ObjectDisposedException(nameof(HnswIndex))).Base
        : _vectors.Length == 0 ? throw new ObjectDisposedException(nameof(HnswIndex)) : (float*)Unsafe.AsPointer(ref _vectors[_vectorOffset]);

    private unsafe void StoreVector(int id, ReadOnlySpan<float> vector)
    {
        vector.CopyTo(new Span<float>(FloatBase + ((nint)id * _dims), _dims));
        if (_quantized)
        {
            _scales[id] = Int8Quantizer.Quantize(vector, _codes.AsSpan(id * _dims, _dims));
            if (_norms.Length > 0)
            {
                fixed (float* v = vector)
                {
                    _norms[id] = SimdKernels.Dot(v, v, _dims);
                }
            }
        }
    }

    private void ValidateId(int id)
    {
        if ((uint)id >= (uint)_count)
        {
            throw new ArgumentOutOfRangeException(nameof(id), id, $"Unknown id; the index has assigned ids 0..{_count - 1}.");
        }
    }

    private void EnsureCapacity(int required)
    {
        int capacity = _levels.Length;
        if (required <= capacity)
        {
            return;
        }

        long maxByVectors = Array.MaxLength / _dims;
        long maxByLinks = Array.MaxLength / _stride0;
        long limit = Math.Min(maxByVectors, maxByLinks);
        if (required > limit)
        {
            throw new InvalidOperationException($"The index cannot hold more than {limit} vectors of {_dims} dimensions.");
        }

        int newCapacity = (int)Math.Min(limit, Math.Max(required, (long)capacity * 2));
        if (_quantized)
        {
            _mapped!.EnsureCapacity(newCapacity);
            var codes = GC.AllocateUninitializedArray<sbyte>(newCapacity * _dims, pinned: true);
            _codes.AsSpan(0, _count * _dims).CopyTo(codes);
            _codes = codes;
            Array.Resize(ref _scales, newCapacity);
            if (_norms.Length > 0)
            {
                Array.Resize(ref _norms, newCapacity);
            }
        }
        else
        {
            var (vectors, offset) = AllocateVectors((long)newCapacity * _dims);
            UsedVectors.CopyTo(vectors.AsSpan(offset));
            (_vectors, _vectorOffset) = (vectors, offset);
        }

        Array.Resize(ref _links0, (int)((long)newCapacity * _stride0));
        Array.Resize(ref _upperOffset, newCapacity);
        Array.Resize(ref _levels, newCapacity);
        Array.Resize(ref _deleted, newCapacity);
    }

    /// <summary>The used part of the vector store, row-major.</summary>
    private unsafe Span<float> UsedVectors => new(FloatBase, (int)((long)_count * _dims));

    private static unsafe (float[] Array, int Offset) AllocateVectors(long length)
    {
        const int alignFloats = 64 / sizeof(float);
        if (length + alignFloats > Array.MaxLength)
        {
            throw new InvalidOperationException("The vector store would exceed the maximum array size.");
        }

        // Uninitialised is fine: only rows below _count are ever read, and each is written by Add or ReadFrom first.
        // A released index's array is preferred: fresh memory costs a page fault per 4 KB (see ShardArrayPool).
        var array = ShardArrayPool.RentVectors((int)length + alignFloats);
        nint address = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(array));
        int misalignment = (int)(address & 63) / sizeof(float);
        return (array, (alignFloats - misalignment) % alignFloats);
    }

    private void EnsureUpperCapacity(int required)
    {
        if (required > _upperLinks.Length)
        {
            Array.Resize(ref _upperLinks, (int)Math.Min(Array.MaxLength, Math.Max(required, (long)_upperLinks.Length * 2)));
        }
    }

    /// <summary>Exponentially decaying level, floor(-ln(U) * mL), from a seeded SplitMix64 stream.</summary>
    private int DrawLevel()
    {
        ulong z = _rngState += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;

        // (0, 1]: never 0, so the log is finite.
        double u = ((z >> 11) + 1) * (1.0 / (1UL << 53));
        int level = (int)(-Math.Log(u) * _levelMultiplier);
        return Math.Min(level, MaxLevelCap);
    }

    private unsafe void Insert<TDist, TSync>(int id, int level, int entryPoint, int maxLevel, TSync sync)
        where TDist : struct, IDistanceKernel
        where TSync : struct, ILinkSync
    {
        var scratch = HnswSearchScratch.Rent(_count);
        try
        {
            scratch.EnsureResultCapacity(_options.EfConstruction + 1);
            scratch.EnsureBuildCapacity(_options.EfConstruction, _maxM0);
            float* vectors = FloatBase;
            fixed (int* links0 = _links0)
            fixed (int* upper = _upperLinks)
            fixed (int* upperOffset = _upperOffset)
            fixed (byte* deleted = _deleted)
            {
                var g = new Graph(vectors, links0, upper, upperOffset, _dims, _stride0, _strideUpper, _maxM0);
                float* q = g.Vector(id);
                int current = entryPoint;
                float currentDistance = TDist.Distance(q, g.Vector(current), _dims);
                for (int l = maxLevel; l > level; l--)
                {
                    GreedyClosest<TDist, TSync>(g, q, l, ref current, ref currentDistance, sync);
                }

                for (int l = Math.Min(level, maxLevel); l >= 0; l--)
                {
                    // New nodes link to live nodes only, so tombstones gradually lose in-links; if a region is
                    // entirely deleted we still link to it rather than leave the new node unreachable.
                    SearchLayer<TDist, AllowLiveExcept, TSync>(g, q, current, currentDistance, _options.EfConstruction, l, scratch, new AllowLiveExcept(deleted, id), int.MaxValue, sync);
                    if (scratch.ResultCount == 0)
                    {
                        SearchLayer<TDist, AllowAllExcept, TSync>(g, q, current, currentDistance, _options.EfConstruction, l, scratch, new AllowAllExcept(id), int.MaxValue, sync);
                    }

                    int found = scratch.ResultCount;
                    if (found == 0)
                    {
                        // Only possible in a concurrent build whose other nodes are not linked on this layer yet.
                        continue;
                    }

                    var candidates = scratch.BuildCandidates;
                    for (int i = found - 1; i >= 0; i--)
                    {
                        candidates[i] = scratch.PopResult();
                    }

                    var selected = scratch.BuildSelected;
                    int selectedCount = SelectNeighbors<TDist>(g, candidates, found, _m, selected);
                    int* myLinks = g.Links(id, l);
                    sync.Enter(id);
                    for (int i = 0; i < selectedCount; i++)
                    {
                        myLinks[1 + i] = selected[i].Id;
                    }

                    myLinks[0] = selectedCount;
                    sync.Exit(id);

                    int maxLinks = l == 0 ? _maxM0 : _m;
                    for (int i = 0; i < selectedCount; i++)
                    {
                        sync.Enter(selected[i].Id);
                        Connect<TDist>(g, selected[i].Id, id, selected[i].Distance, l, maxLinks, scratch);
                        sync.Exit(selected[i].Id);
                    }

                    current = candidates[0].Id;
                    currentDistance = candidates[0].Distance;
                }
            }
        }
        finally
        {
            scratch.Return();
        }
    }

    /// <summary>Adds a back-link <paramref name="target"/> -&gt; <paramref name="newId"/>, re-running the heuristic when full.</summary>
    private unsafe void Connect<TDist>(in Graph g, int target, int newId, float distance, int level, int maxLinks, HnswSearchScratch scratch)
        where TDist : struct, IDistanceKernel
    {
        int* links = g.Links(target, level);
        int count = links[0];
        if (count < maxLinks)
        {
            links[1 + count] = newId;
            links[0] = count + 1;
            return;
        }

        // Full: pick the best maxLinks among the old links plus the new one with the same heuristic,
        // dropping the pruned ones (keepPrunedConnections = false, as in hnswlib).
        var candidates = scratch.PruneCandidates;
        float* targetVector = g.Vector(target);
        for (int i = 0; i < count; i++)
        {
            int other = links[1 + i];
            candidates[i] = new HnswNeighbor(TDist.Distance(targetVector, g.Vector(other), _dims), other);
        }

        candidates[count] = new HnswNeighbor(distance, newId);
        SortByDistance(candidates.AsSpan(0, count + 1));
        var pruned = scratch.PruneSelected;
        int selected = SelectNeighbors<TDist>(g, candidates, count + 1, maxLinks, pruned);
        links[0] = selected;
        for (int i = 0; i < selected; i++)
        {
            links[1 + i] = pruned[i].Id;
        }
    }

    private static void SortByDistance(Span<HnswNeighbor> items)
    {
        // Insertion sort: at most 2M + 1 items, mostly already ordered.
        for (int i = 1; i < items.Length; i++)
        {
            var item = items[i];
            int j = i - 1;
            while (j >= 0 && items[j].Distance > item.Distance)
            {
                items[j + 1] = items[j];
                j--;
            }

            items[j + 1] = item;
        }
    }

    /// <summary>
    /// The paper's neighbour-selection heuristic (Algorithm 4, no candidate extension, no kept pruned links):
    /// a candidate is kept only if it is closer to the base than to every neighbour already kept, which spreads
    /// links across directions and keeps clusters connected. <paramref name="candidates"/> must be sorted ascending.
    /// </summary>
    private unsafe int SelectNeighbors<TDist>(in Graph g, HnswNeighbor[] candidates, int count, int max, HnswNeighbor[] selected)
        where TDist : struct, IDistanceKernel
    {
        if (count <= max)
        {
            // Like hnswlib: with no more candidates than slots there is nothing to choose between.
            Array.Copy(candidates, selected, count);
            return count;
        }

        int kept = 0;
        for (int i = 0; i < count && kept < max; i++)
        {
            var candidate = candidates[i];
            float* candidateVector = g.Vector(candidate.Id);
            bool good = true;
            for (int j = 0; j < kept; j++)
            {
                if (TDist.Distance(candidateVector, g.Vector(selected[j].Id), _dims) < candidate.Distance)
                {
                    good = false;
                    break;
                }
            }

            if (good)
            {
                selected[kept++] = candidate;
            }
        }

        return kept;
    }

    /// <summary>Greedy walk on an upper layer (ef = 1): move to any closer neighbour until none is closer.</summary>
    private static unsafe void GreedyClosest<TDist, TSync>(in Graph g, float* q, int level, ref int current, ref float currentDistance, TSync sync)
        where TDist : struct, IDistanceKernel
        where TSync : struct, ILinkSync
    {
        int* copy = stackalloc int[g.MaxDegree];
        bool changed = true;
        while (changed)
        {
            changed = false;
            int* links = g.Links(current, level);
            sync.Enter(current);
            int count = links[0];
            for (int j = 0; j < count; j++)
            {
                copy[j] = links[1 + j];
            }

            sync.Exit(current);
            for (int j = 0; j < count; j++)
            {
                int candidate = copy[j];
                float d = TDist.Distance(q, g.Vector(candidate), g.Dims);
                if (d < currentDistance)
                {
                    currentDistance = d;
                    current = candidate;
                    changed = true;
                }
            }
        }
    }

    /// <summary>
    /// Algorithm 2 of the paper on one layer, with filtering during the walk: every node is expanded for
    /// navigation, but only nodes the filter allows enter the result heap (and bound the search). Results are
    /// left in <paramref name="s"/>'s result max-heap.
    /// </summary>
    /// <returns><c>false</c> when more than <paramref name="budget"/> distances were computed before convergence.</returns>
    private static unsafe bool SearchLayer<TDist, TFilter, TSync>(
        in Graph g, float* q, int entry, float entryDistance, int ef, int level, HnswSearchScratch s, TFilter filter, int budget, TSync sync)
        where TDist : struct, IDistanceKernel
        where TFilter : struct, INodeFilter
        where TSync : struct, ILinkSync
    {
        ushort stamp = s.NextStamp();
        ref ushort visited = ref MemoryMarshal.GetArrayDataReference(s.Visited);
        s.CandidateCount = 0;
        s.ResultCount = 0;
        Unsafe.Add(ref visited, entry) = stamp;
        s.PushCandidate(entryDistance, entry);
        float bound = float.PositiveInfinity;
        if (filter.Allows(entry))
        {
            s.PushResult(entryDistance, entry);
            bound = entryDistance;
        }

        int dims = g.Dims;
        int evaluated = 1;
        int* pending = stackalloc int[g.MaxDegree];
        while (s.CandidateCount > 0)
        {
            var closest = s.Candidates[0];
            if (closest.Distance > bound && s.ResultCount >= ef)
            {
                break;
            }

            s.PopCandidate();
            int* links = g.Links(closest.Id, level);
            sync.Enter(closest.Id);
            int count = links[0];

            // Gather unvisited neighbours first and prefetch their vectors so the memory loads overlap
            // instead of stalling one distance computation at a time.
            int pendingCount = 0;
            for (int j = 1; j <= count; j++)
            {
                int neighbor = links[j];
                ref ushort mark = ref Unsafe.Add(ref visited, neighbor);
                if (mark == stamp)
                {
                    continue;
                }

                mark = stamp;
                pending[pendingCount++] = neighbor;

                // One line per vector is enough to start the hardware prefetcher on the row; more measured no better.
                if (Sse.IsSupported)
                {
                    Sse.Prefetch0(g.Vector(neighbor));
                }
            }

            sync.Exit(closest.Id);

            evaluated += pendingCount;
            for (int j = 0; j < pendingCount; j++)
            {
                int neighbor = pending[j];
                float d = TDist.Distance(q, g.Vector(neighbor), dims);
                if (s.ResultCount < ef || d < bound)
                {
                    s.PushCandidate(d, neighbor);
                    if (filter.Allows(neighbor))
                    {
                        s.PushResult(d, neighbor);
                        if (s.ResultCount > ef)
                        {
                            s.PopResult();
                        }

                        bound = s.Results[0].Distance;
                    }
                }
            }

            if (evaluated > budget)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Raw pointers into the index arrays for the duration of one pinned operation.</summary>
    private readonly unsafe ref struct Graph
    {
        private readonly float* _vectors;
        private readonly int* _links0;
        private readonly int* _upper;
        private readonly int* _upperOffset;
        private readonly int _stride0;
        private readonly int _strideUpper;

        public Graph(float* vectors, int* links0, int* upper, int* upperOffset, int dims, int stride0, int strideUpper, int maxDegree)
        {
            _vectors = vectors;
            _links0 = links0;
            _upper = upper;
            _upperOffset = upperOffset;
            Dims = dims;
            _stride0 = stride0;
            _strideUpper = strideUpper;
            MaxDegree = maxDegree;
        }

        public int Dims { get; }

        public int MaxDegree { get; }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float* Vector(int id) => _vectors + ((nint)id * Dims);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int* Links(int id, int level) => level == 0
            ? _links0 + ((nint)id * _stride0)
            : _upper + _upperOffset[id] + ((level - 1) * _strideUpper);
    }

    /// <summary>Which nodes may enter a result set; specialised per struct so the unfiltered loop has no check at all.</summary>
    private interface INodeFilter
    {
        bool Allows(int id);
    }

    private readonly struct AllowAll : INodeFilter
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public bool Allows(int id) => true;
    }

    /// <summary>Every node but the one being inserted (a concurrent build can reach it through a fresh back-link).</summary>
    private readonly struct AllowAllExcept(int self) : INodeFilter
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public bool Allows(int id) => id != self;
    }

    private readonly unsafe struct AllowLiveExcept : INodeFilter
    {
        private readonly byte* _deleted;
        private readonly int _self;

        public AllowLiveExcept(byte* deleted, int self)
        {
            _deleted = deleted;
            _self = self;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public bool Allows(int id) => _deleted[id] == 0 && id != _self;
    }

    private readonly unsafe struct AllowLive : INodeFilter
    {
        private readonly byte* _deleted;

        public AllowLive(byte* deleted) => _deleted = deleted;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public bool Allows(int id) => _deleted[id] == 0;
    }

    private readonly unsafe struct AllowLiveMatching : INodeFilter
    {
        private readonly byte* _deleted;
        private readonly Func<int, bool> _filter;

        public AllowLiveMatching(byte* deleted, Func<int, bool> filter)
        {
            _deleted = deleted;
            _filter = filter;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public bool Allows(int id) => _deleted[id] == 0 && _filter(id);
    }
}
