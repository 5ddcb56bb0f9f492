using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit;

namespace RagOrleans.EndToEnd.Tests;

internal static class ApiHelpers
{
    public static async Task<JsonNode> ExpectJson(this HttpResponseMessage response, HttpStatusCode status)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"Expected {(int)status} but got {(int)response.StatusCode}: {body}");
        return JsonNode.Parse(body) ?? new JsonObject();
    }

    /// <summary>Asserts an RFC 7807 problem with the status and a non-empty detail.</summary>
    public static async Task<JsonNode> ExpectProblem(this HttpResponseMessage response, HttpStatusCode status)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"Expected {(int)status} but got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var json = JsonNode.Parse(body)!;
        Assert.Equal((int)status, json["status"]!.GetValue<int>());
        Assert.False(string.IsNullOrWhiteSpace(json["title"]?.GetValue<string>()), body);
        return json;
    }

    public static Task<HttpResponseMessage> PostJson(this HttpClient client, string url, object body) => client.PostAsJsonAsync(url, body);

    public static async Task<(string TenantId, string AdminKey)> CreateTenant(this ServiceProcess service, string id)
    {
        using var op = service.Client(service.OperatorKey);
        var json = await (await op.PostJson("/v1/tenants", new { id, name = "Tenant " + id })).ExpectJson(HttpStatusCode.Created);
        return (id, json["adminKey"]!.GetValue<string>());
    }

    public static async Task<JsonNode> Ingest(this HttpClient admin, string collection, object document)
    {
        var json = await (await admin.PostJson($"/v1/collections/{collection}/documents?wait=true", document)).ExpectJson(HttpStatusCode.OK);
        Assert.True(json["status"]!.GetValue<string>() == "indexed", json.ToJsonString());
        return json;
    }

    public static async Task<JsonArray> Search(this HttpClient client, string collection, string query, int topK = 5)
    {
        var json = await (await client.PostJson($"/v1/collections/{collection}/search", new { query, topK })).ExpectJson(HttpStatusCode.OK);
        return json["results"]!.AsArray();
    }

    public static string Str(this JsonNode? node, string name) => node![name]!.GetValue<string>();
}
