using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Xunit;

namespace RagOrleans.Integration.Tests;

/// <summary>The HTTP calls the cluster tests make through a frontend.</summary>
internal static class ClusterApi
{
    public static async Task<JsonNode> ExpectJson(this HttpResponseMessage response, HttpStatusCode status)
    {
        using (response)
        {
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == status, $"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri}: expected {(int)status} but got {(int)response.StatusCode}: {body}");
            return body.Length == 0 ? new JsonObject() : JsonNode.Parse(body) ?? new JsonObject();
        }
    }

    /// <summary>Creates a tenant as the operator; returns its first admin key.</summary>
    public static async Task<string> CreateTenant(this ClusterNode frontend, string operatorKey, string tenantId)
    {
        using var op = frontend.Client(operatorKey);
        var json = await (await op.PostAsJsonAsync("/v1/tenants", new { id = tenantId, name = "Tenant " + tenantId })).ExpectJson(HttpStatusCode.Created);
        return json.Str("adminKey");
    }

    public static async Task CreateCollection(this HttpClient admin, string name, int shards) =>
        await (await admin.PostAsJsonAsync("/v1/collections", new { name, shards })).ExpectJson(HttpStatusCode.Created);

    /// <summary>Creates a key; returns its id and secret.</summary>
    public static async Task<(string Id, string Key)> CreateKey(this HttpClient admin, string role, string userId)
    {
        var json = await (await admin.PostAsJsonAsync("/v1/keys", new { role, userId })).ExpectJson(HttpStatusCode.Created);
        return (json.Str("id"), json.Str("key"));
    }

    /// <summary>Uploads a text document with <c>?wait=true</c> and asserts it was indexed.</summary>
    public static async Task<JsonNode> Ingest(this HttpClient admin, string collection, string id, string text)
    {
        var json = await (await admin.PostAsJsonAsync($"/v1/collections/{collection}/documents?wait=true", new { id, text })).ExpectJson(HttpStatusCode.OK);
        Assert.True(json.Str("status") == "indexed", json.ToJsonString());
        return json;
    }

    /// <summary>Search results as (documentId, chunkId, score), best first.</summary>
    public static async Task<IReadOnlyList<Hit>> Search(this HttpClient client, string collection, string query, int topK = 5)
    {
        var json = await (await client.PostAsJsonAsync($"/v1/collections/{collection}/search", new { query, topK })).ExpectJson(HttpStatusCode.OK);
        return Hits(json);
    }

    public static IReadOnlyList<Hit> Hits(JsonNode json) =>
        json["results"]!.AsArray().Select(r => new Hit(r.Str("documentId"), r.Str("chunkId"), r!["score"]!.GetValue<float>())).ToList();

    public static string Str(this JsonNode? node, string name) =>
        node?[name]?.GetValue<string>() ?? throw new InvalidOperationException($"'{name}' missing in {node?.ToJsonString()}");

    /// <summary>A search hit.</summary>
    internal sealed record Hit(string DocumentId, string ChunkId, float Score);
}
