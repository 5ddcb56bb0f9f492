using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Data.Sqlite;
using Xunit;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>
/// Deleting a document, a collection and a tenant leaves nothing of them in the data folder: checked in the SQLite
/// file table by table, in the snapshot and blob folders, and finally byte by byte in every file once the process has
/// stopped. The audit log records each admin and operator action, is scoped for tenant admins, and survives a restart.
/// </summary>
public sealed class DeletionAndAuditTests
{
    // Unusual words only these documents contain: any trace of their text in any file is a leak.
    private const string SecretWord = "zorblaxianquux";
    private const string OtherSecretWord = "plimfendrothic";

    // Tables that outlive a tenant on purpose: the audit trail of its deletion, and the usage ledger (billing history).
    private static readonly string[] RetainedTables = ["audit_log", "usage_ledger", "schema_version"];

    [Fact]
    public async Task Deleting_a_document_a_collection_and_a_tenant_leaves_nothing_behind_and_every_action_is_audited()
    {
        var dataDir = TestPaths.NewTempDir("wipe");
        var env = new Dictionary<string, string> { ["Rag__SnapshotInterval"] = "00:00:01", ["Rag__EnforceRateLimits"] = "false" };
        var service = await ServiceProcess.StartAsync(dataDir, env: env);
        try
        {
            var (_, adminKey) = await service.CreateTenant("wipe-t");
            var (_, otherKey) = await service.CreateTenant("keep-t");
            using var admin = service.Client(adminKey);
            using var other = service.Client(otherKey);
            using var op = service.Client(service.OperatorKey);
            foreach (var name in new[] { "wipecol-a", "wipecol-b" })
            {
                await (await admin.PostJson("/v1/collections", new { name })).ExpectJson(HttpStatusCode.Created);
            }

            await (await other.PostJson("/v1/collections", new { name = "kept" })).ExpectJson(HttpStatusCode.Created);
            await other.Ingest("kept", new { id = "k1", text = $"The other tenant keeps its {OtherSecretWord} document." });

            // Collection A: a JSON document, a file upload (a blob), an idempotent upload, a resumable upload with a part.
            await admin.Ingest("wipecol-a", new { id = "wipedoc-1", text = $"The {SecretWord} is a rare bird that nests in silos and sings about grains." });
            await admin.Ingest("wipecol-a", new { id = "wipedoc-keep", text = "Reminders are durable timers kept in a table." });
            using (var form = new MultipartFormDataContent())
            {
                form.Add(new StringContent("wipedoc-2"), "id");
                form.Add(new ByteArrayContent(Encoding.UTF8.GetBytes($"# Notes\n\nThe {SecretWord} file has its own words.")), "file", "notes.md");
                await (await admin.PostAsync("/v1/collections/wipecol-a/documents?wait=true", form)).ExpectJson(HttpStatusCode.OK);
            }

            using (var idempotent = new HttpRequestMessage(HttpMethod.Post, "/v1/collections/wipecol-b/documents?wait=true"))
            {
                idempotent.Headers.Add("Idempotency-Key", "wipe-idem-1");
                idempotent.Content = System.Net.Http.Json.JsonContent.Create(new { id = "wipedoc-b1", text = $"Collection B holds a {SecretWord} too." });
                await (await admin.SendAsync(idempotent)).ExpectJson(HttpStatusCode.OK);
            }

            var upload = await (await admin.PostJson("/v1/collections/wipecol-b/uploads", new { fileName = "part.txt" })).ExpectJson(HttpStatusCode.Created);
            using (var part = new ByteArrayContent(Encoding.UTF8.GetBytes($"A part about the {SecretWord}.")))
            {
                part.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
                await (await admin.PutAsync($"/v1/collections/wipecol-b/uploads/{upload.Str("uploadId")}/parts/1", part)).ExpectJson(HttpStatusCode.OK);
            }

            await (await admin.PostJson("/v1/collections/wipecol-a/chat", new { message = $"Where does the {SecretWord} nest?" })).ExpectJson(HttpStatusCode.OK);
            await WaitForAsync(() => Directory.Exists(Path.Combine(dataDir, "snapshots", "wipe-t", "wipecol-a"))
                && Directory.EnumerateFiles(Path.Combine(dataDir, "snapshots", "wipe-t", "wipecol-a"), "*", SearchOption.AllDirectories).Any(), "a snapshot of collection A");
            Assert.True(Directory.EnumerateFiles(Path.Combine(dataDir, "blobs", "wipe-t"), "*", SearchOption.AllDirectories).Any(), "The upload left no blob to delete.");

            // 1. A document: its record, chunks (text and vectors), blob and search hits go.
            var deleteDoc = await Send(admin, HttpMethod.Delete, "/v1/collections/wipecol-a/documents/wipedoc-2", "req-del-doc");
            Assert.Equal(HttpStatusCode.NoContent, deleteDoc.StatusCode);
            await (await Send(admin, HttpMethod.Delete, "/v1/collections/wipecol-a/documents/wipedoc-1", "req-del-doc-1")).ExpectEmpty(HttpStatusCode.NoContent);
            var db = Path.Combine(dataDir, "rag.db");
            Assert.Empty(await Rows(db, "SELECT id FROM documents WHERE tenant = 'wipe-t' AND id IN ('wipedoc-1', 'wipedoc-2')"));
            Assert.Empty(await Rows(db, "SELECT doc_id FROM chunk_log WHERE doc_id IN ('wipedoc-1', 'wipedoc-2') AND (text IS NOT NULL OR vector IS NOT NULL)"));
            Assert.Empty(await Rows(db, $"SELECT doc_id FROM chunk_log WHERE text LIKE '%{SecretWord}%' AND shard LIKE 'wipe-t/wipecol-a/%'"));
            Assert.False(File.Exists(Path.Combine(dataDir, "blobs", "wipe-t", "wipecol-a", "wipedoc-2")), "The document's blob survived its deletion.");
            Assert.DoesNotContain(await admin.Search("wipecol-a", SecretWord, 10), h => h!["documentId"]!.GetValue<string>().StartsWith("wipedoc-1", StringComparison.Ordinal));
            Assert.Contains(await admin.Search("wipecol-a", "durable timers", 3), h => h!["documentId"]!.GetValue<string>() == "wipedoc-keep");

            // 2. A collection: documents, chunk log, snapshots, blobs (its uploads' parts too) and grain state go.
            await (await Send(admin, HttpMethod.Delete, "/v1/collections/wipecol-b", "req-del-col")).ExpectEmpty(HttpStatusCode.NoContent);
            Assert.Empty(await Rows(db, "SELECT id FROM documents WHERE tenant = 'wipe-t' AND collection = 'wipecol-b'"));
            Assert.Empty(await Rows(db, "SELECT doc_id FROM chunk_log WHERE shard LIKE 'wipe-t/wipecol-b/%'"));
            Assert.Empty(await Rows(db, "SELECT grain_id FROM grain_state WHERE grain_id LIKE '%wipe-t/wipecol-b%'"));
            Assert.False(Directory.Exists(Path.Combine(dataDir, "snapshots", "wipe-t", "wipecol-b")) &&
                Directory.EnumerateFiles(Path.Combine(dataDir, "snapshots", "wipe-t", "wipecol-b"), "*", SearchOption.AllDirectories).Any(), "Snapshots of the collection survived.");
            Assert.False(Directory.Exists(Path.Combine(dataDir, "blobs", "wipe-t", "wipecol-b")) &&
                Directory.EnumerateFiles(Path.Combine(dataDir, "blobs", "wipe-t", "wipecol-b"), "*", SearchOption.AllDirectories).Any(), "Blobs of the collection survived.");

            // The tenant admin reads its own tenant's audit trail, and nobody else's.
            var own = await (await admin.GetAsync("/v1/audit?limit=100")).ExpectJson(HttpStatusCode.OK);
            var ownEntries = own["entries"]!.AsArray();
            Assert.All(ownEntries, e => Assert.Equal("wipe-t", e!["tenantId"]!.GetValue<string>()));
            var docDelete = Assert.Single(ownEntries, e => e!["action"]!.GetValue<string>() == "document.delete" && e["requestId"]!.GetValue<string>() == "req-del-doc");
            Assert.Equal("/v1/collections/wipecol-a/documents/wipedoc-2", docDelete!["target"]!.GetValue<string>());
            Assert.Equal("admin", docDelete["role"]!.GetValue<string>());
            Assert.Equal("succeeded", docDelete["outcome"]!.GetValue<string>());
            Assert.Equal(204, docDelete["status"]!.GetValue<int>());
            Assert.Contains(ownEntries, e => e!["action"]!.GetValue<string>() == "collection.delete" && e["requestId"]!.GetValue<string>() == "req-del-col");
            Assert.Contains(ownEntries, e => e!["action"]!.GetValue<string>() == "collection.create" && e["target"]!.GetValue<string>() == "/v1/collections/wipecol-a");
            await (await admin.GetAsync("/v1/audit?tenant=keep-t")).ExpectProblem(HttpStatusCode.Forbidden);

            // Denied attempts are audited too: a user key trying an admin action.
            var userKey = (await (await admin.PostJson("/v1/keys", new { role = "user", userId = "reader" })).ExpectJson(HttpStatusCode.Created)).Str("key");
            using (var user = service.Client(userKey))
            {
                await (await Send(user, HttpMethod.Delete, "/v1/collections/wipecol-a", "req-denied")).ExpectProblem(HttpStatusCode.Forbidden);
                await (await user.GetAsync("/v1/audit")).ExpectProblem(HttpStatusCode.Forbidden);
            }

            // 3. The tenant: everything it owned, in every table, folder and grain.
            await (await Send(op, HttpMethod.Delete, "/v1/tenants/wipe-t", "req-del-tenant")).ExpectEmpty(HttpStatusCode.NoContent);
            var leaks = new List<string>();
            await using (var connection = new SqliteConnection($"Data Source={db};Mode=ReadOnly"))
            {
                await connection.OpenAsync();
                foreach (var table in (await Rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'")).Except(RetainedTables))
                {
                    await using var command = connection.CreateCommand();
                    command.CommandText = $"SELECT * FROM \"{table}\"";
                    await using var reader = await command.ExecuteReaderAsync();
                    while (await reader.ReadAsync())
                    {
                        for (var i = 0; i < reader.FieldCount; i++)
                        {
                            var value = reader.IsDBNull(i) ? "" : reader.GetValue(i) is byte[] bytes ? Encoding.UTF8.GetString(bytes) : Convert.ToString(reader.GetValue(i), System.Globalization.CultureInfo.InvariantCulture) ?? "";
                            if (value.Contains("wipe-t", StringComparison.Ordinal) || value.Contains(SecretWord, StringComparison.Ordinal))
                            {
                                leaks.Add($"{table}.{reader.GetName(i)}: {(value.Length > 120 ? value[..120] : value)}");
                            }
                        }
                    }
                }
            }

            Assert.True(leaks.Count == 0, "Rows of the deleted tenant survived:\n" + string.Join("\n", leaks.Distinct().Take(30)));
            foreach (var folder in new[] { "snapshots", "blobs" })
            {
                var path = Path.Combine(dataDir, folder, "wipe-t");
                Assert.False(Directory.Exists(path) && Directory.EnumerateFileSystemEntries(path, "*", SearchOption.AllDirectories).Any(),
                    $"{folder} of the deleted tenant survived: " + (Directory.Exists(path) ? string.Join(", ", Directory.EnumerateFileSystemEntries(path, "*", SearchOption.AllDirectories)) : ""));
            }

            await (await service.Client(adminKey).GetAsync("/v1/collections")).ExpectProblem(HttpStatusCode.Unauthorized);
            Assert.Contains(await other.Search("kept", OtherSecretWord, 3), h => h!["documentId"]!.GetValue<string>() == "k1");

            // Byte by byte, once the process is gone (SQLite deletes securely; freed pages of the file hold no old text).
            await service.StopAsync();
            // Known limit (docs/reliability.md): the write-ahead log may still hold frames written before the deletes.
            var files = Directory.EnumerateFiles(dataDir, "*", SearchOption.AllDirectories).Where(f => !f.EndsWith("-wal", StringComparison.Ordinal)).ToList();
            var secret = Encoding.UTF8.GetBytes(SecretWord);
            var dirty = files.Where(f => File.ReadAllBytes(f).AsSpan().IndexOf(secret) >= 0).ToList();
            Assert.True(dirty.Count == 0, "Text of deleted documents is still on disk in: " + string.Join(", ", dirty));
            Assert.Contains(files, f => File.ReadAllBytes(f).AsSpan().IndexOf(Encoding.UTF8.GetBytes(OtherSecretWord)) >= 0);

            // The audit log is durable: after a restart the operator still reads who deleted what.
            await service.DisposeAsync();
            service = await ServiceProcess.StartAsync(dataDir, env: env);
            using var op2 = service.Client(service.OperatorKey);
            var audit = await (await op2.GetAsync("/v1/audit?tenant=wipe-t&action=tenant.delete")).ExpectJson(HttpStatusCode.OK);
            var tenantDelete = Assert.Single(audit["entries"]!.AsArray());
            Assert.Equal("operator", tenantDelete!["keyId"]!.GetValue<string>());
            Assert.Equal("operator", tenantDelete["role"]!.GetValue<string>());
            Assert.Equal("req-del-tenant", tenantDelete["requestId"]!.GetValue<string>());
            Assert.Equal("/v1/tenants/wipe-t", tenantDelete["target"]!.GetValue<string>());
            var denied = await (await op2.GetAsync("/v1/audit?tenant=wipe-t&action=collection.delete")).ExpectJson(HttpStatusCode.OK);
            Assert.Contains(denied["entries"]!.AsArray(), e => e!["outcome"]!.GetValue<string>() == "denied" && e["role"]!.GetValue<string>() == "user" && e["status"]!.GetValue<int>() == 403);
            var created = await (await op2.GetAsync("/v1/audit?action=tenant.create")).ExpectJson(HttpStatusCode.OK);
            Assert.Contains(created["entries"]!.AsArray(), e => e!["tenantId"]?.GetValue<string>() == "keep-t" && e["target"]!.GetValue<string>() == "/v1/tenants/keep-t");

            // Paging: one entry per page, newest first, until the cursor runs out.
            var seen = new List<long>();
            string? cursor = null;
            do
            {
                var page = await (await op2.GetAsync("/v1/audit?tenant=wipe-t&limit=1" + (cursor is null ? "" : "&cursor=" + cursor))).ExpectJson(HttpStatusCode.OK);
                seen.AddRange(page["entries"]!.AsArray().Select(e => e!["seq"]!.GetValue<long>()));
                cursor = page["nextCursor"]?.GetValue<string>();
            }
            while (cursor is not null && seen.Count < 100);
            Assert.True(seen.Count >= 8, $"Only {seen.Count} audit entries for the tenant.");
            Assert.Equal(seen.OrderByDescending(s => s), seen);
            await (await op2.GetAsync("/v1/audit?from=not-a-time")).ExpectProblem(HttpStatusCode.BadRequest);
            await (await op2.GetAsync("/v1/audit?tenant=..%2Fetc")).ExpectProblem(HttpStatusCode.BadRequest);
        }
        finally
        {
            await service.DisposeAsync();
        }
    }

    private static async Task<HttpResponseMessage> Send(HttpClient client, HttpMethod method, string path, string requestId)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Add("X-Request-Id", requestId);
        return await client.SendAsync(request);
    }

    private static async Task<List<string>> Rows(string db, string sql)
    {
        await using var connection = new SqliteConnection($"Data Source={db};Mode=ReadOnly");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        var rows = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            rows.Add(Convert.ToString(reader.GetValue(0), System.Globalization.CultureInfo.InvariantCulture) ?? "");
        }

        return rows;
    }

    private static async Task WaitForAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"Timed out waiting for {what}.");
            await Task.Delay(200);
        }
    }
}

internal static class ResponseAssertions
{
    public static async Task ExpectEmpty(this HttpResponseMessage response, HttpStatusCode status)
    {
        using (response)
        {
            Assert.True(response.StatusCode == status, $"Expected {(int)status} but got {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }
    }
}
