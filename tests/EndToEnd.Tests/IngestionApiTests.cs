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
