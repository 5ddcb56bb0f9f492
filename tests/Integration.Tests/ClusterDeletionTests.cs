using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using Npgsql;
using StackExchange.Redis;
using Xunit;
using Xunit.Abstractions;

namespace RagOrleans.Integration.Tests;

/// <summary>
/// Cluster mode (a silo and a frontend process, PostgreSQL and Redis): deleting a tenant leaves no row in any
/// PostgreSQL table and no key in Redis that names it or holds its text, and the deletion is in the shared audit log.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ClusterDeletionTests(PostgresFixture pg, ITestOutputHelper output) : OwnDatabaseClusterTest(pg, output, "rag_del_")
{
    private const string SecretWord = "vorpelquandrix";

    // Kept on purpose: the audit trail and the billing ledger; Orleans' own membership and reminder tables.
    private static readonly string[] RetainedTables = ["audit_log", "usage_ledger", "rag_schema_version", "orleansquery", "orleansmembershiptable", "orleansmembershipversiontable", "orleansremindersstable"];

    [Fact]
    public async Task Deleting_a_tenant_removes_it_from_postgres_and_redis_and_is_audited()
    {
        var cluster = Cluster;
        await cluster.StartAsync(silos: 1, frontends: 1);
        var frontend = cluster.Frontends[0];
        var tenant = "del-" + Guid.NewGuid().ToString("N")[..10];
        using var admin = frontend.Client(await frontend.CreateTenant(cluster.OperatorKey, tenant));
        await admin.CreateCollection("kb", shards: 2);
        await admin.Ingest("kb", "d1", $"The {SecretWord} lives in a cluster of three silos.");
        await admin.Ingest("kb", "d2", "Reminders are durable timers.");
        using (var form = new MultipartFormDataContent())
        {
            form.Add(new ByteArrayContent(Encoding.UTF8.GetBytes($"# File\n\nA {SecretWord} in a file.")), "file", "f.md");
            (await admin.PostAsync("/v1/collections/kb/documents?wait=true", form)).EnsureSuccessStatusCode();
        }

        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/collections/kb/documents?wait=true"))
        {
            request.Headers.Add("Idempotency-Key", "idem-del-1");
            request.Content = JsonContent.Create(new { id = "d3", text = $"Idempotent {SecretWord}." });
            (await admin.SendAsync(request)).EnsureSuccessStatusCode();
        }

        var upload = await (await admin.PostAsJsonAsync("/v1/collections/kb/uploads", new { fileName = "p.txt" })).ExpectJson(HttpStatusCode.Created);
        using (var part = new ByteArrayContent(Encoding.UTF8.GetBytes($"part {SecretWord}")))
        {
            part.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            (await admin.PutAsync($"/v1/collections/kb/uploads/{upload.Str("uploadId")}/parts/1", part)).EnsureSuccessStatusCode();
        }

        (await admin.PostAsJsonAsync("/v1/collections/kb/chat", new { message = $"Where does the {SecretWord} live?" })).EnsureSuccessStatusCode();
        Assert.NotEmpty(await LeaksAsync(cluster, tenant));

        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync("/v1/collections/kb/documents/d1")).StatusCode);
        await using (var ds = NpgsqlDataSource.Create(cluster.Postgres))
        await using (var command = ds.CreateCommand("SELECT count(*) FROM chunk_log WHERE doc_id = 'd1' AND (text IS NOT NULL OR vector IS NOT NULL)"))
        {
            Assert.Equal(0L, (long)(await command.ExecuteScalarAsync())!);
        }

        using var op = frontend.Client(cluster.OperatorKey);
        Assert.Equal(HttpStatusCode.NoContent, (await op.DeleteAsync($"/v1/tenants/{tenant}")).StatusCode);
        var leaks = await LeaksAsync(cluster, tenant);
        Assert.True(leaks.Count == 0, "Left behind:\n" + string.Join("\n", leaks.Take(30)));

        var audit = await (await op.GetAsync($"/v1/audit?tenant={tenant}")).ExpectJson(HttpStatusCode.OK);
        var actions = audit["entries"]!.AsArray().Select(e => e!["action"]!.GetValue<string>()).ToList();
        Assert.Contains("tenant.create", actions);
        Assert.Contains("collection.create", actions);
        Assert.Contains("document.delete", actions);
        Assert.Contains("tenant.delete", actions);
    }

    private static async Task<List<string>> LeaksAsync(RagCluster cluster, string tenant)
    {
        var leaks = new List<string>();
        await using (var ds = NpgsqlDataSource.Create(cluster.Postgres))
        {
            var tables = new List<string>();
            await using (var list = ds.CreateCommand("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"))
            await using (var reader = await list.ExecuteReaderAsync())
            {
                while (await reader.ReadAsync())
                {
                    tables.Add(reader.GetString(0));
                }
            }

            foreach (var table in tables.Where(t => !RetainedTables.Contains(t)))
            {
                // Every column as text (bytea as its escaped bytes, so text inside blobs shows too).
                await using var command = ds.CreateCommand(
                    $"SELECT count(*) FROM \"{table}\" t WHERE position($1 in t::text) > 0 OR position($2 in t::text) > 0 OR position($3 in t::text) > 0");
                command.Parameters.AddWithValue(tenant);
                command.Parameters.AddWithValue(SecretWord);
                command.Parameters.AddWithValue(Convert.ToHexStringLower(Encoding.UTF8.GetBytes(SecretWord)));
                var count = (long)(await command.ExecuteScalarAsync())!;
                if (count > 0)
                {
                    leaks.Add($"postgres {table}: {count} rows");
                }
            }
        }

        await using var redis = await ConnectionMultiplexer.ConnectAsync(cluster.Redis);
        foreach (var endpoint in redis.GetEndPoints())
        {
            await foreach (var key in redis.GetServer(endpoint).KeysAsync(pattern: $"*{tenant}*"))
            {
                leaks.Add($"redis {key}");
            }
        }

        return leaks;
    }
}
