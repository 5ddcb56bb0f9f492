using System.Diagnostics;
using System.Text;
using RagOrleans.Grains.Embeddings;
using RagOrleans.Grains.Ingestion;
using Xunit;

namespace RagOrleans.Unit.Tests.Ingestion;

public sealed class TextChunkerTests
{
    private static readonly ApproximateTokenCounter Counter = new();

    private static TextChunker Chunker(ChunkingOptions? options = null, ITokenCounter? counter = null) =>
        new(counter ?? Counter, options ?? new ChunkingOptions());

    private static ParsedDocument PlainText(string text) =>
        new PlainTextParser().Parse(new MemoryStream(Encoding.UTF8.GetBytes(text)), "doc.txt");

    /// <summary>The invariants every chunking must satisfy, whatever the input.</summary>
    private static void AssertInvariants(ParsedDocument doc, IReadOnlyList<TextChunk> chunks, ChunkingOptions options, ITokenCounter? counter = null, string? label = null)
    {
        counter ??= Counter;
        var covered = new int[doc.Text.Length + 1];
        for (var i = 0; i < chunks.Count; i++)
        {
            var c = chunks[i];
            Assert.Equal(i, c.Index);
            Assert.True(c.Start >= 0 && c.End <= doc.Text.Length && c.Start < c.End, label);
            Assert.Equal(doc.Text[c.Start..c.End], c.Text);
            Assert.Equal(c.Text.Trim(), c.Text);
            Assert.Equal(counter.CountTokens(c.Text), c.TokenCount);
            Assert.True(c.TokenCount <= options.MaxTokens, $"{label}: chunk {i} has {c.TokenCount} tokens");
            if (i > 0)
            {
                Assert.True(c.Start >= chunks[i - 1].Start && c.End > chunks[i - 1].End, $"{label}: chunk {i} out of order");
            }

            covered[c.Start]++;
            covered[c.End]--;
        }

        // Every visible character of every section lands in a chunk with that section's heading and page.
        var depth = 0;
        var coveredAt = new bool[doc.Text.Length];
        for (var k = 0; k < doc.Text.Length; k++)
        {
            depth += covered[k];
            coveredAt[k] = depth > 0;
        }

        var sectionAt = new int[doc.Text.Length];
        Array.Fill(sectionAt, -1);
        for (var si = 0; si < doc.Sections.Count; si++)
        {
            var s = doc.Sections[si];
            for (var k = s.Start; k < s.Start + s.Length; k++)
            {
                sectionAt[k] = si;
                if (!char.IsWhiteSpace(doc.Text[k]) && !coveredAt[k])
                {
                    Assert.Fail($"{label}: character {k} of section '{s.HeadingPath}' is in no chunk");
                }
            }
        }

        foreach (var c in chunks)
        {
            for (var k = c.Start; k < c.End; k++)
            {
                if (sectionAt[k] >= 0)
                {
                    var s = doc.Sections[sectionAt[k]];
                    Assert.True(c.HeadingPath == s.HeadingPath && c.Page == s.Page, $"{label}: chunk {c.Index} spans sections");
                }
            }
        }
    }

    private static string Sentence(int seed, int words)
    {
        var sb = new StringBuilder();
        for (var w = 0; w < words; w++)
        {
            sb.Append(w == 0 ? "Word" : " word").Append(((seed * 31) + w) % 97);
        }

        return sb.Append('.').ToString();
    }

    [Fact]
    public void Empty_document_gives_no_chunks()
    {
        Assert.Empty(Chunker().Chunk(new ParsedDocument(string.Empty, [], null)));
        Assert.Empty(Chunker().Chunk(PlainText("  \n\n \n")));
    }

    [Fact]
    public void Short_document_is_one_chunk_equal_to_its_trimmed_text()
    {
        var doc = PlainText("\n  Reminders are durable. Timers are not.  \n");
        var chunk = Assert.Single(Chunker().Chunk(doc));
        Assert.Equal("Reminders are durable. Timers are not.", chunk.Text);
        Assert.Equal(10, chunk.TokenCount);
    }

    [Fact]
    public void Chunks_prefer_paragraph_ends_and_overlap_by_whole_sentences()
    {
        // Ten paragraphs of four 20-token sentences: two paragraphs (160) fit the target of 200, three don't.
        var paragraphs = Enumerable.Range(0, 10)
            .Select(p => string.Join(' ', Enumerable.Range(0, 4).Select(s => Sentence((p * 4) + s, 19))))
            .ToList();
        var doc = PlainText(string.Join("\n\n", paragraphs));
        var options = new ChunkingOptions();
        var chunks = Chunker(options).Chunk(doc);
        AssertInvariants(doc, chunks, options);

        Assert.Equal(5, chunks.Count);
        foreach (var c in chunks)
        {
            Assert.True(c.End == doc.Text.Length || doc.Text.AsSpan(c.End).StartsWith("\n\n"), $"chunk {c.Index} ends mid-paragraph");
        }

        for (var i = 1; i < chunks.Count; i++)
        {
            var overlap = doc.Text[chunks[i].Start..chunks[i - 1].End];
            Assert.Equal(Sentence(((2 * i) - 1) * 4 + 3, 19), overlap);
            Assert.InRange(Counter.CountTokens(overlap), 1, options.OverlapTokens);
        }
    }

    [Fact]
    public void Chunks_never_span_headings_and_keep_the_heading_path()
    {
        var doc = MarkdownParser.ParseText("# A\n\nFirst section text.\n\n## B\n\nSecond section text.\n\n# C\n\n" + string.Join(' ', Enumerable.Range(0, 60).Select(i => Sentence(i, 9))));
        var options = new ChunkingOptions();
        var chunks = Chunker(options).Chunk(doc);
        AssertInvariants(doc, chunks, options);
        Assert.Equal(["A", "A > B"], chunks.Take(2).Select(c => c.HeadingPath));
        Assert.True(chunks.Count > 3);
        Assert.All(chunks.Skip(2), c => Assert.Equal("C", c.HeadingPath));
        Assert.Equal("First section text.", chunks[0].Text);
    }

    [Fact]
    public void Pages_are_kept_apart_and_recorded()
    {
        const string text = "Page one text.\n\nPage two text.";
        var doc = new ParsedDocument(text, [new DocumentSection(0, 14, null, 1), new DocumentSection(16, 14, null, 2)], null);
        var chunks = Chunker().Chunk(doc);
        Assert.Equal([(1, "Page one text."), (2, "Page two text.")], chunks.Select(c => (c.Page!.Value, c.Text)));
    }

    [Fact]
    public void Over_long_sentence_is_split_between_words()
    {
        var words = string.Join(' ', Enumerable.Range(0, 3000).Select(i => "w" + i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        var doc = PlainText(words);
        var options = new ChunkingOptions();
        var chunks = Chunker(options).Chunk(doc);
        AssertInvariants(doc, chunks, options);
        Assert.All(chunks, c => Assert.True(c.Start == 0 || doc.Text[c.Start - 1] == ' ', "chunk starts mid-word"));
        Assert.All(chunks, c => Assert.True(c.End == doc.Text.Length || doc.Text[c.End] == ' ', "chunk ends mid-word"));
        Assert.All(chunks.Skip(1), c => Assert.True(c.Start < chunks[c.Index - 1].End, "no overlap"));
        Assert.InRange(chunks.Count, 15, 20);
    }

    [Fact]
    public void Over_long_word_is_split_between_characters()
    {
        var random = new Random(42);
        var blob = new byte[3750];
        random.NextBytes(blob);
        var base64 = Convert.ToBase64String(blob);
        Assert.Equal(5000, base64.Length);
        var doc = PlainText("The payload follows.\n\n" + base64 + "\n\nThe payload ended.");
        var options = new ChunkingOptions();
        var chunks = Chunker(options).Chunk(doc);
        AssertInvariants(doc, chunks, options);
        Assert.True(chunks.Count > 5);
        Assert.Contains(chunks, c => c.Text.EndsWith("The payload ended.", StringComparison.Ordinal));
    }

    [Fact]
    public void Cjk_text_without_spaces_is_split()
    {
        var text = string.Concat(Enumerable.Repeat("订单服务在集群中保持状态。提醒是持久的", 60));
        var doc = PlainText(text);
        var options = new ChunkingOptions { MaxTokens = 100, TargetTokens = 80, OverlapTokens = 10 };
        var chunks = Chunker(options).Chunk(doc);
        AssertInvariants(doc, chunks, options);
        Assert.True(chunks.Count >= 15);
    }

    [Fact]
    public void Limit_holds_even_for_a_counter_that_is_not_additive()
    {
        var doc = PlainText(string.Join("\n\n", Enumerable.Range(0, 30).Select(i => Sentence(i, 25) + " " + Sentence(i + 1, 30))));
        var counter = new NonAdditiveCounter();
        var options = new ChunkingOptions { MaxTokens = 60, TargetTokens = 50, OverlapTokens = 8 };
        var chunks = Chunker(options, counter).Chunk(doc);
        AssertInvariants(doc, chunks, options, counter);
    }

    [Theory]
    [InlineData(0, 0, 0)]
    [InlineData(100, 120, 10)]
    [InlineData(100, 80, 80)]
    [InlineData(100, 80, -1)]
    public void Inconsistent_options_are_rejected(int max, int target, int overlap) =>
        Assert.Throws<ArgumentException>(() => Chunker(new ChunkingOptions { MaxTokens = max, TargetTokens = target, OverlapTokens = overlap }));

    [Fact]
    public void All_real_markdown_pages_respect_the_limit_and_offsets()
    {
        var options = new ChunkingOptions();
        var chunker = Chunker(options);
        var total = 0;
        foreach (var file in Directory.GetFiles(TestData.MarkdownDirectory, "*.md", SearchOption.AllDirectories))
        {
            using var stream = File.OpenRead(file);
            var doc = new MarkdownParser().Parse(stream, file);
            var chunks = chunker.Chunk(doc);
            AssertInvariants(doc, chunks, options, label: file);
            total += chunks.Count;
        }

        Assert.True(total > 177);
    }

    [Fact]
    public void War_and_peace_respects_the_limit_and_is_fast()
    {
        using var stream = File.OpenRead(TestData.WarAndPeacePath);
        var doc = new PlainTextParser().Parse(stream, "war-and-peace.txt");
        var options = new ChunkingOptions();
        var chunker = Chunker(options);
        var watch = Stopwatch.StartNew();
        var chunks = chunker.Chunk(doc);
        watch.Stop();
        AssertInvariants(doc, chunks, options, label: "war-and-peace");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(3), $"chunking took {watch.Elapsed}");
        var average = chunks.Average(c => c.TokenCount);
        Assert.InRange(average, 140, 210);
    }

    /// <summary>Counts characters / 3, so joining two pieces costs more than the sum of their counts.</summary>
    private sealed class NonAdditiveCounter : ITokenCounter
    {
        public int CountTokens(ReadOnlySpan<char> text) => (text.Length + 2) / 3;
    }
}
