using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Trace;
using RagOrleans.Grains.Telemetry;
using Xunit;

namespace RagOrleans.Ops.Tests;

/// <summary>The real frontend (embedded mode: in-process silo), hosted in the test process with an in-memory span exporter.</summary>
public sealed class TracedFrontend : WebApplicationFactory<Program>
{
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "rag-ops-tests", Guid.NewGuid().ToString("N"));

    // The exporter appends from request and background threads without any lock of ours, so the collection locks itself.
    private readonly LockedSpans _spans = new();

    public const string OperatorKey = "ops-test-operator-key-0123456789";

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        // Program reads these while it builds, before any configuration callback of the factory runs.
        Environment.SetEnvironmentVariable("Rag__DataDir", _dataDir);
        Environment.SetEnvironmentVariable("Rag__OperatorKey", OperatorKey);
        Environment.SetEnvironmentVariable("Orleans__SiloPort", FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture));
        Environment.SetEnvironmentVariable("Orleans__GatewayPort", FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture));
        builder.UseContentRoot(AppContext.BaseDirectory);
        builder.UseEnvironment("Development");
        builder.ConfigureServices(services => services.ConfigureOpenTelemetryTracerProvider(tracing => tracing.AddInMemoryExporter(_spans)));
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        try
        {
            Directory.Delete(_dataDir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <summary>The spans exported so far (the exporter appends from request threads).</summary>
    public List<Activity> Snapshot() => _spans.Copy();

    private sealed class LockedSpans : System.Collections.ObjectModel.Collection<Activity>
    {
        private readonly Lock _lock = new();

        public List<Activity> Copy()
        {
            lock (_lock)
            {
                return [.. Items];
            }
        }

        protected override void InsertItem(int index, Activity item)
        {
            lock (_lock)
            {
                base.InsertItem(index, item);
            }
        }

        protected override void ClearItems()
        {
            lock (_lock)
            {
                base.ClearItems();
            }
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

public sealed class TracingTests : IClassFixture<TracedFrontend>
{
    private readonly TracedFrontend _frontend;

    public TracingTests(TracedFrontend frontend) => _frontend = frontend;

    [Fact]
    public async Task A_request_is_one_trace_from_the_http_span_through_grain_calls_to_grain_storage_and_the_index()
    {
        using var op = Client(TracedFrontend.OperatorKey);
        await WaitReady(op);
        var tenant = await (await op.PostAsJsonAsync("/v1/tenants", new { id = "traced", name = "Traced" })).Content.ReadFromJsonAsync<JsonObject>();
        using var admin = Client(tenant!["adminKey"]!.GetValue<string>());

        // Creating a collection writes grain state: frontend → grain → storage.
        using (var created = await admin.PostAsJsonAsync("/v1/collections", new { name = "kb" }))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        }

        var create = await TraceOf("POST", "/v1/collections");
        Assert.Contains(create, s => s.Source.Name.StartsWith("Microsoft.Orleans", StringComparison.Ordinal) && s.DisplayName.Contains("ICollectionGrain", StringComparison.Ordinal));
        Assert.Contains(create, s => s.Source.Name == "Microsoft.Orleans.Storage");

        using (var ingested = await admin.PostAsJsonAsync("/v1/collections/kb/documents?wait=true", new { id = "d1", text = "Reminders are persistent timers kept in the reminder table." }))
        {
            Assert.Equal(HttpStatusCode.OK, ingested.StatusCode);
        }

        using (var searched = await admin.PostAsJsonAsync("/v1/collections/kb/search", new { query = "persistent timers", topK = 3 }))
        {
            Assert.Equal(HttpStatusCode.OK, searched.StatusCode);
        }

        // Search: the HTTP span, the client and server sides of the grain calls, and our stage spans, in one trace.
        var search = await TraceOf("POST", "/v1/collections/kb/search");
        var names = search.Select(s => $"{s.Source.Name}:{s.DisplayName}").ToList();
        Assert.Contains(search, s => s.Kind == ActivityKind.Client && s.DisplayName.Contains("ICollectionGrain", StringComparison.Ordinal));
        Assert.Contains(search, s => s.Kind == ActivityKind.Server && s.DisplayName.Contains("ICollectionGrain", StringComparison.Ordinal));
        var rag = search.Single(s => s.Source.Name == RagActivity.SourceName && s.DisplayName == "rag.search");
        Assert.Equal("traced", rag.GetTagItem("rag.tenant"));
        Assert.True(search.Any(s => s.DisplayName == "rag.search.embed"), string.Join(", ", names));
        Assert.True(search.Any(s => s.DisplayName == "rag.shard.candidates" && s.ParentSpanId != default), string.Join(", ", names));
        Assert.True(search.Any(s => s.DisplayName.Contains("IIndexShardGrain", StringComparison.Ordinal)), string.Join(", ", names));
    }

    /// <summary>All spans of the trace whose root is the HTTP server span of the given request.</summary>
    private async Task<List<Activity>> TraceOf(string method, string path)
    {
        // The root span ends after the response is written; give the exporter a moment.
        for (var i = 0; i < 50; i++)
        {
            var spans = _frontend.Snapshot();
            var root = spans.LastOrDefault(s => s.Kind == ActivityKind.Server && s.Source.Name == "Microsoft.AspNetCore"
                && (string?)s.GetTagItem("http.request.method") == method && (string?)s.GetTagItem("url.path") == path);
            if (root is not null)
            {
                return spans.Where(s => s.TraceId == root.TraceId).ToList();
            }

            await Task.Delay(100);
        }

        throw new InvalidOperationException($"No server span for {method} {path}: " + string.Join(", ", _frontend.Snapshot().Select(s => s.DisplayName)));
    }

    private HttpClient Client(string key)
    {
        var client = _frontend.CreateClient();
        client.Timeout = TimeSpan.FromMinutes(5);
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
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
