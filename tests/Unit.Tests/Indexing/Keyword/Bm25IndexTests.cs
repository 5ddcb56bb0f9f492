using RagOrleans.Grains.Indexing.Keyword;
using Xunit;

namespace RagOrleans.Unit.Tests.Indexing.Keyword;

public sealed class Bm25IndexTests
{
    private static readonly AnalyzerOptions Plain = new() { Stem = false, RemoveStopWords = false };

    [Fact]
    public void Scores_match_a_hand_computed_toy_corpus()
    {
        var index = new Bm25Index(analyzerOptions: Plain);
        index.Add(0, "apple banana apple");
        index.Add(1, "banana cherry");
        index.Add(2, "cherry cherry cherry date");

        // N = 3, avgdl = 9 / 3 = 3, k1 = 0.9, b = 0.4.
        // idf(apple) = ln(1 + 2.5 / 1.5) = 0.980829; idf(cherry) = ln(1 + 1.5 / 2.5) = 0.470004.
        // doc 0: apple tf 2, dl 3: 0.980829 * 2 * 1.9 / (2 + 0.9 * (0.6 + 0.4 * 3 / 3)) = 1.2852245
        // doc 2: cherry tf 3, dl 4: 0.470004 * 3 * 1.9 / (3 + 0.9 * (0.6 + 0.4 * 4 / 3)) = 0.6664231
        // doc 1: cherry tf 1, dl 2: 0.470004 * 1 * 1.9 / (1 + 0.9 * (0.6 + 0.4 * 2 / 3)) = 0.5016893
        var hits = index.Search("apple cherry", 10);

        Assert.Equal([0, 2, 1], hits.Select(h => h.Id));
        Assert.Equal(1.2852245, hits[0].Score, 1e-4);
        Assert.Equal(0.6664231, hits[1].Score, 1e-4);
        Assert.Equal(0.5016893, hits[2].Score, 1e-4);
        Assert.Equal(3.0, index.AverageDocumentLength);
    }

    [Fact]
    public void Repeated_query_terms_count_repeatedly_and_unknown_terms_are_ignored()
    {
        var index = new Bm25Index(analyzerOptions: Plain);
        index.Add(0, "apple banana apple");
        index.Add(1, "banana cherry");
        index.Add(2, "cherry cherry cherry date");

        var once = index.Search("apple", 1)[0].Score;
        Assert.Equal(2 * once, index.Search("apple apple zucchini", 1)[0].Score, 1e-5);
        Assert.Empty(index.Search("zucchini", 5));
        Assert.Empty(index.Search(string.Empty, 5));
    }

    [Fact]
    public void Ranking_prefers_rare_terms_more_matches_and_shorter_documents()
    {
        var index = new Bm25Index();
        index.Add(0, "mitochondria energy cell");
        index.Add(1, "mitochondria cell division");
        index.Add(2, "energy cell division");
        index.Add(3, "a long unrelated document about the weather, the rain, the clouds and the wind in the mountains");
        for (var i = 4; i < 40; i++)
        {
            index.Add(i, $"energy market report {i}");
        }

        var hits = index.Search("mitochondria energy", 10);

        // Both terms beat one; with equal lengths the rare term (2 documents) beats the common one (38 documents).
        Assert.Equal([0, 1, 2], hits.Take(3).Select(h => h.Id));
        Assert.DoesNotContain(hits, h => h.Id == 3);
        Assert.True(hits.Zip(hits.Skip(1)).All(p => p.First.Score >= p.Second.Score));

        // Same term frequency, shorter document wins.
        var lengths = new Bm25Index();
        lengths.Add(0, "virus " + string.Join(' ', Enumerable.Repeat("padding", 30)));
        lengths.Add(1, "virus padding");
        Assert.Equal([1, 0], lengths.Search("virus", 2).Select(h => h.Id));
    }

    [Fact]
    public void Ties_break_by_ascending_id_and_k_limits_results()
    {
        var index = new Bm25Index();
        for (var i = 9; i >= 0; i--)
        {
            index.Add(i, "identical text");
        }

        Assert.Equal([0, 1, 2], index.Search("identical", 3).Select(h => h.Id));
        Assert.Equal(10, index.Search("identical", 100).Count);
        Assert.Throws<ArgumentOutOfRangeException>(() => index.Search("identical", 0));
    }

    [Fact]
    public void Removed_documents_never_return_and_statistics_forget_them()
    {
        var index = new Bm25Index();
        var reference = new Bm25Index();
        string[] docs = ["heart attack risk", "heart failure", "risk of stroke", "heart heart heart", "attack of the clones"];
        for (var i = 0; i < docs.Length; i++)
        {
            index.Add(i, docs[i]);
            if (i != 3)
            {
                reference.Add(i, docs[i]);
            }
        }

        Assert.True(index.Remove(3));
        Assert.False(index.Remove(3));
        Assert.False(index.Remove(42));
        Assert.True(index.IsRemoved(3));
        Assert.False(index.Contains(3));
        Assert.Equal(4, index.Count);
        Assert.Equal(5, index.TotalCount);

        // N, df and avgdl now cover live documents only, so scores equal an index that never saw document 3.
        var hits = index.Search("heart attack", 10);
        Assert.DoesNotContain(hits, h => h.Id == 3);
        Assert.Equal(reference.Search("heart attack", 10), hits);

        index.Compact();
        Assert.Equal(reference.Search("heart attack", 10), index.Search("heart attack", 10));

        // A removed id is never reused, so it cannot come back through Add either.
        Assert.Throws<InvalidOperationException>(() => index.Add(3, "heart"));
        Assert.Throws<InvalidOperationException>(() => index.Add(0, "duplicate"));
        Assert.Throws<ArgumentOutOfRangeException>(() => index.Add(-1, "negative"));
        Assert.DoesNotContain(index.Search("heart", 10), h => h.Id == 3);
    }

    [Fact]
    public void Mass_removal_compacts_and_keeps_results_right()
    {
        var index = new Bm25Index();
        for (var i = 0; i < 3000; i++)
        {
            index.Add(i, $"protein {(i % 3 == 0 ? "kinase" : "binding")} domain sample{i % 17}");
        }

        var before = index.EstimatedMemoryBytes;
        for (var i = 0; i < 3000; i++)
        {
            if (i % 10 != 0)
            {
                index.Remove(i);
            }
        }

        Assert.Equal(300, index.Count);
        var hits = index.Search("kinase protein", 1000);
        Assert.All(hits, h => Assert.Equal(0, h.Id % 10));
        Assert.Equal(300, hits.Count); // every live document mentions protein
        Assert.True(index.EstimatedMemoryBytes < before, "compaction should give posting memory back");
    }

    [Fact]
    public void Selective_filter_still_returns_k_matching_results()
    {
        var index = new Bm25Index();
        for (var i = 0; i < 5000; i++)
        {
            index.Add(i, i % 2 == 0 ? $"glucose metabolism study {i}" : $"glucose uptake trial {i}");
        }

        var calls = new Dictionary<int, int>();
        bool OnePercent(int id)
        {
            calls[id] = calls.GetValueOrDefault(id) + 1;
            return id % 100 == 7;
        }

        var hits = index.Search("glucose metabolism uptake", 10, OnePercent);

        Assert.Equal(10, hits.Count);
        Assert.All(hits, h => Assert.Equal(7, h.Id % 100));
        Assert.All(calls.Values, n => Assert.Equal(1, n));

        // The sparse accumulator path (few postings in a large id space) filters the same way.
        var sparse = new Bm25Index();
        for (var i = 0; i < 200; i++)
        {
            sparse.Add(i * 1000, $"insulin resistance case {i}");
        }

        var sparseHits = sparse.Search("insulin", 5, id => id % 7000 == 0);
        Assert.Equal(5, sparseHits.Count);
        Assert.All(sparseHits, h => Assert.Equal(0, h.Id % 7000));
        Assert.Empty(sparse.Search("insulin", 5, _ => false));
    }

    [Fact]
    public void Dense_and_sparse_accumulators_agree()
    {
        var dense = new Bm25Index();
        var sparse = new Bm25Index();
        var random = new Random(7);
        string[] vocabulary = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"];
        for (var i = 0; i < 300; i++)
        {
            var text = string.Join(' ', Enumerable.Range(0, random.Next(1, 12)).Select(_ => vocabulary[random.Next(vocabulary.Length)]));
            dense.Add(i, text);
            sparse.Add(i * 997, text);
        }

        foreach (var query in new[] { "alpha", "beta gamma", "kappa theta iota alpha" })
        {
            var expected = dense.Search(query, 20).Select(h => (h.Id * 997, h.Score));
            Assert.Equal(expected, sparse.Search(query, 20).Select(h => (h.Id, h.Score)));
        }
    }

    [Fact]
    public void Snapshot_round_trip_is_identical()
    {
        var index = BuildRandomCorpus(new Bm25Options { K1 = 1.2f, B = 0.75f }, new AnalyzerOptions { MaxTokenLength = 30 });
        index.Remove(5);
        index.Remove(17);

        using var stream = new MemoryStream();
        index.WriteTo(stream);
        stream.Position = 0;
        var copy = Bm25Index.ReadFrom(stream);

        Assert.Equal(stream.Length, stream.Position);
        Assert.Equal(index.Options, copy.Options);
        Assert.Equal(index.Analyzer.Options, copy.Analyzer.Options);
        Assert.Equal(index.Count, copy.Count);
        Assert.Equal(index.TotalCount, copy.TotalCount);
        Assert.Equal(index.AverageDocumentLength, copy.AverageDocumentLength);
        Assert.True(copy.IsRemoved(5) && copy.IsRemoved(17));
        Assert.Throws<InvalidOperationException>(() => copy.Add(5, "again"));
        foreach (var query in new[] { "cell", "protein binding kinase", "tumour growth factor", "unknownword" })
        {
            Assert.Equal(index.Search(query, 25), copy.Search(query, 25));
        }

        // Writing the copy gives the same bytes: nothing was lost or reordered.
        using var again = new MemoryStream();
        copy.WriteTo(again);
        Assert.Equal(stream.ToArray(), again.ToArray());
    }

    [Fact]
    public void Snapshot_keeps_custom_stop_words()
    {
        var index = new Bm25Index(analyzerOptions: new AnalyzerOptions { StopWords = ["protein"] });
        index.Add(0, "protein kinase");
        using var stream = new MemoryStream();
        index.WriteTo(stream);
        stream.Position = 0;
        var copy = Bm25Index.ReadFrom(stream);

        Assert.Empty(copy.Search("protein", 5));
        Assert.Single(copy.Search("kinase", 5));
    }

    [Fact]
    public void Damaged_snapshots_are_detected()
    {
        var index = BuildRandomCorpus(new Bm25Options(), new AnalyzerOptions());
        using var stream = new MemoryStream();
        index.WriteTo(stream);
        var bytes = stream.ToArray();

        // Any flipped bit, in the header, the postings or the checksum itself.
        foreach (var offset in new[] { 0, 5, 9, 20, bytes.Length / 2, bytes.Length - 10, bytes.Length - 1 })
        {
            var damaged = (byte[])bytes.Clone();
            damaged[offset] ^= 0x10;
            Assert.Throws<InvalidDataException>(() => Bm25Index.ReadFrom(new MemoryStream(damaged)));
        }

        // Truncation anywhere, including an empty stream.
        foreach (var length in new[] { 0, 3, 15, 16, bytes.Length / 3, bytes.Length - 1 })
        {
            Assert.Throws<InvalidDataException>(() => Bm25Index.ReadFrom(new MemoryStream(bytes, 0, length)));
        }

        var version = (byte[])bytes.Clone();
        version[4] = 99;
        var ex = Assert.Throws<InvalidDataException>(() => Bm25Index.ReadFrom(new MemoryStream(version)));
        Assert.Contains("version", ex.Message, StringComparison.OrdinalIgnoreCase);

        // Forward-only streams read fine, and one cut short is reported the same way.
        Assert.Equal(index.Search("protein kinase", 10), Bm25Index.ReadFrom(new ForwardOnlyStream(bytes)).Search("protein kinase", 10));
        Assert.Throws<InvalidDataException>(() => Bm25Index.ReadFrom(new ForwardOnlyStream(bytes[..(bytes.Length - 8)])));
    }

    [Fact]
    public void Version_1_snapshots_still_load_and_equal_the_current_format()
    {
        var index = BuildRandomCorpus(new Bm25Options { K1 = 1.1f, B = 0.6f }, new AnalyzerOptions { StopWords = ["the", "of"] });
        index.Remove(3);
        index.Remove(150);
        using var old = new MemoryStream();
        index.WriteTo(old, version: 1);
        using var current = new MemoryStream();
        index.WriteTo(current);
        Assert.Equal(1, BitConverter.ToInt32(old.GetBuffer(), 4));
        Assert.Equal(2, BitConverter.ToInt32(current.GetBuffer(), 4));

        old.Position = 0;
        var fromOld = Bm25Index.ReadFrom(old);
        Assert.Equal(old.Length, old.Position);
        Assert.Equal(index.Options, fromOld.Options);
        Assert.Equal(index.Analyzer.Options with { StopWords = null }, fromOld.Analyzer.Options with { StopWords = null });
        Assert.Equal(index.Analyzer.Options.StopWords!, fromOld.Analyzer.Options.StopWords!);
        Assert.Equal(index.Count, fromOld.Count);
        Assert.Equal(index.TotalCount, fromOld.TotalCount);
        Assert.True(fromOld.IsRemoved(3) && fromOld.IsRemoved(150));
        foreach (var query in new[] { "cell", "protein binding kinase", "café naïve", "the of" })
        {
            Assert.Equal(index.Search(query, 30), fromOld.Search(query, 30));
        }

        using var again = new MemoryStream();
        fromOld.WriteTo(again);
        Assert.Equal(current.ToArray(), again.ToArray());

        // Damage in the old format is still caught.
        var damaged = old.ToArray();
        damaged[damaged.Length / 2] ^= 0x20;
        Assert.Throws<InvalidDataException>(() => Bm25Index.ReadFrom(new MemoryStream(damaged)));
    }

    [Fact]
    public void Growing_removing_and_reloading_keeps_the_postings_exact()
    {
        // Lists grow by moving to the arena's end, removals compact and repack, a reload packs exactly; through all
        // of it the index must score like one built from the live documents alone.
        var random = new Random(99);
        var vocabulary = Enumerable.Range(0, 400).Select(i => $"w{i}x").ToArray();
        var texts = new Dictionary<int, string>();
        var index = new Bm25Index(analyzerOptions: Plain);
        var nextId = 0;
        for (var round = 0; round < 6; round++)
        {
            for (var i = 0; i < 700; i++)
            {
                // Skewed term choice: a few terms get long lists, most stay short.
                var text = string.Join(' ', Enumerable.Range(0, random.Next(1, 25)).Select(_ => vocabulary[(int)(vocabulary.Length * Math.Pow(random.NextDouble(), 3))]));
                texts[nextId] = text;
                index.Add(nextId++, text);
            }

            foreach (var id in texts.Keys.Where(_ => random.Next(3) == 0).ToList())
            {
                Assert.True(index.Remove(id));
                texts.Remove(id);
            }

            if (round % 2 == 1)
            {
                using var stream = new MemoryStream();
                index.WriteTo(stream);
                stream.Position = 0;
                index = Bm25Index.ReadFrom(stream);
            }

            var reference = new Bm25Index(analyzerOptions: Plain);
            foreach (var (id, text) in texts)
            {
                reference.Add(id, text);
            }

            Assert.Equal(texts.Count, index.Count);
            foreach (var query in new[] { "w0x", "w1x w2x", "w399x w200x w5x", "w17x w17x w3x" })
            {
                var expected = reference.Search(query, 50);
                var actual = index.Search(query, 50);
                Assert.Equal(expected.Select(h => h.Id), actual.Select(h => h.Id));
                Assert.Equal(expected.Select(h => h.Score), actual.Select(h => h.Score), (a, b) => Math.Abs(a - b) < 1e-4f);
            }
        }
    }

    [Fact]
    public void A_loaded_snapshot_holds_no_spare_room()
    {
        var index = BuildRandomCorpus(new Bm25Options(), new AnalyzerOptions());
        using var stream = new MemoryStream();
        index.WriteTo(stream);
        stream.Position = 0;
        var loaded = Bm25Index.ReadFrom(stream);

        // Arrays sized to the content: the loaded copy is no bigger than the built one and close to the snapshot.
        Assert.True(loaded.EstimatedMemoryBytes <= index.EstimatedMemoryBytes);
        Assert.True(loaded.EstimatedMemoryBytes < (3 * stream.Length) + 4096, $"{loaded.EstimatedMemoryBytes} bytes in memory for a {stream.Length}-byte snapshot");
    }

    [Fact]
    public void Memory_estimate_tracks_content()
    {
        var empty = new Bm25Index();
        var full = BuildRandomCorpus(new Bm25Options(), new AnalyzerOptions());
        Assert.True(empty.EstimatedMemoryBytes > 0);
        Assert.True(full.EstimatedMemoryBytes > empty.EstimatedMemoryBytes);
        Assert.True(full.TermCount > 10);
    }

    [Fact]
    public void Invalid_options_are_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new Bm25Index(new Bm25Options { B = 1.5f }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Bm25Index(new Bm25Options { K1 = -1f }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Bm25Index(analyzerOptions: new AnalyzerOptions { MaxTokenLength = 0 }));
    }

    private static Bm25Index BuildRandomCorpus(Bm25Options options, AnalyzerOptions analyzerOptions)
    {
        string[] words =
        [
            "cell", "cells", "protein", "proteins", "binding", "kinase", "tumour", "growth", "factor", "receptor",
            "signalling", "pathway", "expression", "gene", "genes", "mutation", "the", "of", "in", "Café", "naïve",
        ];
        var random = new Random(1234);
        var index = new Bm25Index(options, analyzerOptions);
        for (var i = 0; i < 200; i++)
        {
            var text = string.Join(' ', Enumerable.Range(0, random.Next(0, 40)).Select(_ => words[random.Next(words.Length)]));
            index.Add(i, text);
        }

        return index;
    }

    /// <summary>A stream that can only be read forwards, like a network or decompression stream.</summary>
    private sealed class ForwardOnlyStream(byte[] data) : Stream
    {
        private readonly MemoryStream _inner = new(data);

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, count);

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

public sealed class Bm25QueryParametersTests
{
    private static readonly AnalyzerOptions Plain = new() { Stem = false, RemoveStopWords = false };

    [Fact]
    public void Per_query_k1_and_b_score_like_an_index_built_with_them()
    {
        var index = new Bm25Index(analyzerOptions: Plain);
        index.Add(0, "apple banana apple");
        index.Add(1, "banana cherry");
        index.Add(2, "cherry cherry cherry date");

        // Same toy corpus as the default-parameter case, with k1 = 1.2 and b = 0.75:
        // doc 0: 0.980829 * 2 * 2.2 / (2 + 1.2 * (0.25 + 0.75 * 3 / 3)) = 1.3486402
        // doc 2: 0.470004 * 3 * 2.2 / (3 + 1.2 * (0.25 + 0.75 * 4 / 3)) = 0.6893387
        // doc 1: 0.470004 * 1 * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 2 / 3)) = 0.5442147
        var hits = index.Search("apple cherry", 10, parameters: new Bm25Options { K1 = 1.2f, B = 0.75f });
        Assert.Equal([0, 2, 1], hits.Select(h => h.Id));
        Assert.Equal(1.3486402, hits[0].Score, 1e-4);
        Assert.Equal(0.6893387, hits[1].Score, 1e-4);
        Assert.Equal(0.5442147, hits[2].Score, 1e-4);

        // k1 = 0 scores presence only: idf alone, so docs 1 and 2 tie and break by id.
        var presence = index.Search("apple cherry", 10, parameters: new Bm25Options { K1 = 0f, B = 0f });
        Assert.Equal([0, 1, 2], presence.Select(h => h.Id));
        Assert.Equal(0.9808293, presence[0].Score, 1e-4);
        Assert.Equal(0.4700036, presence[1].Score, 1e-4);

        // The index's own parameters are untouched.
        Assert.Equal(1.2852245, index.Search("apple cherry", 10)[0].Score, 1e-4);
        Assert.Throws<ArgumentOutOfRangeException>(() => index.Search("apple", 1, parameters: new Bm25Options { B = 2f }));
    }
}
