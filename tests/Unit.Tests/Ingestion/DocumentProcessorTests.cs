using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using RagOrleans.Abstractions;
using RagOrleans.Grains;
using RagOrleans.Grains.Embeddings;
using RagOrleans.Grains.Ingestion;
using Xunit;

namespace RagOrleans.Unit.Tests.Ingestion;

/// <summary>The ingestion pipeline's text side with the real model tokenizer: what the model sees never exceeds its limit.</summary>
public sealed class DocumentProcessorTests : IAsyncLifetime
{
    private static readonly CollectionSettings Settings = new("all-minilm-l6-v2", 384, 1, 200, 32);
    private readonly OnnxEmbeddingService _embeddings = new(EmbeddingModelDescriptor.MiniLmL6V2, null, null, NullLoggerFactory.Instance);

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _embeddings.DisposeAsync();

    [Fact]
    public void Every_embedding_input_of_the_real_orleans_pages_fits_the_model()
    {
        var processor = new DocumentProcessor(_embeddings);
        var tokens = _embeddings.Tokenizer;
        var root = TestData.Path("docs", "md", "orleans");
        var chunks = 0;
        foreach (var file in Directory.GetFiles(root, "*.md", SearchOption.AllDirectories))
        {
            var doc = processor.Prepare(File.ReadAllBytes(file), "markdown", Path.GetFileName(file), null, Settings);
            foreach (var c in doc.Chunks)
            {
                // 2 special tokens ([CLS], [SEP]) plus the text must fit the 256-piece window.
                Assert.True(tokens.CountTokens(c.EmbeddingText) + 2 <= 256, $"{file} chunk {c.Ordinal} is too long");
                Assert.EndsWith(c.Text, c.EmbeddingText, StringComparison.Ordinal);
                chunks++;
            }
        }

        Assert.True(chunks > 1000, $"only {chunks} chunks");
    }

    [Fact]
    public void Chunks_carry_title_and_section_context()
    {
        var processor = new DocumentProcessor(_embeddings);
        var md = "---\ntitle: Grain timers\n---\n# Grain timers\n\n## Timer usage\n\nCall RegisterGrainTimer to create a timer; dispose it to stop.\n";
        var doc = processor.Prepare(System.Text.Encoding.UTF8.GetBytes(md), "markdown", "timers.md", null, Settings);
        Assert.Equal("Grain timers", doc.Title);
        var chunk = Assert.Single(doc.Chunks);
        Assert.Equal("Grain timers > Timer usage\nCall RegisterGrainTimer to create a timer; dispose it to stop.", chunk.EmbeddingText);
    }

    [Fact]
    public void An_overlong_title_is_shortened_to_the_prefix_budget()
    {
        var title = string.Join(' ', Enumerable.Repeat("extraordinarily", 40));
        var prefix = DocumentProcessor.Prefix(_embeddings.Tokenizer, title, "Section");
        Assert.Equal("Section\n", prefix);
        Assert.Equal("", DocumentProcessor.Prefix(_embeddings.Tokenizer, title, null));
    }

    [Fact]
    public void Empty_and_unsupported_documents_are_refused_with_a_reason()
    {
        var processor = new DocumentProcessor(_embeddings);
        var empty = Assert.Throws<RagException>(() => processor.Prepare("   \n\n "u8.ToArray(), "text", null, null, Settings));
        Assert.Equal(RagErrorKind.Unprocessable, empty.Kind);
        var unsupported = Assert.Throws<RagException>(() => processor.Prepare("x"u8.ToArray(), "unsupported", null, null, Settings));
        Assert.Equal(RagErrorKind.UnsupportedMediaType, unsupported.Kind);
        var corrupt = Assert.Throws<RagException>(() => processor.Prepare("%PDF-1.7 truncated"u8.ToArray(), "pdf", "a.pdf", null, Settings));
        Assert.Equal(RagErrorKind.Unprocessable, corrupt.Kind);
        Assert.False(string.IsNullOrWhiteSpace(corrupt.Message));
    }
}
