using RagOrleans.Grains.Ingestion;
using Xunit;

namespace RagOrleans.Unit.Tests.Ingestion;

public sealed class RetryBackoffTests
{
    [Fact]
    public void The_wait_doubles_per_attempt_within_half_and_all_of_the_nominal_value_and_stops_at_the_cap()
    {
        var initial = TimeSpan.FromSeconds(2);
        var max = TimeSpan.FromSeconds(30);
        Assert.Equal(TimeSpan.FromSeconds(1), RetryBackoff.Delay(1, initial, max, 0));
        Assert.Equal(TimeSpan.FromSeconds(2), RetryBackoff.Delay(1, initial, max, 1));
        Assert.Equal(TimeSpan.FromSeconds(4), RetryBackoff.Delay(3, initial, max, 0));
        Assert.Equal(TimeSpan.FromSeconds(6), RetryBackoff.Delay(3, initial, max, 0.5));
        Assert.Equal(TimeSpan.FromSeconds(8), RetryBackoff.Delay(3, initial, max, 1));
        Assert.Equal(TimeSpan.FromSeconds(30), RetryBackoff.Delay(5, initial, max, 1));
        Assert.Equal(TimeSpan.FromSeconds(30), RetryBackoff.Delay(500, initial, max, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => RetryBackoff.Delay(0, initial, max, 0));
    }
}

public sealed class ChunkVectorCacheTests
{
    [Fact]
    public void Keys_depend_on_model_and_text_and_the_least_recently_used_entry_goes_first()
    {
        Assert.Equal(ChunkVectorCache.KeyOf("m", "text"), ChunkVectorCache.KeyOf("m", "text"));
        Assert.NotEqual(ChunkVectorCache.KeyOf("m", "text"), ChunkVectorCache.KeyOf("other", "text"));
        Assert.NotEqual(ChunkVectorCache.KeyOf("m", "text"), ChunkVectorCache.KeyOf("m", "text."));

        var cache = new ChunkVectorCache(2);
        var (a, b, c) = (ChunkVectorCache.KeyOf("m", "a"), ChunkVectorCache.KeyOf("m", "b"), ChunkVectorCache.KeyOf("m", "c"));
        cache.Add(a, [1f]);
        cache.Add(b, [2f]);
        Assert.True(cache.TryGet(a, out var va));
        va[0] = 99f;
        cache.Add(c, [3f]);
        Assert.False(cache.TryGet(b, out _));
        Assert.True(cache.TryGet(a, out va));
        Assert.Equal(1f, va[0]);
        Assert.True(cache.TryGet(c, out var vc));
        Assert.Equal(3f, vc[0]);
        Assert.Equal((3L, 1L, 2), (cache.Hits, cache.Misses, cache.Count));
    }

    [Fact]
    public void A_cache_of_capacity_zero_keeps_nothing()
    {
        var cache = new ChunkVectorCache(0);
        var key = ChunkVectorCache.KeyOf("m", "a");
        cache.Add(key, [1f]);
        Assert.False(cache.TryGet(key, out _));
        Assert.Equal(0, cache.Count);
    }
}

public sealed class BatchFanOutTests
{
    [Fact]
    public async Task Results_come_back_in_batch_order_every_worker_takes_part_and_in_flight_stays_bounded()
    {
        var inFlight = new Dictionary<string, int>();
        var peak = new Dictionary<string, int>();
        var ran = new List<(string Worker, int Batch)>();
        var gate = new Lock();
        var results = await BatchFanOut.RunAsync(20, ["a", "b", "c"], 2, async (worker, batch) =>
        {
            lock (gate)
            {
                inFlight[worker] = inFlight.GetValueOrDefault(worker) + 1;
                peak[worker] = Math.Max(peak.GetValueOrDefault(worker), inFlight[worker]);
                ran.Add((worker, batch));
            }

            // Later batches end first, so completion order differs from batch order.
            await Task.Delay(20 - batch);
            lock (gate)
            {
                inFlight[worker]--;
            }

            return batch * 10;
        });

        Assert.Equal(Enumerable.Range(0, 20).Select(b => b * 10), results);
        Assert.Equal(Enumerable.Range(0, 20), ran.Select(r => r.Batch).Order());
        Assert.Equal(["a", "b", "c"], ran.Select(r => r.Worker).Distinct().Order());
        Assert.All(peak.Values, p => Assert.InRange(p, 1, 2));
    }

    [Fact]
    public async Task One_batch_runs_on_the_first_worker_and_a_failure_stops_the_rest()
    {
        // Repeated: which slot the thread pool starts first varies from run to run.
        var single = new List<string>();
        for (var i = 0; i < 200; i++)
        {
            await BatchFanOut.RunAsync(1, ["local", "remote"], 2, (worker, batch) =>
            {
                lock (single)
                {
                    single.Add(worker);
                }

                return Task.FromResult(batch);
            });
        }

        Assert.Equal(Enumerable.Repeat("local", 200), single);

        var started = 0;
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => BatchFanOut.RunAsync(100, ["a"], 1, async (worker, batch) =>
        {
            Interlocked.Increment(ref started);
            await Task.Yield();
            return batch == 2 ? throw new InvalidOperationException("boom") : batch;
        }));
        Assert.Equal("boom", ex.Message);
        Assert.Equal(3, started);
        Assert.Equal(Array.Empty<int>(), await BatchFanOut.RunAsync(0, ["a"], 1, (w, b) => Task.FromResult(b)));
    }
}
