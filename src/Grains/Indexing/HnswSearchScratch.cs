using System.Runtime.CompilerServices;

namespace RagOrleans.Grains.Indexing;

/// <summary>A node id with its distance to the current query (8 bytes, heap element).</summary>
internal struct HnswNeighbor
{
    public float Distance;
    public int Id;

    public HnswNeighbor(float distance, int id)
    {
        Distance = distance;
        Id = id;
    }
}

/// <summary>
/// Per-thread working memory for one search: a generation-stamped visited set (so it never needs clearing
/// between searches), a candidate min-heap and a result max-heap. Renting takes the instance out of the
/// thread-static slot, so a re-entrant search on the same thread (e.g. from a filter) gets its own copy.
/// </summary>
internal sealed class HnswSearchScratch
{
    [ThreadStatic]
    private static HnswSearchScratch? t_cached;

    public ushort[] Visited = [];
    public ushort Stamp;

    public HnswNeighbor[] Candidates = new HnswNeighbor[256];
    public int CandidateCount;

    public HnswNeighbor[] Results = new HnswNeighbor[256];
    public int ResultCount;

    // Insert-only working memory (neighbour selection and back-link pruning). Per thread rather than per index so
    // concurrent inserts never share it and an idle index holds none of it.
    public HnswNeighbor[] BuildCandidates = [];
    public HnswNeighbor[] BuildSelected = [];
    public HnswNeighbor[] PruneCandidates = [];
    public HnswNeighbor[] PruneSelected = [];

    // Copy of one neighbour list taken under its node lock during a concurrent build.
    public int[] LinkCopy = [];

    // Int8 search: the query's codes widened to 16 bits, and the candidates being re-scored with float vectors.
    public short[] QueryCodes = [];
    public HnswNeighbor[] Rescored = [];

    public void EnsureQuantizedCapacity(int dims, int ef)
    {
        if (QueryCodes.Length < dims)
        {
            QueryCodes = new short[dims];
        }

        if (Rescored.Length < ef + 1)
        {
            Rescored = new HnswNeighbor[ef + 1];
        }
    }

    public void EnsureBuildCapacity(int efConstruction, int maxDegree)
    {
        int candidates = Math.Max(efConstruction, maxDegree) + 2;
        if (BuildCandidates.Length < candidates)
        {
            BuildCandidates = new HnswNeighbor[candidates];
        }

        if (BuildSelected.Length < maxDegree + 1)
        {
            BuildSelected = new HnswNeighbor[maxDegree + 1];
            PruneCandidates = new HnswNeighbor[maxDegree + 1];
            PruneSelected = new HnswNeighbor[maxDegree + 1];
            LinkCopy = new int[maxDegree + 1];
        }
    }

    public static HnswSearchScratch Rent(int nodeCount)
    {
        var scratch = t_cached ?? new HnswSearchScratch();
        t_cached = null;
        if (scratch.Visited.Length < nodeCount)
        {
            // Grow geometrically so an index that is still being filled does not reallocate on every insert.
            scratch.Visited = new ushort[Math.Max(nodeCount, Math.Min(Array.MaxLength, scratch.Visited.Length * 2))];
            scratch.Stamp = 0;
        }

        return scratch;
    }

    public void Return() => t_cached = this;

    /// <summary>Starts a new visited generation; clears the array only when the 16-bit stamp wraps.</summary>
    public ushort NextStamp()
    {
        if (++Stamp == 0)
        {
            Array.Clear(Visited);
            Stamp = 1;
        }

        return Stamp;
    }

    public void EnsureResultCapacity(int capacity)
    {
        if (Results.Length < capacity)
        {
            Results = new HnswNeighbor[capacity];
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PushCandidate(float distance, int id)
    {
        if (CandidateCount == Candidates.Length)
        {
            Array.Resize(ref Candidates, Candidates.Length * 2);
        }

        var heap = Candidates;
        int i = CandidateCount++;
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if (heap[parent].Distance <= distance)
            {
                break;
            }

            heap[i] = heap[parent];
            i = parent;
        }

        heap[i] = new HnswNeighbor(distance, id);
    }

    /// <summary>Removes the closest candidate (the caller has already read <c>Candidates[0]</c>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PopCandidate()
    {
        var heap = Candidates;
        int count = --CandidateCount;
        if (count == 0)
        {
            return;
        }

        var last = heap[count];
        int i = 0;
        while (true)
        {
            int child = (2 * i) + 1;
            if (child >= count)
            {
                break;
            }

            if (child + 1 < count && heap[child + 1].Distance < heap[child].Distance)
            {
                child++;
            }

            if (heap[child].Distance >= last.Distance)
            {
                break;
            }

            heap[i] = heap[child];
            i = child;
        }

        heap[i] = last;
    }

    /// <summary>Pushes onto the result max-heap (worst result on top). Capacity must already suffice.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PushResult(float distance, int id)
    {
        var heap = Results;
        int i = ResultCount++;
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if (heap[parent].Distance >= distance)
            {
                break;
            }

            heap[i] = heap[parent];
            i = parent;
        }

        heap[i] = new HnswNeighbor(distance, id);
    }

    /// <summary>Removes and returns the worst result.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public HnswNeighbor PopResult()
    {
        var heap = Results;
        var top = heap[0];
        int count = --ResultCount;
        if (count == 0)
        {
            return top;
        }

        var last = heap[count];
        int i = 0;
        while (true)
        {
            int child = (2 * i) + 1;
            if (child >= count)
            {
                break;
            }

            if (child + 1 < count && heap[child + 1].Distance > heap[child].Distance)
            {
                child++;
            }

            if (heap[child].Distance <= last.Distance)
            {
                break;
            }

            heap[i] = heap[child];
            i = child;
        }

        heap[i] = last;
        return top;
    }

    // Exact scans order ties by id so their output is fully deterministic and comparable to brute force.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool WorseThan(in HnswNeighbor a, float distance, int id)
        => a.Distance > distance || (a.Distance == distance && a.Id > id);

    /// <summary>Result max-heap push with (distance, id) ordering, for exact scans.</summary>
    public void PushResultOrdered(float distance, int id)
    {
        var heap = Results;
        int i = ResultCount++;
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if (WorseThan(heap[parent], distance, id))
            {
                break;
            }

            heap[i] = heap[parent];
            i = parent;
        }

        heap[i] = new HnswNeighbor(distance, id);
    }

    /// <summary>Result max-heap pop with (distance, id) ordering, for exact scans.</summary>
    public HnswNeighbor PopResultOrdered()
    {
        var heap = Results;
        var top = heap[0];
        int count = --ResultCount;
        if (count == 0)
        {
            return top;
        }

        var last = heap[count];
        int i = 0;
        while (true)
        {
            int child = (2 * i) + 1;
            if (child >= count)
            {
                break;
            }

            if (child + 1 < count && WorseThan(heap[child + 1], heap[child].Distance, heap[child].Id))
            {
                child++;
            }

            if (!WorseThan(heap[child], last.Distance, last.Id))
            {
                break;
            }

            heap[i] = heap[child];
            i = child;
        }

        heap[i] = last;
        return top;
    }
}
