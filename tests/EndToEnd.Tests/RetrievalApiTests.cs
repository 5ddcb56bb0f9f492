using System.Net;
using System.Text.Json.Nodes;
using Xunit;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>The ranking knobs of the search API: rerank, fusion parameters, per-collection BM25 and embedding model.</summary>
[Collection(ServiceCollection.Name)]
public sealed class RetrievalApiTests(ServiceFixture fixture)
{
    private const string TimersText =
        "Timers are used for frequent periodic actions within a single grain activation. They are not durable: " +
        "a timer stops when the activation is deactivated or the silo fails.";

    private ServiceProcess Service => fixture.Service;

    [Fact]
    public async Task Mmr_rerank_pushes_a_duplicate_below_new_information_and_explains_itself()
    {
        var (_, adminKey) = await Service.CreateTenant("mmr");
        using var admin = Service.Client(adminKey);
        await (await admin.PostJson("/v1/collections", new { name = "kb", shards = 2 })).ExpectJson(HttpStatusCode.Created);

        // Two copies of the same passage (identical vectors and BM25 scores) and two different ones.
        await admin.Ingest("kb", new { id = "timers-a", title = "Timers", text = TimersText });
        await admin.Ingest("kb", new { id = "timers-b", title = "Timers", text = TimersText });
        await admin.Ingest("kb", new { id = "reminders", title = "Reminders", text = "Reminders are persistent periodic callbacks of a grain: they survive deactivation and cluster restarts because they are stored in the reminder table." });
        await admin.Ingest("kb", new { id = "bread", title = "Baking bread", text = "Knead the dough for ten minutes, let it rise for an hour, then bake at 220 degrees Celsius." });

        const string Query = "periodic timers in a grain activation";
        var plain = await Results(admin, new { query = Query, topK = 2 });
        Assert.Equal(["timers-a", "timers-b"], plain.Select(r => r.Str("documentId")).Order());

        var reranked = await Results(admin, new { query = Query, topK = 3, rerank = "mmr", lambda = 0.3, explain = true });
        Assert.StartsWith("timers-", reranked[0].Str("documentId"), StringComparison.Ordinal);
        Assert.DoesNotContain("timers-", reranked[1].Str("documentId"), StringComparison.Ordinal);

        var first = reranked[0]["explain"]!["rerank"]!;
        Assert.Equal("mmr", first.Str("method"));
        Assert.Equal(1, first["poolRank"]!.GetValue<int>());
        Assert.Equal(4, first["poolSize"]!.GetValue<int>());
        Assert.Equal(0.3f, first["lambda"]!.GetValue<float>(), 5);
        Assert.Null(first["maxSimilarity"]);
        Assert.Equal(0.3f, reranked[0]["score"]!.GetValue<float>(), 4); // λ · normalised relevance 1, nothing chosen yet
        Assert.True(reranked[0]["explain"]!["denseRank"]!.GetValue<int>() >= 1);

        // The duplicate, when it comes, carries its similarity of 1 to the copy chosen first.
        var duplicate = reranked.Skip(1).FirstOrDefault(r => r.Str("documentId").StartsWith("timers-", StringComparison.Ordinal));
        if (duplicate is not null)
        {
            Assert.Equal(1f, duplicate["explain"]!["rerank"]!["maxSimilarity"]!.GetValue<float>(), 3);
        }

        // λ = 1 keeps the first-stage order; the default λ (0.7) and "none" are accepted.
        var keep = await Results(admin, new { query = Query, topK = 4, rerank = "mmr", lambda = 1.0 });
        var fused = await Results(admin, new { query = Query, topK = 4 });
        Assert.Equal(fused.Select(r => r.Str("chunkId")), keep.Select(r => r.Str("chunkId")));
        Assert.Equal(2, (await Results(admin, new { query = Query, topK = 2, rerank = "mmr", mode = "keyword" })).Count);
        Assert.Equal(2, (await Results(admin, new { query = Query, topK = 2, rerank = "none" })).Count);

        // Bad parameters are 400 problems that say what is allowed.
        var unknown = await (await admin.PostJson("/v1/collections/kb/search", new { query = Query, rerank = "cross-encoder" })).ExpectProblem(HttpStatusCode.BadRequest);
        Assert.Contains("mmr", unknown.Str("detail"), StringComparison.Ordinal);
        await (await admin.PostJson("/v1/collections/kb/search", new { query = Query, rerank = "mmr", lambda = 1.5 })).ExpectProblem(HttpStatusCode.BadRequest);
        await (await admin.PostJson("/v1/collections/kb/search", new { query = Query, rerank = "mmr", lambda = -0.1 })).ExpectProblem(HttpStatusCode.BadRequest);
        await (await admin.PostJson("/v1/collections/kb/search", new { query = Query, lambda = 0.5 })).ExpectProblem(HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Rrf_constant_and_weights_shape_the_fused_scores()
    {
        var (_, adminKey) = await Service.CreateTenant("fusion");
        using var admin = Service.Client(adminKey);
        await (await admin.PostJson("/v1/collections", new { name = "kb" })).ExpectJson(HttpStatusCode.Created);
        await admin.Ingest("kb", new { id = "timers", title = "Timers", text = TimersText });
        await admin.Ingest("kb", new { id = "bread", title = "Baking bread", text = "Knead the dough for ten minutes, let it rise for an hour, then bake at 220 degrees Celsius." });
        await admin.Ingest("kb", new { id = "oven", title = "Ovens", text = "A fan oven heats food evenly; lower the temperature by twenty degrees for loaves." });

        const string Query = "oven temperature for bread";
        var weighted = await Results(admin, new { query = Query, topK = 3, rrfK = 10, weights = new { vector = 2.0, keyword = 0.5 }, explain = true });
        foreach (var r in weighted)
        {
            var explain = r["explain"]!;
            var expected = (explain["denseRank"] is { } d ? 2f / (10 + d.GetValue<int>()) : 0f)
                + (explain["keywordRank"] is { } k ? 0.5f / (10 + k.GetValue<int>()) : 0f);
            Assert.Equal(expected, r["score"]!.GetValue<float>(), 5);
        }

        // A list weighted 0 drops out: hybrid then ranks exactly like the other list alone.
        var denseOnly = await Results(admin, new { query = Query, topK = 3, weights = new { keyword = 0 } });
        var vector = await Results(admin, new { query = Query, topK = 3, mode = "vector" });
        Assert.Equal(vector.Select(r => r.Str("chunkId")), denseOnly.Select(r => r.Str("chunkId")));

        await (await admin.PostJson("/v1/collections/kb/search", new { query = Query, rrfK = -1 })).ExpectProblem(HttpStatusCode.BadRequest);
        await (await admin.PostJson("/v1/collections/kb/search", new { query = Query, weights = new { vector = -1 } })).ExpectProblem(HttpStatusCode.BadRequest);
        await (await admin.PostJson("/v1/collections/kb/search", new { query = Query, weights = new { vector = 0, keyword = 0 } })).ExpectProblem(HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Bm25_parameters_are_fixed_per_collection_shown_and_used()
    {
        var (_, adminKey) = await Service.CreateTenant("bm25");
        using var admin = Service.Client(adminKey);
        var tuned = await (await admin.PostJson("/v1/collections", new { name = "tuned", bm25 = new { k1 = 1.2, b = 0.75 } })).ExpectJson(HttpStatusCode.Created);
        Assert.Equal(1.2f, tuned["bm25"]!["k1"]!.GetValue<float>(), 5);
        Assert.Equal(0.75f, tuned["bm25"]!["b"]!.GetValue<float>(), 5);
        var plain = await (await admin.PostJson("/v1/collections", new { name = "plain" })).ExpectJson(HttpStatusCode.Created);
        Assert.Equal(0.9f, plain["bm25"]!["k1"]!.GetValue<float>(), 5);
        Assert.Equal(0.4f, plain["bm25"]!["b"]!.GetValue<float>(), 5);
        var got = await (await admin.GetAsync("/v1/collections/tuned")).ExpectJson(HttpStatusCode.OK);
        Assert.Equal(0.75f, got["bm25"]!["b"]!.GetValue<float>(), 5);
        var onlyB = await (await admin.PostJson("/v1/collections", new { name = "onlyb", bm25 = new { b = 0.0 } })).ExpectJson(HttpStatusCode.Created);
        Assert.Equal(0.9f, onlyB["bm25"]!["k1"]!.GetValue<float>(), 5);

        await (await admin.PostJson("/v1/collections", new { name = "bad1", bm25 = new { b = 1.5 } })).ExpectProblem(HttpStatusCode.BadRequest);
        await (await admin.PostJson("/v1/collections", new { name = "bad2", bm25 = new { k1 = -0.1 } })).ExpectProblem(HttpStatusCode.BadRequest);
        await (await admin.PostJson("/v1/collections", new { name = "bad3", bm25 = new { k1 = 50 } })).ExpectProblem(HttpStatusCode.BadRequest);
        await (await admin.GetAsync("/v1/collections/bad1")).ExpectProblem(HttpStatusCode.NotFound);

        // The same documents score differently under different k1/b.
        object[] docs =
        [
            new { id = "a", title = "Timers", text = "timer timer timer grain" },
            new { id = "b", title = "Notes", text = "A long note that mentions a timer once among many other unrelated words about cooking and gardening." },
        ];
        foreach (var collection in new[] { "tuned", "plain" })
        {
            foreach (var doc in docs)
            {
                await admin.Ingest(collection, doc);
            }
        }

        var tunedScore = (await Results(admin, new { query = "timer", mode = "keyword" }, "tuned"))[0]["score"]!.GetValue<float>();
        var plainScore = (await Results(admin, new { query = "timer", mode = "keyword" }, "plain"))[0]["score"]!.GetValue<float>();
        Assert.NotEqual(plainScore, tunedScore, 3);
    }

    [Fact]
    public async Task An_arctic_xs_collection_embeds_ingests_and_searches_with_its_own_model()
    {
        var (_, adminKey) = await Service.CreateTenant("arctic");
        using var admin = Service.Client(adminKey);
        var created = await (await admin.PostJson("/v1/collections", new { name = "kb", model = "arctic-xs" })).ExpectJson(HttpStatusCode.Created);
        Assert.Equal("snowflake-arctic-embed-xs", created.Str("model"));
        Assert.Equal(384, created["dimensions"]!.GetValue<int>());
        var byFullName = await (await admin.PostJson("/v1/collections", new { name = "kb2", model = "snowflake-arctic-embed-xs" })).ExpectJson(HttpStatusCode.Created);
        Assert.Equal("snowflake-arctic-embed-xs", byFullName.Str("model"));
        var minilm = await (await admin.PostJson("/v1/collections", new { name = "kb3", model = "minilm" })).ExpectJson(HttpStatusCode.Created);
        Assert.Equal("all-minilm-l6-v2", minilm.Str("model"));
        var unknown = await (await admin.PostJson("/v1/collections", new { name = "kb4", model = "bge-small" })).ExpectProblem(HttpStatusCode.BadRequest);
        Assert.Contains("arctic-xs", unknown.Str("detail"), StringComparison.Ordinal);
        Assert.Contains("minilm", unknown.Str("detail"), StringComparison.Ordinal);

        await IngestThreeTopics(admin, "kb");

        var loaf = await Results(admin, new { query = "how hot should the oven be for a loaf", mode = "vector", topK = 3 });
        Assert.Equal("bread", loaf[0].Str("documentId"));
        var sea = await Results(admin, new { query = "why does the sea rise and fall", mode = "vector", topK = 3 });
        Assert.Equal("tides", sea[0].Str("documentId"));
        var hybrid = await Results(admin, new { query = "timer stops when the silo fails", topK = 1 });
        Assert.Equal("timers", hybrid[0].Str("documentId"));

        var info = await (await admin.GetAsync("/v1/collections/kb")).ExpectJson(HttpStatusCode.OK);
        Assert.Equal("snowflake-arctic-embed-xs", info.Str("model"));
        Assert.Equal(3, info["documentCount"]!.GetValue<int>());
    }

    // Three documents on unrelated topics (grain timers, baking, tides), for checks that a model tells them apart.
    private static async Task IngestThreeTopics(HttpClient admin, string collection)
    {
        await admin.Ingest(collection, new { id = "timers", title = "Timers", text = TimersText });
        await admin.Ingest(collection, new { id = "bread", title = "Baking bread", text = "Knead the dough for ten minutes, let it rise for an hour, then bake at 220 degrees Celsius." });
        await admin.Ingest(collection, new { id = "tides", title = "Tides", text = "Tides are caused by the gravitational pull of the Moon and the Sun on the oceans." });
    }

    [Fact]
    public async Task A_minilm_int8_collection_embeds_with_the_int8_model_and_finds_what_the_float_one_finds()
    {
        var (_, adminKey) = await Service.CreateTenant("int8model");
        using var admin = Service.Client(adminKey);
        var created = await (await admin.PostJson("/v1/collections", new { name = "q8", model = "minilm-int8" })).ExpectJson(HttpStatusCode.Created);
        Assert.Equal("all-minilm-l6-v2-int8", created.Str("model"));
        Assert.Equal(384, created["dimensions"]!.GetValue<int>());
        var plain = await (await admin.PostJson("/v1/collections", new { name = "f32" })).ExpectJson(HttpStatusCode.Created);
        Assert.Equal("all-minilm-l6-v2", plain.Str("model"));

        foreach (var collection in new[] { "q8", "f32" })
        {
            await IngestThreeTopics(admin, collection);
        }

        foreach (var (query, expected) in new[] { ("how hot should the oven be for a loaf", "bread"), ("why does the sea rise and fall", "tides") })
        {
            var int8 = await Results(admin, new { query, mode = "vector", topK = 3 }, "q8");
            var float32 = await Results(admin, new { query, mode = "vector", topK = 3 }, "f32");
            Assert.Equal(expected, int8[0].Str("documentId"));
            Assert.Equal(expected, float32[0].Str("documentId"));

            // Different models give different (if close) scores: the int8 collection did not embed with the float model.
            var int8Score = int8[0]["score"]!.GetValue<float>();
            var floatScore = float32[0]["score"]!.GetValue<float>();
            Assert.NotEqual(floatScore, int8Score);
            Assert.Equal(floatScore, int8Score, 0.05f);
        }

        var info = await (await admin.GetAsync("/v1/collections/q8")).ExpectJson(HttpStatusCode.OK);
        Assert.Equal("all-minilm-l6-v2-int8", info.Str("model"));
        Assert.Equal(3, info["documentCount"]!.GetValue<int>());
    }

    [Fact]
    public async Task Int8_vector_quantization_is_a_collection_option_with_the_same_answers_in_less_memory()
    {
        var (_, adminKey) = await Service.CreateTenant("quant");
        using var admin = Service.Client(adminKey);
        var int8 = await (await admin.PostJson("/v1/collections", new { name = "q8", vectorQuantization = "INT8" })).ExpectJson(HttpStatusCode.Created);
        Assert.Equal("int8", int8.Str("vectorQuantization"));
        var plain = await (await admin.PostJson("/v1/collections", new { name = "f32" })).ExpectJson(HttpStatusCode.Created);
        Assert.Equal("none", plain.Str("vectorQuantization"));
        await (await admin.PostJson("/v1/collections", new { name = "bad", vectorQuantization = "int4" })).ExpectProblem(HttpStatusCode.BadRequest);
        Assert.Equal("int8", (await (await admin.GetAsync("/v1/collections/q8")).ExpectJson(HttpStatusCode.OK)).Str("vectorQuantization"));

        (string Id, string Text)[] docs =
        [
            ("reminders", "Reminders are persistent periodic callbacks of a grain: they survive deactivation and cluster restarts."),
            ("bread", "Knead the dough for ten minutes, let it rise for an hour, then bake at 220 degrees Celsius."),
            ("tides", "Tides rise and fall twice a day because of the gravitational pull of the moon and the sun."),
            ("chess", "In chess the knight moves in an L shape and is the only piece that can jump over others."),
            ("vaccines", "Vaccines train the immune system to recognise a pathogen without causing the disease."),
            ("rust", "Iron rusts when it reacts with oxygen and water, forming hydrated iron oxide."),
        ];
        foreach (var collection in new[] { "q8", "f32" })
        {
            foreach (var (id, text) in docs)
            {
                await admin.Ingest(collection, new { id, text });
            }
        }

        (string Query, string Expected)[] queries =
        [
            ("how does the moon affect the sea", "tides"),
            ("baking a loaf at home", "bread"),
            ("which chess piece jumps", "chess"),
            ("durable timers that outlive activations", "reminders"),
        ];
        foreach (var (query, expected) in queries)
        {
            var quantized = await Results(admin, new { query, mode = "vector", topK = 3 }, "q8");
            var exact = await Results(admin, new { query, mode = "vector", topK = 3 }, "f32");
            Assert.Equal(expected, quantized[0].Str("documentId"));
            Assert.Equal(exact.Select(r => r.Str("documentId")), quantized.Select(r => r.Str("documentId")));

            // Re-scored with the float vectors: the scores are the exact ones, not int8 approximations.
            Assert.Equal(exact[0]["score"]!.GetValue<float>(), quantized[0]["score"]!.GetValue<float>(), 4);
        }

        var q8Bytes = (await (await admin.PostAsync("/v1/collections/q8/prewarm", null)).ExpectJson(HttpStatusCode.OK))["shards"]![0]!["indexBytes"]!.GetValue<long>();
        var f32Bytes = (await (await admin.PostAsync("/v1/collections/f32/prewarm", null)).ExpectJson(HttpStatusCode.OK))["shards"]![0]!["indexBytes"]!.GetValue<long>();
        Assert.True(q8Bytes < f32Bytes, $"int8 shard holds {q8Bytes} bytes, float32 {f32Bytes}");
    }

    private static async Task<List<JsonNode>> Results(HttpClient client, object body, string collection = "kb")
    {
        var json = await (await client.PostJson($"/v1/collections/{collection}/search", body)).ExpectJson(HttpStatusCode.OK);
        return json["results"]!.AsArray().Select(r => r!).ToList();
    }
}
