using RagOrleans.Abstractions;
using RagOrleans.Grains.Embeddings;
using RagOrleans.Grains.Telemetry;

namespace RagOrleans.Grains.Ingestion;

/// <summary>A chunk ready to embed: its text, where it came from, and the text the model sees.</summary>
public sealed record PreparedChunk(int Ordinal, string Text, int Start, int End, string? Section, int? Page, string EmbeddingText);

/// <summary>A parsed and chunked document.</summary>
public sealed record PreparedDocument(string? Title, IReadOnlyList<PreparedChunk> Chunks);

/// <summary>
/// Parse → chunk → context prefix. Each chunk is embedded with its document title and section heading in
/// front, so a passage that never repeats its topic words is still found by them; the chunk budget leaves
/// room for that prefix so nothing is cut off by the model's 256-piece limit.
/// </summary>
public sealed class DocumentProcessor(IEmbeddingService embeddings, RagMetrics? metrics = null)
{
    /// <summary>Word pieces reserved for the title/heading prefix.</summary>
    public const int PrefixBudget = 24;

    private static readonly DocumentParsers Parsers = new();

    public PreparedDocument Prepare(byte[] content, string sourceType, string? fileName, string? title, CollectionSettings settings) =>
        Chunk(Parse(content, sourceType, fileName), title, settings);

    /// <summary>Extracts the text; a permanent <see cref="RagException"/> when the content cannot yield any.</summary>
    public ParsedDocument Parse(byte[] content, string sourceType, string? fileName)
    {
        ParsedDocument parsed;
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        using (RagActivity.Start("rag.ingest.parse"))
        {
            try
            {
                var parser = Parsers.For(sourceType);
                using var stream = new MemoryStream(content, writable: false);
                parsed = parser.Parse(stream, fileName);
            }
            catch (DocumentParseException ex)
            {
                // The content itself is the problem: a clear, permanent failure (no retry).
                throw new RagException(ex.Kind == DocumentFailure.Unsupported ? RagErrorKind.UnsupportedMediaType : RagErrorKind.Unprocessable, ex.Message);
            }
        }

        metrics?.IngestionStep("parse", RagMetrics.Since(started));
        if (string.IsNullOrWhiteSpace(parsed.Text))
        {
            throw new RagException(RagErrorKind.Unprocessable, "The document contains no text.");
        }

        return parsed;
    }

    /// <summary>Splits parsed text into chunks with their embedding prefixes.</summary>
    public PreparedDocument Chunk(ParsedDocument parsed, string? title, CollectionSettings settings)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        using var chunking = RagActivity.Start("rag.ingest.chunk");
        var tokens = embeddings.Tokenizer;
        var maxTokens = embeddings.MaxTokens - 2 - PrefixBudget;
        var chunker = new TextChunker(tokens, new ChunkingOptions
        {
            MaxTokens = maxTokens,
            TargetTokens = Math.Min(settings.ChunkTargetTokens, maxTokens),
            OverlapTokens = Math.Min(settings.ChunkOverlapTokens, settings.ChunkTargetTokens / 2),
        });
        var docTitle = string.IsNullOrWhiteSpace(title) ? parsed.Title : title;
        var chunks = chunker.Chunk(parsed);
        if (chunks.Count == 0)
        {
            throw new RagException(RagErrorKind.Unprocessable, "The document contains no indexable text.");
        }

        var prepared = new List<PreparedChunk>(chunks.Count);
        foreach (var c in chunks)
        {
            prepared.Add(new PreparedChunk(c.Index, c.Text, c.Start, c.End, c.HeadingPath, c.Page,
                Prefix(tokens, docTitle, c.HeadingPath) + c.Text));
        }

        metrics?.IngestionStep("chunk", RagMetrics.Since(started));
        chunking?.SetTag("rag.chunks", prepared.Count);
        return new PreparedDocument(docTitle, prepared);
    }

    /// <summary>
    /// The text the model saw for a stored chunk of the document titled <paramref name="title"/>: the same prefix rule
    /// as <see cref="Chunk"/>, so a stored vector can be matched to a freshly prepared chunk.
    /// </summary>
    public string EmbeddingText(string? title, string? section, string text) => Prefix(embeddings.Tokenizer, title, section) + text;

    /// <summary>"Title › Heading\n" within <see cref="PrefixBudget"/> word pieces (the heading path repeats the H1, so it is dropped).</summary>
    public static string Prefix(ITokenCounter tokens, string? title, string? headingPath)
    {
        var heading = headingPath;
        if (!string.IsNullOrWhiteSpace(title) && heading is not null && heading.StartsWith(title, StringComparison.OrdinalIgnoreCase))
        {
            heading = heading[title.Length..].TrimStart(' ', '>').Trim();
        }

        string[] candidates =
        [
            Join(title, heading),
            Join(title, LastSegment(heading)),
            Join(null, LastSegment(heading)),
            Join(title, null),
        ];
        foreach (var candidate in candidates)
        {
            if (candidate.Length > 0 && tokens.CountTokens(candidate) <= PrefixBudget)
            {
                return candidate + "\n";
            }
        }

        return "";
    }

    private static string Join(string? title, string? heading) =>
        (string.IsNullOrWhiteSpace(title), string.IsNullOrWhiteSpace(heading)) switch
        {
            (false, false) => $"{title!.Trim()} > {heading!.Trim()}",
            (false, true) => title!.Trim(),
            (true, false) => heading!.Trim(),
            _ => "",
        };

    private static string? LastSegment(string? heading)
    {
        if (heading is null)
        {
            return null;
        }

        var i = heading.LastIndexOf(" > ", StringComparison.Ordinal);
        return i < 0 ? heading : heading[(i + 3)..];
    }
}
