using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace RagOrleans.Grains.Indexing;

public sealed partial class HnswIndex
{
    /// <summary>
    /// Int8 search: the whole walk (upper layers and layer 0 with the given ef) compares int8 codes, then every
    /// candidate left in the result heap is re-scored with its exact float vector, so the returned order and
    /// distances are exact and only the candidate set depends on the codes. Leaves the re-scored candidates in
    /// <paramref name="s"/>'s result max-heap.
    /// </summary>
    private unsafe bool WalkQuantized<TDist, TFilter>(in Graph g, float* q, ReadOnlySpan<float> query, int ef, HnswSearchScratch s, TFilter filter, int budget)
        where TDist : struct, IDistanceKernel
        where TFilter : struct, INodeFilter
    {
        s.EnsureQuantizedCapacity(_dims, ef);
        float queryScale = Int8Quantizer.QuantizeQuery(query, s.QueryCodes);
        float queryNorm = _norms.Length > 0 ? SimdKernels.Dot(q, q, _dims) : 0f;
        bool complete;
        fixed (short* queryCodes = s.QueryCodes)
        fixed (sbyte* codes = _codes)
        fixed (float* scales = _scales)
        fixed (float* norms = _norms)
        {
            var c = new CodeReader(codes, scales, norms, queryCodes, queryScale, queryNorm, _dims, _norms.Length > 0);
            int current = _entryPoint;
            float currentDistance = c.Distance(current);
            for (int level = _maxLevel; level > 0; level--)
            {
                bool changed = true;
                while (changed)
                {
                    changed = false;
                    int* links = g.Links(current, level);
                    int count = links[0];
                    for (int j = 1; j <= count; j++)
                    {
                        float d = c.Distance(links[j]);
                        if (d < currentDistance)
                        {
                            currentDistance = d;
                            current = links[j];
                            changed = true;
                        }
                    }
                }
            }

            complete = SearchLayerCodes(g, c, current, currentDistance, ef, s, filter, budget);
        }

        // Re-score: exact float distances for the ef candidates (a few dozen reads of the mapped file).
        int found = s.ResultCount;
        var rescored = s.Rescored;
        for (int i = 0; i < found; i++)
        {
            int id = s.Results[i].Id;
            rescored[i] = new HnswNeighbor(TDist.Distance(q, g.Vector(id), _dims), id);
        }

        s.ResultCount = 0;
        for (int i = 0; i < found; i++)
        {
            s.PushResult(rescored[i].Distance, rescored[i].Id);
        }

        return complete;
    }

    /// <summary><see cref="SearchLayer{TDist, TFilter, TSync}"/> on layer 0 with int8 code distances.</summary>
    private static unsafe bool SearchLayerCodes<TFilter>(
        in Graph g, in CodeReader c, int entry, float entryDistance, int ef, HnswSearchScratch s, TFilter filter, int budget)
        where TFilter : struct, INodeFilter
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
            int* links = g.Links(closest.Id, 0);
            int count = links[0];
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
                if (Sse.IsSupported)
                {
                    Sse.Prefetch0(c.Row(neighbor));
                }
            }

            evaluated += pendingCount;
            for (int j = 0; j < pendingCount; j++)
            {
                int neighbor = pending[j];
                float d = c.Distance(neighbor);
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

    /// <summary>Approximate distances from the quantized query to stored codes.</summary>
    private readonly unsafe ref struct CodeReader
    {
        private readonly sbyte* _codes;
        private readonly float* _scales;
        private readonly float* _norms;
        private readonly short* _query;
        private readonly float _queryScale;
        private readonly float _queryNorm;
        private readonly int _dims;
        private readonly bool _l2;

        public CodeReader(sbyte* codes, float* scales, float* norms, short* query, float queryScale, float queryNorm, int dims, bool l2)
        {
            _codes = codes;
            _scales = scales;
            _norms = norms;
            _query = query;
            _queryScale = queryScale;
            _queryNorm = queryNorm;
            _dims = dims;
            _l2 = l2;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public sbyte* Row(int id) => _codes + ((nint)id * _dims);

        /// <summary>Cosine: 1 - q.v; L2: |q|^2 + |v|^2 - 2 q.v, with q.v from the codes and exact norms.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float Distance(int id)
        {
            float dot = _queryScale * _scales[id] * Int8Quantizer.Dot(_query, Row(id), _dims);
            return _l2 ? _queryNorm + _norms[id] - (2f * dot) : 1f - dot;
        }
    }
}
