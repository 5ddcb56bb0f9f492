using System.Text.Json;
using Microsoft.Data.Sqlite;
using RagOrleans.Grains.Chat;
using RagOrleans.Grains.Embeddings;
using RagOrleans.Grains.Ingestion;

namespace RagOrleans.Bench.Embed;

/// <summary>A fixed list of texts and how many positions the model sees for them ([CLS] and [SEP] included).</summary>
internal sealed record Workload(string Name, string Source, IReadOnlyList<string> Texts, long TotalTokens)
{
    public double MeanTokens => TotalTokens / (double)Texts.Count;
}

internal static class Workloads
{
    /// <summary>
    /// Query-sized texts of 11 to 13 model positions (mean about 12): SciFact claims (real user-style queries)
    /// first, then SciFact titles and abstract sentences, in file order.
    /// </summary>
    public static Workload Short(string sharedData, WordPieceTokenizer tokenizer, int count)
    {
        var scifact = Path.Combine(sharedData, "scifact");
        var candidates = ReadField(Path.Combine(scifact, "queries-train.jsonl"), "text")
            .Concat(ReadField(Path.Combine(scifact, "corpus.jsonl"), "title"))
            .Concat(ReadField(Path.Combine(scifact, "corpus.jsonl"), "text")
                .SelectMany(t => SentenceSplitter.Split(t).Select(s => t.Substring(s.Start, s.Length))));
        var texts = new List<string>(count);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        long tokens = 0;
        foreach (var text in candidates)
        {
            var pieces = tokenizer.CountTokens(text);
            if (pieces is >= 9 and <= 11 && seen.Add(text))
            {
                texts.Add(text);
                tokens += pieces + 2;
                if (texts.Count == count)
                {
                    break;
                }
            }
        }

        return new Workload("short (~12 tokens)", "SciFact claims, titles and sentences", texts, tokens);
    }

    /// <summary>
    /// The texts the model saw for chunks a service ingested (title/heading prefix + chunk text, the same rule as
    /// ingestion), read from that service's SQLite database: the embedding limit for exactly the chunks that bench/Ingest
    /// measured, whatever their lengths. Rows are sampled evenly over the whole log; with <paramref name="collection"/>,
    /// over that collection's shards only (bench/Ingest's warm-up collection holds other texts than the measured ones).
    /// </summary>
    public static Workload Ingested(string database, WordPieceTokenizer tokenizer, int count, string? collection = null)
    {
        var rows = new List<(string? Title, string? Section, string Text)>();
        using (var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = database, Mode = SqliteOpenMode.ReadOnly }.ToString()))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            // Shard keys are tenant/collection/shard.
            command.CommandText = "SELECT title, section, text FROM chunk_log WHERE text IS NOT NULL" +
                (collection is null ? string.Empty : " AND shard LIKE '%/' || $collection || '/%'") + " ORDER BY seq";
            if (collection is not null)
            {
                command.Parameters.AddWithValue("$collection", collection);
            }

            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                rows.Add((reader.IsDBNull(0) ? null : reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1), reader.GetString(2)));
            }
        }

        if (rows.Count == 0)
        {
            throw new InvalidOperationException($"{database} holds no chunks{(collection is null ? string.Empty : $" of collection {collection}")}.");
        }

        var texts = new List<string>(count);
        long tokens = 0;
        for (var i = 0; i < Math.Min(count, rows.Count); i++)
        {
            var (title, section, text) = rows[(int)((long)i * rows.Count / Math.Min(count, rows.Count))];
            var embedded = DocumentProcessor.Prefix(tokenizer, title, section) + text;
            texts.Add(embedded);
            tokens += Math.Min(tokenizer.CountTokens(embedded) + 2, 256);
        }

        return new Workload("ingested chunks", $"{texts.Count} of {rows.Count} chunks in {database}", texts, tokens);
    }

    /// <summary>
    /// Chunks of about 200 word pieces exactly as ingestion makes them (Markdown parser + TextChunker) from the
    /// Orleans docs; topped up with SciFact abstracts cut at 198 pieces if the docs run short.
    /// </summary>
    public static Workload Chunks(string sharedData, WordPieceTokenizer tokenizer, int count)
    {
        var chunker = new TextChunker(tokenizer, new ChunkingOptions());
        var mdRoot = Path.Combine(sharedData, "docs", "md");
        var texts = new List<string>(count);
        long tokens = 0;
        var files = Directory.EnumerateFiles(mdRoot, "*.md", SearchOption.AllDirectories).Order(StringComparer.Ordinal);
        foreach (var file in files)
        {
            foreach (var chunk in chunker.Chunk(MarkdownParser.ParseText(File.ReadAllText(file))))
            {
                if (texts.Count < count && chunk.TokenCount is >= 180 and <= 230)
                {
                    texts.Add(chunk.Text);
                    tokens += chunk.TokenCount + 2;
                }
            }
        }

        var fromDocs = texts.Count;
        foreach (var text in ReadField(Path.Combine(sharedData, "scifact", "corpus.jsonl"), "text"))
        {
            if (texts.Count >= count)
            {
                break;
            }

            var pieces = tokenizer.EncodeWithOffsets(text);
            if (pieces.Count >= 198)
            {
                texts.Add(text[..pieces[197].End]);
                tokens += 200;
            }
        }

        return new Workload("chunks (~200 tokens)", $"{fromDocs} Orleans docs chunks, {texts.Count - fromDocs} SciFact abstracts", texts, tokens);
    }

    private static IEnumerable<string> ReadField(string path, string field)
    {
        foreach (var line in File.ReadLines(path))
        {
            using var doc = JsonDocument.Parse(line);
            if (doc.RootElement.GetProperty(field).GetString() is { Length: > 0 } value)
            {
                yield return value;
            }
        }
    }
}
