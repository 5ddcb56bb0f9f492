using RagOrleans.Grains.Indexing;
using RagOrleans.Grains.Storage;
using Xunit;

namespace RagOrleans.Unit.Tests.Indexing;

public sealed class ShardIndexTests
{
    private static readonly HnswOptions Options = new() { ExactSearchThreshold = 0 };

    [Fact]
    public void Replaying_the_log_on_top_of_a_snapshot_equals_applying_everything()
    {
        var random = new Random(7);
        var entries = new List<ChunkLogEntry>();
        long seq = 0;
        for (var d = 0; d < 40; d++)
        {
            for (var c = 0; c < 3; c++)
            {
                entries.Add(new ChunkLogEntry(++seq, ChunkOp.Add, $"d{d}", c, null, UnitVector(random, 32), 0, 0, null, null, null, null));
            }

            if (d % 7 == 3)
            {
                entries.Add(new ChunkLogEntry(++seq, ChunkOp.DeleteDocument, $"d{d - 2}", 0, null, null, 0, 0, null, null, null, null));
            }
        }

        var full = new ShardIndex(Options);
        entries.ForEach(full.Apply);

        var cut = entries.Count / 2;
        var partial = new ShardIndex(Options);
        entries.Take(cut).ToList().ForEach(partial.Apply);
        var snapshot = new MemoryStream();
        partial.WriteTo(snapshot);
        snapshot.Position = 0;
        var restored = ShardIndex.ReadFrom(snapshot, Options);
        entries.Skip(cut).ToList().ForEach(restored.Apply);

        Assert.Equal(full.Count, restored.Count);
        Assert.Equal(full.DocumentCount, restored.DocumentCount);
        for (var q = 0; q < 20; q++)
        {
            var query = UnitVector(random, 32);
            Assert.Equal(full.Search(query, 10, 64), restored.Search(query, 10, 64));
        }
    }

    [Fact]
    public void Deleted_documents_never_come_back()
    {
        var random = new Random(3);
        var index = new ShardIndex(Options);
        long seq = 0;
        var vectors = new Dictionary<long, float[]>();
        for (var d = 0; d < 50; d++)
        {
            var v = UnitVector(random, 16);
            vectors[++seq] = v;
            index.Apply(new ChunkLogEntry(seq, ChunkOp.Add, $"d{d}", 0, null, v, 0, 0, null, null, null, null));
        }

        index.Apply(new ChunkLogEntry(++seq, ChunkOp.DeleteDocument, "d10", 0, null, null, 0, 0, null, null, null, null));
        Assert.False(index.HasDocument("d10"));
        Assert.Equal(49, index.Count);
        var hits = index.Search(vectors[11], 50, 100);
        Assert.DoesNotContain(hits, h => h.Seq == 11);
        Assert.Equal(49, hits.Count);
    }

    [Fact]
    public void A_damaged_snapshot_is_reported_not_loaded()
    {
        var index = new ShardIndex(Options);
        index.Apply(new ChunkLogEntry(1, ChunkOp.Add, "d", 0, null, [1f, 0f], 0, 0, null, null, null, null));
        var stream = new MemoryStream();
        index.WriteTo(stream);
        var bytes = stream.ToArray();
        Assert.Throws<InvalidDataException>(() => ShardIndex.ReadFrom(new MemoryStream(bytes[..(bytes.Length / 2)]), Options));
        var flippedMap = (byte[])bytes.Clone();
        flippedMap[20] ^= 0x01; // inside the id maps, after magic, version, length and checksum
        Assert.Throws<InvalidDataException>(() => ShardIndex.ReadFrom(new MemoryStream(flippedMap), Options));
        var flippedGraph = (byte[])bytes.Clone();
        flippedGraph[^5] ^= 0x01;
        Assert.Throws<InvalidDataException>(() => ShardIndex.ReadFrom(new MemoryStream(flippedGraph), Options));
        bytes[0] ^= 0xFF;
        Assert.Throws<InvalidDataException>(() => ShardIndex.ReadFrom(new MemoryStream(bytes), Options));
    }

    [Fact]
    public void Keyword_search_finds_rare_terms_forgets_deleted_documents_and_survives_snapshots()
    {
        var random = new Random(11);
        var index = new ShardIndex(Options);
        string[] texts = ["The quokka is a small marsupial.", "Kangaroos hop across Australia.", "Compilers translate source code."];
        for (var i = 0; i < texts.Length; i++)
        {
            index.Apply(new ChunkLogEntry(i + 1, ChunkOp.Add, $"d{i}", 0, texts[i], UnitVector(random, 8), 0, 0, "Animals", null, "Notes", null));
        }

        Assert.Equal(1, index.SearchKeywords("quokka", 5).Single().Seq);
        Assert.Equal(2, index.SearchKeywords("kangaroo", 5).Single().Seq);
        Assert.Equal(3, index.SearchKeywords("animals", 5).Count); // the section heading is indexed with every chunk

        index.Apply(new ChunkLogEntry(4, ChunkOp.DeleteDocument, "d0", 0, null, null, 0, 0, null, null, null, null));
        Assert.Empty(index.SearchKeywords("quokka", 5));

        var stream = new MemoryStream();
        index.WriteTo(stream);
        stream.Position = 0;
        var restored = ShardIndex.ReadFrom(stream, Options);
        Assert.Empty(restored.SearchKeywords("quokka", 5));
        Assert.Equal(index.SearchKeywords("compilers source", 5), restored.SearchKeywords("compilers source", 5));
    }

    [Theory]
    [InlineData(100)]  // 1% of the documents match
    [InlineData(1000)] // 0.1%
    public void Selective_filters_still_fill_top_k_with_matching_chunks(int groups)
    {
        var random = new Random(5);
        var index = new ShardIndex(new HnswOptions { ExactSearchThreshold = 0 });
        const int docs = 4000;
        for (var d = 0; d < docs; d++)
        {
            var text = $"report number {d} about quarterly revenue";
            index.Apply(new ChunkLogEntry(d + 1, ChunkOp.Add, $"d{d}", 0, text, UnitVector(random, 32), 0, 0, null, null, null, $$"""{"group": {{d % groups}}}"""));
        }

        var filter = Grains.Retrieval.MetadataFilter.Parse("""{"group": 3}""");
        var matching = docs / groups;
        var dense = index.Search(UnitVector(random, 32), 10, 64, filter);
        Assert.Equal(Math.Min(10, matching), dense.Count);
        Assert.All(dense, h => Assert.Equal(3, (h.Seq - 1) % groups));
        var keyword = index.SearchKeywords("quarterly revenue", 10, filter);
        Assert.Equal(Math.Min(10, matching), keyword.Count);
        Assert.All(keyword, h => Assert.Equal(3, (h.Seq - 1) % groups));

        // Filters survive a snapshot round trip.
        var stream = new MemoryStream();
        index.WriteTo(stream);
        stream.Position = 0;
        var restored = ShardIndex.ReadFrom(stream, new HnswOptions { ExactSearchThreshold = 0 });
        Assert.Equal(keyword, restored.SearchKeywords("quarterly revenue", 10, filter));
    }

    [Fact]
    public void Vectors_by_sequence_number_follow_adds_deletes_and_snapshots()
    {
        var index = new ShardIndex(Options);
        index.Apply(new ChunkLogEntry(1, ChunkOp.Add, "a", 0, "x", [0.6f, 0.8f], 0, 0, null, null, null, null));
        index.Apply(new ChunkLogEntry(2, ChunkOp.Add, "b", 0, "y", [1f, 0f], 0, 0, null, null, null, null));
        index.Apply(new ChunkLogEntry(3, ChunkOp.Add, "b", 1, "z", [0f, 1f], 0, 0, null, null, null, null));
        index.Apply(new ChunkLogEntry(4, ChunkOp.DeleteDocument, "a", 0, null, null, 0, 0, null, null, null, null));

        var vectors = index.VectorsOf([3, 1, 2, 99]);
        Assert.Equal([0f, 1f], vectors[0]!);
        Assert.Null(vectors[1]);
        Assert.Equal([1f, 0f], vectors[2]!);
        Assert.Null(vectors[3]);

        using var stream = new MemoryStream();
        index.WriteTo(stream);
        stream.Position = 0;
        var restored = ShardIndex.ReadFrom(stream, Options);
        Assert.Equal([0f, 1f], restored.VectorsOf([3])[0]!);
        Assert.Null(restored.VectorsOf([1])[0]);
    }

    [Fact]
    public void Vectors_by_sequence_number_survive_a_log_applied_out_of_order()
    {
        // Sequence numbers normally ascend with ids (a binary search maps them back); a log that does not still works.
        var index = new ShardIndex(Options);
        index.Apply(new ChunkLogEntry(10, ChunkOp.Add, "a", 0, "x", [0.6f, 0.8f], 0, 0, null, null, null, null));
        index.Apply(new ChunkLogEntry(20, ChunkOp.Add, "b", 0, "y", [1f, 0f], 0, 0, null, null, null, null));
        index.Apply(new ChunkLogEntry(15, ChunkOp.Add, "c", 0, "z", [0f, 1f], 0, 0, null, null, null, null));
        index.Apply(new ChunkLogEntry(21, ChunkOp.DeleteDocument, "b", 0, null, null, 0, 0, null, null, null, null));

        AssertVectors(index);
        using var stream = new MemoryStream();
        index.WriteTo(stream);
        stream.Position = 0;
        AssertVectors(ShardIndex.ReadFrom(stream, Options));

        static void AssertVectors(ShardIndex shard)
        {
            var vectors = shard.VectorsOf([15, 10, 20, 11]);
            Assert.Equal([0f, 1f], vectors[0]!);
            Assert.Equal([0.6f, 0.8f], vectors[1]!);
            Assert.Null(vectors[2]);
            Assert.Null(vectors[3]);
        }
    }

    [Fact]
    public void Snapshots_with_the_version_1_keyword_index_still_load()
    {
        var random = new Random(21);
        var index = new ShardIndex(Options);
        long seq = 0;
        for (var d = 0; d < 60; d++)
        {
            for (var c = 0; c < 3; c++)
            {
                index.Apply(new ChunkLogEntry(++seq, ChunkOp.Add, $"d{d}", c, $"chunk {c} of report {d} on topic{d % 7} and enzyme{d % 11}",
                    UnitVector(random, 16), 0, 0, null, null, $"Title {d}", null));
            }

            if (d % 9 == 4)
            {
                index.Apply(new ChunkLogEntry(++seq, ChunkOp.DeleteDocument, $"d{d - 3}", 0, null, null, 0, 0, null, null, null, null));
            }
        }

        using var old = new MemoryStream();
        index.WriteTo(old, keywordVersion: 1);
        old.Position = 0;
        var restored = ShardIndex.ReadFrom(old, Options);
        using var current = new MemoryStream();
        index.WriteTo(current);
        current.Position = 0;
        var restoredCurrent = ShardIndex.ReadFrom(current, Options);

        Assert.NotEqual(old.ToArray(), current.ToArray());
        foreach (var shard in new[] { restored, restoredCurrent })
        {
            Assert.Equal(index.Count, shard.Count);
            Assert.Equal(index.DocumentCount, shard.DocumentCount);
            foreach (var query in new[] { "topic3 enzyme5", "report", "title 12", "chunk 2 enzyme10" })
            {
                Assert.Equal(index.SearchKeywords(query, 20), shard.SearchKeywords(query, 20));
            }

            var vector = UnitVector(random, 16);
            Assert.Equal(index.Search(vector, 10, 64), shard.Search(vector, 10, 64));
        }

        // Writing what was read from the old format gives the current format's bytes exactly.
        using var rewritten = new MemoryStream();
        restored.WriteTo(rewritten);
        Assert.Equal(current.ToArray(), rewritten.ToArray());
    }

    private static float[] UnitVector(Random random, int dims)
    {
        var v = new float[dims];
        var norm = 0f;
        for (var i = 0; i < dims; i++)
        {
            v[i] = (float)(random.NextDouble() * 2 - 1);
            norm += v[i] * v[i];
        }

        norm = MathF.Sqrt(norm);
        for (var i = 0; i < dims; i++)
        {
            v[i] /= norm;
        }

        return v;
    }
}
