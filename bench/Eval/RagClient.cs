using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace RagOrleans.Bench.Eval;

/// <summary>A document's ingestion state as the listing reports it.</summary>
internal sealed record DocumentState(string Id, string Status, int ChunkCount, string? Error, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt);

/// <summary>One search hit (only the fields the harness needs).</summary>
internal sealed record SearchHit(string DocumentId, string ChunkId, float Score);

/// <summary>An HTTP failure with the service's problem detail.</summary>
internal sealed class RagApiException(HttpStatusCode status, string message) : Exception(message)
{
    public HttpStatusCode Status { get; } = status;
}

/// <summary>
/// The few routes of the public HTTP API the harness uses, with the bearer key of the caller. Transient
/// answers (429, 503, connection errors) are retried with backoff; everything else fails loudly.
/// </summary>
internal sealed class RagClient : IDisposable
{
    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private readonly HttpClient _http;

    public RagClient(Uri baseUrl, string key)
    {
        _http = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
        {
            BaseAddress = baseUrl,
            Timeout = TimeSpan.FromMinutes(2),
        };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
    }

    public Uri BaseUrl => _http.BaseAddress!;

    public RagClient WithKey(string key) => new(BaseUrl, key);

    public async Task<bool> Ready()
    {
        try
        {
            using var response = await _http.GetAsync(new Uri("readyz", UriKind.Relative));
            return response.IsSuccessStatusCode;
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }

    /// <summary>POST /v1/tenants; returns the first admin key.</summary>
    public async Task<string> CreateTenant(string id, string name)
    {
        using var doc = await Send(HttpMethod.Post, "v1/tenants", new { id, name });
        return doc!.RootElement.GetProperty("adminKey").GetString() ?? throw new InvalidOperationException("No adminKey in the tenant response.");
    }

    public async Task DeleteTenant(string id) => (await Send(HttpMethod.Delete, $"v1/tenants/{id}", null))?.Dispose();

    /// <summary>POST /v1/keys with role user; returns the secret.</summary>
    public async Task<string> CreateUserKey(string userId)
    {
        using var doc = await Send(HttpMethod.Post, "v1/keys", new { role = "user", userId });
        return doc!.RootElement.GetProperty("key").GetString() ?? throw new InvalidOperationException("No key in the key response.");
    }

    /// <summary>POST /v1/collections; returns the model the collection embeds with.</summary>
    public async Task<string> CreateCollection(string name, int? shards, string? model)
    {
        using var doc = await Send(HttpMethod.Post, "v1/collections", new { name, shards, model });
        return doc!.RootElement.TryGetProperty("model", out var m) ? m.GetString() ?? "?" : "?";
    }

    /// <summary>POST /v1/collections/{name}/documents without ?wait (202 once stored).</summary>
    public async Task AddDocument(string collection, string id, string title, string text) =>
        (await Send(HttpMethod.Post, $"v1/collections/{collection}/documents", new { id, title, text, format = "text" }))?.Dispose();

    /// <summary>Every document of the collection, following the listing's cursor.</summary>
    public async Task<List<DocumentState>> ListDocuments(string collection)
    {
        var all = new List<DocumentState>();
        string? cursor = null;
        do
        {
            var path = $"v1/collections/{collection}/documents?limit=1000" + (cursor is null ? "" : "&cursor=" + Uri.EscapeDataString(cursor));
            using var doc = await Send(HttpMethod.Get, path, null);
            var root = doc!.RootElement;
            foreach (var d in root.GetProperty("documents").EnumerateArray())
            {
                all.Add(new DocumentState(
                    d.GetProperty("id").GetString()!,
                    d.GetProperty("status").GetString()!,
                    d.GetProperty("chunkCount").GetInt32(),
                    d.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.String ? e.GetString() : null,
                    d.GetProperty("createdAt").GetDateTimeOffset(),
                    d.GetProperty("updatedAt").GetDateTimeOffset()));
            }

            cursor = root.TryGetProperty("nextCursor", out var next) && next.ValueKind == JsonValueKind.String ? next.GetString() : null;
        }
        while (cursor is not null);

        return all;
    }

    /// <summary>POST /v1/collections/{name}/search with an explicit mode.</summary>
    public async Task<List<SearchHit>> Search(string collection, string query, int topK, string mode)
    {
        using var doc = await Send(HttpMethod.Post, $"v1/collections/{collection}/search", new { query, topK, mode });
        return doc!.RootElement.GetProperty("results").EnumerateArray()
            .Select(r => new SearchHit(r.GetProperty("documentId").GetString()!, r.GetProperty("chunkId").GetString()!, r.GetProperty("score").GetSingle()))
            .ToList();
    }

    public void Dispose() => _http.Dispose();

    private async Task<JsonDocument?> Send(HttpMethod method, string path, object? body)
    {
        for (var attempt = 1; ; attempt++)
        {
            using var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative));
            if (body is not null)
            {
                request.Content = JsonContent.Create(body, options: JsonOptions);
            }

            try
            {
                using var response = await _http.SendAsync(request);
                var content = await response.Content.ReadAsStringAsync();
                if (response.IsSuccessStatusCode)
                {
                    return content.Length == 0 ? null : JsonDocument.Parse(content);
                }

                if (response.StatusCode is HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable && attempt < 6)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(250 << attempt));
                    continue;
                }

                throw new RagApiException(response.StatusCode, $"{method} /{path}: {(int)response.StatusCode} {Detail(content)}");
            }
            catch (HttpRequestException) when (attempt < 6)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(250 << attempt));
            }
        }
    }

    private static string Detail(string content)
    {
        try
        {
            using var doc = JsonDocument.Parse(content);
            return doc.RootElement.TryGetProperty("detail", out var detail) ? detail.GetString() ?? content : content;
        }
        catch (JsonException)
        {
            return content.Length <= 300 ? content : content[..300];
        }
    }
}
