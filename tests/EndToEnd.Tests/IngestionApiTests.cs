using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Xunit;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>Dead-letter view, retry, pipeline progress, dedupe and idempotent uploads, over HTTP.</summary>
[Collection(ServiceCollection.Name)]
public sealed class IngestionApiTests(ServiceFixture fixture)
{
    private ServiceProcess Service => fixture.Service;

    [Fact]
    public async Task Failed_documents_are_listed_by_status_and_can_be_retried()
    {
        var (tenant, adminKey) = await Service.CreateTenant("dead-letter");
        using var admin = Service.Client(adminKey);
        await (await admin.PostJson("/v1/collections", new { name = "kb" })).ExpectJson(HttpStatusCode.Created);
        var good = await admin.Ingest("kb", new { id = "good", text = "Grains are the unit of isolation, distribution and persistence in Orleans." });
        Assert.Equal("indexed", good.Str("step"));
        Assert.Equal(100, good["progressPercent"]!.GetValue<int>());

        // Three truncated PDFs: accepted (the type is known), then failed with a reason at the parse step.
        foreach (var id in new[] { "bad-1", "bad-2", "bad-3" })
        {
            var failed = await (await admin.PostAsync("/v1/collections/kb/documents?wait=true", TruncatedPdf(id))).ExpectJson(HttpStatusCode.OK);
            Assert.Equal("failed", failed.Str("status"));
            Assert.Equal("received", failed.Str("step"));
            Assert.False(string.IsNullOrWhiteSpace(failed.Str("error")));
        }

        // The dead-letter view holds exactly the failed documents, and pages like the full listing.
        var page1 = await (await admin.GetAsync("/v1/collections/kb/documents?status=failed&limit=2")).ExpectJson(HttpStatusCode.OK);
        Assert.Equal(["bad-1", "bad-2"], Ids(page1));
        var cursor = page1.Str("nextCursor");
        var page2 = await (await admin.GetAsync($"/v1/collections/kb/documents?status=failed&limit=2&cursor={cursor}")).ExpectJson(HttpStatusCode.OK);
        Assert.Equal(["bad-3"], Ids(page2));
        Assert.Null(page2["nextCursor"]);
        var indexed = await (await admin.GetAsync("/v1/collections/kb/documents?status=indexed")).ExpectJson(HttpStatusCode.OK);
        Assert.Equal(["good"], Ids(indexed));
        Assert.Empty(Ids(await (await admin.GetAsync("/v1/collections/kb/documents?status=queued")).ExpectJson(HttpStatusCode.OK)));
        Assert.Equal(4, Ids(await (await admin.GetAsync("/v1/collections/kb/documents")).ExpectJson(HttpStatusCode.OK)).Count);
        await (await admin.GetAsync("/v1/collections/kb/documents?status=stuck")).ExpectProblem(HttpStatusCode.BadRequest);
        await (await admin.GetAsync("/v1/collections/kb/documents?status=3")).ExpectProblem(HttpStatusCode.BadRequest);

        // Only failed documents can be retried.
        var conflict = await (await admin.PostAsync("/v1/collections/kb/documents/good/retry", null)).ExpectProblem(HttpStatusCode.Conflict);
        Assert.Contains("only failed documents", conflict.Str("detail"), StringComparison.Ordinal);
        await (await admin.PostAsync("/v1/collections/kb/documents/missing/retry", null)).ExpectProblem(HttpStatusCode.NotFound);

        // A retry re-runs the pipeline from the stored content with a fresh attempt count. Repair the stored
        // content of bad-1 in place (the embedded blob store's file) to stand for a fixed cause.
        var blob = Path.Combine(Service.DataDir, "blobs", tenant, "kb", "bad-1.blob");
        Assert.True(File.Exists(blob), blob);
        await File.WriteAllBytesAsync(blob, await File.ReadAllBytesAsync(Path.Combine(TestPaths.SharedData, "docs", "pdf", "pypdf-minimal-document.pdf")));
        var retried = await (await admin.PostAsync("/v1/collections/kb/documents/bad-1/retry", null)).ExpectJson(HttpStatusCode.Accepted);
        Assert.Equal("queued", retried.Str("status"));
        Assert.Equal(0, retried["attempts"]!.GetValue<int>());
        Assert.Null(retried["error"]);
        var done = await WaitFinished(admin, "kb", "bad-1");
        Assert.True(done.Str("status") == "indexed", done.ToJsonString());
        Assert.Equal(1, done["attempts"]!.GetValue<int>());
        Assert.Equal(["bad-2", "bad-3"], Ids(await (await admin.GetAsync("/v1/collections/kb/documents?status=failed")).ExpectJson(HttpStatusCode.OK)));

        // Retrying a document whose content is still broken ends failed again, with its reason.
        await (await admin.PostAsync("/v1/collections/kb/documents/bad-2/retry", null)).ExpectJson(HttpStatusCode.Accepted);
        var again = await WaitFinished(admin, "kb", "bad-2");
        Assert.Equal("failed", again.Str("status"));
        Assert.Equal(1, again["attempts"]!.GetValue<int>());
        Assert.False(string.IsNullOrWhiteSpace(again.Str("error")));

        // Users read the dead-letter view but cannot retry.
        var userKey = (await (await admin.PostJson("/v1/keys", new { role = "user", userId = "u" })).ExpectJson(HttpStatusCode.Created)).Str("key");
        using var user = Service.Client(userKey);
        await (await user.GetAsync("/v1/collections/kb/documents?status=failed")).ExpectJson(HttpStatusCode.OK);
        await (await user.PostAsync("/v1/collections/kb/documents/bad-3/retry", null)).ExpectProblem(HttpStatusCode.Forbidden);
    }

    [Fact]
    public async Task Identical_content_without_an_id_returns_the_existing_document()
    {
        var (_, adminKey) = await Service.CreateTenant("dedupe");
        using var admin = Service.Client(adminKey);
        await (await admin.PostJson("/v1/collections", new { name = "kb" })).ExpectJson(HttpStatusCode.Created);
        const string Text = "Silos host grains; a cluster is a set of silos that share membership and a reminder table.";
        var first = await admin.Ingest("kb", new { text = Text, title = "Silos" });
        Assert.False(first["duplicate"]!.GetValue<bool>());

        using var again = await admin.PostJson("/v1/collections/kb/documents", new { text = Text, title = "Silos" });
        var duplicate = await again.ExpectJson(HttpStatusCode.OK);
        Assert.True(duplicate["duplicate"]!.GetValue<bool>());
        Assert.Equal(first.Str("id"), duplicate.Str("id"));
        Assert.Equal("indexed", duplicate.Str("status"));
        Assert.Equal($"/v1/collections/kb/documents/{first.Str("id")}", again.Content.Headers.ContentLocation?.OriginalString);

        // The same bytes as a file upload are the same document too.
        using var file = new MultipartFormDataContent { { new ByteArrayContent(Encoding.UTF8.GetBytes(Text)), "file", "silos.txt" } };
        var asFile = await (await admin.PostAsync("/v1/collections/kb/documents", file)).ExpectJson(HttpStatusCode.OK);
        Assert.True(asFile["duplicate"]!.GetValue<bool>());
        Assert.Equal(first.Str("id"), asFile.Str("id"));

        // An explicit new id is the caller's choice of a distinct document.
        var named = await admin.Ingest("kb", new { id = "copy", text = Text });
        Assert.False(named["duplicate"]!.GetValue<bool>());
        Assert.Equal(2, Ids(await (await admin.GetAsync("/v1/collections/kb/documents")).ExpectJson(HttpStatusCode.OK)).Count);
    }

    [Fact]
    public async Task An_idempotency_key_replays_the_first_response_and_refuses_a_different_request()
    {
        var (_, adminKey) = await Service.CreateTenant("idem");
        var (_, otherKey) = await Service.CreateTenant("idem-other");
        using var admin = Service.Client(adminKey);
        using var other = Service.Client(otherKey);
        await (await admin.PostJson("/v1/collections", new { name = "kb" })).ExpectJson(HttpStatusCode.Created);
        await (await other.PostJson("/v1/collections", new { name = "kb" })).ExpectJson(HttpStatusCode.Created);
        var body = new { text = "Streams deliver events to subscribers in order per stream.", metadata = new { n = 1 } };

        using var firstResponse = await admin.SendAsync(Post("/v1/collections/kb/documents", body, "key-1"));
        var first = await firstResponse.ExpectJson(HttpStatusCode.Accepted);
        Assert.False(firstResponse.Headers.Contains("Idempotent-Replayed"));
        var id = first.Str("id");

        // A repeat gets the stored first response (202 and the same body), not a dedupe answer or a new document.
        await IngestionApiTests.WaitFinished(admin, "kb", id);
        using var replayResponse = await admin.SendAsync(Post("/v1/collections/kb/documents", body, "key-1"));
        var replay = await replayResponse.ExpectJson(HttpStatusCode.Accepted);
        Assert.Equal("true", replayResponse.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(firstResponse.Headers.Location, replayResponse.Headers.Location);
        Assert.True(JsonNode.DeepEquals(first, replay), $"{first.ToJsonString()} != {replay.ToJsonString()}");
        Assert.Single(Ids(await (await admin.GetAsync("/v1/collections/kb/documents")).ExpectJson(HttpStatusCode.OK)));

        // The same key with a different request is refused; so is a malformed key.
        var changed = new { text = "Something else entirely.", metadata = new { n = 1 } };
        var mismatch = await (await admin.SendAsync(Post("/v1/collections/kb/documents", changed, "key-1"))).ExpectProblem(HttpStatusCode.UnprocessableEntity);
        Assert.Contains("Idempotency-Key", mismatch.Str("detail"), StringComparison.Ordinal);
        await (await admin.SendAsync(Post("/v1/collections/kb/documents", new { text = body.text, metadata = new { n = 2 } }, "key-1")))
            .ExpectProblem(HttpStatusCode.UnprocessableEntity);
        await (await admin.SendAsync(Post("/v1/collections/kb/documents", changed, new string('k', 256)))).ExpectProblem(HttpStatusCode.BadRequest);
        await (await admin.SendAsync(Post("/v1/collections/kb/documents", changed, "bad key"))).ExpectProblem(HttpStatusCode.BadRequest);

        // Keys belong to a tenant: another tenant's identical key runs its own request.
        var elsewhere = await (await other.SendAsync(Post("/v1/collections/kb/documents", changed, "key-1"))).ExpectJson(HttpStatusCode.Accepted);
        Assert.NotEqual(id, elsewhere.Str("id"));

        // A failed request (here a 4xx) stores nothing: the key stays free for the corrected request.
        await (await admin.SendAsync(Post("/v1/collections/kb/documents", new { text = "" }, "key-2"))).ExpectProblem(HttpStatusCode.BadRequest);
        await (await admin.SendAsync(Post("/v1/collections/kb/documents", new { text = "Corrected." }, "key-2"))).ExpectJson(HttpStatusCode.Accepted);
    }

    [Fact]
    public async Task Re_ingesting_a_document_replaces_its_chunks_atomically()
    {
        var (_, adminKey) = await Service.CreateTenant("replace");
        using var admin = Service.Client(adminKey);
        await (await admin.PostJson("/v1/collections", new { name = "kb" })).ExpectJson(HttpStatusCode.Created);
        var v1 = await admin.Ingest("kb", new { id = "manual", text = Versioned("alpha") });
        Assert.True(v1["chunkCount"]!.GetValue<int>() >= 3, v1.ToJsonString());

        // While version beta is ingested, every search sees all of alpha or all of beta: never a mix, never nothing.
        await (await admin.PostJson("/v1/collections/kb/documents", new { id = "manual", text = Versioned("beta") })).ExpectJson(HttpStatusCode.Accepted);
        var seen = new HashSet<string>();
        JsonNode doc;
        do
        {
            doc = await (await admin.GetAsync("/v1/collections/kb/documents/manual")).ExpectJson(HttpStatusCode.OK);
            var versions = await VersionsFound(admin);
            Assert.True(versions.Count == 1, "versions seen together: " + string.Join(", ", versions));
            seen.Add(versions.Single());
        }
        while (doc.Str("status") is "queued" or "processing");

        Assert.Equal("indexed", doc.Str("status"));
        var final = await VersionsFound(admin);
        Assert.Equal(["beta"], final);
        var hits = (await (await admin.PostJson("/v1/collections/kb/search", new { query = "edition", topK = 100, mode = "keyword" }))
            .ExpectJson(HttpStatusCode.OK))["results"]!.AsArray();
        Assert.Equal(doc["chunkCount"]!.GetValue<int>(), hits.Count(h => h.Str("documentId") == "manual"));
        Assert.Contains("beta", seen);
    }

    private static string Versioned(string version) => string.Join("\n\n", Enumerable.Range(1, 12).Select(i =>
        $"Section {i} of the {version} edition. The lighthouse keeper of the {version} edition climbs the stairs at dusk, " +
        $"trims the wick, polishes the lens and records the weather in the {version} logbook. " +
        string.Join(" ", Enumerable.Range(1, 12).Select(j => $"Observation {i}.{j} in the {version} edition notes wind, tide and passing ships."))));

    private static async Task<List<string>> VersionsFound(HttpClient admin)
    {
        var hits = (await (await admin.PostJson("/v1/collections/kb/search", new { query = "edition", topK = 100, mode = "keyword" }))
            .ExpectJson(HttpStatusCode.OK))["results"]!.AsArray();
        return hits.Where(h => h.Str("documentId") == "manual")
            .Select(h => h.Str("text").Contains("alpha", StringComparison.Ordinal) ? "alpha" : h.Str("text").Contains("beta", StringComparison.Ordinal) ? "beta" : "?")
            .Distinct().ToList();
    }

    internal static HttpRequestMessage Post(string url, object body, string idempotencyKey)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = JsonContent.Create(body) };
        request.Headers.TryAddWithoutValidation("Idempotency-Key", idempotencyKey);
        return request;
    }

    internal static MultipartFormDataContent TruncatedPdf(string id)
    {
        var content = new MultipartFormDataContent();
        content.Add(new ByteArrayContent(Encoding.ASCII.GetBytes($"%PDF-1.7\n1 0 obj\n<< /Id ({id}) >>\nendobj\n")), "file", id + ".pdf");
        content.Add(new StringContent(id), "id");
        return content;
    }

    internal static List<string> Ids(JsonNode page) => page["documents"]!.AsArray().Select(d => d.Str("id")).ToList();

    internal static async Task<JsonNode> WaitFinished(HttpClient client, string collection, string id)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (true)
        {
            var doc = await (await client.GetAsync($"/v1/collections/{collection}/documents/{id}")).ExpectJson(HttpStatusCode.OK);
            if (doc.Str("status") is "indexed" or "failed" || DateTime.UtcNow > deadline)
            {
                return doc;
            }

            await Task.Delay(100);
        }
    }
}
