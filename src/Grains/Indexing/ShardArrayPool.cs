namespace RagOrleans.Grains.Indexing;

/// <summary>
/// The big arrays of released shard indexes (the HNSW's pinned vectors and layer-0 links, the keyword index's
/// posting arenas), kept for the next shard that loads.
/// </summary>
/// <remarks>
/// <para>Why: a cold shard activation copies its vectors (1.5 KB each, 15 MB for 10,000 chunks) into a new pinned
/// array. Such an array rarely reuses memory the process already touched: the GC returns free large-object and
/// pinned regions to the operating system after a full collection, so the copy page-faults on every 4 KB of fresh
/// memory. Measured with bench/Tenants (<c>--mode cold</c>): a 10,000-chunk load that faults (about 3,700 faults)
/// takes 5–15× as long as one that lands on touched memory, and the faulting loads are the whole p99 tail; no GC
/// setting tried (RetainVM, non-concurrent, server, larger gen0) stopped it. Shards come and go together in a busy
/// silo (the memory governor and idle collection release some while others activate), so a released shard's array
/// is the natural home for the next one's vectors.</para>
/// <para>Bounds: at most <see cref="LimitBytes"/> are held (oldest dropped first), a fixed share of memory that the
/// <see cref="ShardMemoryGovernor"/> sees as load like any other; nothing is kept at 90 % memory load or more, and the
/// governor drains the pool when no idle shard is left to release. Vectors and postings are handed out uninitialised,
/// as a fresh <c>GC.AllocateUninitializedArray</c> would be (the index writes every row before it reads it); link
/// rows are cleared.</para>
/// <para>Safety: <see cref="HnswIndex.Dispose"/> empties the index before returning its array, so a stray call on a
/// disposed index sees an empty index, never another tenant's vectors.</para>
/// </remarks>
public static class ShardArrayPool
{
    private static readonly Lock Gate = new();
    private static readonly List<(Array Array, long Bytes)> Held = [];
    private static readonly bool HeapHardLimit = ShardMemoryGovernor.HasHeapHardLimit(GC.GetConfigurationVariables());
    private static long _heldBytes;
    private static long _limitBytes = DefaultLimitBytes();
    private static long _rented;
    private static long _reused;

    /// <summary>
    /// Most bytes of released arrays kept for reuse (default: a sixteenth of the memory available to the GC, at most
    /// 1 GiB). 0 turns pooling off: every index allocates fresh memory, as before the pool existed.
    /// </summary>
    public static long LimitBytes
    {
        get => Volatile.Read(ref _limitBytes);
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            Volatile.Write(ref _limitBytes, value);
            lock (Gate)
            {
                TrimTo(value);
            }
        }
    }

    /// <summary>Bytes currently held for reuse.</summary>
    public static long HeldBytes => Volatile.Read(ref _heldBytes);

    /// <summary>Arrays handed out so far, and how many of them were reused rather than freshly allocated.</summary>
    public static (long Rented, long Reused) Counts => (Interlocked.Read(ref _rented), Interlocked.Read(ref _reused));

    /// <summary>
    /// A pinned float array of at least <paramref name="length"/> elements and at most an eighth more (so a reused
    /// array wastes little), uninitialised: the vector store.
    /// </summary>
    internal static float[] RentVectors(int length) => Rent<float>(length, pinned: true);

    /// <summary>An array like <see cref="RentVectors"/>, not pinned, uninitialised: posting arenas.</summary>
    internal static T[] Rent<T>(int length)
        where T : unmanaged => Rent<T>(length, pinned: false);

    /// <summary>
    /// An array like <see cref="Rent{T}(int)"/> but all zeros: link rows, whose unused slots are written to snapshots
    /// (garbage there would make snapshots differ run to run and carry another shard's ids).
    /// </summary>
    internal static T[] RentCleared<T>(int length)
        where T : unmanaged => Rent<T>(length, pinned: false, zeroed: true);

    private static T[] Rent<T>(int length, bool pinned, bool zeroed = false)
        where T : unmanaged
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Interlocked.Increment(ref _rented);
        if (LimitBytes > 0)
        {
            lock (Gate)
            {
                var best = -1;
                var slack = length / 8;
                for (var i = 0; i < Held.Count; i++)
                {
                    if (Held[i].Array is T[] candidate && candidate.Length >= length && candidate.Length - length <= slack
                        && (best < 0 || candidate.Length < Held[best].Array.Length))
                    {
                        best = i;
                    }
                }

                if (best >= 0)
                {
                    var (array, bytes) = Held[best];
                    Held.RemoveAt(best);
                    _heldBytes -= bytes;
                    Interlocked.Increment(ref _reused);
                    if (zeroed)
                    {
                        Array.Clear(array);
                    }

                    return (T[])array;
                }
            }
        }

        return zeroed ? GC.AllocateArray<T>(length, pinned) : GC.AllocateUninitializedArray<T>(length, pinned);
    }

    /// <summary>Gives back an array from <see cref="RentVectors"/> or <see cref="Rent{T}(int)"/> that nothing references any more.</summary>
    internal static void Return<T>(T[] array)
        where T : unmanaged
    {
        var limit = LimitBytes;
        var bytes = array.LongLength * System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        if (bytes == 0 || bytes > limit)
        {
            return;
        }

        var shortOfMemory = ShortOfMemory(GC.GetGCMemoryInfo());
        lock (Gate)
        {
            if (shortOfMemory)
            {
                // The governor is (or soon will be) releasing shards to free memory: let the GC have it all.
                TrimTo(0);
                return;
            }

            TrimTo(limit - bytes);
            Held.Add((array, bytes));
            _heldBytes += bytes;
        }
    }

    /// <summary>Drops every array held (the memory governor's last resort); returns their bytes.</summary>
    public static long Drain()
    {
        lock (Gate)
        {
            var held = _heldBytes;
            TrimTo(0);
            return held;
        }
    }

    /// <summary>
    /// Memory load at or above 90 % of what the process may use: past the governor's limit (80 % by default), where
    /// releasing idle shards has not kept up. Between the two, a released shard's arrays are still kept: the shard was
    /// released to make room for others, and its arrays are the cheapest room there is.
    /// </summary>
    internal static bool ShortOfMemory(GCMemoryInfo info)
    {
        var load = ShardMemoryGovernor.MemoryLoad(info.MemoryLoadBytes, info.TotalCommittedBytes, HeapHardLimit);
        return info.TotalAvailableMemoryBytes > 0 && load * 10 >= info.TotalAvailableMemoryBytes * 9;
    }

    private static void TrimTo(long bytes)
    {
        // Oldest first: the arrays released longest ago are the least likely to match the next load.
        while (_heldBytes > Math.Max(0, bytes) && Held.Count > 0)
        {
            _heldBytes -= Held[0].Bytes;
            Held.RemoveAt(0);
        }
    }

    private static long DefaultLimitBytes()
    {
        var available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        return Math.Min(1L << 30, available > 0 ? available / 16 : 256L << 20);
    }
}
