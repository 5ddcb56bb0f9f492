using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Polly.CircuitBreaker;
using Polly.Timeout;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Chat;

namespace RagOrleans.Frontend.Chat;

/// <summary>The provider could not answer (after retries, with the circuit open, or its stream broke).</summary>
public sealed class ChatProviderException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A piece of a streamed completion: text, or the usage the endpoint reported at the end.</summary>
public readonly record struct CompletionChunk(string? Text, ChatUsage? Usage);

/// <summary>
/// Calls an OpenAI-compatible <c>/chat/completions</c> endpoint through the named HttpClient whose resilience
/// pipeline (per endpoint authority) times out, retries 429/5xx with backoff and breaks the circuit.
/// </summary>
public sealed class OpenAiChatClient(IHttpClientFactory httpClients, ILogger<OpenAiChatClient> logger)
{
    /// <summary>Name of the HttpClient (and its resilience pipeline).</summary>
    public const string HttpClientName = "rag-openai";

    /// <summary>Streams the completion of <paramref name="messages"/>; the usage (when the endpoint reports it) comes last.</summary>
    public async IAsyncEnumerable<CompletionChunk> StreamAsync(
        OpenAiEndpointOptions endpoint, IReadOnlyList<PromptMessage> messages, int maxTokens, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var response = await SendAsync(endpoint, messages, maxTokens, stream: true, cancellationToken).ConfigureAwait(false);
        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        using var reader = new StreamReader(body, Encoding.UTF8);
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var idleTimeout = TimeSpan.FromSeconds(Math.Max(1, endpoint.StreamIdleTimeoutSeconds));
        while (true)
        {
            idle.CancelAfter(idleTimeout);
            string? line;
            try
            {
                line = await reader.ReadLineAsync(idle.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new ChatProviderException($"The model's stream was silent for {idleTimeout.TotalSeconds:0} s.");
            }
            catch (IOException e) when (!cancellationToken.IsCancellationRequested)
            {
                throw new ChatProviderException("The model's stream broke off.", e);
            }

            if (line is null)
            {
                yield break;
            }

            if (!line.StartsWith("data:", StringComparison.Ordinal))
            {
                continue;
            }

            var data = line.AsSpan(5).Trim();
            if (data.SequenceEqual("[DONE]"))
            {
                yield break;
            }

            JsonNode? node;
            try
            {
                node = JsonNode.Parse(data.ToString());
            }
            catch (JsonException e)
            {
                throw new ChatProviderException("The model's stream sent a chunk that is not JSON.", e);
            }

            if (node?["error"] is { } error)
            {
                throw new ChatProviderException("The model reported an error mid-stream: " + (error["message"]?.ToString() ?? error.ToJsonString()));
            }

            // The closing usage chunk has an empty choices array.
            var choice = node?["choices"] is JsonArray { Count: > 0 } choices ? choices[0] : null;
            var text = choice?["delta"]?["content"] is JsonValue content && content.TryGetValue<string>(out var t) ? t : null;
            if (!string.IsNullOrEmpty(text))
            {
                yield return new CompletionChunk(text, null);
            }

            if (ReadUsage(node?["usage"]) is { } usage)
            {
                yield return new CompletionChunk(null, usage);
            }
        }
    }

    /// <summary>The whole completion at once (used for query rewriting).</summary>
    public async Task<(string Text, ChatUsage? Usage)> CompleteAsync(
        OpenAiEndpointOptions endpoint, IReadOnlyList<PromptMessage> messages, int maxTokens, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(endpoint, messages, maxTokens, stream: false, cancellationToken).ConfigureAwait(false);
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false));
        }
        catch (JsonException e)
        {
            throw new ChatProviderException("The model's answer is not JSON.", e);
        }

        var choice = node?["choices"] is JsonArray { Count: > 0 } choices ? choices[0] : null;
        var text = choice?["message"]?["content"] is JsonValue content && content.TryGetValue<string>(out var t) ? t
            : throw new ChatProviderException("The model's answer has no choices[0].message.content.");
        return (text, ReadUsage(node?["usage"]));
    }

    private async Task<HttpResponseMessage> SendAsync(
        OpenAiEndpointOptions endpoint, IReadOnlyList<PromptMessage> messages, int maxTokens, bool stream, CancellationToken cancellationToken)
    {
        var body = new JsonObject
        {
            ["model"] = endpoint.Model,
            ["messages"] = new JsonArray([.. messages.Select(m => (JsonNode)new JsonObject { ["role"] = m.Role, ["content"] = m.Content })]),
            ["temperature"] = endpoint.Temperature,
            ["max_tokens"] = maxTokens,
            ["stream"] = stream,
        };
        if (stream)
        {
            body["stream_options"] = new JsonObject { ["include_usage"] = true };
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, endpoint.BaseUrl!.TrimEnd('/') + "/chat/completions")
        {
            Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        if (!string.IsNullOrWhiteSpace(endpoint.ApiKey))
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", endpoint.ApiKey);
        }

        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(stream ? "text/event-stream" : "application/json"));
        var client = httpClients.CreateClient(HttpClientName);
        HttpResponseMessage response;
        try
        {
            response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        }
        catch (BrokenCircuitException e)
        {
            logger.LogWarning("Chat model at {Endpoint} skipped: circuit open", request.RequestUri!.Authority);
            throw new ChatProviderException("The model endpoint is failing; its circuit is open.", e);
        }
        catch (TimeoutRejectedException e)
        {
            throw new ChatProviderException("The model endpoint did not answer in time.", e);
        }
        catch (HttpRequestException e)
        {
            throw new ChatProviderException("The model endpoint could not be reached: " + e.Message, e);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ChatProviderException("The model endpoint did not answer in time.", e);
        }

        if (!response.IsSuccessStatusCode)
        {
            var status = (int)response.StatusCode;
            var detail = await ReadErrorAsync(response, cancellationToken).ConfigureAwait(false);
            response.Dispose();
            logger.LogWarning("Chat model at {Endpoint} answered {Status}: {Detail}", request.RequestUri!.Authority, status, detail);
            throw new ChatProviderException($"The model endpoint answered {status}: {detail}");
        }

        return response;
    }

    private static async Task<string> ReadErrorAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            return text.Length > 300 ? text[..300] : text;
        }
        catch (Exception e) when (e is HttpRequestException or IOException)
        {
            return response.ReasonPhrase ?? "";
        }
    }

    private static ChatUsage? ReadUsage(JsonNode? usage)
    {
        if (usage is not JsonObject u || u["prompt_tokens"] is null || u["completion_tokens"] is null)
        {
            return null;
        }

        return u["prompt_tokens"] is JsonValue p && p.TryGetValue<long>(out var prompt) && u["completion_tokens"] is JsonValue c && c.TryGetValue<long>(out var completion)
            ? new ChatUsage(prompt, completion)
            : null;
    }
}
