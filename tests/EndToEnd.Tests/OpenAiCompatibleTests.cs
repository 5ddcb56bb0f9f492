using System.ClientModel;
using System.Net;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Embeddings;
using Xunit;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>The OpenAI-compatible endpoints, called with the official OpenAI .NET client and over raw HTTP.</summary>
[Collection(ServiceCollection.Name)]
public sealed class OpenAiCompatibleTests(ServiceFixture fixture)
{
    private ServiceProcess Service => fixture.Service;

    private OpenAIClient Client(string key) =>
        new(new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(Service.BaseUrl + "/v1"), NetworkTimeout = TimeSpan.FromMinutes(2) });

    [Fact]
    public async Task Embeddings_work_with_the_official_client_and_raw_http()
    {
        var (_, adminKey) = await Service.CreateTenant("oai-embed");
        var embeddings = Client(adminKey).GetEmbeddingClient("all-minilm-l6-v2");

        var many = await embeddings.GenerateEmbeddingsAsync(["Reminders are persistent.", "Timers are not durable."]);
        Assert.Equal(2, many.Value.Count);
        foreach (var e in many.Value)
        {
            var v = e.ToFloats().ToArray();
            Assert.Equal(384, v.Length);
            Assert.InRange(Math.Sqrt(v.Sum(x => (double)x * x)), 0.99, 1.01);
        }

        Assert.True(many.Value.Usage.InputTokenCount > 0);
        Assert.Equal(many.Value.Usage.InputTokenCount, many.Value.Usage.TotalTokenCount);
        var one = await embeddings.GenerateEmbeddingAsync("Reminders are persistent.");
        Assert.Equal(many.Value[0].ToFloats().ToArray(), one.Value.ToFloats().ToArray());

        // Raw: float encoding, the OpenAI response shape.
        using var http = Service.Client(adminKey);
        var raw = await (await http.PostJson("/v1/embeddings", new { input = "hello world", model = "all-minilm-l6-v2", encoding_format = "float" })).ExpectJson(HttpStatusCode.OK);
        Assert.Equal("list", raw.Str("object"));
        Assert.Equal("all-minilm-l6-v2", raw.Str("model"));
        Assert.Equal("embedding", raw["data"]![0].Str("object"));
        Assert.Equal(384, raw["data"]![0]!["embedding"]!.AsArray().Count);
        Assert.Equal(2, raw["usage"]!["prompt_tokens"]!.GetValue<int>());
        await (await http.PostJson("/v1/embeddings", new { input = "x", model = "text-embedding-3-small" })).ExpectProblem(HttpStatusCode.BadRequest);
        await (await http.PostJson("/v1/embeddings", new { input = new[] { 1, 2 }, model = "all-minilm-l6-v2" })).ExpectProblem(HttpStatusCode.BadRequest);
        using var anonymous = Service.Client(null);
        await (await anonymous.PostJson("/v1/embeddings", new { input = "x" })).ExpectProblem(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task Chat_completions_answer_from_a_collection_with_the_official_client()
    {
        var (_, adminKey) = await Service.CreateTenant("oai-chat");
        using var http = Service.Client(adminKey);
        await (await http.PostJson("/v1/collections", new { name = "kb" })).ExpectJson(HttpStatusCode.Created);
        await http.Ingest("kb", ChatTests.Timers);
        var chat = Client(adminKey).GetChatClient("rag:kb");

        ChatCompletion completion = await chat.CompleteChatAsync([new SystemChatMessage("Be brief."), new UserChatMessage("Are reminders persistent?")]);
        var text = completion.Content[0].Text;
        Assert.Contains("Reminders are persistent", text, StringComparison.Ordinal);
        Assert.Contains("[1]", text, StringComparison.Ordinal);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.True(completion.Usage.InputTokenCount > 0 && completion.Usage.OutputTokenCount > 0);

        var streamed = new System.Text.StringBuilder();
        ChatTokenUsage? usage = null;
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("Are timers durable?")]))
        {
            foreach (var part in update.ContentUpdate)
            {
                streamed.Append(part.Text);
            }

            usage ??= update.Usage;
        }

        Assert.Contains("not durable", streamed.ToString(), StringComparison.Ordinal);
        Assert.NotNull(usage);
        Assert.True(usage!.TotalTokenCount > 0);

        // History from the client makes a follow-up; citations and the rewritten query travel in extra fields.
        var raw = await (await http.PostJson("/v1/chat/completions", new
        {
            model = "rag:kb",
            messages = new object[]
            {
                new { role = "user", content = "Are reminders persistent?" },
                new { role = "assistant", content = text },
                new { role = "user", content = new object[] { new { type = "text", text = "And what about its period?" } } },
            },
        })).ExpectJson(HttpStatusCode.OK);
        Assert.Equal("chat.completion", raw.Str("object"));
        Assert.Equal("rag:kb", raw.Str("model"));
        Assert.NotEmpty(raw["citations"]!.AsArray());
        Assert.Equal("timers", raw["citations"]![0].Str("documentId"));
        Assert.Contains("reminders", raw["rag"]!.Str("rewrittenQuery"), StringComparison.Ordinal);

        // Raw stream: OpenAI chunks, citations in the first, [DONE] at the end.
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = System.Net.Http.Json.JsonContent.Create(new { model = "rag:kb", stream = true, messages = new[] { new { role = "user", content = "Are reminders persistent?" } } }),
        };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var data = (await Sse.ReadAllAsync(response)).Select(e => e.Data).ToList();
        Assert.Equal("[DONE]", data[^1]);
        var chunks = data.SkipLast(1).Select(d => JsonNode.Parse(d)!).ToList();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.Str("object")));
        Assert.NotEmpty(chunks[0]["citations"]!.AsArray());
        Assert.Equal("stop", chunks[^1]["choices"]![0]!["finish_reason"]!.GetValue<string>());

        await (await http.PostJson("/v1/chat/completions", new { model = "gpt-4o", messages = new[] { new { role = "user", content = "hi there" } } })).ExpectProblem(HttpStatusCode.BadRequest);
        await (await http.PostJson("/v1/chat/completions", new { model = "rag:missing", messages = new[] { new { role = "user", content = "hi there" } } })).ExpectProblem(HttpStatusCode.NotFound);
        await (await http.PostJson("/v1/chat/completions", new { model = "rag:kb", messages = Array.Empty<object>() })).ExpectProblem(HttpStatusCode.BadRequest);
    }
}
