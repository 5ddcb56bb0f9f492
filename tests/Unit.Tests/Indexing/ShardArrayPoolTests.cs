using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using RagOrleans.Grains.Indexing;
using RagOrleans.Grains.Storage;
using Xunit;

namespace RagOrleans.Unit.Tests.Indexing;

/// <summary>The pool is process-wide: its tests run alone so no other test's shards take or add arrays meanwhile.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ShardArrayPoolCollection
{
    public const string Name = "Shard array pool";
}

[Collection(ShardArrayPoolCollection.Name)]
public sealed class ShardArrayPoolTests : IDisposable
{
    private static readonly HnswOptions Options = new() { ExactSearchThreshold = 0 };
    private static readonly string[] Words =
        ["quokka", "marsupial", "kangaroo", "compiler", "protein", "enzyme", "glacier", "volcano", "sonata", "harbour", "lattice", "orbit"];

    private readonly long _limit = ShardArrayPool.LimitBytes;

    public ShardArrayPoolTests()
    {
        ShardArrayPool.LimitBytes = 0;
        ShardArrayPool.LimitBytes = 64L << 20;
    }

    public void Dispose() => ShardArrayPool.LimitBytes = _limit;

    [Fact]
    public void A_shard_loaded_into_another_shards_released_arrays_answers_exactly_as_one_in_fresh_memory()
    {
        // A slightly bigger shard first: its arrays are big enough for the second's and within the pool's slack.
        var first = Snapshot(Build(seed: 1, chunks: 630));
        var second = Build(seed: 2, chunks: 600);
        var secondSnapshot = Snapshot(second);

        ShardArrayPool.LimitBytes = 0;
        var fresh = Load(secondSnapshot);

        ShardArrayPool.LimitBytes = 64L << 20;
        Load(first).Dispose();
        Assert.True(ShardArrayPool.HeldBytes > 600 * 16 * sizeof(float), "the released shard's arrays are held");
        var (_, reusedBefore) = ShardArrayPool.Counts;
        var recycled = Load(secondSnapshot);
        var (_, reusedAfter) = ShardArrayPool.Counts;

        // Vectors, layer-0 links and both posting arenas came from the first shard.
        Assert.Equal(4, reusedAfter - reusedBefore);
        Assert.Equal(0, ShardArrayPool.HeldBytes);
        var random = new Random(9);
        for (var q = 0; q < 25; q++)
        {
            var query = UnitVector(random, 16);
            var expected = second.Search(query, 10, 64);
            Assert.Equal(expected, fresh.Search(query, 10, 64));
            Assert.Equal(expected, recycled.Search(query, 10, 64));
            var text = $"{Words[q % Words.Length]} {Words[(q * 5) % Words.Length]}";
            Assert.Equal(second.SearchKeywords(text, 10), recycled.SearchKeywords(text, 10));
        }

        Assert.Equal(second.VectorsOf([1, 300, 600]), recycled.VectorsOf([1, 300, 600]));
        Assert.Equal(secondSnapshot, Snapshot(recycled));
    }

    [Fact]
    public void A_shard_built_on_recycled_arrays_writes_the_same_snapshot_as_one_built_on_fresh_memory()
    {
        ShardArrayPool.LimitBytes = 0;
        var fresh = Snapshot(Build(seed: 7, chunks: 1000));

        // Released arrays full of another shard's vectors, links and postings, sized for the graph's first capacity.
        ShardArrayPool.LimitBytes = 64L << 20;
        for (var i = 0; i < 3; i++)
        {
            Build(seed: 8 + i, chunks: 1000).Dispose();
        }

        Assert.True(ShardArrayPool.HeldBytes > 0);
        Assert.Equal(fresh, Snapshot(Build(seed: 7, chunks: 1000)));
    }

    [Fact]
    public void A_released_index_is_empty_and_refuses_new_vectors()
    {
        var shard = Load(Snapshot(Build(seed: 3, chunks: 200)));
        var query = UnitVector(new Random(4), 16);
        Assert.NotEmpty(shard.Search(query, 5, 32));

        shard.Dispose();

        Assert.Equal(0, shard.Count);
        Assert.Empty(shard.Search(query, 5, 32));
        Assert.Empty(shard.SearchKeywords("quokka", 5));
        Assert.All(shard.VectorsOf([1, 2]), Assert.Null);
        shard.Dispose(); // twice is harmless

        var graph = new HnswIndex(16, VectorMetric.Cosine, Options);
        graph.Add(query);
        graph.Dispose();
        Assert.Equal(0, graph.Count);
        Assert.Empty(graph.Search(query, 3));
        Assert.Throws<ObjectDisposedException>(() => graph.Add(query));
    }

    [Fact]
    public void Limit_zero_keeps_nothing_and_the_limit_bounds_what_is_kept()
    {
        var snapshot = Snapshot(Build(seed: 5, chunks: 400));

        ShardArrayPool.LimitBytes = 0;
        Load(snapshot).Dispose();
        Assert.Equal(0, ShardArrayPool.HeldBytes);
        var (_, reusedBefore) = ShardArrayPool.Counts;
        Load(snapshot).Dispose();
        Assert.Equal(reusedBefore, ShardArrayPool.Counts.Reused);

        // Room for one shard's arrays, not two: the older shard's are dropped.
        ShardArrayPool.LimitBytes = 64L << 20;
        var a = Load(snapshot);
        var b = Load(snapshot);
        a.Dispose();
        var one = ShardArrayPool.HeldBytes;
        Assert.True(one > 0);
        ShardArrayPool.LimitBytes = one + (one / 2);
        b.Dispose();
        Assert.InRange(ShardArrayPool.HeldBytes, 1, one + (one / 2));
    }

    [Fact]
    public void Arrays_much_bigger_than_needed_are_not_handed_out()
    {
        var big = ShardArrayPool.RentVectors(100_000);
        ShardArrayPool.Return(big);
        Assert.NotSame(big, ShardArrayPool.RentVectors(80_000)); // would waste a quarter
        var fits = ShardArrayPool.RentVectors(95_000);            // wastes 5 %
        Assert.Same(big, fits);
        Assert.Equal(0, ShardArrayPool.HeldBytes);
    }

    [Fact]
    public void The_memory_governor_drains_the_pool_only_when_idle_shards_cannot_free_enough()
    {
        Load(Snapshot(Build(seed: 6, chunks: 300))).Dispose();
        Assert.True(ShardArrayPool.HeldBytes > 0);
        var governor = new ShardMemoryGovernor(
            Microsoft.Extensions.Options.Options.Create(new ShardMemoryOptions { LimitPercent = 80, TargetPercent = 70, MinIdle = TimeSpan.Zero }),
            TimeProvider.System, NullLogger<ShardMemoryGovernor>.Instance);
        var released = new List<string>();
        using var idle = governor.Register("idle", () => 30, () => released.Add("idle"));

        governor.CheckOnce(memoryLoadBytes: 50, availableBytes: 100, fullCollections: 0); // under the limit
        Assert.True(ShardArrayPool.HeldBytes > 0);
        governor.CheckOnce(memoryLoadBytes: 90, availableBytes: 100, fullCollections: 0); // the idle shard frees 30 >= 20
        Assert.Equal(["idle"], released);
        Assert.True(ShardArrayPool.HeldBytes > 0);
        governor.CheckOnce(memoryLoadBytes: 95, availableBytes: 100, fullCollections: 1); // nothing idle left to release
        Assert.Equal(0, ShardArrayPool.HeldBytes);
    }

    private static ShardIndex Build(int seed, int chunks)
    {
        var random = new Random(seed);
        var index = new ShardIndex(Options);
        for (var i = 0; i < chunks; i++)
        {
            // Six distinct words a chunk: six postings each, so posting arenas scale exactly with the chunk count.
            var text = string.Join(' ', Words.OrderBy(_ => random.Next()).Take(6));
            index.Apply(new ChunkLogEntry(i + 1, ChunkOp.Add, $"d{i / 3}", i % 3, text, UnitVector(random, 16), 0, 0, null, null, null, null));
        }

        return index;
    }

    private static byte[] Snapshot(ShardIndex index)
    {
        var stream = new MemoryStream();
        index.WriteTo(stream);
        return stream.ToArray();
    }

    private static ShardIndex Load(byte[] snapshot) => ShardIndex.ReadFrom(new MemoryStream(snapshot, writable: false), Options);

    private static float[] UnitVector(Random random, int dims)
    {
        var v = new float[dims];
        for (var i = 0; i < dims; i++)
        {
            v[i] = (float)((random.NextDouble() * 2) - 1);
        }

        var norm = MathF.Sqrt(v.Sum(x => x * x));
        return v.Select(x => x / norm).ToArray();
    }
}
