using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using RagOrleans.Abstractions;
using RagOrleans.Frontend.Chat;
using RagOrleans.Frontend.Infrastructure;
using RagOrleans.Grains.Embeddings;

namespace RagOrleans.Frontend.Apis;

/// <summary>
/// OpenAI-compatible endpoints, so existing clients work unchanged with the same API key as bearer token:
/// <c>POST /v1/embeddings</c> (the local embedding model) and <c>POST /v1/chat/completions</c>, where
/// <c>model</c> = <c>rag:{collection}</c> answers from that collection (citations in an extra <c>citations</c> field).
/// </summary>
public static class OpenAiApi
{
    private const string ModelPrefix = "rag:";
    private const int MaxEmbeddingInputs = 256;
    private const int MaxEmbeddingInputChars = 32_000;

    public static IEndpointRouteBuilder MapOpenAiApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1").WithTags("OpenAI-compatible").RequireRole(Roles.Admin, Roles.User);
        group.MapPost("/embeddings", Embeddings).WithSummary("OpenAI-compatible embeddings with the local model (all-minilm-l6-v2)");
        group.MapPost("/chat/completions", ChatCompletions).WithSummary("OpenAI-compatible chat completions; model \"rag:{collection}\"");
        return app;
    }

    private static async Task<IResult> Embeddings(JsonElement body, IGrainFactory grains)
    {
        if (body.ValueKind != JsonValueKind.Object)
        {
            throw RagException.Invalid("The body must be a JSON object with 'input' and 'model'.");
        }

        var modelName = body.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString()! : EmbeddingModelCatalog.Default.Name;
        var model = EmbeddingModelCatalog.Resolve(modelName);
        var inputs = new List<string>();
        if (!body.TryGetProperty("input", out var input))
        {
            throw RagException.Invalid("'input' is required: a string or an array of strings.");
        }

        if (input.ValueKind == JsonValueKind.String)
        {
            inputs.Add(input.GetString()!);
        }
        else if (input.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in input.EnumerateArray())
            {
                inputs.Add(item.ValueKind == JsonValueKind.String
                    ? item.GetString()!
                    : throw RagException.Invalid("'input' must be a string or an array of strings (token arrays are not supported)."));
            }
        }
        else
        {
            throw RagException.Invalid("'input' must be a string or an array of strings.");
        }

        if (inputs.Count is 0 or > MaxEmbeddingInputs)
        {
            throw RagException.Invalid($"'input' must hold between 1 and {MaxEmbeddingInputs} strings.");
        }

        if (inputs.Any(i => i.Length == 0 || i.Length > MaxEmbeddingInputChars))
        {
            throw RagException.Invalid($"Every input must be a non-empty string of at most {MaxEmbeddingInputChars} characters.");
        }

        if (body.TryGetProperty("dimensions", out var dims) && dims.ValueKind == JsonValueKind.Number && dims.GetInt32() != model.Dimensions)
        {
            throw RagException.Invalid($"'{model.Name}' has {model.Dimensions} dimensions; 'dimensions' cannot change that.");
        }

        var format = body.TryGetProperty("encoding_format", out var f) && f.ValueKind == JsonValueKind.String ? f.GetString() : "float";
        if (format is not ("float" or "base64"))
        {
            throw RagException.Invalid("'encoding_format' must be 'float' or 'base64'.");
        }

        var vectors = await grains.Reference<IEmbedderGrain>(0).Embed(model.Name, inputs, EmbeddingKind.Document);
        var tokens = await grains.Reference<ITokenizerGrain>(0).Count(model.Name, inputs);
        var data = new JsonArray();
        for (var i = 0; i < vectors.Length; i++)
        {
            JsonNode embedding = format == "base64"
                ? JsonValue.Create(Convert.ToBase64String(MemoryMarshal.AsBytes(vectors[i].AsSpan())))
                : new JsonArray([.. vectors[i].Select(v => (JsonNode)JsonValue.Create(v))]);
            data.Add(new JsonObject { ["object"] = "embedding", ["index"] = i, ["embedding"] = embedding });
        }

        var total = tokens.Sum();
        return Results.Json(new JsonObject
        {
            ["object"] = "list",
            ["data"] = data,
            ["model"] = model.Name,
            ["usage"] = new JsonObject { ["prompt_tokens"] = total, ["total_tokens"] = total },
        });
    }

    private static async Task<IResult> ChatCompletions(
        JsonElement body, HttpContext http, ChatService chat, IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json)
    {
        var principal = AuthenticationMiddleware.Principal(http)!;
        if (body.ValueKind != JsonValueKind.Object)
        {
            throw RagException.Invalid("The body must be a JSON object with 'model' and 'messages'.");
        }

        var model = body.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString()! : "";
        if (!model.StartsWith(ModelPrefix, StringComparison.Ordinal))
        {
            throw RagException.Invalid($"'model' must name a collection as '{ModelPrefix}{{collection}}', e.g. '{ModelPrefix}docs'.");
        }

        var collection = Ids.RequireName(model[ModelPrefix.Length..], "collection name");
        var (question, history) = ReadMessages(body);
        var topK = body.TryGetProperty("top_k", out var k) && k.ValueKind == JsonValueKind.Number ? k.GetInt32() : 5;
        if (topK is < 1 or > 20)
        {
            throw RagException.Invalid("top_k must be between 1 and 20.");
        }

        var stream = body.TryGetProperty("stream", out var s) && s.ValueKind == JsonValueKind.True;
        var includeUsage = body.TryGetProperty("stream_options", out var so) && so.ValueKind == JsonValueKind.Object
            && so.TryGetProperty("include_usage", out var iu) && iu.ValueKind == JsonValueKind.True;
        var id = "chatcmpl-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var invocation = new ChatInvocation(principal.Tenant, principal.User, collection, question, null, history, topK, stream);
        var options = json.Value.SerializerOptions;
        if (!stream)
        {
            var result = await chat.RunAsync(invocation, _ => Task.CompletedTask, _ => Task.CompletedTask, http.RequestAborted);
            var response = Envelope(id, created, model, "chat.completion");
            response["choices"] = new JsonArray(new JsonObject
            {
                ["index"] = 0,
                ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = result.Answer },
                ["finish_reason"] = "stop",
                ["logprobs"] = null,
            });
            response["usage"] = Usage(result.Usage);
            AddRag(response, result.Citations, result.RewrittenQuery, result.Provider, result.Fallback, result.Cached, options);
            return Results.Json(response);
        }

        var started = false;
        async Task WriteAsync(JsonNode chunk)
        {
            if (!started)
            {
                http.Response.StatusCode = StatusCodes.Status200OK;
                http.Response.ContentType = "text/event-stream; charset=utf-8";
                http.Response.Headers.CacheControl = "no-cache";
                http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpResponseBodyFeature>()?.DisableBuffering();
                started = true;
            }

            await http.Response.WriteAsync("data: " + chunk.ToJsonString() + "\n\n", Encoding.UTF8, http.RequestAborted);
            await http.Response.Body.FlushAsync(http.RequestAborted);
        }

        JsonObject Chunk(JsonObject delta, string? finish)
        {
            var c = Envelope(id, created, model, "chat.completion.chunk");
            c["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = delta, ["finish_reason"] = finish, ["logprobs"] = null });
            return c;
        }

        try
        {
            var result = await chat.RunAsync(
                invocation,
                start =>
                {
                    var first = Chunk(new JsonObject { ["role"] = "assistant", ["content"] = "" }, null);
                    AddRag(first, start.Citations, start.RewrittenQuery, null, null, null, options);
                    return WriteAsync(first);
                },
                delta => WriteAsync(Chunk(new JsonObject { ["content"] = delta }, null)),
                http.RequestAborted);
            var last = Chunk(new JsonObject(), "stop");
            AddRag(last, null, null, result.Provider, result.Fallback, result.Cached, options);
            await WriteAsync(last);
            if (includeUsage)
            {
                var usage = Envelope(id, created, model, "chat.completion.chunk");
                usage["choices"] = new JsonArray();
                usage["usage"] = Usage(result.Usage);
                await WriteAsync(usage);
            }

            await http.Response.WriteAsync("data: [DONE]\n\n", http.RequestAborted);
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            // The client went away; generation was cancelled with it.
        }
        catch (Exception e) when (started && !http.RequestAborted.IsCancellationRequested)
        {
            var problem = ServerSentEvents.Problem(e, http, out _);
            await WriteAsync(new JsonObject
            {
                ["error"] = new JsonObject { ["message"] = problem.Detail, ["type"] = problem.Title, ["code"] = problem.Status },
            });
        }

        return Results.Empty;
    }

    /// <summary>The last user message is the question; earlier user/assistant pairs are the history; system messages are ignored (the deployment's instructions apply).</summary>
    private static (string Question, List<(string Question, string Answer)> History) ReadMessages(JsonElement body)
    {
        if (!body.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array || messages.GetArrayLength() == 0)
        {
            throw RagException.Invalid("'messages' must be a non-empty array.");
        }

        var list = new List<(string Role, string Content)>();
        foreach (var message in messages.EnumerateArray())
        {
            var role = message.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()! : "";
            list.Add((role, Content(message)));
        }

        var last = list.FindLastIndex(x => x.Role == "user");
        if (last < 0)
        {
            throw RagException.Invalid("'messages' must contain a user message.");
        }

        var question = SearchApi.RequireText(list[last].Content, "messages[].content");
        var history = new List<(string Question, string Answer)>();
        string? pending = null;
        foreach (var (role, content) in list.Take(last))
        {
            if (role == "user")
            {
                pending = content;
            }
            else if (role == "assistant" && pending is not null)
            {
                history.Add((pending, content));
                pending = null;
            }
        }

        return (question, history);
    }

    private static string Content(JsonElement message)
    {
        if (!message.TryGetProperty("content", out var content) || content.ValueKind == JsonValueKind.Null)
        {
            return "";
        }

        if (content.ValueKind == JsonValueKind.String)
        {
            return content.GetString()!;
        }

        if (content.ValueKind == JsonValueKind.Array)
        {
            var sb = new StringBuilder();
            foreach (var part in content.EnumerateArray())
            {
                if (part.TryGetProperty("type", out var t) && t.GetString() == "text" && part.TryGetProperty("text", out var text))
                {
                    sb.Append(text.GetString());
                }
            }

            return sb.ToString();
        }

        throw RagException.Invalid("A message's 'content' must be a string or an array of text parts.");
    }

    private static JsonObject Envelope(string id, long created, string model, string kind) => new()
    {
        ["id"] = id,
        ["object"] = kind,
        ["created"] = created,
        ["model"] = model,
    };

    private static JsonObject Usage(ChatUsage usage) => new()
    {
        ["prompt_tokens"] = usage.PromptTokens,
        ["completion_tokens"] = usage.CompletionTokens,
        ["total_tokens"] = usage.TotalTokens,
    };

    /// <summary>The RAG extras standard clients ignore: <c>citations</c> and <c>rag</c> (rewritten query, provider, fallback, cached).</summary>
    private static void AddRag(
        JsonObject target, IReadOnlyList<Citation>? citations, string? rewrittenQuery, string? provider, bool? fallback, bool? cached, JsonSerializerOptions options)
    {
        if (citations is not null)
        {
            target["citations"] = JsonSerializer.SerializeToNode(citations.Select(CitationResponse.From).ToList(), options);
        }

        var rag = new JsonObject();
        if (rewrittenQuery is not null)
        {
            rag["rewrittenQuery"] = rewrittenQuery;
        }

        if (provider is not null)
        {
            rag["provider"] = provider;
            rag["fallback"] = fallback;
            rag["cached"] = cached;
        }

        target["rag"] = rag;
    }
}
