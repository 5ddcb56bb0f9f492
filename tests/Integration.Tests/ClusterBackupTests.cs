using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Npgsql;
using Xunit;
using Xunit.Abstractions;

namespace RagOrleans.Integration.Tests;

/// <summary>
/// Cluster mode (a silo and a frontend process, PostgreSQL and Redis): a tenant exported, deleted and imported again
/// answers every search exactly as before, through the PostgreSQL stores and the Redis grain state.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClusterBackupTests(PostgresFixture pg, ITestOutputHelper output) : OwnDatabaseClusterTest(pg, output, "rag_bak_")
{
    [Fact]
    public async Task A_tenant_exported_deleted_and_imported_searches_identically()
    {
        var cluster = Cluster;
        await cluster.StartAsync(silos: 1, frontends: 1);
        var frontend = cluster.Frontends[0];
        var tenant = "bak-" + Guid.NewGuid().ToString("N")[..10];
        var adminKey = await frontend.CreateTenant(cluster.OperatorKey, tenant);
        using var admin = frontend.Client(adminKey);
        using var op = frontend.Client(cluster.OperatorKey);
        await admin.CreateCollection("kb", shards: 2);
        (await admin.PostAsJsonAsync("/v1/collections", new { name = "q8", vectorQuantization = "int8" })).EnsureSuccessStatusCode();
        string[] texts =
        [
            "Silos host grains; a cluster of silos shares membership through a table in PostgreSQL.",
            "Reminders are durable timers stored in a table and survive restarts of the whole cluster.",
            "Grain state is written to Redis by the storage provider and read back on activation.",
            "The frontend is a stateless client of the cluster and serves the HTTP API.",
            "Index shards snapshot themselves and replay the chunk log after the snapshot's watermark.",
        ];
        for (var i = 0; i < texts.Length; i++)
        {
            await admin.Ingest("kb", $"d{i}", texts[i] + " " + texts[(i + 2) % texts.Length]);
            await admin.Ingest("q8", $"q{i}", texts[(i + 1) % texts.Length]);
        }

        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync("/v1/collections/kb/documents/d4")).StatusCode);
        var before = await ObserveAsync(admin);

        byte[] archive;
        using (var exported = await op.PostAsync($"/v1/tenants/{tenant}/export", null))
        {
            Assert.Equal(HttpStatusCode.OK, exported.StatusCode);
            archive = await exported.Content.ReadAsByteArrayAsync();
        }

        Assert.Equal(HttpStatusCode.Conflict, (await Import(op, archive)).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await op.DeleteAsync($"/v1/tenants/{tenant}")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await admin.GetAsync("/v1/collections")).StatusCode);

        var imported = await (await Import(op, archive)).ExpectJson(HttpStatusCode.Created);
        Assert.Equal(tenant, imported.Str("tenantId"));
        var after = await ObserveAsync(admin);
        foreach (var (what, expected) in before)
        {
            Assert.True(expected == after[what], $"{what} differs after the restore:\n before {expected}\n after  {after[what]}");
        }

        Output.WriteLine($"archive {archive.Length} bytes; {before.Count} observations identical");
    }

    private static async Task<Dictionary<string, string>> ObserveAsync(HttpClient client)
    {
        var seen = new Dictionary<string, string>();
        foreach (var collection in new[] { "kb", "q8" })
        {
            foreach (var mode in new[] { "vector", "keyword", "hybrid" })
            {
                foreach (var query in new[] { "durable timers", "where is grain state stored", "stateless HTTP frontend" })
                {
                    var json = await (await client.PostAsJsonAsync($"/v1/collections/{collection}/search", new { query, topK = 6, mode })).ExpectJson(HttpStatusCode.OK);
                    Assert.NotEmpty(json["results"]!.AsArray());
                    seen[$"{collection}:{mode}:{query}"] = json["results"]!.ToJsonString();
                }
            }

            seen[$"documents:{collection}"] = (await (await client.GetAsync($"/v1/collections/{collection}/documents")).ExpectJson(HttpStatusCode.OK)).ToJsonString();
        }

        seen["keys"] = (await (await client.GetAsync("/v1/keys")).ExpectJson(HttpStatusCode.OK)).ToJsonString();
        return seen;
    }

    private static Task<HttpResponseMessage> Import(HttpClient op, byte[] archive)
    {
        var content = new ByteArrayContent(archive);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/zip");
        return op.PostAsync("/v1/tenants/import", content);
    }
}
