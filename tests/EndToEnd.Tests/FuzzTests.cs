using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Xunit;
using Xunit.Abstractions;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>
/// Seeded hostile-input fuzzing of every endpoint the running frontend describes in its OpenAPI document (so new
/// endpoints are fuzzed without touching this test): malformed, mistyped, huge, deeply nested and non-UTF-8 JSON;
/// traversal, control characters and invalid UTF-8 in ids and query strings; oversized, truncated and lying bodies;
/// zip bombs dressed as DOCX and PDFs whose objects loop. Only 4xx may come back, every request is answered in time,
/// the process stays up with bounded memory, and a real search still works afterwards.
/// <c>FUZZ_REQUESTS</c> and <c>FUZZ_SEED</c> set the run's size and seed.
/// </summary>
public sealed class FuzzTests(ITestOutputHelper output)
{
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Hostile_requests_to_every_endpoint_get_only_4xx_and_the_service_survives()
    {
        var requests = int.TryParse(Environment.GetEnvironmentVariable("FUZZ_REQUESTS"), CultureInfo.InvariantCulture, out var n) ? n : 2500;
        var seed = int.TryParse(Environment.GetEnvironmentVariable("FUZZ_SEED"), CultureInfo.InvariantCulture, out var s) ? s : 20261130;
        var dataDir = TestPaths.NewTempDir("fuzz");
        await using var service = await ServiceProcess.StartAsync(dataDir, env: new Dictionary<string, string>
        {
            // Thousands of requests a minute from one tenant: rate limits would answer most of them before the handlers.
            ["Rag__EnforceRateLimits"] = "false",
        });
        var (tenant, adminKey) = await service.CreateTenant("fz-t");
        using var admin = service.Client(adminKey);
        using (var created = await admin.PostJson("/v1/collections", new { name = "fz" }))
        {
            await created.ExpectJson(HttpStatusCode.Created);
        }

        await admin.Ingest("fz", new { id = "d1", text = "Grains are the unit of isolation; a silo hosts many grains and keeps their state." });
        var upload = await (await admin.PostJson("/v1/collections/fz/uploads", new { fileName = "parts.txt" })).ExpectJson(HttpStatusCode.Created);
        var chat = await (await admin.PostJson("/v1/collections/fz/chat", new { message = "What hosts grains?" })).ExpectJson(HttpStatusCode.OK);
        var keyJson = await (await admin.PostJson("/v1/keys", new { role = "user", userId = "u1" })).ExpectJson(HttpStatusCode.Created);

        var openApi = JsonNode.Parse(await service.Http.GetStringAsync("/openapi/v1.json"))!;
        var operations = Operations(openApi);
        Assert.True(operations.Count >= 20, $"Only {operations.Count} operations in the OpenAPI document.");

        var fixture = new FuzzFixture(tenant, "fz", "d1", upload.Str("uploadId"), chat.Str("conversationId"), "u1", keyJson.Str("id"),
            adminKey, keyJson.Str("key"), service.OperatorKey);
        var port = new Uri(service.BaseUrl).Port;
        var generator = new FuzzGenerator(seed, fixture);
        var bomb = HostilePayloads.DocxBomb(300L * 1024 * 1024);
        var pdfs = HostilePayloads.CyclicPdfs();

        var baselineRss = RssBytes(service.ProcessId);
        var peakRss = baselineRss;
        var failures = new List<string>();
        var statuses = new SortedDictionary<int, int>();
        var clock = Stopwatch.StartNew();
        var next = 0;

        // A few workers at once, each request on its own connection: concurrency is part of the abuse.
        async Task Worker()
        {
            while (true)
            {
                var i = Interlocked.Increment(ref next) - 1;
                if (i >= requests)
                {
                    return;
                }

                var request = generator.Next(i, operations, bomb, pdfs);
                var response = await RawHttp.SendAsync(port, request.Method, request.Target, request.Headers, request.Body, RequestTimeout);
                lock (failures)
                {
                    statuses[response.Status] = statuses.GetValueOrDefault(response.Status) + 1;
                    // One designed exception: an export that a concurrent write of another worker invalidates while it
                    // streams is cut on purpose (a consistent archive or none; import refuses the torn zip).
                    var tornExport = response.Status is 0 or 200 && request.MaySucceed && request.Method == "POST"
                        && Encoding.UTF8.GetString(request.Target).EndsWith("/export", StringComparison.Ordinal);
                    if (!tornExport && (response.Status is 0 or >= 500 || response.Status < 400 && !request.MaySucceed))
                    {
                        failures.Add($"#{i} {request.Describe()} -> {(response.Status == 0 ? response.Error : response.Status.ToString(CultureInfo.InvariantCulture))} {Truncate(response.Body)}");
                    }
                }

                if (i % 100 == 0)
                {
                    var rss = RssBytes(service.ProcessId);
                    lock (failures)
                    {
                        peakRss = Math.Max(peakRss, rss);
                    }
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(Worker)));
        var elapsed = clock.Elapsed;

        // Hostile documents were accepted (202) and parse in the background: none may stay stuck, none may kill the silo.
        var stuck = await WaitForPipelineAsync(admin, TimeSpan.FromMinutes(3));
        peakRss = Math.Max(peakRss, RssBytes(service.ProcessId));
        var summary = $"{requests} requests (seed {seed}) in {elapsed.TotalSeconds:F1} s; statuses {string.Join(", ", statuses.Select(p => $"{p.Key}:{p.Value}"))}; " +
            $"RSS {baselineRss / (1024 * 1024)} MB before, peak {peakRss / (1024 * 1024)} MB";
        output.WriteLine(summary);
        await File.AppendAllTextAsync(Path.Combine(Path.GetTempPath(), "ragorleans-fuzz.log"), DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture) + " " + summary + "\n");

        Assert.False(service.HasExited, "The frontend died:\n" + service.Output[^Math.Min(4000, service.Output.Length)..]);
        Assert.True(failures.Count == 0, $"{failures.Count} bad answers; {summary}\n" + string.Join("\n", failures.Take(40)));
        Assert.True(stuck.Count == 0, "Documents stuck in the pipeline: " + string.Join(", ", stuck));

        // Bounded: the bomb inflates to 300 MB and dozens of 30+ MB bodies were sent; none of it may stay resident.
        Assert.True(peakRss < baselineRss + 1536L * 1024 * 1024, summary);

        var hits = await admin.Search("fz", "what hosts grains", 3);
        Assert.Contains(hits, h => h!["documentId"]!.GetValue<string>() == "d1");
    }

    private static async Task<List<string>> WaitForPipelineAsync(HttpClient admin, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var stuck = new List<string>();
        while (true)
        {
            stuck.Clear();
            foreach (var status in new[] { "queued", "processing" })
            {
                var page = await (await admin.GetAsync($"/v1/collections/fz/documents?status={status}&limit=100")).ExpectJson(HttpStatusCode.OK);
                stuck.AddRange(page["documents"]!.AsArray().Select(d => d!["id"]!.GetValue<string>()));
            }

            if (stuck.Count == 0 || DateTime.UtcNow > deadline)
            {
                return stuck;
            }

            await Task.Delay(500);
        }
    }

    private static List<FuzzOperation> Operations(JsonNode openApi)
    {
        var operations = new List<FuzzOperation>();
        foreach (var (path, item) in openApi["paths"]!.AsObject())
        {
            foreach (var (method, operation) in item!.AsObject())
            {
                if (method is "parameters" or "summary" or "description" || operation is not JsonObject op)
                {
                    continue;
                }

                var query = (op["parameters"]?.AsArray() ?? []).Where(p => p!["in"]?.GetValue<string>() == "query").Select(p => p!["name"]!.GetValue<string>()).ToList();
                var properties = op["requestBody"]?["content"]?.AsObject().Select(c => c.Value?["schema"]).FirstOrDefault();
                var fields = Fields(openApi, properties);
                operations.Add(new FuzzOperation(method.ToUpperInvariant(), path, query, fields, op["requestBody"] is not null));
            }
        }

        return operations;
    }

    // The body's property names (one level of $ref resolved): typed-looking garbage in the right fields reaches validation.
    private static List<string> Fields(JsonNode openApi, JsonNode? schema)
    {
        if (schema?["$ref"]?.GetValue<string>() is { } reference && reference.StartsWith("#/components/schemas/", StringComparison.Ordinal))
        {
            schema = openApi["components"]?["schemas"]?[reference["#/components/schemas/".Length..]];
        }

        return schema?["properties"]?.AsObject().Select(p => p.Key).ToList() ?? [];
    }

    private static long RssBytes(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
            }
        }

        return 0;
    }

    private static string Truncate(string text) => text.Length <= 300 ? text : text[..300] + "…";
}

/// <summary>An operation from the OpenAPI document.</summary>
internal sealed record FuzzOperation(string Method, string Path, IReadOnlyList<string> Query, IReadOnlyList<string> Fields, bool HasBody);

/// <summary>The real resources the fuzzer may aim at (never with DELETE, so they survive the run).</summary>
internal sealed record FuzzFixture(
    string Tenant, string Collection, string Document, string Upload, string Conversation, string User, string KeyId,
    string AdminKey, string UserKey, string OperatorKey);

/// <summary>One generated request.</summary>
internal sealed record FuzzRequest(
    string Method, byte[] Target, IReadOnlyList<(string Name, string Value)> Headers, Func<Stream, CancellationToken, Task>? Body, string Kind, bool MaySucceed)
{
    public string Describe() => $"{Method} {Encoding.UTF8.GetString(Target[..Math.Min(Target.Length, 160)])} [{Kind}]";
}

/// <summary>
/// Builds request number i from a seed: the same seed and count always give the same run. Roughly half of the
/// requests carry valid ids and well-formed JSON with hostile values (which handlers may accept: 2xx is allowed
/// there), the rest are malformed at the HTTP, path or body level (only 4xx is allowed).
/// </summary>
internal sealed partial class FuzzGenerator(int seed, FuzzFixture fixture)
{
    [System.Text.RegularExpressions.GeneratedRegex("^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")]
    private static partial System.Text.RegularExpressions.Regex PlainId();

    private static readonly string[] HostileSegments =
    [
        "..", "%2e%2e", "..%2F..%2Fetc%2Fpasswd", "a%2Fb", "a%5Cb", "a%00b", "%0d%0aX-Injected:%201", "%FF%FE%FD", "%C0%AF", "%ED%A0%80",
        "%E2%80%AE", ".hidden", "-", "a%20b", "%25", "%C3%A9t%C3%A9", "99999999999999999999999", "-1", "0", "%7B%7D", "'%20OR%201=1--",
        "%3Cscript%3E", "CON", "nul", "%09", "%7F",
    ];

    private static readonly string[] HostileStrings =
    [
        "", " ", "\u0000", "\u0001\u0002\u001b[31m", "../../etc/passwd", "..\\..\\windows", "\ud800", "\uffff", "\u202e", "a/b", "%00",
        "<script>alert(1)</script>", "'; DROP TABLE documents; --", "{{7*7}}", "${jndi:ldap://x}", "\r\nX-Injected: 1", "NaN", "-0", "null",
    ];

    private static readonly string[] HostileNumbers =
    [
        "0", "-1", "1e309", "-1e309", "99999999999999999999999999999", "2147483648", "-2147483649", "9223372036854775808", "1.5", "0.0000001",
        "1e-400", "\"12\"", "true", "[]", "{}", "null",
    ];

    public FuzzRequest Next(int index, IReadOnlyList<FuzzOperation> operations, byte[] docxBomb, IReadOnlyList<byte[]> pdfs)
    {
        var random = new Random(HashCode.Combine(seed, index));
        var op = operations[random.Next(operations.Count)];
        var pathHostile = random.Next(4) == 0;
        var (path, validPath) = Path(random, op, pathHostile);
        var target = new List<byte>(Encoding.ASCII.GetBytes(path));
        target.AddRange(Query(random, op));

        // Raw bytes that are not UTF-8 straight in the request line's path, once in a while.
        if (random.Next(30) == 0)
        {
            target.InsertRange(path.Length, new byte[] { 0xFF, 0xC0, 0x80, (byte)'a' });
            validPath = false;
        }

        var key = path.StartsWith("/v1/tenants", StringComparison.Ordinal) || (path.StartsWith("/v1/audit", StringComparison.Ordinal) && random.Next(2) == 0)
            ? fixture.OperatorKey
            : random.Next(5) == 0 ? fixture.UserKey : fixture.AdminKey;
        var headers = new List<(string, string)> { ("Authorization", "Bearer " + key) };
        var (body, kind, bodyMaySucceed) = Body(random, op, headers, docxBomb, pdfs);
        // Endpoints without a body ignore whatever is sent; a part's body is any bytes at all.
        var maySucceed = validPath && (bodyMaySucceed || !op.HasBody || op.Path.Contains("/parts/", StringComparison.Ordinal));
        return new FuzzRequest(op.Method, [.. target], headers, body, (pathHostile ? "path+" : "") + kind, maySucceed);
    }

    private (string Path, bool Valid) Path(Random random, FuzzOperation op, bool hostile)
    {
        var valid = true;
        var path = System.Text.RegularExpressions.Regex.Replace(op.Path, "\\{([^}:]+)(:[^}]*)?\\}", m =>
        {
            var name = m.Groups[1].Value;
            if (hostile && random.Next(2) == 0)
            {
                var segment = random.Next(10) == 0 ? new string('a', random.Next(2) == 0 ? 200 : 20_000) : HostileSegments[random.Next(HostileSegments.Length)];

                // Some hostile-looking segments are valid ids ("CON", "-1"): those may be answered 2xx.
                // ".." and "%2e%2e" are resolved by the server as dot segments to another (valid) path, never outside /v1.
                valid &= PlainId().IsMatch(segment) || segment is ".." or "%2e%2e";
                return segment;
            }

            // DELETE never aims at the fixtures: they must outlive the run.
            return op.Method == "DELETE" ? "gone-" + random.Next(1000).ToString(CultureInfo.InvariantCulture) : name switch
            {
                "name" => fixture.Collection,
                "uploadId" => fixture.Upload,
                "userId" => fixture.User,
                "partNumber" => random.Next(-2, 12_000).ToString(CultureInfo.InvariantCulture),
                "id" when op.Path.StartsWith("/v1/tenants", StringComparison.Ordinal) => fixture.Tenant,
                "id" when op.Path.StartsWith("/v1/keys", StringComparison.Ordinal) => fixture.KeyId,
                "id" when op.Path.StartsWith("/v1/conversations", StringComparison.Ordinal) => fixture.Conversation,
                "id" => fixture.Document,
                _ => "x",
            };
        });

        // Never delete the fixture tenant or the key the run uses through a traversal that the server normalises.
        return (path, valid);
    }

    private byte[] Query(Random random, FuzzOperation op)
    {
        if (op.Query.Count == 0 || random.Next(3) == 0)
        {
            return [];
        }

        var parts = new List<string>();
        foreach (var name in op.Query.Where(q => q != "timeoutSeconds" && random.Next(2) == 0))
        {
            var value = name switch
            {
                // ?wait=true on a hostile document is fine, but bounded: the run must end.
                "wait" => random.Next(2) == 0 ? "true&timeoutSeconds=" + random.Next(1, 5).ToString(CultureInfo.InvariantCulture) : "maybe",
                _ => random.Next(3) switch
                {
                    0 => HostileNumbers[random.Next(HostileNumbers.Length)].Trim('"'),
                    1 => HostileSegments[random.Next(HostileSegments.Length)],
                    _ => Uri.EscapeDataString(HostileStrings[random.Next(HostileStrings.Length)]),
                },
            };
            parts.Add(name + "=" + value);
        }

        return parts.Count == 0 ? [] : Encoding.ASCII.GetBytes("?" + string.Join("&", parts));
    }

    private (Func<Stream, CancellationToken, Task>? Body, string Kind, bool MaySucceed) Body(
        Random random, FuzzOperation op, List<(string, string)> headers, byte[] docxBomb, IReadOnlyList<byte[]> pdfs)
    {
        if (!op.HasBody && random.Next(4) != 0)
        {
            return (null, "nobody", true);
        }

        switch (random.Next(14))
        {
            case 0:
                return Send(headers, "application/json", "{\"query\": \"abc\", \"topK\": 3, \"text\": \"trunc"u8.ToArray(), "truncated json", false);
            case 1:
                return Send(headers, "application/json", Encoding.UTF8.GetBytes(new string('[', 10_000) + new string(']', 10_000)), "deep array", false);
            case 2:
                return Send(headers, "application/json", Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("{\"a\":", 5_000)) + "1" + new string('}', 5_000)), "deep object", false);
            case 3:
            {
                // Invalid UTF-8 inside a JSON string.
                var bytes = new List<byte>(Encoding.UTF8.GetBytes($"{{\"{Field(random, op)}\": \""));
                bytes.AddRange(new byte[] { 0xFF, 0xFE, 0xC3, 0x28, 0xED, 0xA0, 0x80 });
                bytes.AddRange("\"}"u8.ToArray());
                return Send(headers, "application/json", [.. bytes], "invalid utf-8", false);
            }

            case 4:
                // Right shape, hostile values: every field of the operation's body gets a wrong type or an extreme.
                return Send(headers, "application/json", Encoding.UTF8.GetBytes(HostileObject(random, op)), "hostile fields", true);
            case 5:
            {
                // A long text is a legitimate document (kept small: embedding it costs real CPU); anything else long is refused.
                var field = Field(random, op);
                var length = field == "text" ? 5_000 : random.Next(2) == 0 ? 100_000 : 3_000_000;
                return Send(headers, "application/json", Encoding.UTF8.GetBytes($"{{\"{field}\": \"{new string('x', length)}\"}}"), "long string", true);
            }

            case 6:
                return Send(headers, random.Next(2) == 0 ? "text/plain" : "application/xml", "<a>b</a>"u8.ToArray(), "wrong media type", false);
            case 7:
                return Oversized(random, headers);
            case 8:
                return Multipart(headers, random, "document.docx", docxBomb, truncate: false, "docx bomb");
            case 9:
                return Multipart(headers, random, "loop.pdf", pdfs[random.Next(pdfs.Count)], truncate: false, "cyclic pdf");
            case 10:
                return Multipart(headers, random, "t.txt", Encoding.UTF8.GetBytes("short text " + random.Next()), truncate: true, "truncated multipart");
            case 11:
                return Send(headers, "application/json", RandomBytes(random, random.Next(1, 4096)), "random bytes", false);
            case 12:
            {
                // "{}" is a valid (empty) object: endpoints whose fields are all optional may accept it.
                var scalar = HostileNumbers[random.Next(HostileNumbers.Length)];
                return Send(headers, "application/json", Encoding.UTF8.GetBytes(scalar), "json scalar", scalar == "{}");
            }
            default:
            {
                // Control characters and traversal in body ids.
                var value = HostileStrings[random.Next(HostileStrings.Length)];
                var json = new JsonObject();
                foreach (var field in op.Fields.Count > 0 ? op.Fields : ["id", "name"])
                {
                    json[field] = field is "text" or "message" or "query" ? "ok text" : value;
                }

                return Send(headers, "application/json", Encoding.UTF8.GetBytes(json.ToJsonString()), "hostile ids", true);
            }
        }
    }

    private static string Field(Random random, FuzzOperation op) => op.Fields.Count == 0 ? "x" : op.Fields[random.Next(op.Fields.Count)];

    private static string HostileObject(Random random, FuzzOperation op)
    {
        var fields = op.Fields.Count > 0 ? op.Fields : ["id", "name", "query", "text", "topK"];
        var parts = fields.Select(f => $"\"{f}\": " + (random.Next(3) switch
        {
            0 => HostileNumbers[random.Next(HostileNumbers.Length)],
            1 => System.Text.Json.JsonSerializer.Serialize(HostileStrings[random.Next(HostileStrings.Length)]),
            _ => random.Next(2) == 0 ? "[1, \"a\", null, {}]" : "{\"$gt\": 1, \"nested\": {\"a\": [1e308, -1e308]}}",
        }));
        return "{" + string.Join(", ", parts) + "}";
    }

    private static byte[] RandomBytes(Random random, int length)
    {
        var bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }

    private static (Func<Stream, CancellationToken, Task>?, string, bool) Send(List<(string, string)> headers, string contentType, byte[] body, string kind, bool maySucceed)
    {
        headers.Add(("Content-Type", contentType));
        headers.Add(("Content-Length", body.Length.ToString(CultureInfo.InvariantCulture)));
        return ((stream, ct) => stream.WriteAsync(body, ct).AsTask(), kind, maySucceed);
    }

    // Bodies over every limit: declared (a lying Content-Length with little behind it) or real (chunked, no length).
    private static (Func<Stream, CancellationToken, Task>?, string, bool) Oversized(Random random, List<(string, string)> headers)
    {
        headers.Add(("Content-Type", random.Next(2) == 0 ? "application/json" : "application/octet-stream"));
        if (random.Next(3) != 0)
        {
            headers.Add(("Content-Length", (10L * 1024 * 1024 * 1024).ToString(CultureInfo.InvariantCulture)));
            return ((stream, ct) => stream.WriteAsync("{\"text\": \""u8.ToArray(), ct).AsTask(), "declared 10 GB", false);
        }

        headers.Add(("Transfer-Encoding", "chunked"));
        return (async (stream, ct) =>
        {
            var chunk = new byte[1024 * 1024];
            chunk.AsSpan().Fill((byte)'7');
            var header = Encoding.ASCII.GetBytes($"{chunk.Length:X}\r\n");
            for (var i = 0; i < 80; i++)
            {
                await stream.WriteAsync(header, ct);
                await stream.WriteAsync(chunk, ct);
                await stream.WriteAsync("\r\n"u8.ToArray(), ct);
            }

            await stream.WriteAsync("0\r\n\r\n"u8.ToArray(), ct);
        }, "chunked 80 MB", false);
    }

    private static (Func<Stream, CancellationToken, Task>?, string, bool) Multipart(
        List<(string, string)> headers, Random random, string fileName, byte[] content, bool truncate, string kind)
    {
        var boundary = "fuzz" + random.Next().ToString(CultureInfo.InvariantCulture);
        using var body = new MemoryStream();
        // No document id: the same hostile file then deduplicates by content and is parsed once, not hundreds of times.
        body.Write(Encoding.ASCII.GetBytes($"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{fileName}\"\r\nContent-Type: application/octet-stream\r\n\r\n"));
        body.Write(content);
        body.Write(Encoding.ASCII.GetBytes($"\r\n--{boundary}--\r\n"));
        var bytes = body.ToArray();
        if (truncate)
        {
            bytes = bytes[..(bytes.Length - random.Next(8, Math.Min(bytes.Length - 1, 120)))];
        }

        headers.Add(("Content-Type", $"multipart/form-data; boundary={boundary}"));
        headers.Add(("Content-Length", bytes.Length.ToString(CultureInfo.InvariantCulture)));
        return ((stream, ct) => stream.WriteAsync(bytes, ct).AsTask(), kind, !truncate);
    }
}
