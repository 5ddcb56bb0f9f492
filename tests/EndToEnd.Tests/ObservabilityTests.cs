using System.Net;
using System.Text.Json;
using Xunit;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>Metrics, logs and probes of the real frontend process (embedded mode, Production environment).</summary>
[Collection(ServiceCollection.Name)]
public sealed class ObservabilityTests(ServiceFixture fixture)
{
    private ServiceProcess Service => fixture.Service;

    [Fact]
    public async Task Metrics_expose_http_ingestion_embedding_search_index_and_orleans_series_after_traffic()
    {
        var (_, adminKey) = await Service.CreateTenant("metrics");
        using var admin = Service.Client(adminKey);
        await (await admin.PostJson("/v1/collections", new { name = "kb" })).ExpectJson(HttpStatusCode.Created);
        await admin.Ingest("kb", new { id = "d1", title = "Reminders", text = "Reminders are persistent timers stored in the reminder table. They fire after restarts." });
        Assert.NotEmpty(await admin.Search("kb", "persistent timers"));
        await (await admin.PostJson("/v1/collections/kb/search", new { query = "reminder table", topK = 3, mode = "keyword" })).ExpectJson(HttpStatusCode.OK);

        using var anonymous = Service.Client(null);
        using var response = await anonymous.GetAsync("/metrics");
        var text = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType, StringComparison.Ordinal);

        // HTTP rate and latency by route and status, with the bounded tenant label.
        Assert.Matches("http_server_request_duration_seconds_count\\{[^}]*http_route=\"/v1/collections/\\{name\\}/search\"", text);
        Assert.Matches("http_server_request_duration_seconds_count\\{[^}]*http_response_status_code=\"200\"", text);
        Assert.Matches("http_server_request_duration_seconds_count\\{[^}]*rag_tenant=\"metrics\"", text);

        foreach (var step in new[] { "parse", "chunk", "embed", "index" })
        {
            Assert.Matches($"rag_ingestion_step_duration_seconds_count\\{{[^}}]*step=\"{step}\"", text);
        }

        Assert.Matches("rag_ingestion_documents_total\\{[^}]*outcome=\"indexed\"", text);
        Assert.Matches("rag_ingestion_backlog\\{[^}]*state=\"waiting\"", text);
        Assert.Matches("rag_embedding_batch_size_count\\{[^}]*purpose=\"document\"", text);
        Assert.Matches("rag_embedding_batch_size_count\\{[^}]*purpose=\"query\"", text);
        Assert.Matches("rag_embedding_texts_total\\{", text);
        foreach (var stage in new[] { "embed", "dense", "keyword", "fuse", "hydrate" })
        {
            Assert.Matches($"rag_search_stage_duration_seconds_count\\{{[^}}]*stage=\"{stage}\"", text);
        }

        Assert.Matches("rag_search_duration_seconds_count\\{[^}]*tenant=\"metrics\"", text);
        Assert.Matches("(?m)^rag_index_shards_active(\\{[^}]*\\})? [1-9]", text);
        Assert.Matches("(?m)^rag_index_memory_bytes(\\{[^}]*\\})? [1-9]", text);
        Assert.Matches("(?m)^rag_tenants_active(\\{[^}]*\\})? [1-9]", text);

        // Orleans' own meter.
        Assert.Matches("(?m)^orleans_", text);
    }

    [Fact]
    public async Task Log_lines_are_json_and_carry_trace_request_and_tenant_ids_but_never_the_key()
    {
        var (tenant, adminKey) = await Service.CreateTenant("logs");
        using var admin = Service.Client(adminKey);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/collections");
        request.Headers.Add("X-Request-Id", "req-logs-0001");
        using var response = await admin.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("req-logs-0001", response.Headers.GetValues("X-Request-Id").Single());

        JsonElement? line = null;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (line is null && DateTime.UtcNow < deadline)
        {
            line = JsonLines(Service.Output).Cast<JsonElement?>().FirstOrDefault(l =>
                l!.Value.TryGetProperty("Message", out var m) && m.GetString()!.StartsWith("GET /v1/collections/ answered 200", StringComparison.Ordinal)
                && Scopes(l.Value).Any(s => s.TryGetProperty("RequestId", out var id) && id.GetString() == "req-logs-0001"));
            await Task.Delay(100);
        }

        Assert.True(line is not null, "No JSON access log line for the request:\n" + Service.Output);
        var scopes = Scopes(line.Value).ToList();
        Assert.Contains(scopes, s => s.TryGetProperty("TenantId", out var t) && t.GetString() == tenant);
        Assert.Contains(scopes, s => s.TryGetProperty("TraceId", out var t) && t.GetString()!.Length == 32);
        Assert.DoesNotContain(adminKey, Service.Output, StringComparison.Ordinal);
        Assert.DoesNotContain(Service.OperatorKey, Service.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Probes_answer_startup_liveness_and_readiness()
    {
        using var anonymous = Service.Client(null);
        Assert.Equal("alive", (await (await anonymous.GetAsync("/healthz")).ExpectJson(HttpStatusCode.OK)).Str("status"));
        Assert.Equal("started", (await (await anonymous.GetAsync("/startupz")).ExpectJson(HttpStatusCode.OK)).Str("status"));
        Assert.Equal("ready", (await (await anonymous.GetAsync("/readyz")).ExpectJson(HttpStatusCode.OK)).Str("status"));
    }

    private static IEnumerable<JsonElement> JsonLines(string output)
    {
        foreach (var raw in output.Split('\n'))
        {
            var trimmed = raw.Trim();
            if (!trimmed.StartsWith('{'))
            {
                continue;
            }

            JsonElement element;
            try
            {
                element = JsonDocument.Parse(trimmed).RootElement.Clone();
            }
            catch (JsonException)
            {
                continue;
            }

            yield return element;
        }
    }

    private static IEnumerable<JsonElement> Scopes(JsonElement line) =>
        line.TryGetProperty("Scopes", out var scopes) && scopes.ValueKind == JsonValueKind.Array
            ? scopes.EnumerateArray().Where(s => s.ValueKind == JsonValueKind.Object)
            : [];
}
