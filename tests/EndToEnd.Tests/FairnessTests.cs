using System.Net;
using System.Text.Json.Nodes;
using Xunit;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>One tenant's backlog does not stall another tenant's document.</summary>
[Collection(ServiceCollection.Name)]
public sealed class FairnessTests(ServiceFixture fixture)
{
    // Each backlog document is several chunks of distinct text, so embedding one takes several times longer than
    // uploading one: the backlog necessarily builds up while it is posted, however fast or loaded the machine.
    private const int Backlog = 120;
    private const int SentencesPerDocument = 64;

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
                text = MaintenanceLog(i),
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

        // The rest of the backlog would only load the shared service for the tests after this one.
        Assert.Equal(HttpStatusCode.NoContent, (await big.DeleteAsync("/v1/collections/kb")).StatusCode);
    }

    private static string MaintenanceLog(int document)
    {
        var text = new System.Text.StringBuilder();
        for (var i = 0; i < SentencesPerDocument; i++)
        {
            // Distinct per document and sentence, so no chunk is served from the embedding cache.
            var n = document * SentencesPerDocument + i;
            text.Append(System.Globalization.CultureInfo.InvariantCulture,
                $"Maintenance entry {n}: the pump in hall {n % 17} was inspected on shift {n % 5}, its seals replaced, and the pressure logged at {n % 9}.{n % 7} bar by technician {n % 23}. ");
        }

        return text.ToString();
    }
}
