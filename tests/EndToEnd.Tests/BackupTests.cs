using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Xunit;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>
/// Backup and restore of one tenant between two real services (embedded mode, the real model): a restored tenant
/// answers every search with the same ids, scores and order, its keys work, its documents and conversations are
/// back; damaged or hostile archives are refused with a problem and leave nothing behind.
/// </summary>
public sealed class BackupTests
{
    private const string Tenant = "backup";

    private static readonly string[] Topics =
    [
        "Tides rise and fall twice a day because the moon pulls on the oceans; spring tides follow the full and new moon.",
        "Photosynthesis turns sunlight, water and carbon dioxide into sugar and oxygen inside the chloroplasts of leaves.",
        "A compiler parses source code, checks its types and emits machine instructions, often through an intermediate form.",
        "The French Revolution began in 1789 with the storming of the Bastille and ended the absolute monarchy.",
        "Espresso is brewed by forcing hot water through finely ground coffee at about nine bars of pressure.",
        "Glaciers carve U-shaped valleys and leave moraines of rock and gravel where they melt.",
        "Vaccines train the immune system to recognise a pathogen so that a later infection is fought off quickly.",
        "The violin has four strings tuned in fifths and is played with a bow strung with horsehair.",
        "Orleans grains are virtual actors: the runtime activates them on demand and deactivates idle ones.",
        "Reminders are durable timers stored in a table; they survive restarts of the whole cluster.",
    ];

    [Fact]
    public async Task A_restored_tenant_searches_identically_and_bad_archives_restore_nothing()
    {
        string adminKey, userKey;
        byte[] archive;
        Dictionary<string, string> before;
        await using (var source = await ServiceProcess.StartAsync(TestPaths.NewTempDir("backup-src")))
        {
            (_, adminKey) = await source.CreateTenant(Tenant);
            using var op = source.Client(source.OperatorKey);
            await (await op.PutAsJsonAsync($"/v1/tenants/{Tenant}/limits", new { maxDocuments = 500, chatTokensPerDay = 100000 })).ExpectJson(HttpStatusCode.OK);
            using var admin = source.Client(adminKey);
            userKey = (await (await admin.PostJson("/v1/keys", new { role = "user", userId = "alice" })).ExpectJson(HttpStatusCode.Created)).Str("key");
            await (await admin.PostJson("/v1/collections", new { name = "plain", shards = 2 })).ExpectJson(HttpStatusCode.Created);
            await (await admin.PostJson("/v1/collections", new { name = "quant", vectorQuantization = "int8" })).ExpectJson(HttpStatusCode.Created);
            await PopulateAsync(admin);

            // A chat leaves a conversation to carry over.
            using var user = source.Client(userKey);
            await (await user.PostJson("/v1/collections/plain/chat", new { message = "Why do tides happen?" })).ExpectJson(HttpStatusCode.OK);

            before = await ObserveAsync(source, adminKey, userKey);

            // A tenant admin may export its own tenant, not another's (404: not revealed); a user may not (403).
            using (var own = await admin.PostAsync($"/v1/tenants/{Tenant}/export", null))
            {
                Assert.Equal(HttpStatusCode.OK, own.StatusCode);
                Assert.Equal("application/zip", own.Content.Headers.ContentType?.MediaType);
            }

            await (await admin.PostAsync("/v1/tenants/someone-else/export", null)).ExpectProblem(HttpStatusCode.NotFound);
            await (await user.PostAsync($"/v1/tenants/{Tenant}/export", null)).ExpectProblem(HttpStatusCode.Forbidden);

            using (var exported = await op.PostAsync($"/v1/tenants/{Tenant}/export", null))
            {
                Assert.Equal(HttpStatusCode.OK, exported.StatusCode);
                Assert.Contains(".ragbackup.zip", exported.Content.Headers.ContentDisposition?.FileName ?? "", StringComparison.Ordinal);
                archive = await exported.Content.ReadAsByteArrayAsync();
            }

            // The archive holds key hashes, never a key.
            var entries = ReadEntries(archive);
            Assert.Contains("manifest.json", entries.Keys);
            Assert.Contains("collections/quant/shards/0/snapshot.bin", entries.Keys);
            var tenantJson = Encoding.UTF8.GetString(entries["tenant.json"]);
            Assert.DoesNotContain(adminKey.Split('.')[3], tenantJson, StringComparison.Ordinal);
            Assert.DoesNotContain(userKey.Split('.')[3], tenantJson, StringComparison.Ordinal);

            // The tenant exists here: 409, and it is untouched.
            await (await Import(op, archive)).ExpectProblem(HttpStatusCode.Conflict);
            Assert.Equal(before["search:plain:hybrid:tides moon ocean"], await SearchJson(user, "plain", "hybrid", "tides moon ocean"));
        }

        await using var target = await ServiceProcess.StartAsync(TestPaths.NewTempDir("backup-dst"));
        using var targetOp = target.Client(target.OperatorKey);

        // Hostile and damaged archives: a clear 400/413 each, and no trace of the tenant afterwards.
        await (await Import(targetOp, archive[..(archive.Length / 2)])).ExpectProblem(HttpStatusCode.BadRequest);
        await (await Import(targetOp, RandomNumberGenerator.GetBytes(4096))).ExpectProblem(HttpStatusCode.BadRequest);
        await (await Import(targetOp, [])).ExpectProblem(HttpStatusCode.BadRequest);
        var tampered = await (await Import(targetOp, Rewrite(archive, (name, bytes) =>
            name == "manifest.json" ? Encoding.UTF8.GetBytes(ReplaceChecksum(Encoding.UTF8.GetString(bytes), "collections/plain/documents.jsonl")) : bytes)))
            .ExpectProblem(HttpStatusCode.BadRequest);
        Assert.True(tampered.Str("detail").Contains("checksum", StringComparison.Ordinal), tampered.Str("detail"));
        var alteredBlob = await (await Import(targetOp, Rewrite(archive, (name, bytes) =>
            name.StartsWith("collections/plain/blobs/", StringComparison.Ordinal) ? [.. bytes, (byte)'!'] : bytes)))
            .ExpectProblem(HttpStatusCode.BadRequest);
        Assert.True(alteredBlob.Str("detail").Contains("SHA-256", StringComparison.Ordinal), alteredBlob.Str("detail"));
        var traversal = await (await Import(targetOp, Rewrite(archive, (_, bytes) => bytes, ("../../etc/evil.txt", Encoding.UTF8.GetBytes("x")))))
            .ExpectProblem(HttpStatusCode.BadRequest);
        Assert.True(traversal.Str("detail").Contains("not part of a tenant backup", StringComparison.Ordinal), traversal.Str("detail"));
        var bomb = await (await Import(targetOp, Rewrite(archive, (_, bytes) => bytes, ("collections/plain/blobs/bomb", new byte[20 << 20]))))
            .ExpectProblem(HttpStatusCode.BadRequest);
        Assert.True(bomb.Str("detail").Contains("compression ratio", StringComparison.Ordinal), bomb.Str("detail"));
        var version = await (await Import(targetOp, Rewrite(archive, (name, bytes) =>
            name == "manifest.json" ? Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(bytes).Replace("\"version\":1", "\"version\":99", StringComparison.Ordinal)) : bytes)))
            .ExpectProblem(HttpStatusCode.BadRequest);
        Assert.True(version.Str("detail").Contains("version 99", StringComparison.Ordinal), version.Str("detail"));

        // A failure after the restore began (a plan this cluster lacks, with valid checksums) is undone.
        var unknownPlan = Rewrite(archive, (name, bytes) => name == "quota.json"
            ? Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(bytes).Replace("\"plan\":null", "\"plan\":\"platinum\"", StringComparison.Ordinal))
            : bytes, fixChecksums: true);
        var planProblem = await (await Import(targetOp, unknownPlan)).ExpectProblem(HttpStatusCode.BadRequest);
        Assert.True(planProblem.Str("detail").Contains("platinum", StringComparison.Ordinal), planProblem.Str("detail"));
        await (await targetOp.GetAsync($"/v1/tenants/{Tenant}")).ExpectProblem(HttpStatusCode.NotFound);
        Assert.DoesNotContain(Tenant, (await (await targetOp.GetAsync("/v1/tenants")).ExpectJson(HttpStatusCode.OK)).ToJsonString(), StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(target.DataDir, "blobs", Tenant)) && Directory.EnumerateFiles(Path.Combine(target.DataDir, "blobs", Tenant), "*", SearchOption.AllDirectories).Any());

        // The real archive restores, once.
        var imported = await (await Import(targetOp, archive)).ExpectJson(HttpStatusCode.Created);
        Assert.Equal(Tenant, imported.Str("tenantId"));
        Assert.Equal(2, imported["collections"]!.GetValue<int>());
        Assert.Equal(2, imported["keys"]!.GetValue<int>());
        Assert.Equal(1, imported["conversations"]!.GetValue<int>());
        await (await Import(targetOp, archive)).ExpectProblem(HttpStatusCode.Conflict);

        var after = await ObserveAsync(target, adminKey, userKey);
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        foreach (var (what, expected) in before)
        {
            Assert.True(expected == after[what], $"{what} differs after the restore:\n before {expected}\n after  {after[what]}");
        }

        // The restored tenant keeps working: a new document, a delete, a search that finds the new one.
        using var restoredAdmin = target.Client(adminKey);
        await restoredAdmin.Ingest("plain", new { id = "added-later", text = "Sourdough bread rises slowly because wild yeast ferments the dough." });
        await Expect(await restoredAdmin.DeleteAsync("/v1/collections/quant/documents/q1"), HttpStatusCode.NoContent);
        Assert.Equal("added-later", (await restoredAdmin.Search("plain", "sourdough wild yeast", 1))[0].Str("documentId"));
        // One added, one deleted: the recounted quota moves from the restored count, not from zero.
        var usage = await (await restoredAdmin.GetAsync("/v1/usage")).ExpectJson(HttpStatusCode.OK);
        Assert.Equal(long.Parse(before["documentCount"], System.Globalization.CultureInfo.InvariantCulture), usage["documents"]!.GetValue<long>());
    }

    private static async Task Expect(HttpResponseMessage response, HttpStatusCode status)
    {
        using (response)
        {
            Assert.True(response.StatusCode == status, $"Expected {(int)status}, got {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }
    }

    private static async Task PopulateAsync(HttpClient admin)
    {
        for (var i = 0; i < 8; i++)
        {
            // Several paragraphs per document, so documents span more than one chunk.
            var text = string.Join("\n\n", Enumerable.Range(0, 6).Select(j => Topics[(i + j * 3) % Topics.Length] + $" Note {i}.{j}."));
            await admin.Ingest("plain", new { id = $"p{i}", title = $"Plain {i}", text, metadata = new { group = i % 3, lang = "en" } });
            await admin.Ingest("quant", new { id = $"q{i}", title = $"Quantized {i}", text = Topics[i] + " " + Topics[(i + 5) % Topics.Length] });
        }

        // A file upload (its original bytes are kept) and a document that fails (kept as failed).
        using var file = new MultipartFormDataContent { { new ByteArrayContent(Encoding.UTF8.GetBytes("# Glaciers\n\nGlaciers move downhill under their own weight.\n")), "file", "glaciers.md" } };
        file.Add(new StringContent("md-file"), "id");
        await (await admin.PostAsync("/v1/collections/plain/documents?wait=true", file)).ExpectJson(HttpStatusCode.OK);
        using var broken = IngestionApiTests.TruncatedPdf("broken");
        var failed = await (await admin.PostAsync("/v1/collections/plain/documents?wait=true", broken)).ExpectJson(HttpStatusCode.OK);
        Assert.Equal("failed", failed.Str("status"));

        // Deleted documents leave tombstones in the graph: the restored one must route through them identically.
        await Expect(await admin.DeleteAsync("/v1/collections/plain/documents/p7"), HttpStatusCode.NoContent);
        await Expect(await admin.DeleteAsync("/v1/collections/quant/documents/q7"), HttpStatusCode.NoContent);
    }

    /// <summary>Everything a restore must reproduce, as canonical JSON strings by name.</summary>
    private static async Task<Dictionary<string, string>> ObserveAsync(ServiceProcess service, string adminKey, string userKey)
    {
        using var admin = service.Client(adminKey);
        using var user = service.Client(userKey);
        using var op = service.Client(service.OperatorKey);
        var seen = new Dictionary<string, string>();
        string[] queries = ["tides moon ocean", "how does a compiler work", "durable reminders survive restarts", "coffee pressure"];
        foreach (var collection in new[] { "plain", "quant" })
        {
            foreach (var mode in new[] { "vector", "keyword", "hybrid" })
            {
                foreach (var query in queries)
                {
                    seen[$"search:{collection}:{mode}:{query}"] = await SearchJson(user, collection, mode, query);
                }
            }

            seen[$"documents:{collection}"] = (await (await user.GetAsync($"/v1/collections/{collection}/documents?limit=100")).ExpectJson(HttpStatusCode.OK)).ToJsonString();
            seen[$"collection:{collection}"] = (await (await user.GetAsync($"/v1/collections/{collection}")).ExpectJson(HttpStatusCode.OK)).ToJsonString();
        }

        var filtered = await (await user.PostJson("/v1/collections/plain/search", new { query = "tides", topK = 5, filter = new { group = 1 } })).ExpectJson(HttpStatusCode.OK);
        seen["search:filtered"] = filtered.ToJsonString();
        seen["keys"] = (await (await admin.GetAsync("/v1/keys")).ExpectJson(HttpStatusCode.OK)).ToJsonString();
        seen["limits"] = (await (await op.GetAsync($"/v1/tenants/{Tenant}/limits")).ExpectJson(HttpStatusCode.OK)).ToJsonString();
        seen["tenant"] = (await (await op.GetAsync($"/v1/tenants/{Tenant}")).ExpectJson(HttpStatusCode.OK)).ToJsonString();
        var conversations = await (await user.GetAsync("/v1/conversations")).ExpectJson(HttpStatusCode.OK);
        seen["conversations"] = conversations.ToJsonString();
        var conversationId = conversations["conversations"]![0]!.Str("id");
        seen["conversation"] = (await (await user.GetAsync($"/v1/conversations/{conversationId}")).ExpectJson(HttpStatusCode.OK)).ToJsonString();
        var usage = await (await admin.GetAsync("/v1/usage")).ExpectJson(HttpStatusCode.OK);
        seen["documentCount"] = usage["documents"]!.GetValue<long>().ToString(System.Globalization.CultureInfo.InvariantCulture);
        seen["vectorCount"] = usage["vectors"]!.GetValue<long>().ToString(System.Globalization.CultureInfo.InvariantCulture);
        seen["storedBytes"] = usage["storedBytes"]!.GetValue<long>().ToString(System.Globalization.CultureInfo.InvariantCulture);
        return seen;
    }

    private static async Task<string> SearchJson(HttpClient client, string collection, string mode, string query)
    {
        var json = await (await client.PostJson($"/v1/collections/{collection}/search", new { query, topK = 8, mode })).ExpectJson(HttpStatusCode.OK);
        var results = json["results"]!.AsArray();
        Assert.NotEmpty(results);
        return results.ToJsonString();
    }

    private static Task<HttpResponseMessage> Import(HttpClient op, byte[] archive)
    {
        var content = new ByteArrayContent(archive);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/zip");
        return op.PostAsync("/v1/tenants/import", content);
    }

    private static Dictionary<string, byte[]> ReadEntries(byte[] archive)
    {
        using var zip = new ZipArchive(new MemoryStream(archive), ZipArchiveMode.Read);
        var result = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var entry in zip.Entries)
        {
            using var stream = entry.Open();
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            result[entry.FullName] = copy.ToArray();
        }

        return result;
    }

    /// <summary>A copy of the archive with entries transformed and extra ones appended; optionally with the manifest's checksums recomputed.</summary>
    private static byte[] Rewrite(byte[] archive, Func<string, byte[], byte[]> transform, params (string Name, byte[] Content)[] extra) =>
        Rewrite(archive, transform, false, extra);

    private static byte[] Rewrite(byte[] archive, Func<string, byte[], byte[]> transform, bool fixChecksums, params (string Name, byte[] Content)[] extra)
    {
        var entries = ReadEntries(archive).ToDictionary(e => e.Key, e => transform(e.Key, e.Value));
        if (fixChecksums)
        {
            var manifest = JsonNode.Parse(entries["manifest.json"])!;
            foreach (var item in manifest["entries"]!.AsArray().Select(i => i!))
            {
                var bytes = entries[item.Str("path")];
                item["size"] = bytes.Length;
                item["sha256"] = Convert.ToHexStringLower(SHA256.HashData(bytes));
            }

            entries["manifest.json"] = Encoding.UTF8.GetBytes(manifest.ToJsonString());
        }

        using var output = new MemoryStream();
        using (var zip = new ZipArchive(output, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (name, content) in entries.Select(e => (e.Key, e.Value)))
            {
                using var stream = zip.CreateEntry(name, CompressionLevel.Fastest).Open();
                stream.Write(content);
            }

            // Extra entries compressed as hard as possible, the way a decompression bomb is built.
            foreach (var (name, content) in extra)
            {
                using var stream = zip.CreateEntry(name, CompressionLevel.SmallestSize).Open();
                stream.Write(content);
            }
        }

        return output.ToArray();
    }

    private static string ReplaceChecksum(string manifest, string path)
    {
        var json = JsonNode.Parse(manifest)!;
        var entry = json["entries"]!.AsArray().First(e => e!.Str("path") == path)!;
        entry["sha256"] = new string('0', 64);
        return json.ToJsonString();
    }
}
