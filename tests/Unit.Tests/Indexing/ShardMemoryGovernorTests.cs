using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using RagOrleans.Grains.Indexing;
using Xunit;

namespace RagOrleans.Unit.Tests.Indexing;

public sealed class ShardMemoryGovernorTests
{
    private const long MB = 1 << 20;

    [Fact]
    public void Policy_releases_big_idle_shards_first_and_never_busy_ones()
    {
        var shards = new[]
        {
            new ResidentShard("small-old", 10 * MB, TimeSpan.FromMinutes(30)),
            new ResidentShard("big-idle", 500 * MB, TimeSpan.FromMinutes(2)),
            new ResidentShard("huge-busy", 2000 * MB, TimeSpan.FromSeconds(1)),
            new ResidentShard("medium-idle", 100 * MB, TimeSpan.FromMinutes(5)),
        };

        var chosen = ShardEvictionPolicy.Choose(shards, 550 * MB, TimeSpan.FromSeconds(30));

        // 500 MB × 120 s outweighs 100 MB × 300 s and 10 MB × 1800 s; the busy shard is never a candidate.
        Assert.Equal(["big-idle", "medium-idle"], chosen.Select(s => s.Key));
        Assert.Empty(ShardEvictionPolicy.Choose(shards, 0, TimeSpan.FromSeconds(30)));
        Assert.Equal(3, ShardEvictionPolicy.Choose(shards, long.MaxValue, TimeSpan.FromSeconds(30)).Count);
    }

    [Fact]
    public void Released_bytes_count_as_freed_until_a_full_collection_runs()
    {
        var clock = new ManualClock();
        var governor = new ShardMemoryGovernor(
            Options.Create(new ShardMemoryOptions { LimitPercent = 80, TargetPercent = 70, MinIdle = TimeSpan.FromSeconds(30) }),
            clock, NullLogger<ShardMemoryGovernor>.Instance);
        var released = new List<string>();
        var shards = Enumerable.Range(0, 10).Select(i => governor.Register($"s{i}", () => 50 * MB, () => released.Add($"s{i}"))).ToList();
        clock.Advance(TimeSpan.FromMinutes(1));

        // 850 of 1000 MB: 150 MB to free, three 50 MB shards.
        Assert.Equal(3, governor.CheckOnce(850 * MB, 1000 * MB, fullCollections: 7).Count);

        // The load has not dropped yet (no full collection since): nothing more goes.
        Assert.Empty(governor.CheckOnce(850 * MB, 1000 * MB, fullCollections: 7));

        // After one, a load still over the limit is real and releases again.
        Assert.Equal(3, governor.CheckOnce(850 * MB, 1000 * MB, fullCollections: 8).Count);
        Assert.Equal(6, released.Distinct().Count());
        shards.ForEach(s => s.Dispose());
    }

    [Fact]
    public void Under_a_heap_hard_limit_the_load_is_the_heap_not_the_machine()
    {
        // A 3 GB heap limit on a host using 4 GB: the machine's load would read 133 % and release every idle shard.
        Assert.True(ShardMemoryGovernor.HasHeapHardLimit(new Dictionary<string, object> { ["GCHeapHardLimit"] = 3UL << 30, ["ServerGC"] = false }));
        Assert.True(ShardMemoryGovernor.HasHeapHardLimit(new Dictionary<string, object> { ["GCHeapHardLimitPercent"] = 50L }));
        Assert.False(ShardMemoryGovernor.HasHeapHardLimit(new Dictionary<string, object> { ["GCHeapHardLimit"] = 0UL, ["ConserveMemory"] = 0L }));
        Assert.False(ShardMemoryGovernor.HasHeapHardLimit(new Dictionary<string, object>()));
        Assert.Equal(900 * MB, ShardMemoryGovernor.MemoryLoad(4096 * MB, 900 * MB, heapHardLimit: true));
        Assert.Equal(4096 * MB, ShardMemoryGovernor.MemoryLoad(4096 * MB, 900 * MB, heapHardLimit: false));
    }

    [Fact]
    public void Governor_releases_only_over_the_limit_and_touched_shards_stay()
    {
        var clock = new ManualClock();
        var governor = new ShardMemoryGovernor(
            Options.Create(new ShardMemoryOptions { LimitPercent = 80, TargetPercent = 70, MinIdle = TimeSpan.FromSeconds(30) }),
            clock, NullLogger<ShardMemoryGovernor>.Instance);
        var released = new List<string>();
        using var a = governor.Register("a", () => 300 * MB, () => released.Add("a"));
        using var b = governor.Register("b", () => 200 * MB, () => released.Add("b"));
        var c = governor.Register("c", () => 900 * MB, () => released.Add("c"));
        Assert.Equal(1400 * MB, governor.ResidentBytes);

        clock.Advance(TimeSpan.FromMinutes(1));
        a.Touch();
        c.Dispose(); // deactivated on its own: no longer the governor's to release

        Assert.Empty(governor.CheckOnce(790 * MB, 1000 * MB)); // under the limit
        Assert.Equal(["b"], governor.CheckOnce(850 * MB, 1000 * MB)); // 150 MB to free; "a" was just used
        Assert.Equal(["b"], released);
        Assert.Equal(500 * MB, governor.ResidentBytes);
    }

    private sealed class ManualClock : TimeProvider
    {
        private long _ticks = 1_000_000;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }
}
