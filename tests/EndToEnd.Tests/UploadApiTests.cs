using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Xunit;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>Resumable multipart uploads over HTTP: parts in any order, retried parts, checksums, abort, complete.</summary>
[Collection(ServiceCollection.Name)]
public sealed class UploadApiTests(ServiceFixture fixture)
{
    private ServiceProcess Service => fixture.Service;

    [Fact]
    public async Task Parts_arrive_out_of_order_with_a_retried_part_and_a_bad_checksum_then_complete_into_a_searchable_document()
    {
        var (tenant, adminKey) = await Service.CreateTenant("uploads");
        using var admin = Service.Client(adminKey);
        await (await admin.PostJson("/v1/collections", new { name = "kb" })).ExpectJson(HttpStatusCode.Created);

        var parts = new[] { Section("anemometer"), Section("barometer"), Section("hygrometer") };
        var whole = parts.SelectMany(p => p).ToArray();
        var created = await (await admin.PostJson("/v1/collections/kb/uploads", new { fileName = "instruments.md", size = whole.Length, title = "Instruments" }))
            .ExpectJson(HttpStatusCode.Created);
        var uploadId = created.Str("uploadId");
        Assert.Equal("open", created.Str("phase"));
        var url = $"/v1/collections/kb/uploads/{uploadId}";

        // Part 3 first; part 1 first arrives damaged (wrong bytes, no checksum header) and is then resent.
        await (await admin.PutAsync($"{url}/parts/3", Bytes(parts[2]))).ExpectJson(HttpStatusCode.OK);
        var damaged = parts[0].ToArray();
        damaged[10] ^= 0x20;
        await (await admin.PutAsync($"{url}/parts/1", Bytes(damaged[..^100]))).ExpectJson(HttpStatusCode.OK);
        var resent = await (await admin.PutAsync($"{url}/parts/1", Bytes(parts[0], Sha256Hex(parts[0])))).ExpectJson(HttpStatusCode.OK);
        Assert.Equal(parts[0].Length, resent["size"]!.GetValue<long>());
        Assert.Equal(Sha256Hex(parts[0]), resent.Str("sha256"));

        // Completing with part 2 missing says which part is missing.
        var missing = await (await admin.PostAsync($"{url}/complete", null)).ExpectProblem(HttpStatusCode.BadRequest);
        Assert.Contains("missing: 2", missing.Str("detail"), StringComparison.Ordinal);

        // A part that does not match its checksum is refused and not kept; malformed checksums are refused too.
        var bad = await (await admin.PutAsync($"{url}/parts/2", Bytes(parts[1], Sha256Hex(parts[0])))).ExpectProblem(HttpStatusCode.BadRequest);
        Assert.Contains("does not match", bad.Str("detail"), StringComparison.Ordinal);
        await (await admin.PutAsync($"{url}/parts/2", Bytes(parts[1], "abc"))).ExpectProblem(HttpStatusCode.BadRequest);
        await (await admin.PutAsync($"{url}/parts/0", Bytes(parts[1]))).ExpectProblem(HttpStatusCode.BadRequest);
        await (await admin.PutAsync($"/v1/collections/kb/uploads/up-nothing/parts/1", Bytes(parts[1]))).ExpectProblem(HttpStatusCode.NotFound);
        var listed = await (await admin.GetAsync(url)).ExpectJson(HttpStatusCode.OK);
        Assert.Equal([1, 3], listed["parts"]!.AsArray().Select(p => p!["partNumber"]!.GetValue<int>()));

        // The good part 2, with its checksum in base64.
        await (await admin.PutAsync($"{url}/parts/2", Bytes(parts[1], Convert.ToBase64String(SHA256.HashData(parts[1]))))).ExpectJson(HttpStatusCode.OK);
        listed = await (await admin.GetAsync(url)).ExpectJson(HttpStatusCode.OK);
        Assert.Equal([1, 2, 3], listed["parts"]!.AsArray().Select(p => p!["partNumber"]!.GetValue<int>()));
        Assert.Equal(parts.Select(p => Sha256Hex(p)), listed["parts"]!.AsArray().Select(p => p.Str("sha256")));
        Assert.Equal(whole.Length, listed["receivedBytes"]!.GetValue<long>());
        var partsDir = Path.Combine(Service.DataDir, "blobs", tenant, "kb", ".uploads", uploadId);
        Assert.Equal(3, Directory.GetFiles(partsDir).Length);

        using var completeResponse = await admin.PostAsync($"{url}/complete", null);
        var completed = await completeResponse.ExpectJson(HttpStatusCode.Accepted);
        var documentId = completed.Str("documentId");
        Assert.Equal($"/v1/collections/kb/documents/{documentId}", completeResponse.Headers.Location?.OriginalString);
        var doc = await IngestionApiTests.WaitFinished(admin, "kb", documentId);
        Assert.True(doc.Str("status") == "indexed", doc.ToJsonString());
        Assert.Equal(whole.Length, doc["sizeBytes"]!.GetValue<long>());
        Assert.Equal(Sha256Hex(whole), doc.Str("contentHash"));
        Assert.Equal("markdown", doc.Str("sourceType"));
        Assert.Equal("Instruments", doc.Str("title"));
        foreach (var word in new[] { "anemometer", "barometer", "hygrometer" })
        {
            var hits = await admin.Search("kb", $"How is the {word} calibrated?");
            Assert.Contains(hits, h => h.Str("documentId") == documentId && h.Str("text").Contains(word, StringComparison.Ordinal));
        }

        // Completing again names the same document; the parts are gone and no more are taken.
        Assert.Equal(documentId, (await (await admin.PostAsync($"{url}/complete", null)).ExpectJson(HttpStatusCode.Accepted)).Str("documentId"));
        Assert.False(Directory.Exists(partsDir) && Directory.EnumerateFileSystemEntries(partsDir).Any());
        await (await admin.PutAsync($"{url}/parts/4", Bytes(parts[1]))).ExpectProblem(HttpStatusCode.Conflict);
        var after = await (await admin.GetAsync(url)).ExpectJson(HttpStatusCode.OK);
        Assert.Equal("completed", after.Str("phase"));
        Assert.Equal(documentId, after.Str("documentId"));
    }

    [Fact]
    public async Task Abort_frees_the_parts_and_forgets_the_upload()
    {
        var (tenant, adminKey) = await Service.CreateTenant("uploads-abort");
        using var admin = Service.Client(adminKey);
        await (await admin.PostJson("/v1/collections", new { name = "kb" })).ExpectJson(HttpStatusCode.Created);
        var uploadId = (await (await admin.PostJson("/v1/collections/kb/uploads", new { fileName = "a.txt" })).ExpectJson(HttpStatusCode.Created)).Str("uploadId");
        var url = $"/v1/collections/kb/uploads/{uploadId}";
        await (await admin.PutAsync($"{url}/parts/2", Bytes(Section("thermometer")))).ExpectJson(HttpStatusCode.OK);
        await (await admin.PutAsync($"{url}/parts/1", Bytes(Section("pluviometer")))).ExpectJson(HttpStatusCode.OK);
        var partsDir = Path.Combine(Service.DataDir, "blobs", tenant, "kb", ".uploads", uploadId);
        Assert.Equal(2, Directory.GetFiles(partsDir).Length);

        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync(url)).StatusCode);
        Assert.False(Directory.Exists(partsDir));
        await (await admin.GetAsync(url)).ExpectProblem(HttpStatusCode.NotFound);
        await (await admin.PostAsync($"{url}/complete", null)).ExpectProblem(HttpStatusCode.NotFound);
        await (await admin.DeleteAsync(url)).ExpectProblem(HttpStatusCode.NotFound);
        Assert.Empty(IngestionApiTests.Ids(await (await admin.GetAsync("/v1/collections/kb/documents")).ExpectJson(HttpStatusCode.OK)));

        // Users cannot upload; unknown collections and bad requests are refused.
        var userKey = (await (await admin.PostJson("/v1/keys", new { role = "user", userId = "u" })).ExpectJson(HttpStatusCode.Created)).Str("key");
        using var user = Service.Client(userKey);
        await (await user.PostJson("/v1/collections/kb/uploads", new { fileName = "a.txt" })).ExpectProblem(HttpStatusCode.Forbidden);
        await (await admin.PostJson("/v1/collections/none/uploads", new { fileName = "a.txt" })).ExpectProblem(HttpStatusCode.NotFound);
        await (await admin.PostJson("/v1/collections/kb/uploads", new { size = 10 })).ExpectProblem(HttpStatusCode.BadRequest);
        await (await admin.PostJson("/v1/collections/kb/uploads", new { fileName = "big.pdf", size = 1L << 40 })).ExpectProblem(HttpStatusCode.RequestEntityTooLarge);
    }

    internal static byte[] Section(string word)
    {
        var text = new StringBuilder($"# The {word}\n\n");
        for (var i = 1; i <= 40; i++)
        {
            text.Append(CultureInvariant($"The {word} is calibrated against a reference every {i} days; reading {i} of the {word} goes into the station log.\n\n"));
        }

        return Encoding.UTF8.GetBytes(text.ToString());
    }

    internal static ByteArrayContent Bytes(byte[] data, string? checksum = null)
    {
        var content = new ByteArrayContent(data);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        if (checksum is not null)
        {
            content.Headers.TryAddWithoutValidation("x-checksum-sha256", checksum);
        }

        return content;
    }

    internal static string Sha256Hex(byte[] data) => Convert.ToHexStringLower(SHA256.HashData(data));

    private static string CultureInvariant(FormattableString text) => FormattableString.Invariant(text);
}

/// <summary>Per-tenant upload limits (Rag:TenantMaxUploadBytes) on every upload path, on a service of its own.</summary>
public sealed class UploadLimitTests
{
    [Fact]
    public async Task A_tenant_limit_refuses_larger_uploads_with_413_on_every_path()
    {
        await using var service = await ServiceProcess.StartAsync(TestPaths.NewTempDir("limits"), env: new Dictionary<string, string>
        {
            ["Rag__TenantMaxUploadBytes__tiny"] = "50000",
        });
        var (_, adminKey) = await service.CreateTenant("tiny");
        using var admin = service.Client(adminKey);
        await (await admin.PostJson("/v1/collections", new { name = "kb" })).ExpectJson(HttpStatusCode.Created);
        var big = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("Sixty thousand bytes of weather notes. ", 1600)));
        Assert.True(big.Length > 60_000);

        await (await admin.PostJson("/v1/collections/kb/uploads", new { fileName = "w.txt", size = 60_000 })).ExpectProblem(HttpStatusCode.RequestEntityTooLarge);
        var uploadId = (await (await admin.PostJson("/v1/collections/kb/uploads", new { fileName = "w.txt" })).ExpectJson(HttpStatusCode.Created)).Str("uploadId");
        var url = $"/v1/collections/kb/uploads/{uploadId}";
        await (await admin.PutAsync($"{url}/parts/1", UploadApiTests.Bytes(big[..30_000]))).ExpectJson(HttpStatusCode.OK);
        await (await admin.PutAsync($"{url}/parts/2", UploadApiTests.Bytes(big[30_000..60_000]))).ExpectProblem(HttpStatusCode.RequestEntityTooLarge);
        var listed = await (await admin.GetAsync(url)).ExpectJson(HttpStatusCode.OK);
        Assert.Single(listed["parts"]!.AsArray());
        // Resending a part frees its old size first.
        await (await admin.PutAsync($"{url}/parts/1", UploadApiTests.Bytes(big[..45_000]))).ExpectJson(HttpStatusCode.OK);
        await (await admin.PostAsync($"{url}/complete", null)).ExpectJson(HttpStatusCode.Accepted);

        using var file = new MultipartFormDataContent { { new ByteArrayContent(big), "file", "w.txt" } };
        await (await admin.PostAsync("/v1/collections/kb/documents", file)).ExpectProblem(HttpStatusCode.RequestEntityTooLarge);
        await (await admin.PostJson("/v1/collections/kb/documents", new { text = Encoding.UTF8.GetString(big) })).ExpectProblem(HttpStatusCode.RequestEntityTooLarge);

        // Other tenants keep the global limit.
        var (_, otherKey) = await service.CreateTenant("roomy");
        using var other = service.Client(otherKey);
        await (await other.PostJson("/v1/collections", new { name = "kb" })).ExpectJson(HttpStatusCode.Created);
        using var otherFile = new MultipartFormDataContent { { new ByteArrayContent(big), "file", "w.txt" } };
        await (await other.PostAsync("/v1/collections/kb/documents", otherFile)).ExpectJson(HttpStatusCode.Accepted);
    }
}
