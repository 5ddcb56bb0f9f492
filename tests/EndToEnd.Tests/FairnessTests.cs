using System.Net;
using System.Text.Json.Nodes;
using Xunit;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>One tenant's backlog does not stall another tenant's document.</summary>
[Collection(ServiceCollection.Name)]
public sealed class FairnessTests(ServiceFixture fixture)
{
    private const int Backlog = 200;

    private ServiceProcess Service => fixture.Service;

    [Fact]
    public async Task A_small_tenants_document_is_indexed_while_a_large_backlog_is_still_running()
    {
        var (_, bigKey) = await Service.CreateTenant("fair-big");
        var (_, smallKey) = await Service.CreateTenant("fair-small");
        using var big = Service.Client(bigKey);
        using var small = Service.Client(smallKey);
        await (await big.PostJson("/v1/collections", new { name = "kb" })).ExpectJson(HttpStatusCode.Created);
        await (await small.PostJson("/v1/collections", new { name = "kb" })).ExpectJson(HttpStatusCode.Created);

        // The big tenant queues its backlog (accepted, not waited for).
        await Parallel.ForEachAsync(Enumerable.Range(0, Backlog), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) =>
            await (await big.PostJson("/v1/collections/kb/documents", new
            {
                id = $"note-{i:D4}",
                text = $"Maintenance note {i}: the pump in hall {i % 17} was inspected, its seals replaced and the pressure logged at {i % 9} bar.",
            })).ExpectJson(HttpStatusCode.Accepted));

        // The small tenant's one document is served in its turn, not after the whole backlog.
        var done = await (await small.PostJson("/v1/collections/kb/documents?wait=true&timeoutSeconds=120", new
        {
            id = "only",
            text = "The quarterly safety review found every fire door closing correctly.",
        })).ExpectJson(HttpStatusCode.OK);
        Assert.Equal("indexed", done.Str("status"));

        var unfinished = 0;
        foreach (var status in new[] { "queued", "processing" })
        {
            var page = await (await big.GetAsync($"/v1/collections/kb/documents?status={status}&limit=1000")).ExpectJson(HttpStatusCode.OK);
            unfinished += page["documents"]!.AsArray().Count;
        }

        Assert.True(unfinished >= Backlog / 4, $"only {unfinished} of the big tenant's {Backlog} documents were still unfinished when the small tenant's one was indexed");
        var hits = await small.Search("kb", "fire doors safety review");
        Assert.Equal("only", hits[0]!.Str("documentId"));
    }
}
