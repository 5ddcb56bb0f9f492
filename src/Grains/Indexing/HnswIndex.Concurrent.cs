using System.Runtime.CompilerServices;

namespace RagOrleans.Grains.Indexing;

public sealed partial class HnswIndex
{
    /// <summary>
    /// Adds many vectors at once, inserting them into the graph on up to <paramref name="maxDegreeOfParallelism"/>
    /// threads. Ids are assigned in row order, exactly as the same number of <see cref="Add"/> calls would.
    /// </summary>
    /// <remarks>
    /// Each neighbour list is guarded by its own spin lock (held only while a list is copied or rewritten) and the
    /// entry point by one global lock, held for a whole insert only by the rare node that raises the top level
    /// (the hnswlib scheme). Level draws happen up front on the calling thread, so the levels (and with one thread
    /// the whole graph) match sequential <see cref="Add"/> calls; with several threads the links depend on timing,
    /// with the same recall. Like <see cref="Add"/>, it must not run concurrently with searches or other writers.
    /// </remarks>
    /// <param name="rows">Row-major vectors, a whole multiple of <see cref="Dimensions"/> floats; copied into the index.</param>
    /// <param name="maxDegreeOfParallelism">Insert threads; 1 inserts on the calling thread.</param>
    /// <returns>The id of the first added vector (the others follow consecutively).</returns>
    public int AddBatch(ReadOnlySpan<float> rows, int maxDegreeOfParallelism = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxDegreeOfParallelism, 1);
        if (rows.Length % _dims != 0)
        {
            throw new ArgumentException($"Expected a multiple of {_dims} floats, got {rows.Length}.", nameof(rows));
        }

        int n = rows.Length / _dims;
        int first = _count;
        if (n == 0)
        {
            return first;
        }

        if ((long)_count + n > int.MaxValue)
        {
            throw new InvalidOperationException("The index is full.");
        }

        // Sequential part: storage, levels and upper-layer blocks, so the parallel part never reallocates.
        EnsureCapacity(_count + n);
        for (int i = 0; i < n; i++)
        {
            int id = first + i;
            StoreVector(id, rows.Slice(i * _dims, _dims));
            int level = DrawLevel();
            _levels[id] = (byte)level;
            _links0[id * _stride0] = 0;
            _deleted[id] = 0;
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
        }

        _count += n;
        _live += n;
        int next = first;
        if (_entryPoint < 0)
        {
            // Deferred (see GraphDeferred): the graph starts once searches would walk it, with every stored item.
            if (_live < _options.ExactSearchThreshold)
            {
                return first;
            }

            _entryPoint = 0;
            _maxLevel = _levels[0];
            next = 1;
        }

        if (maxDegreeOfParallelism == 1 || _count - next < 2)
        {
            for (int id = next; id < _count; id++)
            {
                InsertSequential(id);
            }

            return first;
        }

        var locks = new NodeLocks(new int[_count], new object());
        int cursor = next - 1;
        int end = _count;
        var workers = new Thread[Math.Min(maxDegreeOfParallelism, end - next) - 1];
        Exception? failure = null;
        void Work()
        {
            try
            {
                int id;
                while ((id = Interlocked.Increment(ref cursor)) < end && failure is null)
                {
                    InsertConcurrent(id, locks);
                }
            }
            catch (Exception ex)
            {
                Interlocked.CompareExchange(ref failure, ex, null);
            }
        }

        // Dedicated threads rather than the pool: a long build must not starve grain turns queued on the pool.
        for (int i = 0; i < workers.Length; i++)
        {
            workers[i] = new Thread(Work) { IsBackground = true, Name = "hnsw-build" };
            workers[i].Start();
        }

        Work();
        foreach (var worker in workers)
        {
            worker.Join();
        }

        if (failure is not null)
        {
            throw new InvalidOperationException("Concurrent HNSW insert failed; the index is inconsistent.", failure);
        }

        return first;
    }

    private void InsertSequential(int id)
    {
        int level = _levels[id];
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
    }

    private void InsertConcurrent(int id, NodeLocks locks)
    {
        int level = _levels[id];
        Monitor.Enter(locks.Global);
        bool holdGlobal = true;
        try
        {
            int entryPoint = _entryPoint;
            int maxLevel = _maxLevel;

            // Only a node that will become the new top keeps the global lock for its whole insert, so nobody
            // starts from an entry point whose upper links are still being written.
            if (level <= maxLevel)
            {
                Monitor.Exit(locks.Global);
                holdGlobal = false;
            }

            if (_metric == VectorMetric.Cosine)
            {
                Insert<CosineKernel, NodeLocks>(id, level, entryPoint, maxLevel, locks);
            }
            else
            {
                Insert<L2Kernel, NodeLocks>(id, level, entryPoint, maxLevel, locks);
            }

            if (holdGlobal)
            {
                _maxLevel = level;
                _entryPoint = id;
            }
        }
        finally
        {
            if (holdGlobal)
            {
                Monitor.Exit(locks.Global);
            }
        }
    }

    /// <summary>How insert code guards neighbour lists: not at all (single writer) or with per-node spin locks.</summary>
    private interface ILinkSync
    {
        void Enter(int id);

        void Exit(int id);
    }

    private readonly struct NoLocks : ILinkSync
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Enter(int id)
        {
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Exit(int id)
        {
        }
    }

    /// <summary>One int per node (0 free, 1 held): 4 bytes per node only while a concurrent batch runs.</summary>
    private readonly struct NodeLocks(int[] flags, object global) : ILinkSync
    {
        public object Global { get; } = global;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Enter(int id)
        {
            if (Interlocked.CompareExchange(ref flags[id], 1, 0) != 0)
            {
                SpinUntilAcquired(ref flags[id]);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Exit(int id) => Volatile.Write(ref flags[id], 0);

        [MethodImpl(MethodImplOptions.NoInlining)]
        private static void SpinUntilAcquired(ref int flag)
        {
            var spinner = default(SpinWait);
            do
            {
                spinner.SpinOnce();
            }
            while (Volatile.Read(ref flag) != 0 || Interlocked.CompareExchange(ref flag, 1, 0) != 0);
        }
    }
}
