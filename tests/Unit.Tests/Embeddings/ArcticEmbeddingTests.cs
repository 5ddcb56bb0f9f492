using System.Numerics.Tensors;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Embeddings;
using Xunit;

namespace RagOrleans.Unit.Tests.Embeddings;

/// <summary>The packaged snowflake-arctic-embed-xs, loaded once for these tests.</summary>
public sealed class ArcticModelFixture : IDisposable
{
    public OnnxEmbeddingModel Model { get; } = new(new OnnxEmbeddingOptions { Model = EmbeddingModelDescriptor.ArcticEmbedXs });

    public void Dispose() => Model.Dispose();
}

public sealed class ArcticEmbeddingTests(ArcticModelFixture fixture, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<ArcticModelFixture>
{
    private readonly OnnxEmbeddingModel _model = fixture.Model;

    [Fact]
    public void The_packaged_vocabulary_is_bert_uncased_and_tokenizes_like_minilms()
    {
        // Both packages ship the same 30,522-entry BERT uncased vocabulary, so chunks sized with the default model's
        // tokenizer are sized right for arctic-xs too.
        using var minilm = new OnnxEmbeddingModel();
        var text = "Hydroxychloroquine's Effects on COVID-19 Patients: naïve résumé of 1,234 cases.";
        Assert.Equal(minilm.Tokenizer.CountTokens(text), _model.Tokenizer.CountTokens(text));
        Assert.True(_model.Tokenizer.CountTokens(text) > 10);
    }

    [Fact]
    public void Vectors_are_cls_pooled_unit_length_and_384_wide()
    {
        var vectors = _model.Embed(["Virtual actors are activated on demand.", "x"], EmbeddingPurpose.Document);
        Assert.All(vectors, v =>
        {
            Assert.Equal(384, v.Length);
            Assert.Equal(1.0, TensorPrimitives.Norm(v), 4);
            Assert.All(v, x => Assert.True(float.IsFinite(x)));
        });
        Assert.Equal(PoolingMode.Cls, _model.Descriptor.Pooling);
    }

    [Fact]
    public void The_query_prefix_is_applied_to_queries_only()
    {
        const string Text = "what causes tides";
        var asQuery = _model.Embed([Text], EmbeddingPurpose.Query)[0];
        var asDocument = _model.Embed([Text], EmbeddingPurpose.Document)[0];
        var prefixed = _model.Embed([EmbeddingModelDescriptor.ArcticEmbedXs.QueryPrefix + Text], EmbeddingPurpose.Document)[0];

        Assert.True(TensorPrimitives.CosineSimilarity(asQuery, prefixed) > 0.9999f);
        Assert.True(TensorPrimitives.CosineSimilarity(asQuery, asDocument) < 0.999f);
    }

    [Fact]
    public void Each_query_scores_its_relevant_passage_above_the_others()
    {
        string[] passages =
        [
            "Tides are caused by the gravitational pull of the Moon and the Sun on the Earth's oceans.",
            "Insulin is a hormone produced by the pancreas that regulates blood glucose levels.",
            "The Orleans runtime places grains on silos and deactivates them when they are idle.",
            "Photosynthesis converts light energy into chemical energy stored in glucose.",
        ];
        string[] queries =
        [
            "what makes the sea level rise and fall every day",
            "which organ makes the hormone that controls blood sugar",
            "how does a distributed actor framework manage object lifetimes",
            "how do plants turn sunlight into food",
        ];

        var docs = _model.Embed(passages, EmbeddingPurpose.Document);
        var qs = _model.Embed(queries, EmbeddingPurpose.Query);
        for (var q = 0; q < qs.Length; q++)
        {
            var scores = docs.Select(d => TensorPrimitives.Dot(qs[q], d)).ToArray();
            var best = Array.IndexOf(scores, scores.Max());
            Assert.True(best == q, $"query {q} preferred passage {best}: {string.Join(", ", scores)}");
        }
    }

    [Fact]
    public void Relevant_scifact_abstracts_rank_near_the_top_among_distractors()
    {
        // 25 judged training queries against their relevant abstracts plus 150 others: a CLS/mean pooling mix-up,
        // a missing query prefix or a broken vocabulary shows up as a collapse of MRR@10 (0.78 measured).
        var dir = TestData.Path("scifact");
        var qrels = TestData.SciFactJudgedQueries(25);
        var relevant = qrels.Values.SelectMany(v => v).ToHashSet();
        var corpus = new List<(string Id, string Text)>();
        var distractors = 0;
        foreach (var line in File.ReadLines(Path.Combine(dir, "corpus.jsonl")))
        {
            using var json = System.Text.Json.JsonDocument.Parse(line);
            var id = json.RootElement.GetProperty("_id").GetString()!;
            var isRelevant = relevant.Contains(id);
            if (isRelevant || distractors < 150)
            {
                distractors += isRelevant ? 0 : 1;
                corpus.Add((id, json.RootElement.GetProperty("title").GetString() + "\n" + json.RootElement.GetProperty("text").GetString()));
            }
        }

        var queries = File.ReadLines(Path.Combine(dir, "queries-train.jsonl"))
            .Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement)
            .Where(q => qrels.ContainsKey(q.GetProperty("_id").GetString()!))
            .Select(q => (Id: q.GetProperty("_id").GetString()!, Text: q.GetProperty("text").GetString()!))
            .ToList();
        var docs = _model.Embed(corpus.ConvertAll(c => c.Text), EmbeddingPurpose.Document);
        var qs = _model.Embed(queries.ConvertAll(q => q.Text), EmbeddingPurpose.Query);

        double mrr = 0;
        for (var q = 0; q < qs.Length; q++)
        {
            var ranked = Enumerable.Range(0, docs.Length).OrderByDescending(d => TensorPrimitives.Dot(qs[q], docs[d])).Take(10).ToList();
            var first = ranked.FindIndex(d => qrels[queries[q].Id].Contains(corpus[d].Id));
            mrr += first < 0 ? 0 : 1.0 / (first + 1);
        }

        mrr /= qs.Length;
        output.WriteLine($"arctic-xs MRR@10 over {qs.Length} queries and {docs.Length} abstracts: {mrr:F3}");
        Assert.Equal(25, qs.Length);
        Assert.True(mrr > 0.6, $"MRR@10 {mrr:F3}");
    }
}

public sealed class EmbeddingModelCatalogTests
{
    [Theory]
    [InlineData("minilm", "all-minilm-l6-v2")]
    [InlineData("all-MiniLM-L6-v2", "all-minilm-l6-v2")]
    [InlineData("arctic-xs", "snowflake-arctic-embed-xs")]
    [InlineData("Snowflake-Arctic-Embed-XS", "snowflake-arctic-embed-xs")]
    public void Short_and_canonical_names_resolve(string name, string canonical) =>
        Assert.Equal(canonical, EmbeddingModelCatalog.Resolve(name).Name);

    [Fact]
    public void An_unknown_model_is_invalid_and_the_message_lists_the_choices()
    {
        var error = Assert.Throws<RagException>(() => EmbeddingModelCatalog.Resolve("bge-small"));
        Assert.Equal(RagErrorKind.Invalid, error.Kind);
        Assert.Contains("arctic-xs", error.Message);
        Assert.Contains("minilm", error.Message);
        Assert.Equal("all-minilm-l6-v2", EmbeddingModelCatalog.Default.Name);
    }
}
