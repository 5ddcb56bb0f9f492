using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Xunit;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>One running service shared by the API tests; each test uses its own tenants.</summary>
public sealed class ServiceFixture : IAsyncLifetime
{
    public ServiceProcess Service { get; private set; } = null!;

    public async Task InitializeAsync() => Service = await ServiceProcess.StartAsync(TestPaths.NewTempDir("api"));

    public async Task DisposeAsync() => await Service.DisposeAsync();
}

[CollectionDefinition(Name)]
public sealed class ServiceCollection : ICollectionFixture<ServiceFixture>
{
    public const string Name = "service";
}

[Collection(ServiceCollection.Name)]
public sealed class ApiTests(ServiceFixture fixture)
{
    private ServiceProcess Service => fixture.Service;

    private static readonly object Timers = new
    {
        id = "timers",
        title = "Timers and reminders",
        text = "Timers are used for frequent periodic actions within a single grain activation. They are not durable: a timer stops when the activation is deactivated or the silo fails.\n\n" +
               "Reminders are persistent. A reminder keeps firing at its period even after the grain is deactivated or the cluster restarts, because it is stored in the reminder table.",
        metadata = new { source = "handbook", year = 2024 },
    };

    private static readonly object Cooking = new
    {
        id = "bread",
        title = "Baking bread",
        text = "Knead the dough for ten minutes until it is smooth and elastic. Let it rise in a warm place for an hour, then bake at 220 degrees Celsius for thirty minutes.",
    };

    [Fact]
    public async Task Health_endpoints_answer_without_a_key()
    {
        using var anonymous = Service.Client(null);
        await (await anonymous.GetAsync("/healthz")).ExpectJson(HttpStatusCode.OK);
        var ready = await (await anonymous.GetAsync("/readyz")).ExpectJson(HttpStatusCode.OK);
        Assert.Equal("ready", ready.Str("status"));
    }

    [Fact]
    public async Task Tenants_are_managed_by_the_operator_only()
    {
        using var op = Service.Client(Service.OperatorKey);
        var created = await (await op.PostJson("/v1/tenants", new { id = "acme", name = "Acme Corp" })).ExpectJson(HttpStatusCode.Created);
        Assert.Equal("acme", created.Str("id"));
        Assert.Equal("Acme Corp", created.Str("name"));
        var adminKey = created.Str("adminKey");
        Assert.StartsWith("rk.acme.", adminKey, StringComparison.Ordinal);

        await (await op.PostJson("/v1/tenants", new { id = "acme", name = "again" })).ExpectProblem(HttpStatusCode.Conflict);
        await (await op.PostJson("/v1/tenants", new { id = "Not Valid!", name = "x" })).ExpectProblem(HttpStatusCode.BadRequest);
        await (await op.PostJson("/v1/tenants", new { name = "no id" })).ExpectProblem(HttpStatusCode.BadRequest);

        var list = (await (await op.GetAsync("/v1/tenants")).ExpectJson(HttpStatusCode.OK)).AsArray();
        Assert.Contains(list, t => t.Str("id") == "acme");
        var one = await (await op.GetAsync("/v1/tenants/acme")).ExpectJson(HttpStatusCode.OK);
        Assert.Equal("Acme Corp", one.Str("name"));
        Assert.Null(one["adminKey"]);
        await (await op.GetAsync("/v1/tenants/nobody")).ExpectProblem(HttpStatusCode.NotFound);

        using var anonymous = Service.Client(null);
        await (await anonymous.GetAsync("/v1/tenants")).ExpectProblem(HttpStatusCode.Unauthorized);
        using var wrong = Service.Client("rk.acme.kdeadbeef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        await (await wrong.GetAsync("/v1/tenants")).ExpectProblem(HttpStatusCode.Unauthorized);
        using var garbage = Service.Client("not-a-key");
        await (await garbage.GetAsync("/v1/collections")).ExpectProblem(HttpStatusCode.Unauthorized);
        using var admin = Service.Client(adminKey);
        await (await admin.GetAsync("/v1/tenants")).ExpectProblem(HttpStatusCode.Forbidden);
        await (await admin.PostJson("/v1/tenants", new { id = "evil", name = "x" })).ExpectProblem(HttpStatusCode.Forbidden);

        // Deleting removes everything of the tenant, its keys included.
        await (await admin.PostJson("/v1/collections", new { name = "docs" })).ExpectJson(HttpStatusCode.Created);
        await admin.Ingest("docs", Timers);
        Assert.NotEmpty(await admin.Search("docs", "timers"));
        Assert.Equal(HttpStatusCode.NoContent, (await op.DeleteAsync("/v1/tenants/acme")).StatusCode);
        await (await op.GetAsync("/v1/tenants/acme")).ExpectProblem(HttpStatusCode.NotFound);
        await (await admin.GetAsync("/v1/collections")).ExpectProblem(HttpStatusCode.Unauthorized);
        Assert.DoesNotContain((await (await op.GetAsync("/v1/tenants")).ExpectJson(HttpStatusCode.OK)).AsArray(), t => t.Str("id") == "acme");

        // The id is free again, and the new tenant starts empty.
        var again = await (await op.PostJson("/v1/tenants", new { id = "acme", name = "Acme 2" })).ExpectJson(HttpStatusCode.Created);
        using var admin2 = Service.Client(again.Str("adminKey"));
        Assert.Empty((await (await admin2.GetAsync("/v1/collections")).ExpectJson(HttpStatusCode.OK)).AsArray());
    }

    [Fact]
    public async Task Keys_are_created_listed_without_secrets_and_revoked_at_once()
    {
        var (_, adminKey) = await Service.CreateTenant("keys-tenant");
        using var admin = Service.Client(adminKey);
        var created = await (await admin.PostJson("/v1/keys", new { role = "user", userId = "alice" })).ExpectJson(HttpStatusCode.Created);
        var userKey = created.Str("key");
        var keyId = created.Str("id");
        Assert.Equal("user", created.Str("role"));
        Assert.Equal("alice", created.Str("userId"));

        var listText = await (await admin.GetAsync("/v1/keys")).Content.ReadAsStringAsync();
        var list = JsonNode.Parse(listText)!.AsArray();
        Assert.Equal(2, list.Count);
        Assert.All(list, k => Assert.Null(k!["key"]));
        Assert.DoesNotContain(userKey.Split('.')[3], listText, StringComparison.Ordinal);
        Assert.DoesNotContain(adminKey.Split('.')[3], listText, StringComparison.Ordinal);

        using var user = Service.Client(userKey);
        await (await user.GetAsync("/v1/collections")).ExpectJson(HttpStatusCode.OK);
        await (await user.PostJson("/v1/keys", new { role = "admin", userId = "mallory" })).ExpectProblem(HttpStatusCode.Forbidden);
        await (await user.GetAsync("/v1/keys")).ExpectProblem(HttpStatusCode.Forbidden);
        await (await admin.PostJson("/v1/keys", new { role = "root", userId = "x" })).ExpectProblem(HttpStatusCode.BadRequest);

        // A tampered secret for a real key id is refused.
        var parts = userKey.Split('.');
        using var tampered = Service.Client($"{parts[0]}.{parts[1]}.{parts[2]}.{new string('A', parts[3].Length)}");
        await (await tampered.GetAsync("/v1/collections")).ExpectProblem(HttpStatusCode.Unauthorized);

        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/v1/keys/{keyId}")).StatusCode);
        await (await user.GetAsync("/v1/collections")).ExpectProblem(HttpStatusCode.Unauthorized);
        await (await admin.DeleteAsync($"/v1/keys/{keyId}")).ExpectProblem(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Documents_are_ingested_searched_chatted_and_deleted()
    {
        var (_, adminKey) = await Service.CreateTenant("flow");
        using var admin = Service.Client(adminKey);
        var collection = await (await admin.PostJson("/v1/collections", new { name = "kb" })).ExpectJson(HttpStatusCode.Created);
        Assert.Equal("kb", collection.Str("name"));
        await (await admin.PostJson("/v1/collections", new { name = "kb" })).ExpectProblem(HttpStatusCode.Conflict);
        await (await admin.PostJson("/v1/collections", new { name = "bad/name" })).ExpectProblem(HttpStatusCode.BadRequest);

        var timers = await admin.Ingest("kb", Timers);
        Assert.Equal("timers", timers.Str("id"));
        Assert.True(timers["chunkCount"]!.GetValue<int>() >= 1);
        await admin.Ingest("kb", Cooking);

        // Multipart Markdown upload without ?wait: 202 and a status to poll.
        using var form = new MultipartFormDataContent();
        var md = "---\ntitle: Grain persistence\n---\n# Grain persistence\n\nGrains store state through named storage providers such as Redis or PostgreSQL.\n";
        var file = new ByteArrayContent(Encoding.UTF8.GetBytes(md));
        file.Headers.ContentType = new MediaTypeHeaderValue("text/markdown");
        form.Add(file, "file", "persistence.md");
        form.Add(new StringContent("persistence"), "id");
        var accepted = await (await admin.PostAsync("/v1/collections/kb/documents", form)).ExpectJson(HttpStatusCode.Accepted);
        Assert.Equal("persistence", accepted.Str("id"));
        Assert.Contains(accepted.Str("status"), new[] { "queued", "processing", "indexed" });
        JsonNode doc;
        var deadline = DateTime.UtcNow.AddSeconds(60);
        do
        {
            await Task.Delay(100);
            doc = await (await admin.GetAsync("/v1/collections/kb/documents/persistence")).ExpectJson(HttpStatusCode.OK);
        }
        while (doc.Str("status") != "indexed" && DateTime.UtcNow < deadline);
        Assert.Equal("indexed", doc.Str("status"));
        Assert.Equal("markdown", doc.Str("sourceType"));
        Assert.Equal("Grain persistence", doc["title"]?.GetValue<string>() ?? (await admin.Search("kb", "grain storage providers"))[0].Str("title"));

        var info = await (await admin.GetAsync("/v1/collections/kb")).ExpectJson(HttpStatusCode.OK);
        Assert.Equal(3, info["documentCount"]!.GetValue<long>());
        Assert.True(info["chunkCount"]!.GetValue<long>() >= 3);
        var docs = await (await admin.GetAsync("/v1/collections/kb/documents")).ExpectJson(HttpStatusCode.OK);
        Assert.Equal(new[] { "bread", "persistence", "timers" }, docs["documents"]!.AsArray().Select(d => d.Str("id")).ToArray());

        var results = await admin.Search("kb", "How long should bread dough rise?", 3);
        Assert.Equal("bread", results[0].Str("documentId"));
        Assert.Equal(3, results.Count);
        Assert.True(results[0]!["score"]!.GetValue<float>() >= results[1]!["score"]!.GetValue<float>());
        var persistent = await admin.Search("kb", "which one survives a cluster restart, timers or reminders?", 1);
        Assert.Equal("timers", persistent[0].Str("documentId"));
        Assert.Equal("handbook", persistent[0]!["metadata"]!["source"]!.GetValue<string>());
        Assert.Equal(2024, persistent[0]!["metadata"]!["year"]!.GetValue<int>());
        Assert.Contains("Reminders are persistent", persistent[0].Str("text"), StringComparison.Ordinal);

        // Every mode answers; an exact rare word is found by keyword search alone.
        var keyword = await (await admin.PostJson("/v1/collections/kb/search", new { query = "Celsius", mode = "keyword" })).ExpectJson(HttpStatusCode.OK);
        Assert.Equal("bread", keyword["results"]![0].Str("documentId"));
        var vector = await (await admin.PostJson("/v1/collections/kb/search", new { query = "oven temperature for loaves", mode = "vector", topK = 1 })).ExpectJson(HttpStatusCode.OK);
        Assert.Equal("bread", vector["results"]![0].Str("documentId"));
        await (await admin.PostJson("/v1/collections/kb/search", new { query = "x", mode = "psychic" })).ExpectProblem(HttpStatusCode.BadRequest);
        var explained = await (await admin.PostJson("/v1/collections/kb/search", new { query = "bread oven Celsius", explain = true, topK = 3 })).ExpectJson(HttpStatusCode.OK);
        var top = explained["results"]![0]!;
        Assert.Equal("bread", top.Str("documentId"));
        Assert.Equal(1, top["explain"]!["keywordRank"]!.GetValue<int>());
        Assert.True(top["explain"]!["denseRank"]!.GetValue<int>() >= 1);
        Assert.True(top["explain"]!["denseScore"]!.GetValue<float>() > 0);
        var fused = 1f / (60 + top["explain"]!["denseRank"]!.GetValue<int>()) + 1f / 61;
        Assert.Equal(fused, top["score"]!.GetValue<float>(), 4);
        Assert.Null(keyword["results"]![0]!["explain"]);

        // Metadata filters: only the timers document has year 2024.
        var filtered = await (await admin.PostJson("/v1/collections/kb/search", new { query = "bread oven", filter = new { year = new { gte = 2020 } } })).ExpectJson(HttpStatusCode.OK);
        Assert.All(filtered["results"]!.AsArray(), r => Assert.Equal("timers", r.Str("documentId")));
        Assert.NotEmpty(filtered["results"]!.AsArray());
        var none = await (await admin.PostJson("/v1/collections/kb/search", new { query = "bread", filter = new { source = "nowhere" } })).ExpectJson(HttpStatusCode.OK);
        Assert.Empty(none["results"]!.AsArray());
        var badFilter = await (await admin.PostJson("/v1/collections/kb/search", new { query = "bread", filter = new { year = new { between = 1 } } })).ExpectProblem(HttpStatusCode.BadRequest);
        Assert.Contains("unknown operator", badFilter.Str("detail"), StringComparison.Ordinal);

        var chat = await (await admin.PostJson("/v1/collections/kb/chat", new { message = "Are reminders persistent?" })).ExpectJson(HttpStatusCode.OK);
        var answer = chat.Str("answer");
        Assert.Contains("Reminders are persistent", answer, StringComparison.Ordinal);
        var citations = chat["citations"]!.AsArray();
        Assert.NotEmpty(citations);
        // Every [n] in the answer names a returned citation, and the quoted sentence is in that passage.
        var markers = System.Text.RegularExpressions.Regex.Matches(answer, @"\[(\d+)\]").Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.NotEmpty(markers);
        Assert.All(markers, n => Assert.Contains(citations, c => c!["number"]!.GetValue<int>() == n));
        var cited = citations.First(c => c!["number"]!.GetValue<int>() == markers[0])!;
        Assert.Equal("timers", cited.Str("documentId"));
        var conversationId = chat.Str("conversationId");
        var followUp = await (await admin.PostJson("/v1/collections/kb/chat", new { message = "How hot is the oven for bread?", conversationId })).ExpectJson(HttpStatusCode.OK);
        Assert.Equal(conversationId, followUp.Str("conversationId"));
        Assert.Contains("220", followUp.Str("answer"), StringComparison.Ordinal);
        var history = (await (await admin.GetAsync($"/v1/conversations/{conversationId}")).ExpectJson(HttpStatusCode.OK)).AsArray();
        Assert.Equal(2, history.Count);

        // Re-sending the same document is idempotent (200, the existing document, duplicate); deleting removes it from search.
        var again = await (await admin.PostJson("/v1/collections/kb/documents", Cooking)).ExpectJson(HttpStatusCode.OK);
        Assert.Equal("indexed", again.Str("status"));
        Assert.True(again["duplicate"]!.GetValue<bool>());
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync("/v1/collections/kb/documents/bread")).StatusCode);
        await (await admin.GetAsync("/v1/collections/kb/documents/bread")).ExpectProblem(HttpStatusCode.NotFound);
        Assert.DoesNotContain(await admin.Search("kb", "bread dough oven", 10), r => r.Str("documentId") == "bread");
        await (await admin.DeleteAsync("/v1/collections/kb/documents/bread")).ExpectProblem(HttpStatusCode.NotFound);

        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync("/v1/collections/kb")).StatusCode);
        await (await admin.GetAsync("/v1/collections/kb")).ExpectProblem(HttpStatusCode.NotFound);
        await (await admin.PostJson("/v1/collections/kb/search", new { query = "timers" })).ExpectProblem(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Users_read_search_and_chat_but_cannot_write()
    {
        var (_, adminKey) = await Service.CreateTenant("roles");
        using var admin = Service.Client(adminKey);
        await (await admin.PostJson("/v1/collections", new { name = "kb" })).ExpectJson(HttpStatusCode.Created);
        await admin.Ingest("kb", Timers);
        var userKey = (await (await admin.PostJson("/v1/keys", new { role = "user", userId = "bob" })).ExpectJson(HttpStatusCode.Created)).Str("key");
        using var user = Service.Client(userKey);

        await (await user.GetAsync("/v1/collections")).ExpectJson(HttpStatusCode.OK);
        await (await user.GetAsync("/v1/collections/kb")).ExpectJson(HttpStatusCode.OK);
        await (await user.GetAsync("/v1/collections/kb/documents")).ExpectJson(HttpStatusCode.OK);
        await (await user.GetAsync("/v1/collections/kb/documents/timers")).ExpectJson(HttpStatusCode.OK);
        Assert.NotEmpty(await user.Search("kb", "reminders"));
        var chat = await (await user.PostJson("/v1/collections/kb/chat", new { message = "What are timers for?" })).ExpectJson(HttpStatusCode.OK);

        await (await user.PostJson("/v1/collections", new { name = "mine" })).ExpectProblem(HttpStatusCode.Forbidden);
        await (await user.DeleteAsync("/v1/collections/kb")).ExpectProblem(HttpStatusCode.Forbidden);
        await (await user.PostJson("/v1/collections/kb/documents", Cooking)).ExpectProblem(HttpStatusCode.Forbidden);
        await (await user.DeleteAsync("/v1/collections/kb/documents/timers")).ExpectProblem(HttpStatusCode.Forbidden);

        // Conversations are per user: the admin (another user) does not see bob's.
        await (await user.GetAsync($"/v1/conversations/{chat.Str("conversationId")}")).ExpectJson(HttpStatusCode.OK);
        await (await admin.GetAsync($"/v1/conversations/{chat.Str("conversationId")}")).ExpectProblem(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Another_tenants_collection_is_not_found_on_every_route()
    {
        var (_, keyA) = await Service.CreateTenant("iso-a");
        var (_, keyB) = await Service.CreateTenant("iso-b");
        using var a = Service.Client(keyA);
        using var b = Service.Client(keyB);
        await (await a.PostJson("/v1/collections", new { name = "secret" })).ExpectJson(HttpStatusCode.Created);
        await a.Ingest("secret", Timers);

        await (await b.GetAsync("/v1/collections/secret")).ExpectProblem(HttpStatusCode.NotFound);
        await (await b.DeleteAsync("/v1/collections/secret")).ExpectProblem(HttpStatusCode.NotFound);
        await (await b.GetAsync("/v1/collections/secret/documents")).ExpectProblem(HttpStatusCode.NotFound);
        await (await b.GetAsync("/v1/collections/secret/documents/timers")).ExpectProblem(HttpStatusCode.NotFound);
        await (await b.DeleteAsync("/v1/collections/secret/documents/timers")).ExpectProblem(HttpStatusCode.NotFound);
        await (await b.PostJson("/v1/collections/secret/documents", Cooking)).ExpectProblem(HttpStatusCode.NotFound);
        await (await b.PostJson("/v1/collections/secret/search", new { query = "timers" })).ExpectProblem(HttpStatusCode.NotFound);
        await (await b.PostJson("/v1/collections/secret/chat", new { message = "timers?" })).ExpectProblem(HttpStatusCode.NotFound);
        Assert.Empty((await (await b.GetAsync("/v1/collections")).ExpectJson(HttpStatusCode.OK)).AsArray());
        await (await b.DeleteAsync("/v1/keys/" + keyA.Split('.')[2])).ExpectProblem(HttpStatusCode.NotFound);

        // A's data is untouched.
        Assert.NotEmpty(await a.Search("secret", "timers"));
    }

    [Fact]
    public async Task Bad_input_gets_clear_problem_details_and_loses_nothing()
    {
        var (_, adminKey) = await Service.CreateTenant("bad-input");
        using var admin = Service.Client(adminKey);
        await (await admin.PostJson("/v1/collections", new { name = "kb" })).ExpectJson(HttpStatusCode.Created);
        await admin.Ingest("kb", Timers);

        var invalidJson = new StringContent("{\"text\": ", Encoding.UTF8, "application/json");
        var problem = await (await admin.PostAsync("/v1/collections/kb/documents", invalidJson)).ExpectProblem(HttpStatusCode.BadRequest);
        Assert.Contains("JSON", problem.Str("detail"), StringComparison.Ordinal);
        await (await admin.PostAsync("/v1/collections", new StringContent("[1,2", Encoding.UTF8, "application/json"))).ExpectProblem(HttpStatusCode.BadRequest);
        await (await admin.PostJson("/v1/collections/kb/documents", new { text = "" })).ExpectProblem(HttpStatusCode.BadRequest);
        await (await admin.PostJson("/v1/collections/kb/documents", new { text = "x", id = "../../etc/passwd" })).ExpectProblem(HttpStatusCode.BadRequest);
        await (await admin.PostJson("/v1/collections/kb/documents", new { text = "x", metadata = new[] { 1, 2 } })).ExpectProblem(HttpStatusCode.BadRequest);
        await (await admin.PostJson("/v1/collections/kb/search", new { query = "timers", topK = 0 })).ExpectProblem(HttpStatusCode.BadRequest);
        await (await admin.PostJson("/v1/collections/kb/search", new { query = "" })).ExpectProblem(HttpStatusCode.BadRequest);
        await (await admin.PostJson("/v1/collections/kb/search", new { query = "x", topK = "many" })).ExpectProblem(HttpStatusCode.BadRequest);
        await (await admin.PostAsync("/v1/collections/kb/documents", new StringContent("plain", Encoding.UTF8, "text/plain"))).ExpectProblem(HttpStatusCode.UnsupportedMediaType);

        using var binary = new MultipartFormDataContent();
        binary.Add(new ByteArrayContent([0x7F, 0x45, 0x4C, 0x46, 0x02, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x3E, 0x00]), "file", "program.txt");
        var unsupported = await (await admin.PostAsync("/v1/collections/kb/documents", binary)).ExpectProblem(HttpStatusCode.UnsupportedMediaType);
        Assert.Contains("not a supported document type", unsupported.Str("detail"), StringComparison.Ordinal);

        // A truncated PDF is accepted (its type is known) and ends failed with a reason; it never blocks the collection.
        using var pdf = new MultipartFormDataContent();
        pdf.Add(new ByteArrayContent(Encoding.ASCII.GetBytes("%PDF-1.7\n1 0 obj\n<<>>\nendobj\n")), "file", "report.pdf");
        pdf.Add(new StringContent("broken-pdf"), "id");
        var failed = await (await admin.PostAsync("/v1/collections/kb/documents?wait=true", pdf)).ExpectJson(HttpStatusCode.OK);
        Assert.Equal("failed", failed.Str("status"));
        Assert.False(string.IsNullOrWhiteSpace(failed.Str("error")));
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync("/v1/collections/kb/documents/broken-pdf")).StatusCode);
        using var empty = new MultipartFormDataContent();
        empty.Add(new ByteArrayContent([]), "file", "empty.txt");
        await (await admin.PostAsync("/v1/collections/kb/documents", empty)).ExpectProblem(HttpStatusCode.UnprocessableEntity);
        using var noFile = new MultipartFormDataContent { { new StringContent("x"), "title" } };
        await (await admin.PostAsync("/v1/collections/kb/documents", noFile)).ExpectProblem(HttpStatusCode.BadRequest);

        // Nothing was lost or added by the rejected requests.
        var docs = await (await admin.GetAsync("/v1/collections/kb/documents")).ExpectJson(HttpStatusCode.OK);
        Assert.Single(docs["documents"]!.AsArray());
        Assert.NotEmpty(await admin.Search("kb", "reminders"));
    }
}
