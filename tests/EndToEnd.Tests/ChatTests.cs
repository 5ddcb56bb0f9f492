using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Xunit;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>Chat with the built-in extractive answerer: server-sent events, follow-ups, conversations, the response cache.</summary>
[Collection(ServiceCollection.Name)]
public sealed class ChatTests(ServiceFixture fixture)
{
    internal static readonly object Timers = new
    {
        id = "timers",
        title = "Timers and reminders",
        text = "Timers are used for frequent periodic actions within a single grain activation. They are not durable: a timer stops when the activation is deactivated or the silo fails.\n\n" +
               "Reminders are persistent. A reminder keeps firing at its period even after the grain is deactivated or the cluster restarts, because it is stored in the reminder table.",
    };

    private ServiceProcess Service => fixture.Service;

    private async Task<HttpClient> TenantWithTimersAsync(string tenant)
    {
        var (_, adminKey) = await Service.CreateTenant(tenant);
        var admin = Service.Client(adminKey);
        await (await admin.PostJson("/v1/collections", new { name = "kb" })).ExpectJson(HttpStatusCode.Created);
        await admin.Ingest("kb", Timers);
        return admin;
    }

    [Fact]
    public async Task Streaming_chat_sends_citations_then_deltas_then_done()
    {
        using var admin = await TenantWithTimersAsync("chat-sse");
        using var response = await admin.PostJson("/v1/collections/kb/chat", new { message = "Are reminders persistent?", stream = true });
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = await Sse.ReadAllAsync(response);

        Assert.Equal("citations", events[0].Name);
        Assert.Equal("done", events[^1].Name);
        Assert.All(events.Skip(1).SkipLast(1), e => Assert.Equal("delta", e.Name));
        Assert.True(events.Count >= 3, string.Join(",", events.Select(e => e.Name)));

        var start = events[0].Json;
        var conversationId = start.Str("conversationId");
        Assert.Equal("Are reminders persistent?", start.Str("query"));
        Assert.Equal("Are reminders persistent?", start.Str("rewrittenQuery"));
        var citation = start["citations"]!.AsArray()[0]!.AsObject();
        foreach (var field in new[] { "number", "documentId", "chunkId", "text", "score", "title", "section" })
        {
            Assert.True(citation.ContainsKey(field), field);
        }

        var done = events[^1].Json;
        var answer = string.Concat(events.Where(e => e.Name == "delta").Select(e => e.Json.Str("text")));
        Assert.Equal(done.Str("answer"), answer);
        Assert.Contains("Reminders are persistent. [1]", answer, StringComparison.Ordinal);
        Assert.Equal(conversationId, done.Str("conversationId"));
        Assert.Equal("extractive", done.Str("provider"));
        Assert.False(done["fallback"]!.GetValue<bool>());
        Assert.False(done["cached"]!.GetValue<bool>());
        var usage = done["usage"]!;
        Assert.True(usage["promptTokens"]!.GetValue<long>() > 0 && usage["completionTokens"]!.GetValue<long>() > 0);
        Assert.Equal(usage["promptTokens"]!.GetValue<long>() + usage["completionTokens"]!.GetValue<long>(), usage["totalTokens"]!.GetValue<long>());

        // Accept: text/event-stream asks for the same stream without "stream": true.
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/collections/kb/chat") { Content = JsonContent.Create(new { message = "Are timers durable?", conversationId }) };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        using var second = await admin.SendAsync(request);
        var names = (await Sse.ReadAllAsync(second)).Select(e => e.Name).ToList();
        Assert.Equal("citations", names[0]);
        Assert.Equal("done", names[^1]);

        // A failure before the stream starts is an ordinary problem response.
        await (await admin.PostJson("/v1/collections/missing/chat", new { message = "x y z", stream = true })).ExpectProblem(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Follow_ups_are_rewritten_and_conversations_are_listed_deleted_and_private()
    {
        using var admin = await TenantWithTimersAsync("chat-conv");
        var first = await (await admin.PostJson("/v1/collections/kb/chat", new { message = "Are reminders persistent?" })).ExpectJson(HttpStatusCode.OK);
        var c1 = first.Str("conversationId");
        Assert.Equal("Are reminders persistent?", first.Str("rewrittenQuery"));

        var followUp = await (await admin.PostJson("/v1/collections/kb/chat", new { message = "And what about its period?", conversationId = c1 })).ExpectJson(HttpStatusCode.OK);
        Assert.Equal("And what about its period?", followUp.Str("query"));
        Assert.StartsWith("And what about its period?", followUp.Str("rewrittenQuery"), StringComparison.Ordinal);
        Assert.Contains("reminders", followUp.Str("rewrittenQuery"), StringComparison.Ordinal);

        // A stand-alone question is not rewritten, even in a conversation.
        var standalone = await (await admin.PostJson("/v1/collections/kb/chat", new { message = "Why do timers stop when the silo fails?", conversationId = c1 })).ExpectJson(HttpStatusCode.OK);
        Assert.Equal("Why do timers stop when the silo fails?", standalone.Str("rewrittenQuery"));

        await Task.Delay(20);
        var c2 = (await (await admin.PostJson("/v1/collections/kb/chat", new { message = "What are timers for?" })).ExpectJson(HttpStatusCode.OK)).Str("conversationId");

        var list = await (await admin.GetAsync("/v1/conversations")).ExpectJson(HttpStatusCode.OK);
        var ids = list["conversations"]!.AsArray().Select(c => c.Str("id")).ToList();
        Assert.Equal([c2, c1], ids);
        var one = list["conversations"]!.AsArray()[1]!;
        Assert.Equal(("kb", "Are reminders persistent?", 3), (one.Str("collection"), one.Str("title"), one["turns"]!.GetValue<int>()));

        var page1 = await (await admin.GetAsync("/v1/conversations?limit=1")).ExpectJson(HttpStatusCode.OK);
        Assert.Equal(c2, page1["conversations"]![0].Str("id"));
        var page2 = await (await admin.GetAsync($"/v1/conversations?limit=1&cursor={page1.Str("nextCursor")}")).ExpectJson(HttpStatusCode.OK);
        Assert.Equal(c1, page2["conversations"]![0].Str("id"));
        Assert.Null(page2["nextCursor"]);
        await (await admin.GetAsync("/v1/conversations?cursor=not-a-cursor")).ExpectProblem(HttpStatusCode.BadRequest);

        var turns = (await (await admin.GetAsync($"/v1/conversations/{c1}")).ExpectJson(HttpStatusCode.OK)).AsArray();
        Assert.Equal(3, turns.Count);
        Assert.Contains("reminders", turns[1].Str("rewrittenQuery"), StringComparison.Ordinal);

        // Another user of the same tenant sees none of it.
        var bobKey = (await (await admin.PostJson("/v1/keys", new { role = "user", userId = "bob" })).ExpectJson(HttpStatusCode.Created)).Str("key");
        using var bob = Service.Client(bobKey);
        Assert.Empty((await (await bob.GetAsync("/v1/conversations")).ExpectJson(HttpStatusCode.OK))["conversations"]!.AsArray());
        await (await bob.GetAsync($"/v1/conversations/{c1}")).ExpectProblem(HttpStatusCode.NotFound);
        await (await bob.DeleteAsync($"/v1/conversations/{c1}")).ExpectProblem(HttpStatusCode.NotFound);

        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/v1/conversations/{c1}")).StatusCode);
        await (await admin.GetAsync($"/v1/conversations/{c1}")).ExpectProblem(HttpStatusCode.NotFound);
        await (await admin.DeleteAsync($"/v1/conversations/{c1}")).ExpectProblem(HttpStatusCode.NotFound);
        var after = await (await admin.GetAsync("/v1/conversations")).ExpectJson(HttpStatusCode.OK);
        Assert.Equal([c2], after["conversations"]!.AsArray().Select(c => c.Str("id")).ToList());
    }

    [Fact]
    public async Task Identical_questions_come_from_the_cache_until_the_collection_changes()
    {
        using var admin = await TenantWithTimersAsync("chat-cache");
        async Task<JsonNode> Ask(string message) =>
            await (await admin.PostJson("/v1/collections/kb/chat", new { message })).ExpectJson(HttpStatusCode.OK);

        var fresh = await Ask("Are reminders persistent?");
        Assert.False(fresh["cached"]!.GetValue<bool>());
        var again = await Ask("  are REMINDERS persistent ");
        Assert.True(again["cached"]!.GetValue<bool>());
        Assert.Equal(fresh.Str("answer"), again.Str("answer"));
        Assert.Equal(fresh["citations"]!.ToJsonString(), again["citations"]!.ToJsonString());
        Assert.Equal(0, again["usage"]!["totalTokens"]!.GetValue<long>());
        Assert.NotEqual(fresh.Str("conversationId"), again.Str("conversationId"));

        // Any write to the collection invalidates the cache.
        await admin.Ingest("kb", new { id = "more", text = "Reminders are persistent timers stored in a table; they fire at least once a minute." });
        Assert.False((await Ask("Are reminders persistent?"))["cached"]!.GetValue<bool>());
        Assert.True((await Ask("Are reminders persistent?"))["cached"]!.GetValue<bool>());
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync("/v1/collections/kb/documents/more")).StatusCode);
        Assert.False((await Ask("Are reminders persistent?"))["cached"]!.GetValue<bool>());
    }
}
