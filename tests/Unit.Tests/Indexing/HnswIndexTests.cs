using RagOrleans.Grains.Indexing;
using Xunit;

namespace RagOrleans.Unit.Tests.Indexing;

/// <summary>siftsmall (10k x 128, L2) built once for the tests that need a real data set.</summary>
public sealed class SiftSmallFixture
{
    public SiftSmallFixture()
    {
        string dir = HnswTestData.FindSiftSmallDirectory();
        Base = HnswTestData.ReadFvecs(Path.Combine(dir, "siftsmall_base.fvecs"));
        Queries = HnswTestData.ReadFvecs(Path.Combine(dir, "siftsmall_query.fvecs"));
        GroundTruth = HnswTestData.ReadIvecs(Path.Combine(dir, "siftsmall_groundtruth.ivecs"));

        // ExactSearchThreshold = 0 so every search really walks the graph.
        Index = new HnswIndex(128, VectorMetric.L2, new HnswOptions { M = 16, EfConstruction = 200, ExactSearchThreshold = 0 });
        foreach (var vector in Base)
        {
            Index.Add(vector);
        }
    }

    public float[][] Base { get; }

    public float[][] Queries { get; }

    public int[][] GroundTruth { get; }

    public HnswIndex Index { get; }
}

/// <summary>20k x 384 embedding-like vectors (cosine) built once; efConstruction 100 keeps the build a few seconds.</summary>
public sealed class MixtureFixture
{
    public const int Count = 20_000;

    public MixtureFixture()
    {
        (Base, Queries) = HnswTestData.EmbeddingLikeMixture(Count, 200, seed: 2024);
        Index = new HnswIndex(384, VectorMetric.Cosine, new HnswOptions { M = 16, EfConstruction = 100 }, Count);
        foreach (var vector in Base)
        {
            Index.Add(vector);
        }
    }

    public float[][] Base { get; }

    public float[][] Queries { get; }

    public HnswIndex Index { get; }
}

public sealed class HnswIndexTests : IClassFixture<SiftSmallFixture>, IClassFixture<MixtureFixture>
{
    private readonly SiftSmallFixture _sift;
    private readonly MixtureFixture _mixture;

    public HnswIndexTests(SiftSmallFixture sift, MixtureFixture mixture)
    {
        _sift = sift;
        _mixture = mixture;
    }

    [Fact]
    public void SiftSmall_RecallAt10_IsAtLeast99Percent()
    {
        var index = _sift.Index;
        Assert.Equal(10_000, index.Count);
        Assert.True(index.MaxLevel > 0, "a 10k-item graph should have upper layers");

        double recall = 0;
        for (int q = 0; q < _sift.Queries.Length; q++)
        {
            var hits = index.Search(_sift.Queries[q], 10, ef: 128);
            Assert.Equal(10, hits.Count);
            AssertSortedAscending(hits);
            recall += HnswTestData.Recall(Ids(hits), _sift.GroundTruth[q], 10);
        }

        recall /= _sift.Queries.Length;
        Assert.True(recall >= 0.99, $"siftsmall recall@10 was {recall:F4}, expected >= 0.99");
    }

    [Fact]
    public void EmbeddingLikeMixture_CosineRecallAt10_IsAtLeast95Percent()
    {
        var index = _mixture.Index;
        double recall = 0;
        for (int q = 0; q < _mixture.Queries.Length; q++)
        {
            var truth = HnswTestData.BruteForce(_mixture.Base, _mixture.Queries[q], 10, cosine: true);
            var hits = index.Search(_mixture.Queries[q], 10, ef: 64);
            Assert.Equal(10, hits.Count);
            AssertSortedAscending(hits);
            recall += HnswTestData.Recall(Ids(hits), truth, 10);
        }

        recall /= _mixture.Queries.Length;
        Assert.True(recall >= 0.95, $"mixture recall@10 was {recall:F4}, expected >= 0.95");
    }

    [Fact]
    public void Search_ReportsTrueDistances()
    {
        var index = _mixture.Index;
        for (int q = 0; q < 20; q++)
        {
            foreach (var hit in index.Search(_mixture.Queries[q], 10))
            {
                double expected = HnswTestData.ReferenceDistance(_mixture.Base[hit.Id], _mixture.Queries[q], cosine: true);
                Assert.Equal(expected, hit.Distance, 1e-4);
            }
        }
    }

    [Fact]
    public void SpanSearch_MatchesListSearch_AndRespectsDestinationLength()
    {
        var index = _mixture.Index;
        Span<VectorHit> destination = stackalloc VectorHit[10];
        for (int q = 0; q < 20; q++)
        {
            var list = index.Search(_mixture.Queries[q], 10, ef: 40);
            int written = index.Search(_mixture.Queries[q], 10, destination, ef: 40);
            Assert.Equal(list.Count, written);
            for (int i = 0; i < written; i++)
            {
                Assert.Equal(list[i], destination[i]);
            }

            Assert.Equal(3, index.Search(_mixture.Queries[q], 10, destination[..3], ef: 40));
            Assert.Equal(list[0], destination[0]);
        }
    }

    [Fact]
    public void Snapshot_RoundTrip_GivesIdenticalResults()
    {
        var original = _sift.Index;
        var copy = RoundTrip(original);

        Assert.Equal(original.Count, copy.Count);
        Assert.Equal(original.TotalCount, copy.TotalCount);
        Assert.Equal(original.Dimensions, copy.Dimensions);
        Assert.Equal(original.Metric, copy.Metric);
        Assert.Equal(original.Options, copy.Options);
        Assert.Equal(original.GetVector(1234).ToArray(), copy.GetVector(1234).ToArray());
        foreach (var query in _sift.Queries)
        {
            Assert.Equal(original.Search(query, 20, ef: 50), copy.Search(query, 20, ef: 50));
        }
    }

    [Fact]
    public void Snapshot_ContinuesDeterministicallyAfterReload()
    {
        var (data, queries) = HnswTestData.EmbeddingLikeMixture(1_500, 30, dims: 48, seed: 5);
        var original = new HnswIndex(48, VectorMetric.Cosine, new HnswOptions { M = 8, EfConstruction = 60 });
        for (int i = 0; i < 1_000; i++)
        {
            original.Add(data[i]);
        }

        var reloaded = RoundTrip(original);
        for (int i = 1_000; i < data.Length; i++)
        {
            Assert.Equal(original.Add(data[i]), reloaded.Add(data[i]));
        }

        Assert.Equal(SnapshotBytes(original), SnapshotBytes(reloaded));
        foreach (var query in queries)
        {
            Assert.Equal(original.Search(query, 10), reloaded.Search(query, 10));
        }
    }

    [Fact]
    public void Snapshot_FlippedByte_IsDetected()
    {
        var (data, _) = HnswTestData.EmbeddingLikeMixture(300, 1, dims: 16, seed: 9);
        var index = BuildIndex(data, VectorMetric.Cosine, new HnswOptions { M = 4, EfConstruction = 20 });
        byte[] bytes = SnapshotBytes(index);

        // Every header byte, then a stride through vectors, levels, tombstones and links, and the final checksum.
        var positions = Enumerable.Range(0, 80).Concat(Enumerable.Range(0, bytes.Length / 97).Select(i => 80 + (i * 97)))
            .Concat(Enumerable.Range(bytes.Length - 4, 4)).Where(p => p < bytes.Length).Distinct();
        foreach (int position in positions)
        {
            byte[] corrupt = (byte[])bytes.Clone();
            corrupt[position] ^= 0x10;
            var ex = Assert.Throws<InvalidDataException>(() => HnswIndex.ReadFrom(new MemoryStream(corrupt)));
            Assert.False(string.IsNullOrWhiteSpace(ex.Message));
        }

        byte[] payloadFlip = (byte[])bytes.Clone();
        payloadFlip[bytes.Length / 2] ^= 0x01;
        var mismatch = Assert.Throws<InvalidDataException>(() => HnswIndex.ReadFrom(new MemoryStream(payloadFlip)));
        Assert.Contains("checksum", mismatch.Message, StringComparison.OrdinalIgnoreCase);

        // The untouched bytes still load: the detector is not just rejecting everything.
        Assert.Equal(index.Count, HnswIndex.ReadFrom(new MemoryStream(bytes)).Count);
    }

    [Fact]
    public void Snapshot_Truncation_IsDetected()
    {
        var (data, _) = HnswTestData.EmbeddingLikeMixture(300, 1, dims: 16, seed: 10);
        var index = BuildIndex(data, VectorMetric.L2, new HnswOptions { M = 4, EfConstruction = 20 });
        byte[] bytes = SnapshotBytes(index);
        foreach (int length in new[] { 0, 3, 8, 11, 40, 76, bytes.Length / 3, bytes.Length / 2, bytes.Length - 5, bytes.Length - 1 })
        {
            var ex = Assert.Throws<InvalidDataException>(() => HnswIndex.ReadFrom(new MemoryStream(bytes, 0, length)));
            Assert.False(string.IsNullOrWhiteSpace(ex.Message));
        }

        var truncated = Assert.Throws<InvalidDataException>(() => HnswIndex.ReadFrom(new MemoryStream(bytes, 0, bytes.Length - 1)));
        Assert.Contains("truncated", truncated.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void Snapshot_BadMagicAndUnknownVersion_HaveClearMessages()
    {
        var index = BuildIndex(HnswTestData.EmbeddingLikeMixture(50, 1, dims: 8, seed: 11).Base, VectorMetric.Cosine, new HnswOptions());
        byte[] bytes = SnapshotBytes(index);

        byte[] badMagic = (byte[])bytes.Clone();
        badMagic[0] = (byte)'X';
        Assert.Contains("magic", Assert.Throws<InvalidDataException>(() => HnswIndex.ReadFrom(new MemoryStream(badMagic))).Message, StringComparison.Ordinal);

        byte[] badVersion = (byte[])bytes.Clone();
        badVersion[8] = 99;
        Assert.Contains("version 99", Assert.Throws<InvalidDataException>(() => HnswIndex.ReadFrom(new MemoryStream(badVersion))).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Snapshot_EmptyIndex_RoundTrips()
    {
        var empty = new HnswIndex(4, VectorMetric.L2);
        var copy = RoundTrip(empty);
        Assert.Equal(0, copy.Count);
        Assert.Empty(copy.Search(new float[4], 5));
        Assert.Equal(0, copy.Add(new float[] { 1, 2, 3, 4 }));
        Assert.Equal(0, copy.Search(new float[4], 5).Single().Id);
    }

    [Fact]
    public void DeletedItems_AreNeverReturned_AndSurviveSnapshot()
    {
        var (data, queries) = HnswTestData.EmbeddingLikeMixture(5_000, 100, dims: 64, seed: 77);
        var index = BuildIndex(data, VectorMetric.Cosine, new HnswOptions { M = 12, EfConstruction = 80 });

        // The entry point, every upper-layer node (the ones searches route through) and then every 13th id.
        var deleted = new HashSet<int> { index.EntryPoint };
        for (int id = 0; id < data.Length && deleted.Count < 500; id++)
        {
            if (index.GetLevel(id) > 0)
            {
                deleted.Add(id);
            }
        }

        for (int id = 0; deleted.Count < 500; id += 13)
        {
            deleted.Add(id);
        }

        foreach (int id in deleted)
        {
            Assert.True(index.Delete(id));
        }

        Assert.False(index.Delete(index.EntryPoint));
        Assert.False(index.Delete(-1));
        Assert.False(index.Delete(data.Length));
        Assert.Equal(data.Length - deleted.Count, index.Count);
        Assert.Equal(data.Length, index.TotalCount);
        Assert.True(index.IsDeleted(index.EntryPoint));

        var reloaded = RoundTrip(index);
        Assert.Equal(index.Count, reloaded.Count);
        foreach (var candidate in new[] { index, reloaded })
        {
            double recall = 0;
            foreach (var query in queries)
            {
                var hits = candidate.Search(query, 200, ef: 250);
                Assert.Equal(200, hits.Count);
                Assert.DoesNotContain(hits, h => deleted.Contains(h.Id));
                Assert.DoesNotContain(candidate.SearchExact(query, 200), h => deleted.Contains(h.Id));
                var truth = HnswTestData.BruteForce(data, query, 10, cosine: true, include: id => !deleted.Contains(id));
                recall += HnswTestData.Recall(Ids(candidate.Search(query, 10)), truth, 10);
            }

            recall /= queries.Length;
            Assert.True(recall >= 0.95, $"recall@10 after deletes was {recall:F4}");
        }

        // Deleting everything leaves searches empty rather than returning tombstones.
        for (int id = 0; id < data.Length; id++)
        {
            reloaded.Delete(id);
        }

        Assert.Equal(0, reloaded.Count);
        Assert.Empty(reloaded.Search(queries[0], 10));
    }

    [Theory]
    [InlineData(10)] // 1% of 20k
    [InlineData(1)] // 0.1% of 20k
    [InlineData(200)] // 20%: the filtered graph walk is used
    public void Filter_ReturnsNearestMatchingItems(int perMille)
    {
        var index = _mixture.Index;
        Func<int, bool> filter = id => KeepPerMille(id, perMille);
        int matching = Enumerable.Range(0, MixtureFixture.Count).Count(filter);
        Assert.InRange(matching, MixtureFixture.Count * perMille / 2000, MixtureFixture.Count * perMille / 500);

        double recall = 0;
        int k = 30;
        for (int q = 0; q < 100; q++)
        {
            var query = _mixture.Queries[q];
            var hits = index.Search(query, k, ef: 64, filter: filter);
            Assert.Equal(Math.Min(k, matching), hits.Count);
            Assert.All(hits, h => Assert.True(filter(h.Id)));
            AssertSortedAscending(hits);
            var truth = HnswTestData.BruteForce(_mixture.Base, query, k, cosine: true, include: filter);
            recall += HnswTestData.Recall(Ids(hits), truth, k);
        }

        recall /= 100;
        Assert.True(recall >= 0.97, $"filtered recall@{k} at {perMille / 10.0}% was {recall:F4}");
    }

    [Theory]
    [InlineData(50)]
    [InlineData(10)]
    [InlineData(1)]
    public void Filter_IsAppliedDuringTheGraphWalk(int perMille)
    {
        // Bypasses the exact-scan fallback: rejected nodes must still be traversed, or the walk would get stuck
        // with fewer than k results.
        var index = _mixture.Index;
        Func<int, bool> filter = id => KeepPerMille(id, perMille);
        int matching = Enumerable.Range(0, MixtureFixture.Count).Count(filter);
        var destination = new VectorHit[10];
        double recall = 0;
        for (int q = 0; q < 50; q++)
        {
            int written = index.SearchGraphOnly(_mixture.Queries[q], 10, destination, 64, filter);
            Assert.Equal(Math.Min(10, matching), written);
            Assert.All(destination.Take(written), h => Assert.True(filter(h.Id)));
            var truth = HnswTestData.BruteForce(_mixture.Base, _mixture.Queries[q], 10, cosine: true, include: filter);
            recall += HnswTestData.Recall(Ids(destination.Take(written).ToArray()), truth, 10);
        }

        recall /= 50;
        Assert.True(recall >= 0.9, $"graph-only filtered recall@10 at {perMille / 10.0}% was {recall:F4}");
    }

    [Fact]
    public void Filter_MatchingNothing_ReturnsEmpty()
    {
        Assert.Empty(_mixture.Index.Search(_mixture.Queries[0], 10, filter: _ => false));
    }

    [Fact]
    public void SameSeedAndInputs_GiveIdenticalGraphsAndResults()
    {
        var (data, queries) = HnswTestData.EmbeddingLikeMixture(3_000, 50, dims: 64, seed: 31);
        var options = new HnswOptions { M = 10, EfConstruction = 64, Seed = 7 };
        var a = BuildIndex(data, VectorMetric.Cosine, options);
        var b = BuildIndex(data, VectorMetric.Cosine, options);
        var otherSeed = BuildIndex(data, VectorMetric.Cosine, options with { Seed = 8 });

        Assert.Equal(SnapshotBytes(a), SnapshotBytes(b));
        Assert.NotEqual(SnapshotBytes(a), SnapshotBytes(otherSeed));
        foreach (var query in queries)
        {
            Assert.Equal(a.Search(query, 10, ef: 20), b.Search(query, 10, ef: 20));
        }
    }

    [Fact]
    public void SearchExact_EqualsBruteForce()
    {
        foreach (var metric in new[] { VectorMetric.L2, VectorMetric.Cosine })
        {
            bool cosine = metric == VectorMetric.Cosine;
            var (data, queries) = HnswTestData.EmbeddingLikeMixture(2_000, 40, dims: 100, seed: 3);
            if (!cosine)
            {
                // Unnormalised vectors of varied length so L2 is really exercised.
                for (int i = 0; i < data.Length; i++)
                {
                    for (int d = 0; d < data[i].Length; d++)
                    {
                        data[i][d] *= 1 + (i % 7);
                    }
                }
            }

            var index = BuildIndex(data, metric, new HnswOptions { M = 8, EfConstruction = 40 });
            foreach (var query in queries)
            {
                var exact = index.SearchExact(query, 25);
                var truth = HnswTestData.BruteForce(data, query, 25, cosine);
                Assert.Equal(25, exact.Count);
                AssertSortedAscending(exact);
                for (int i = 0; i < truth.Length; i++)
                {
                    double trueDistance = HnswTestData.ReferenceDistance(data[truth[i]], query, cosine);
                    Assert.Equal(trueDistance, exact[i].Distance, Math.Max(1e-4, Math.Abs(trueDistance) * 1e-5));
                    Assert.Equal(HnswTestData.ReferenceDistance(data[exact[i].Id], query, cosine), exact[i].Distance, Math.Max(1e-4, Math.Abs(trueDistance) * 1e-5));
                }

                Assert.Equal(truth, Ids(exact));
            }
        }
    }

    [Fact]
    public void ExactSearchThreshold_SwitchesSmallIndexesToExactScan()
    {
        // A deliberately poor graph (tiny M and efConstruction) so approximate search visibly misses.
        var (data, queries) = HnswTestData.EmbeddingLikeMixture(800, 60, dims: 64, seed: 17, clusterSpread: 2.0, noise: 0.1);
        var poor = new HnswOptions { M = 2, EfConstruction = 2 };
        var graphOnly = BuildIndex(data, VectorMetric.Cosine, poor);
        var switched = BuildIndex(data, VectorMetric.Cosine, poor with { ExactSearchThreshold = 801 });

        int graphMisses = 0;
        foreach (var query in queries)
        {
            var exact = graphOnly.SearchExact(query, 10);
            Assert.Equal(exact, switched.Search(query, 10, ef: 10));
            if (!graphOnly.Search(query, 10, ef: 10).SequenceEqual(exact))
            {
                graphMisses++;
            }
        }

        Assert.True(graphMisses > 0, "the poor graph should miss some neighbours, otherwise this test proves nothing");

        // Crossing the threshold (801 live items) turns the graph back on.
        switched.Add(queries[0]);
        Assert.Equal(801, switched.Count);
        int differences = 0;
        foreach (var query in queries)
        {
            if (!switched.Search(query, 10, ef: 10).SequenceEqual(switched.SearchExact(query, 10)))
            {
                differences++;
            }
        }

        Assert.True(differences > 0);
    }

    [Fact]
    public void ConcurrentSearches_MatchSequentialResults()
    {
        var index = _mixture.Index;
        var queries = _mixture.Queries;
        var expected = queries.Select(q => index.Search(q, 10, ef: 32)).ToArray();
        var expectedFiltered = queries.Select(q => index.Search(q, 10, ef: 32, filter: id => id % 3 == 0)).ToArray();
        var failures = 0;
        Parallel.For(0, queries.Length * 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            int q = i % queries.Length;
            if (!index.Search(queries[q], 10, ef: 32).SequenceEqual(expected[q])
                || !index.Search(queries[q], 10, ef: 32, filter: id => id % 3 == 0).SequenceEqual(expectedFiltered[q]))
            {
                Interlocked.Increment(ref failures);
            }
        });

        Assert.Equal(0, failures);
    }

    [Fact]
    public void BasicContract_CountsIdsAndValidation()
    {
        var index = new HnswIndex(3, VectorMetric.L2, new HnswOptions { M = 4 }, initialCapacity: 1);
        Assert.Empty(index.Search(new float[3], 5));
        Assert.Equal(0, index.Add(new float[] { 0, 0, 0 }));
        Assert.Equal(1, index.Add(new float[] { 1, 0, 0 }));
        Assert.Equal(2, index.Add(new float[] { 5, 0, 0 }));
        Assert.Equal(3, index.Count);
        Assert.Equal(new float[] { 1, 0, 0 }, index.GetVector(1).ToArray());
        Assert.Equal(new[] { 1, 0, 2 }, Ids(index.Search(new float[] { 0.9f, 0, 0 }, 10)));
        Assert.Equal(0.01f, index.Search(new float[] { 0.9f, 0, 0 }, 1)[0].Distance, 5);
        Assert.True(index.EstimatedMemoryBytes > 0);

        Assert.Throws<ArgumentException>(() => index.Add(new float[2]));
        Assert.Throws<ArgumentException>(() => index.Search(new float[4], 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => index.GetVector(3));
        Assert.Throws<ArgumentOutOfRangeException>(() => index.IsDeleted(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new HnswIndex(0, VectorMetric.L2));
        Assert.Throws<ArgumentOutOfRangeException>(() => new HnswIndex(3, VectorMetric.L2, new HnswOptions { M = 1 }));
    }

    private static bool KeepPerMille(int id, int perMille) => (int)((uint)(id * 2654435761u) % 1000) < perMille;

    private static HnswIndex BuildIndex(float[][] data, VectorMetric metric, HnswOptions options)
    {
        var index = new HnswIndex(data[0].Length, metric, options);
        foreach (var vector in data)
        {
            index.Add(vector);
        }

        return index;
    }

    private static byte[] SnapshotBytes(HnswIndex index)
    {
        using var stream = new MemoryStream();
        index.WriteTo(stream);
        return stream.ToArray();
    }

    private static HnswIndex RoundTrip(HnswIndex index) => HnswIndex.ReadFrom(new MemoryStream(SnapshotBytes(index)));

    private static int[] Ids(IReadOnlyList<VectorHit> hits)
    {
        var ids = new int[hits.Count];
        for (int i = 0; i < ids.Length; i++)
        {
            ids[i] = hits[i].Id;
        }

        return ids;
    }

    private static void AssertSortedAscending(IReadOnlyList<VectorHit> hits)
    {
        for (int i = 1; i < hits.Count; i++)
        {
            Assert.True(hits[i - 1].Distance <= hits[i].Distance, $"hits not sorted at {i}");
        }
    }
}
