using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Xunit;
using Xunit.Abstractions;

// Every frontend factory here passes its settings through process environment variables (see TracedFrontend):
// two built at once would read each other's. The other tests of this project are quick file checks.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace RagOrleans.Ops.Tests;

/// <summary>Who calls, in the isolation matrix.</summary>
public enum Caller
{
    /// <summary>No Authorization header.</summary>
    NoKey,
    /// <summary>A header that is not a key of ours.</summary>
    MalformedKey,
    /// <summary>A tenant key that was revoked.</summary>
    RevokedKey,
    /// <summary>A user key of tenant A (the tenant owning the fixtures).</summary>
    User,
    /// <summary>An admin key of tenant A.</summary>
    Admin,
    /// <summary>An admin key of tenant B: must never see or touch tenant A's resources.</summary>
    OtherTenantAdmin,
    /// <summary>The operator key.</summary>
    Operator,
}

/// <summary>Which roles an endpoint admits.</summary>
[Flags]
public enum Access
{
    /// <summary>Probes and the scrape endpoint: no key needed.</summary>
    Public = 1,
    User = 2,
    Admin = 4,
    Operator = 8,
    TenantRead = User | Admin,
}

/// <summary>The fixtures of the matrix: two tenants, their keys, and resources of tenant A.</summary>
public sealed record MatrixFixture(
    string TenantA, string TenantB, string UserId, string Collection, string DocumentId, string UploadId, string ConversationId)
{
    private int _counter;

    /// <summary>A fresh name, for endpoints that create something on every allowed call.</summary>
    public string Fresh(string prefix) => $"{prefix}-{Interlocked.Increment(ref _counter)}";
}

/// <summary>
/// One row of the matrix: an endpoint (method and route pattern exactly as the app maps it), the roles it admits,
/// the request to send, and the status an admitted caller gets. The other cells follow from <see cref="Access"/>:
/// no key is 401 (unless public), a malformed or revoked key is 401, a role the endpoint does not admit is 403.
/// <see cref="OtherTenant"/> is what an admitted admin of another tenant gets (404 for tenant A's resources: they
/// do not exist in its namespace); <see cref="Overrides"/> sets any other cell by hand.
/// </summary>
public sealed record EndpointExpectation(
    string Method, string Pattern, Access Access, int Allowed, Func<MatrixFixture, HttpRequestMessage> Request,
    int? OtherTenant = null, IReadOnlyDictionary<Caller, int>? Overrides = null)
{
    public int Expected(Caller caller)
    {
        if (Overrides is not null && Overrides.TryGetValue(caller, out var status))
        {
            return status;
        }

        var admitted = caller switch
        {
            Caller.NoKey => Access.HasFlag(Access.Public),
            Caller.MalformedKey or Caller.RevokedKey => false,
            Caller.User => Access.HasFlag(Access.User),
            Caller.Admin or Caller.OtherTenantAdmin => Access.HasFlag(Access.Admin),
            Caller.Operator => Access.HasFlag(Access.Operator),
            _ => false,
        };
        if (!admitted)
        {
            return caller is Caller.NoKey or Caller.MalformedKey or Caller.RevokedKey ? 401 : 403;
        }

        return caller == Caller.OtherTenantAdmin ? OtherTenant ?? Allowed : Allowed;
    }
}

/// <summary>The real frontend in-process, for the matrix: the endpoint list comes from its EndpointDataSource.</summary>
public sealed class MatrixFrontend : WebApplicationFactory<Program>
{
    public const string OperatorKey = "matrix-operator-key-0123456789";

    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "rag-ops-tests", "matrix-" + Guid.NewGuid().ToString("N"));

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        Environment.SetEnvironmentVariable("Rag__DataDir", _dataDir);
        Environment.SetEnvironmentVariable("Rag__OperatorKey", OperatorKey);
        Environment.SetEnvironmentVariable("Orleans__SiloPort", FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture));
        Environment.SetEnvironmentVariable("Orleans__GatewayPort", FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture));

        // The malformed and revoked cells fail on purpose, dozens of times from one client.
        Environment.SetEnvironmentVariable("Rag__AuthGuard__Enabled", "false");
        builder.UseContentRoot(AppContext.BaseDirectory);
        builder.UseEnvironment("Production");
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        Environment.SetEnvironmentVariable("Rag__AuthGuard__Enabled", null);
        try
        {
            Directory.Delete(_dataDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

public sealed class IsolationMatrixTests(MatrixFrontend frontend, ITestOutputHelper output) : IClassFixture<MatrixFrontend>
{
    private static HttpRequestMessage Get(string path) => new(HttpMethod.Get, path);

    private static HttpRequestMessage Delete(string path) => new(HttpMethod.Delete, path);

    private static HttpRequestMessage Json(HttpMethod method, string path, object body) => new(method, path) { Content = JsonContent.Create(body) };

    private static HttpRequestMessage Bytes(HttpMethod method, string path, byte[] body) =>
        new(method, path) { Content = new ByteArrayContent(body) { Headers = { ContentType = new MediaTypeHeaderValue("application/octet-stream") } } };

    /// <summary>
    /// The expectation table. Every endpoint the app maps must have a row (the test fails on an unlisted endpoint and
    /// on a row whose endpoint is gone). Destructive endpoints aim at ids that do not exist, so an admitted caller gets
    /// 404 and the fixtures survive for the other cells; reads aim at tenant A's real resources.
    /// </summary>
    public static IReadOnlyList<EndpointExpectation> Table { get; } =
    [
        // Probes, scrape, API description: public.
        new("GET", "/healthz", Access.Public | Access.TenantRead | Access.Operator, 200, _ => Get("/healthz")),
        new("GET", "/readyz", Access.Public | Access.TenantRead | Access.Operator, 200, _ => Get("/readyz")),
        new("GET", "/startupz", Access.Public | Access.TenantRead | Access.Operator, 200, _ => Get("/startupz")),
        // The Prometheus exporter maps the path for every method.
        new("*", "/metrics", Access.Public | Access.TenantRead | Access.Operator, 200, _ => Get("/metrics")),
        new("GET", "/openapi/{documentName}.json", Access.Public | Access.TenantRead | Access.Operator, 200, _ => Get("/openapi/v1.json")),

        // Operator: tenants and their limits.
        new("POST", "/v1/tenants", Access.Operator, 201, f => Json(HttpMethod.Post, "/v1/tenants", new { id = f.Fresh("made") })),
        new("GET", "/v1/tenants", Access.Operator, 200, _ => Get("/v1/tenants")),
        new("GET", "/v1/tenants/{id}", Access.Operator, 200, f => Get($"/v1/tenants/{f.TenantA}")),
        new("DELETE", "/v1/tenants/{id}", Access.Operator, 404, _ => Delete("/v1/tenants/no-such-tenant")),
        new("GET", "/v1/tenants/{id}/limits", Access.Operator, 200, f => Get($"/v1/tenants/{f.TenantA}/limits")),
        new("PUT", "/v1/tenants/{id}/limits", Access.Operator, 200, f => Json(HttpMethod.Put, $"/v1/tenants/{f.TenantA}/limits", new { })),
        new("GET", "/v1/audit", Access.Operator | Access.Admin, 200, _ => Get("/v1/audit?limit=5")),

        // Backup: the operator exports any tenant, a tenant admin only its own (another tenant's answers 404, its
        // existence not revealed); only the operator imports (here a body that is no archive: 400 once admitted).
        // These rows come before any row that queues a document, since an export refuses (409) while one is in flight.
        new("POST", "/v1/tenants/{id}/export", Access.Operator | Access.Admin, 200,
            f => new HttpRequestMessage(HttpMethod.Post, $"/v1/tenants/{f.TenantA}/export"), OtherTenant: 404),
        new("POST", "/v1/tenants/import", Access.Operator, 400,
            _ => Bytes(HttpMethod.Post, "/v1/tenants/import", Encoding.UTF8.GetBytes("not a zip archive"))),

        // Tenant admin: keys, limits, usage. An admin of tenant B acts on tenant B (its own keys and limits).
        new("POST", "/v1/keys", Access.Admin, 201, _ => Json(HttpMethod.Post, "/v1/keys", new { role = "user", userId = "made" })),
        new("GET", "/v1/keys", Access.Admin, 200, _ => Get("/v1/keys")),
        new("DELETE", "/v1/keys/{id}", Access.Admin, 404, _ => Delete("/v1/keys/no-such-key")),
        new("GET", "/v1/limits", Access.Admin, 200, _ => Get("/v1/limits")),
        new("GET", "/v1/usage", Access.Admin, 200, _ => Get("/v1/usage")),
        new("GET", "/v1/users/{userId}/limits", Access.Admin, 200, f => Get($"/v1/users/{f.UserId}/limits")),
        new("PUT", "/v1/users/{userId}/limits", Access.Admin, 200, f => Json(HttpMethod.Put, $"/v1/users/{f.UserId}/limits", new { })),

        // Collections: an admin of tenant B creates in its own namespace and never finds tenant A's collection.
        new("GET", "/v1/collections", Access.TenantRead, 200, _ => Get("/v1/collections")),
        new("GET", "/v1/collections/{name}", Access.TenantRead, 200, f => Get($"/v1/collections/{f.Collection}"), OtherTenant: 404),
        new("POST", "/v1/collections", Access.Admin, 201, f => Json(HttpMethod.Post, "/v1/collections", new { name = f.Fresh("made") })),
        new("DELETE", "/v1/collections/{name}", Access.Admin, 404, _ => Delete("/v1/collections/no-such-collection")),
        new("POST", "/v1/collections/{name}/prewarm", Access.TenantRead, 200,
            f => new HttpRequestMessage(HttpMethod.Post, $"/v1/collections/{f.Collection}/prewarm"), OtherTenant: 404),

        // Documents.
        new("GET", "/v1/collections/{name}/documents", Access.TenantRead, 200, f => Get($"/v1/collections/{f.Collection}/documents"), OtherTenant: 404),
        new("GET", "/v1/collections/{name}/documents/{id}", Access.TenantRead, 200,
            f => Get($"/v1/collections/{f.Collection}/documents/{f.DocumentId}"), OtherTenant: 404),
        new("POST", "/v1/collections/{name}/documents", Access.Admin, 202,
            f => Json(HttpMethod.Post, $"/v1/collections/{f.Collection}/documents", new { id = f.Fresh("made"), text = "A document made by the matrix." }),
            OtherTenant: 404),
        new("DELETE", "/v1/collections/{name}/documents/{id}", Access.Admin, 404, f => Delete($"/v1/collections/{f.Collection}/documents/no-such-doc")),
        new("POST", "/v1/collections/{name}/documents/{id}/retry", Access.Admin, 404,
            f => new HttpRequestMessage(HttpMethod.Post, $"/v1/collections/{f.Collection}/documents/no-such-doc/retry")),

        // Resumable uploads (admins).
        new("POST", "/v1/collections/{name}/uploads", Access.Admin, 201,
            f => Json(HttpMethod.Post, $"/v1/collections/{f.Collection}/uploads", new { fileName = "m.txt" }), OtherTenant: 404),
        new("GET", "/v1/collections/{name}/uploads/{uploadId}", Access.Admin, 200, f => Get($"/v1/collections/{f.Collection}/uploads/{f.UploadId}"), OtherTenant: 404),
        new("PUT", "/v1/collections/{name}/uploads/{uploadId}/parts/{partNumber:int}", Access.Admin, 200,
            f => Bytes(HttpMethod.Put, $"/v1/collections/{f.Collection}/uploads/{f.UploadId}/parts/1", Encoding.UTF8.GetBytes("part one")), OtherTenant: 404),
        new("DELETE", "/v1/collections/{name}/uploads/{uploadId}", Access.Admin, 404, f => Delete($"/v1/collections/{f.Collection}/uploads/up-none")),
        new("POST", "/v1/collections/{name}/uploads/{uploadId}/complete", Access.Admin, 404,
            f => new HttpRequestMessage(HttpMethod.Post, $"/v1/collections/{f.Collection}/uploads/up-none/complete")),

        // Search and chat; a conversation belongs to the user who had it (here tenant A's admin).
        new("POST", "/v1/collections/{name}/search", Access.TenantRead, 200,
            f => Json(HttpMethod.Post, $"/v1/collections/{f.Collection}/search", new { query = "matrix" }), OtherTenant: 404),
        new("POST", "/v1/collections/{name}/chat", Access.TenantRead, 200,
            f => Json(HttpMethod.Post, $"/v1/collections/{f.Collection}/chat", new { message = "What is the matrix?" }), OtherTenant: 404),
        new("GET", "/v1/conversations/{id}", Access.TenantRead, 200, f => Get($"/v1/conversations/{f.ConversationId}"), OtherTenant: 404,
            Overrides: new Dictionary<Caller, int> { [Caller.User] = 404 }),
        new("GET", "/v1/conversations", Access.TenantRead, 200, _ => Get("/v1/conversations?limit=5")),
        new("DELETE", "/v1/conversations/{id}", Access.TenantRead, 404, _ => Delete("/v1/conversations/no-such-conversation")),

        // OpenAI-compatible endpoints: the same keys as bearer tokens; a collection is named in the model.
        new("POST", "/v1/embeddings", Access.TenantRead, 200,
            _ => Json(HttpMethod.Post, "/v1/embeddings", new { input = "matrix", model = "all-minilm-l6-v2" })),
        new("POST", "/v1/chat/completions", Access.TenantRead, 200,
            f => Json(HttpMethod.Post, "/v1/chat/completions", new { model = $"rag:{f.Collection}", messages = new[] { new { role = "user", content = "What is the matrix?" } } }),
            OtherTenant: 404),
    ];

    /// <summary>Route prefixes whose endpoints share one expectation (the Orleans dashboard maps its own set).</summary>
    public static IReadOnlyList<(string Prefix, EndpointExpectation Expectation)> PrefixTable { get; } =
    [
        ("/dashboard", new("*", "/dashboard", Access.Operator, 200, _ => Get("/dashboard/"))),
    ];

    [Fact]
    public async Task Every_endpoint_answers_every_caller_as_the_table_says()
    {
        using var op = Client(MatrixFrontend.OperatorKey);
        await WaitReady(op);
        var endpoints = frontend.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .SelectMany(e => (e.Metadata.GetMetadata<IHttpMethodMetadata>()?.HttpMethods ?? ["*"]).Select(m => (Method: m, Pattern: Normalize(e.RoutePattern.RawText))))
            .Distinct().ToList();

        // Completeness both ways: a new endpoint needs a row, a removed one must lose its row.
        var rows = Table.ToDictionary(r => $"{r.Method} {r.Pattern}");
        var unlisted = endpoints.Where(e => !rows.ContainsKey($"{e.Method} {e.Pattern}") && !PrefixTable.Any(p => e.Pattern.StartsWith(p.Prefix, StringComparison.Ordinal)))
            .Select(e => $"{e.Method} {e.Pattern}").ToList();
        Assert.True(unlisted.Count == 0, "Endpoints without an expectation in IsolationMatrixTests.Table: " + string.Join(", ", unlisted));
        var stale = rows.Keys.Where(k => !endpoints.Any(e => $"{e.Method} {e.Pattern}" == k)).ToList();
        Assert.True(stale.Count == 0, "Rows for endpoints the app no longer maps: " + string.Join(", ", stale));
        Assert.Contains(endpoints, e => e.Pattern.StartsWith("/dashboard", StringComparison.Ordinal));

        var fixture = await ArrangeAsync(op);
        var keys = await KeysAsync(op, fixture);
        var failures = new List<string>();
        var cells = 0;
        foreach (var row in Table.Concat(PrefixTable.Select(p => p.Expectation)))
        {
            foreach (var caller in Enum.GetValues<Caller>())
            {
                using var client = Client(keys[caller]);
                using var request = row.Request(fixture);
                using var response = await client.SendAsync(request);
                var expected = row.Expected(caller);
                cells++;
                if ((int)response.StatusCode != expected)
                {
                    failures.Add($"{row.Method} {row.Pattern} as {caller}: expected {expected}, got {(int)response.StatusCode} {Truncate(await response.Content.ReadAsStringAsync())}");
                }
                else if (expected is 401 or 403 && response.Content.Headers.ContentType?.MediaType != "application/problem+json")
                {
                    failures.Add($"{row.Method} {row.Pattern} as {caller}: {expected} without a problem body");
                }
            }
        }

        output.WriteLine($"{cells} cells over {Table.Count + PrefixTable.Count} rows and {endpoints.Count} endpoints");
        Assert.True(failures.Count == 0, string.Join("\n", failures));

        // Tenant B's admin listed collections and created some: none of tenant A's may be among them.
        using var other = Client(keys[Caller.OtherTenantAdmin]);
        var list = await other.GetFromJsonAsync<JsonArray>("/v1/collections");
        Assert.DoesNotContain(list!, c => c!["name"]!.GetValue<string>() == fixture.Collection);
    }

    private async Task<MatrixFixture> ArrangeAsync(HttpClient op)
    {
        var tenantA = await CreateTenantAsync(op, "iso-a");
        await CreateTenantAsync(op, "iso-b");
        using var admin = Client(tenantA);
        Expect(await admin.PostAsJsonAsync("/v1/collections", new { name = "matrix" }), HttpStatusCode.Created);
        Expect(await admin.PostAsJsonAsync("/v1/collections/matrix/documents?wait=true", new { id = "d1", text = "The matrix holds one document about isolation." }), HttpStatusCode.OK);
        var upload = await ReadJson(await admin.PostAsJsonAsync("/v1/collections/matrix/uploads", new { fileName = "u.txt" }), HttpStatusCode.Created);
        var chat = await ReadJson(await admin.PostAsJsonAsync("/v1/collections/matrix/chat", new { message = "What does the matrix hold?" }), HttpStatusCode.OK);
        return new MatrixFixture("iso-a", "iso-b", "reader", "matrix", "d1", upload["uploadId"]!.GetValue<string>(), chat["conversationId"]!.GetValue<string>());
    }

    private async Task<Dictionary<Caller, string?>> KeysAsync(HttpClient op, MatrixFixture f)
    {
        var adminA = _adminKeys[f.TenantA];
        using var admin = Client(adminA);
        var user = await ReadJson(await admin.PostAsJsonAsync("/v1/keys", new { role = "user", userId = f.UserId }), HttpStatusCode.Created);
        var revoked = await ReadJson(await admin.PostAsJsonAsync("/v1/keys", new { role = "admin", userId = "gone" }), HttpStatusCode.Created);
        Expect(await admin.DeleteAsync($"/v1/keys/{revoked["id"]!.GetValue<string>()}"), HttpStatusCode.NoContent);
        return new Dictionary<Caller, string?>
        {
            [Caller.NoKey] = null,
            [Caller.MalformedKey] = "not-a-key",
            [Caller.RevokedKey] = revoked["key"]!.GetValue<string>(),
            [Caller.User] = user["key"]!.GetValue<string>(),
            [Caller.Admin] = adminA,
            [Caller.OtherTenantAdmin] = _adminKeys[f.TenantB],
            [Caller.Operator] = MatrixFrontend.OperatorKey,
        };
    }

    private readonly Dictionary<string, string> _adminKeys = [];

    private async Task<string> CreateTenantAsync(HttpClient op, string id)
    {
        var json = await ReadJson(await op.PostAsJsonAsync("/v1/tenants", new { id }), HttpStatusCode.Created);
        var key = json["adminKey"]!.GetValue<string>();
        _adminKeys[id] = key;
        return key;
    }

    private static string Normalize(string? pattern) =>
        string.IsNullOrEmpty(pattern) ? "/" : ("/" + pattern.Trim('/')).Replace("//", "/", StringComparison.Ordinal);

    private static string Truncate(string text) => text.Length <= 300 ? text : text[..300] + "…";

    private static void Expect(HttpResponseMessage response, HttpStatusCode status)
    {
        using (response)
        {
            Assert.True(response.StatusCode == status, $"Expected {(int)status}, got {(int)response.StatusCode}: {response.Content.ReadAsStringAsync().Result}");
        }
    }

    private static async Task<JsonObject> ReadJson(HttpResponseMessage response, HttpStatusCode status)
    {
        using (response)
        {
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == status, $"Expected {(int)status}, got {(int)response.StatusCode}: {body}");
            return JsonNode.Parse(body)!.AsObject();
        }
    }

    private HttpClient Client(string? key)
    {
        var client = frontend.CreateClient(new WebApplicationFactoryClientOptions { AllowAutoRedirect = false });
        client.Timeout = TimeSpan.FromMinutes(5);
        if (key is not null)
        {
            client.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", "Bearer " + key);
        }

        return client;
    }

    private static async Task WaitReady(HttpClient client)
    {
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (DateTime.UtcNow < deadline)
        {
            using var response = await client.GetAsync("/readyz");
            if (response.StatusCode == HttpStatusCode.OK)
            {
                return;
            }

            await Task.Delay(200);
        }

        throw new TimeoutException("The frontend did not become ready.");
    }
}
