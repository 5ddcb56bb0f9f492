using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using RagOrleans.Grains.Chat;
using RagOrleans.Grains.Embeddings;
using RagOrleans.Grains.Ingestion;
using RagOrleans.Grains.Indexing;

namespace RagOrleans.Bench;

/// <summary>
/// Real all-MiniLM-L6-v2 vectors of SciFact sentences and Orleans documentation chunks, cached on disk because
/// embedding ~20k texts takes minutes on two cores while the index benchmark itself takes seconds. Row i of the cache
/// is the embedding of text i of <see cref="RealCorpus.Texts"/> (deterministic, shuffled with a fixed seed). Shared
/// by bench/Ann (index benchmarks) and bench/Load (the full-size tenants it bulk-loads); compiled into those only,
/// since it needs the Grains project (tokenizer, chunker, ONNX model).
/// </summary>
internal static class RealEmbeddings
{
    // Cache layout: magic, version, dimensions, SHA-256 of (model name + the ordered text list), then float32 rows
    // in native (little-endian) order. Rows are appended as they are embedded, so an interrupted run keeps its
    // progress and a larger N extends a smaller cache instead of starting over.
    private const int Magic = 0x56474152;
    private const int Version = 1;
    private const int FingerprintBytes = 32;
    private const int HeaderBytes = 12 + FingerprintBytes;
    private const int EmbedSlice = 1024;

    // Fixed so every run (and every N) draws the same queries and the same prefix of base vectors.
    private const int ShuffleSeed = 20_251_125;

    // Shorter texts are mostly splitter leftovers ("(A)", "Results:") that would add meaningless near-duplicates.
    private const int MinTokens = 6;

    /// <summary>
    /// The first <paramref name="needed"/> texts and their vectors. Missing rows are embedded and appended to the cache
    /// when <paramref name="embedMissing"/> (slow: ~100k texts take about an hour on two cores), otherwise refused.
    /// </summary>
    public static RealCorpus Load(string sharedData, int needed, bool embedMissing = true)
    {
        var descriptor = EmbeddingModelDescriptor.MiniLmL6V2;
        var tokenizer = LoadTokenizer(descriptor);
        var texts = CollectTexts(sharedData, tokenizer);
        if (texts.Count < needed)
        {
            throw new ArgumentOutOfRangeException(nameof(needed), needed, $"Only {texts.Count} distinct texts are available.");
        }

        var fingerprint = Fingerprint(descriptor, texts);
        var path = CachePath();
        var vectors = ReadCache(path, fingerprint, descriptor.Dimensions, needed);
        Console.WriteLine($"real: {texts.Count} candidate texts, {vectors.Count} cached vectors in {path}");
        if (vectors.Count < needed)
        {
            if (!embedMissing)
            {
                throw new InvalidOperationException(
                    $"{path} holds {vectors.Count:N0} of the {needed:N0} vectors needed. Create it with bench/Ann (it embeds and caches them, " +
                    $"about an hour for 101,000 on two cores): dotnet <Ann build>/RagOrleans.Bench.Ann.dll real {needed - 1000} --queries 1000 --embed-only 1");
            }

            EmbedMissing(path, fingerprint, descriptor, texts, vectors, needed);
        }

        return new RealCorpus(descriptor, texts.GetRange(0, needed), vectors);
    }

    /// <summary>Where the cache lives: bench/.cache of the checkout.</summary>
    public static string CachePath() => Path.Combine(BenchPaths.CacheDirectory(), $"ann-real-{EmbeddingModelDescriptor.MiniLmL6V2.Name}.f32");

    private static WordPieceTokenizer LoadTokenizer(EmbeddingModelDescriptor descriptor)
    {
        // The vocabulary alone, not the ONNX session: with a warm cache the model is never needed, and loading it
        // would add ~90 MB to the RSS this benchmark reports.
        var assembly = Assembly.Load(new AssemblyName(descriptor.ResourceAssembly));
        using var vocab = assembly.GetManifestResourceStream(descriptor.VocabResourceName)
            ?? throw new InvalidOperationException($"{descriptor.VocabResourceName} not found in {descriptor.ResourceAssembly}.");
        return WordPieceTokenizer.FromVocab(vocab, descriptor.LowerCase);
    }

    /// <summary>
    /// SciFact titles, abstract sentences and two-sentence windows, 200-token Orleans docs chunks, and War and Peace
    /// sentences and paragraphs; deduplicated and shuffled.
    /// </summary>
    private static List<string> CollectTexts(string sharedData, WordPieceTokenizer tokenizer)
    {
        var texts = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        void Add(string text)
        {
            text = text.Trim();
            if (tokenizer.CountTokens(text) >= MinTokens && seen.Add(text))
            {
                texts.Add(text);
            }
        }

        foreach (var line in File.ReadLines(Path.Combine(sharedData, "scifact", "corpus.jsonl")))
        {
            using var doc = JsonDocument.Parse(line);
            Add(doc.RootElement.GetProperty("title").GetString() ?? string.Empty);
            var body = doc.RootElement.GetProperty("text").GetString() ?? string.Empty;
            foreach (var sentence in SentenceSplitter.Split(body))
            {
                Add(body.Substring(sentence.Start, sentence.Length));
            }
        }

        // Same parser and chunker as ingestion, so these vectors look like what the service stores for docs.
        var chunker = new TextChunker(tokenizer, new ChunkingOptions());
        var mdRoot = Path.Combine(sharedData, "docs", "md");
        var files = Directory.EnumerateFiles(mdRoot, "*.md", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(mdRoot, f))
            .Order(StringComparer.Ordinal);
        foreach (var file in files)
        {
            var parsed = MarkdownParser.ParseText(File.ReadAllText(Path.Combine(mdRoot, file)));
            foreach (var chunk in chunker.Chunk(parsed))
            {
                Add(chunk.Text);
            }
        }

        // Tolstoy's War and Peace (plain text, hard-wrapped): one text per sentence, and each paragraph of several
        // sentences as one chunk-level text. Literary prose is far from SciFact and the docs, so the index sees
        // the mixture of unrelated corpora a multi-tenant service holds.
        var novel = File.ReadAllText(Path.Combine(sharedData, "docs", "txt", "war-and-peace.txt")).ReplaceLineEndings("\n");
        foreach (var block in novel.Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
        {
            var paragraph = string.Join(' ', block.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
            var sentences = SentenceSplitter.Split(paragraph);
            foreach (var sentence in sentences)
            {
                Add(paragraph.Substring(sentence.Start, sentence.Length));
            }

            if (sentences.Count > 1)
            {
                Add(paragraph);
            }
        }

        // SciFact again at passage level: every window of two consecutive abstract sentences, the kind of small
        // chunk a sentence-window retriever stores.
        foreach (var line in File.ReadLines(Path.Combine(sharedData, "scifact", "corpus.jsonl")))
        {
            using var doc = JsonDocument.Parse(line);
            var body = doc.RootElement.GetProperty("text").GetString() ?? string.Empty;
            var sentences = SentenceSplitter.Split(body);
            for (var i = 0; i + 1 < sentences.Count; i++)
            {
                Add(body.Substring(sentences[i].Start, sentences[i + 1].End - sentences[i].Start));
            }
        }

        var random = new Random(ShuffleSeed);
        for (var i = texts.Count - 1; i > 0; i--)
        {
            var j = random.Next(i + 1);
            (texts[i], texts[j]) = (texts[j], texts[i]);
        }

        return texts;
    }

    private static byte[] Fingerprint(EmbeddingModelDescriptor descriptor, List<string> texts)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes(descriptor.Name + "\n"));
        foreach (var text in texts)
        {
            hash.AppendData(Encoding.UTF8.GetBytes(text));
            hash.AppendData([0]);
        }

        return hash.GetHashAndReset();
    }

    private static List<float[]> ReadCache(string path, byte[] fingerprint, int dims, int needed)
    {
        var vectors = new List<float[]>(needed);
        if (!File.Exists(path))
        {
            return vectors;
        }

        using var stream = File.OpenRead(path);
        using var reader = new BinaryReader(stream);
        if (stream.Length < HeaderBytes
            || reader.ReadInt32() != Magic
            || reader.ReadInt32() != Version
            || reader.ReadInt32() != dims
            || !reader.ReadBytes(FingerprintBytes).AsSpan().SequenceEqual(fingerprint))
        {
            Console.WriteLine("real: cache is for other texts or another model; re-embedding.");
            return vectors;
        }

        var rowBytes = dims * sizeof(float);
        var available = (int)Math.Min(needed, (stream.Length - HeaderBytes) / rowBytes);
        for (var i = 0; i < available; i++)
        {
            var row = new float[dims];
            stream.ReadExactly(MemoryMarshal.AsBytes(row.AsSpan()));
            vectors.Add(row);
        }

        return vectors;
    }

    private static void EmbedMissing(string path, byte[] fingerprint, EmbeddingModelDescriptor descriptor, List<string> texts, List<float[]> vectors, int needed)
    {
        var rowBytes = descriptor.Dimensions * sizeof(float);
        using var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite);

        // Drop a torn last row (or a stale file) and continue right after the rows we kept.
        stream.SetLength(vectors.Count == 0 ? 0 : HeaderBytes + ((long)vectors.Count * rowBytes));
        if (vectors.Count == 0)
        {
            using var header = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
            header.Write(Magic);
            header.Write(Version);
            header.Write(descriptor.Dimensions);
            header.Write(fingerprint);
        }

        stream.Seek(0, SeekOrigin.End);
        using var model = new OnnxEmbeddingModel(new OnnxEmbeddingOptions { Model = descriptor });
        var watch = Stopwatch.StartNew();
        var start = vectors.Count;
        while (vectors.Count < needed)
        {
            var slice = texts.GetRange(vectors.Count, Math.Min(EmbedSlice, needed - vectors.Count));
            foreach (var vector in model.Embed(slice, EmbeddingPurpose.Document))
            {
                stream.Write(MemoryMarshal.AsBytes(vector.AsSpan()));
                vectors.Add(vector);
            }

            stream.Flush();
            var done = vectors.Count - start;
            Console.WriteLine($"real: embedded {vectors.Count}/{needed} ({done / watch.Elapsed.TotalSeconds:F0} texts/s)");
        }
    }
}

/// <summary>Texts and their vectors, row for row (<see cref="Vectors"/>[i] embeds <see cref="Texts"/>[i]).</summary>
internal sealed record RealCorpus(EmbeddingModelDescriptor Model, List<string> Texts, List<float[]> Vectors);
