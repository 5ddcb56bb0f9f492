using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace RagOrleans.Grains.Indexing;

/// <summary>Configuration of <see cref="ShardMemoryGovernor"/> (section <c>Rag:ShardMemory</c>).</summary>
public sealed class ShardMemoryOptions
{
    /// <summary>Configuration section.</summary>
    public const string Section = "Rag:ShardMemory";

    /// <summary>Off switch; on by default.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Memory load (share of the memory available to the process, 0–100) above which idle shards are released.</summary>
    public double LimitPercent { get; set; } = 80;

    /// <summary>Memory load to bring the process back to once over the limit.</summary>
    public double TargetPercent { get; set; } = 70;

    /// <summary>A shard used more recently than this is never released: it is serving someone.</summary>
    public TimeSpan MinIdle { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often memory is checked.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Most bytes of released shards' arrays kept for the next cold activation (<see cref="ShardArrayPool"/>); null
    /// keeps its default (a sixteenth of the memory available to the GC, at most 1 GiB), 0 turns recycling off.
    /// </summary>
    public long? RecycleLimitBytes { get; set; }
}

/// <summary>One resident shard as the governor sees it.</summary>
/// <param name="Key">The shard's grain key.</param>
/// <param name="Bytes">Estimated bytes its index holds.</param>
/// <param name="Idle">Time since its last call.</param>
public readonly record struct ResidentShard(string Key, long Bytes, TimeSpan Idle);

/// <summary>Which idle shards to release to free a number of bytes. Pure policy, no Orleans.</summary>
public static class ShardEvictionPolicy
{
    /// <summary>
    /// Idle shards (idle at least <paramref name="minIdle"/>) by descending bytes × idle seconds until their bytes
    /// cover <paramref name="bytesToFree"/>: a big shard nobody has asked for in a while frees the most for the least
    /// future reload cost, while Orleans' own count-based shedding would treat a 100,000-chunk shard like a tiny grain.
    /// </summary>
    public static IReadOnlyList<ResidentShard> Choose(IReadOnlyList<ResidentShard> shards, long bytesToFree, TimeSpan minIdle)
    {
        ArgumentNullException.ThrowIfNull(shards);
        if (bytesToFree <= 0)
        {
            return [];
        }

        var candidates = new List<ResidentShard>(shards.Count);
        foreach (var s in shards)
        {
            if (s.Idle >= minIdle && s.Bytes > 0)
            {
                candidates.Add(s);
            }
        }

        candidates.Sort(static (a, b) => Weight(b).CompareTo(Weight(a)));
        var chosen = new List<ResidentShard>();
        long freed = 0;
        foreach (var s in candidates)
        {
            if (freed >= bytesToFree)
            {
                break;
            }

            chosen.Add(s);
            freed += s.Bytes;
        }

        return chosen;
    }

    private static double Weight(ResidentShard s) => s.Bytes * Math.Max(1.0, s.Idle.TotalSeconds);
}

/// <summary>
/// Releases idle index shards by size when the silo runs short of memory. Orleans 10's memory-based activation
/// shedding (<c>GrainCollectionOptions.EnableActivationSheddingOnMemoryPressure</c>) counts activations and has no
/// notion of how much memory one holds, so shards report their index size here and the biggest idle ones go first.
/// </summary>
public sealed class ShardMemoryGovernor(IOptions<ShardMemoryOptions> options, TimeProvider clock, ILogger<ShardMemoryGovernor> logger)
    : BackgroundService
{
    private readonly TimeProvider _clock = clock;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Entry> _shards = new(StringComparer.Ordinal);

    // Bytes released since the last full collection, and the collection count when they were (poll loop only).
    private long _releasedBytes;
    private int _releasedAtCollection;

    /// <summary>Total estimated bytes of the registered shards.</summary>
    public long ResidentBytes
    {
        get
        {
            lock (_lock)
            {
                long sum = 0;
                foreach (var e in _shards.Values)
                {
                    sum += e.Bytes();
                }

                return sum;
            }
        }
    }

    /// <summary>Registers an active shard; dispose the result when it deactivates.</summary>
    public Registration Register(string key, Func<long> bytes, Action release)
    {
        var entry = new Entry(bytes, release) { LastUsed = _clock.GetTimestamp() };
        lock (_lock)
        {
            _shards[key] = entry;
        }

        return new Registration(this, key, entry);
    }

    /// <summary>Checks memory once and releases shards if over the limit; returns the keys released.</summary>
    public IReadOnlyList<string> CheckOnce(long memoryLoadBytes, long availableBytes) =>
        CheckOnce(memoryLoadBytes, availableBytes, GC.CollectionCount(GC.MaxGeneration));

    /// <summary>
    /// As <see cref="CheckOnce(long, long)"/>, given how many full collections have run so far. Released shards' arrays
    /// stay in the load until a full collection reclaims them, so until one has run their bytes are counted as freed
    /// already; otherwise every poll in between would see the same load and release another batch, emptying the silo.
    /// </summary>
    public IReadOnlyList<string> CheckOnce(long memoryLoadBytes, long availableBytes, int fullCollections)
    {
        var o = options.Value;
        if (_releasedBytes > 0 && fullCollections > _releasedAtCollection)
        {
            _releasedBytes = 0;
        }

        memoryLoadBytes -= _releasedBytes;
        if (availableBytes <= 0 || memoryLoadBytes * 100.0 / availableBytes < o.LimitPercent)
        {
            return [];
        }

        var toFree = memoryLoadBytes - (long)(availableBytes * o.TargetPercent / 100.0);
        List<ResidentShard> resident;
        Dictionary<string, Entry> entries;
        lock (_lock)
        {
            entries = new Dictionary<string, Entry>(_shards, StringComparer.Ordinal);
        }

        resident = new List<ResidentShard>(entries.Count);
        foreach (var (key, e) in entries)
        {
            // Asked to leave already and still deactivating: neither a candidate again nor counted twice.
            if (e.Released)
            {
                continue;
            }

            resident.Add(new ResidentShard(key, e.Bytes(), _clock.GetElapsedTime(Volatile.Read(ref e.LastUsed))));
        }

        var victims = ShardEvictionPolicy.Choose(resident, toFree, o.MinIdle);
        foreach (var v in victims)
        {
            entries[v.Key].Released = true;
            entries[v.Key].Release();
        }

        // Arrays kept for the next cold activation go last (they make room cheaply as long as shards come and go),
        // when the idle shards cannot free enough.
        var victimBytes = victims.Sum(v => v.Bytes);
        if (victimBytes < toFree && ShardArrayPool.Drain() is var drained and > 0)
        {
            _releasedBytes += drained;
            _releasedAtCollection = fullCollections;
        }

        if (victims.Count > 0)
        {
            _releasedBytes += victimBytes;
            _releasedAtCollection = fullCollections;
            logger.LogWarning("Memory load {Load:F0}% over {Limit:F0}%: releasing {Count} idle shards holding {Bytes:N0} bytes",
                memoryLoadBytes * 100.0 / availableBytes, o.LimitPercent, victims.Count, victimBytes);
        }

        return victims.Select(v => v.Key).ToList();
    }

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.Value.RecycleLimitBytes is { } recycle)
        {
            ShardArrayPool.LimitBytes = recycle;
        }

        if (!options.Value.Enabled)
        {
            return;
        }

        var heapHardLimit = HasHeapHardLimit(GC.GetConfigurationVariables());
        using var timer = new PeriodicTimer(options.Value.PollInterval, _clock);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            var info = GC.GetGCMemoryInfo();
            CheckOnce(MemoryLoad(info.MemoryLoadBytes, info.TotalCommittedBytes, heapHardLimit), info.TotalAvailableMemoryBytes);
        }
    }

    /// <summary>
    /// The load to hold against <see cref="GCMemoryInfo.TotalAvailableMemoryBytes"/>. Under a GC heap hard limit
    /// (<c>GCHeapHardLimit</c>, <c>GCHeapHardLimitPercent</c>) that total is the limit, while
    /// <see cref="GCMemoryInfo.MemoryLoadBytes"/> stays the whole machine's use: compared with each other they read over
    /// 100 % on any busy host and would release every idle shard. There the GC's own committed bytes are what runs out.
    /// </summary>
    public static long MemoryLoad(long machineLoadBytes, long committedBytes, bool heapHardLimit) =>
        heapHardLimit ? committedBytes : machineLoadBytes;

    /// <summary>Whether the GC runs under a heap hard limit, from <see cref="GC.GetConfigurationVariables"/>.</summary>
    public static bool HasHeapHardLimit(IReadOnlyDictionary<string, object> gcConfiguration)
    {
        ArgumentNullException.ThrowIfNull(gcConfiguration);
        foreach (var (key, value) in gcConfiguration)
        {
            if (key.StartsWith("GCHeapHardLimit", StringComparison.OrdinalIgnoreCase) && value is IConvertible number
                && number.ToDouble(System.Globalization.CultureInfo.InvariantCulture) > 0)
            {
                return true;
            }
        }

        return false;
    }

    private void Remove(string key, Entry entry)
    {
        lock (_lock)
        {
            if (_shards.TryGetValue(key, out var current) && ReferenceEquals(current, entry))
            {
                _shards.Remove(key);
            }
        }
    }

    internal sealed class Entry(Func<long> bytes, Action release)
    {
        public long LastUsed;

        public bool Released;

        public Func<long> Bytes { get; } = bytes;

        public Action Release { get; } = release;
    }

    /// <summary>A shard's registration: <see cref="Touch"/> on every call, dispose on deactivation.</summary>
    public sealed class Registration : IDisposable
    {
        private readonly ShardMemoryGovernor _owner;
        private readonly string _key;
        private readonly Entry _entry;

        internal Registration(ShardMemoryGovernor owner, string key, Entry entry) => (_owner, _key, _entry) = (owner, key, entry);

        /// <summary>Marks the shard as used now.</summary>
        public void Touch() => Volatile.Write(ref _entry.LastUsed, _owner._clock.GetTimestamp());

        /// <inheritdoc />
        public void Dispose() => _owner.Remove(_key, _entry);
    }
}
