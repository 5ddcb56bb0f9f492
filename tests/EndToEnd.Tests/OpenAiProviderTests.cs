using System.Net;
using Xunit;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>
/// The real service configured with the <c>openai</c> provider against in-process OpenAI-compatible test servers:
/// one for the deployment, and per-tenant ones that fail on purpose (each endpoint has its own circuit).
/// </summary>
public sealed class OpenAiProviderFixture : IAsyncLifetime
{
    public FakeOpenAiServer Main { get; private set; } = null!;
    public FakeOpenAiServer Flaky { get; private set; } = null!;
    public FakeOpenAiServer Broken { get; private set; } = null!;
    public ServiceProcess Service { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Main = await FakeOpenAiServer.StartAsync();
        Flaky = await FakeOpenAiServer.StartAsync();
        Broken = await FakeOpenAiServer.StartAsync();
        Broken.AlwaysFail = true;
        Service = await ServiceProcess.StartAsync(TestPaths.NewTempDir("openai"), env: new Dictionary<string, string>
        {
            ["Rag__Chat__Provider"] = "openai",
            ["Rag__Chat__OpenAI__BaseUrl"] = Main.BaseUrl,
            ["Rag__Chat__OpenAI__Model"] = "fake-model",
            ["Rag__Chat__OpenAI__ApiKey"] = "sk-test-key",
            ["Rag__Chat__OpenAI__MaxRetries"] = "2",
            ["Rag__Chat__OpenAI__RetryDelaySeconds"] = "0.05",
            ["Rag__Chat__OpenAI__BreakerMinimumThroughput"] = "3",
            ["Rag__Chat__OpenAI__BreakSeconds"] = "600",
            ["Rag__Chat__Tenants__oa-flaky__OpenAI__BaseUrl"] = Flaky.BaseUrl,
            ["Rag__Chat__Tenants__oa-broken__OpenAI__BaseUrl"] = Broken.BaseUrl,
        });
    }

    public async Task DisposeAsync()
    {
        // Null when start-up failed part way.
        if (Service is not null)
        {
            await Service.DisposeAsync();
        }

        foreach (var server in new[] { Main, Flaky, Broken })
        {
            if (server is not null)
            {
                await server.DisposeAsync();
            }
        }
    }
}

public sealed class OpenAiProviderTests(OpenAiProviderFixture fixture) : IClassFixture<OpenAiProviderFixture>
{
    private ServiceProcess Service => fixture.Service;

    private async Task<HttpClient> TenantAsync(string tenant)
    {
        var (_, adminKey) = await Service.CreateTenant(tenant);
        var admin = Service.Client(adminKey);
        await (await admin.PostJson("/v1/collections", new { name = "kb" })).ExpectJson(HttpStatusCode.Created);
        await admin.Ingest("kb", ChatTests.Timers);
        return admin;
    }

    [Fact]
    public async Task The_model_streams_its_answer_and_reported_tokens_are_charged()
    {
        using var admin = await TenantAsync("oa-main");
        var before = fixture.Main.Requests;
        using var response = await admin.PostJson("/v1/collections/kb/chat", new { message = "Are reminders persistent?", stream = true });
        var events = await Sse.ReadAllAsync(response);
        Assert.Equal(["citations", "delta", "delta", "delta", "done"], events.Select(e => e.Name).ToArray());
        Assert.Equal(fixture.Main.Chunks, events.Where(e => e.Name == "delta").Select(e => e.Json.Str("text")).ToArray());
        var done = events[^1].Json;
        Assert.Equal(("openai", false, false), (done.Str("provider"), done["fallback"]!.GetValue<bool>(), done["cached"]!.GetValue<bool>()));
        Assert.Equal((321L, 45L, 366L), (done["usage"]!["promptTokens"]!.GetValue<long>(), done["usage"]!["completionTokens"]!.GetValue<long>(), done["usage"]!["totalTokens"]!.GetValue<long>()));

        // The prompt: system instructions, the numbered passages with the question, the key as bearer token.
        Assert.Equal(before + 1, fixture.Main.Requests);
        var body = fixture.Main.Bodies.Last();
        Assert.Equal("fake-model", body.Str("model"));
        var messages = body["messages"]!.AsArray();
        Assert.Equal("system", messages[0].Str("role"));
        Assert.Contains("[1]", messages[^1].Str("content"), StringComparison.Ordinal);
        Assert.Contains("Reminders are persistent.", messages[^1].Str("content"), StringComparison.Ordinal);
        Assert.EndsWith("Question: Are reminders persistent?", messages[^1].Str("content"), StringComparison.Ordinal);
        Assert.Equal("Bearer sk-test-key", fixture.Main.Authorizations.Last());

        // A follow-up is rewritten by the model (a non-streamed call), and the earlier turn goes into the prompt.
        var conversationId = done.Str("conversationId");
        var followUp = await (await admin.PostJson("/v1/collections/kb/chat", new { message = "And what about its limits?", conversationId })).ExpectJson(HttpStatusCode.OK);
        Assert.Equal(fixture.Main.RewriteAnswer, followUp.Str("rewrittenQuery"));
        Assert.Equal(string.Concat(fixture.Main.Chunks), followUp.Str("answer"));
        Assert.Equal((321L + 20, 45L + 4), (followUp["usage"]!["promptTokens"]!.GetValue<long>(), followUp["usage"]!["completionTokens"]!.GetValue<long>()));
        var lastPrompt = fixture.Main.Bodies.Last()["messages"]!.AsArray();
        Assert.Contains(lastPrompt, m => m.Str("role") == "assistant" && m.Str("content") == string.Concat(fixture.Main.Chunks));

        // Charged to the day and the ledger under the model's name, prompt and completion apart.
        var usage = await (await admin.GetAsync("/v1/usage")).ExpectJson(HttpStatusCode.OK);
        Assert.Equal(366 + 24 + 366, usage["chatTokensToday"]!.GetValue<long>());
        var rows = (await (await admin.GetAsync("/v1/usage?groupBy=model")).ExpectJson(HttpStatusCode.OK))["ledger"]!["rows"]!.AsArray();
        Assert.Contains(rows, r => r.Str("key") == "fake-model" && r.Str("kind") == "chatTokensIn" && r!["quantity"]!.GetValue<long>() == 321 + 20 + 321);
        Assert.Contains(rows, r => r.Str("key") == "fake-model" && r.Str("kind") == "chatTokensOut" && r!["quantity"]!.GetValue<long>() == 45 + 4 + 45);
    }

    [Fact]
    public async Task Without_reported_usage_tokens_are_estimated_with_the_local_tokenizer()
    {
        using var admin = await TenantAsync("oa-estimate");
        fixture.Main.Usage = null;
        try
        {
            var answer = await (await admin.PostJson("/v1/collections/kb/chat", new { message = "What happens to timers when a silo fails?" })).ExpectJson(HttpStatusCode.OK);
            var usage = answer["usage"]!;
            Assert.Equal("openai", answer.Str("provider"));
            Assert.InRange(usage["completionTokens"]!.GetValue<long>(), 10, 40);
            Assert.True(usage["promptTokens"]!.GetValue<long>() > 50, usage.ToJsonString());
        }
        finally
        {
            fixture.Main.Usage = (321, 45);
        }
    }

    [Fact]
    public async Task A_429_and_a_503_are_retried_with_backoff()
    {
        using var admin = await TenantAsync("oa-flaky");
        fixture.Flaky.FailNext.Enqueue(429);
        fixture.Flaky.FailNext.Enqueue(503);
        var before = fixture.Flaky.Requests;
        var answer = await (await admin.PostJson("/v1/collections/kb/chat", new { message = "Are reminders persistent?" })).ExpectJson(HttpStatusCode.OK);
        Assert.Equal(("openai", false), (answer.Str("provider"), answer["fallback"]!.GetValue<bool>()));
        Assert.Equal(string.Concat(fixture.Flaky.Chunks), answer.Str("answer"));
        Assert.Equal(before + 3, fixture.Flaky.Requests);
    }

    [Fact]
    public async Task A_failing_model_opens_the_circuit_and_answers_fall_back_to_extractive()
    {
        using var admin = await TenantAsync("oa-broken");
        var first = await (await admin.PostJson("/v1/collections/kb/chat", new { message = "Are reminders persistent?" })).ExpectJson(HttpStatusCode.OK);
        Assert.Equal(("extractive", true), (first.Str("provider"), first["fallback"]!.GetValue<bool>()));
        Assert.Contains("Reminders are persistent. [1]", first.Str("answer"), StringComparison.Ordinal);
        Assert.Equal(3, fixture.Broken.Requests); // one attempt and two retries, then the circuit opened

        // With the circuit open the endpoint is not called at all; the stream says so in its done event.
        using var response = await admin.PostJson("/v1/collections/kb/chat", new { message = "Are timers durable?", stream = true });
        var events = await Sse.ReadAllAsync(response);
        Assert.Equal("citations", events[0].Name);
        Assert.Equal(("extractive", true), (events[^1].Json.Str("provider"), events[^1].Json["fallback"]!.GetValue<bool>()));
        Assert.Equal(3, fixture.Broken.Requests);

        // A fallback answer is not cached: the model gets its chance again once it recovers.
        var again = await (await admin.PostJson("/v1/collections/kb/chat", new { message = "Are reminders persistent?" })).ExpectJson(HttpStatusCode.OK);
        Assert.False(again["cached"]!.GetValue<bool>());
    }

    [Fact]
    public async Task A_client_that_disconnects_cancels_the_model_call()
    {
        using var admin = await TenantAsync("oa-cancel");
        var main = fixture.Main;
        main.ResetAbort();
        var chunks = main.Chunks;
        main.Chunks = [.. Enumerable.Range(0, 60).Select(i => $" word{i}")];
        main.ChunkDelay = TimeSpan.FromMilliseconds(500);
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var response = await admin.SendAsync(
                new HttpRequestMessage(HttpMethod.Post, "/v1/collections/kb/chat")
                {
                    Content = System.Net.Http.Json.JsonContent.Create(new { message = "Tell me everything about reminder tables", stream = true }),
                },
                HttpCompletionOption.ResponseHeadersRead, cts.Token);
            var seen = new List<string>();
            await foreach (var e in Sse.ReadAsync(response))
            {
                seen.Add(e.Name);
                if (e.Name == "delta")
                {
                    break;
                }
            }

            Assert.Equal(["citations", "delta"], seen);
            response.Dispose(); // the client goes away mid-answer

            await main.StreamAborted.Task.WaitAsync(TimeSpan.FromSeconds(20));
            Assert.True(main.StreamAborted.Task.IsCompletedSuccessfully);
        }
        finally
        {
            main.Chunks = chunks;
            main.ChunkDelay = TimeSpan.Zero;
        }
    }
}
