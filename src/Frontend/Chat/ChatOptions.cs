using RagOrleans.Grains.Chat;

namespace RagOrleans.Frontend.Chat;

/// <summary>
/// Chat generation, bound from <c>Rag:Chat</c>. The deployment's settings apply to every tenant; an entry of
/// <see cref="Tenants"/> overrides any of them for one tenant (its own endpoint, key or model, or no cache).
/// </summary>
public sealed class ChatOptions
{
    /// <summary>Configuration section.</summary>
    public const string Section = "Rag:Chat";

    /// <summary>The extractive answerer (built in, no model).</summary>
    public const string Extractive = "extractive";

    /// <summary>Any OpenAI-compatible chat-completions endpoint.</summary>
    public const string OpenAi = "openai";

    /// <summary><c>extractive</c> (the default) or <c>openai</c>.</summary>
    public string Provider { get; set; } = Extractive;

    /// <summary>Whether identical questions over an unchanged collection are answered from the response cache.</summary>
    public bool CacheEnabled { get; set; } = true;

    /// <summary>Whether follow-ups are rewritten by the model (when the provider is <c>openai</c>); otherwise locally.</summary>
    public bool RewriteWithModel { get; set; } = true;

    /// <summary>System instructions of the grounded prompt.</summary>
    public string SystemInstructions { get; set; } = ChatPrompt.DefaultSystemInstructions;

    /// <summary>The OpenAI-compatible endpoint.</summary>
    public OpenAiEndpointOptions OpenAI { get; set; } = new();

    /// <summary>Per-tenant overrides by tenant id.</summary>
    public Dictionary<string, TenantChatOptions> Tenants { get; set; } = new(StringComparer.Ordinal);

    /// <summary>The settings in force for <paramref name="tenantId"/>.</summary>
    public EffectiveChatSettings For(string tenantId)
    {
        var t = Tenants.GetValueOrDefault(tenantId);
        var o = OpenAI;
        var endpoint = new OpenAiEndpointOptions
        {
            BaseUrl = t?.OpenAI?.BaseUrl ?? o.BaseUrl,
            ApiKey = t?.OpenAI?.ApiKey ?? o.ApiKey,
            Model = t?.OpenAI?.Model ?? o.Model,
            Temperature = t?.OpenAI?.Temperature ?? o.Temperature,
            MaxCompletionTokens = t?.OpenAI?.MaxCompletionTokens ?? o.MaxCompletionTokens,
            ContextTokens = t?.OpenAI?.ContextTokens ?? o.ContextTokens,
        };
        var provider = (t?.Provider ?? Provider).Trim().ToLowerInvariant();
        if (provider is not (Extractive or OpenAi))
        {
            throw new InvalidOperationException($"Rag:Chat provider '{provider}' is unknown; use '{Extractive}' or '{OpenAi}'.");
        }

        if (provider == OpenAi && (string.IsNullOrWhiteSpace(endpoint.BaseUrl) || string.IsNullOrWhiteSpace(endpoint.Model)))
        {
            throw new InvalidOperationException("Rag:Chat provider 'openai' needs OpenAI:BaseUrl and OpenAI:Model.");
        }

        return new EffectiveChatSettings(provider, t?.CacheEnabled ?? CacheEnabled, RewriteWithModel, t?.SystemInstructions ?? SystemInstructions, endpoint);
    }
}

/// <summary>One tenant's overrides; an unset value takes the deployment's.</summary>
public sealed class TenantChatOptions
{
    /// <summary>See <see cref="ChatOptions.Provider"/>.</summary>
    public string? Provider { get; set; }

    /// <summary>See <see cref="ChatOptions.CacheEnabled"/>.</summary>
    public bool? CacheEnabled { get; set; }

    /// <summary>See <see cref="ChatOptions.SystemInstructions"/>.</summary>
    public string? SystemInstructions { get; set; }

    /// <summary>Endpoint overrides.</summary>
    public TenantOpenAiOptions? OpenAI { get; set; }
}

/// <summary>A tenant's endpoint overrides.</summary>
public sealed class TenantOpenAiOptions
{
    /// <summary>See <see cref="OpenAiEndpointOptions.BaseUrl"/>.</summary>
    public string? BaseUrl { get; set; }

    /// <summary>See <see cref="OpenAiEndpointOptions.ApiKey"/>.</summary>
    public string? ApiKey { get; set; }

    /// <summary>See <see cref="OpenAiEndpointOptions.Model"/>.</summary>
    public string? Model { get; set; }

    /// <summary>See <see cref="OpenAiEndpointOptions.Temperature"/>.</summary>
    public double? Temperature { get; set; }

    /// <summary>See <see cref="OpenAiEndpointOptions.MaxCompletionTokens"/>.</summary>
    public int? MaxCompletionTokens { get; set; }

    /// <summary>See <see cref="OpenAiEndpointOptions.ContextTokens"/>.</summary>
    public int? ContextTokens { get; set; }
}

/// <summary>An OpenAI-compatible chat-completions endpoint (vLLM, Ollama, LM Studio, OpenAI, Azure OpenAI's v1 API).</summary>
public sealed class OpenAiEndpointOptions
{
    /// <summary>Base URL up to and including the API version, e.g. <c>https://api.openai.com/v1</c> or <c>http://localhost:11434/v1</c>.</summary>
    public string? BaseUrl { get; set; }

    /// <summary>Sent as <c>Authorization: Bearer</c>; none when empty (local servers).</summary>
    public string? ApiKey { get; set; }

    /// <summary>The model name the endpoint serves.</summary>
    public string? Model { get; set; }

    /// <summary>Sampling temperature.</summary>
    public double Temperature { get; set; } = 0.2;

    /// <summary>Most tokens the model may write per answer.</summary>
    public int MaxCompletionTokens { get; set; } = 512;

    /// <summary>Token budget of the prompt (system, passages, history and question).</summary>
    public int ContextTokens { get; set; } = 3000;

    /// <summary>Time allowed for one attempt until the response headers (the first byte of a stream).</summary>
    public double AttemptTimeoutSeconds { get; set; } = 30;

    /// <summary>Time allowed for all attempts together, backoff included.</summary>
    public double TotalTimeoutSeconds { get; set; } = 90;

    /// <summary>Longest silence between two chunks of a streamed answer before it is abandoned.</summary>
    public double StreamIdleTimeoutSeconds { get; set; } = 30;

    /// <summary>Retries after a 429, 408, 5xx or connection failure (exponential backoff with jitter; Retry-After is honoured).</summary>
    public int MaxRetries { get; set; } = 3;

    /// <summary>First backoff delay.</summary>
    public double RetryDelaySeconds { get; set; } = 1;

    /// <summary>Failed share of calls in <see cref="BreakerSamplingSeconds"/> that opens the circuit.</summary>
    public double BreakerFailureRatio { get; set; } = 0.5;

    /// <summary>Fewest calls in the sampling window before the circuit may open.</summary>
    public int BreakerMinimumThroughput { get; set; } = 10;

    /// <summary>Sampling window of the circuit breaker.</summary>
    public double BreakerSamplingSeconds { get; set; } = 30;

    /// <summary>How long an open circuit sends every chat to the extractive fallback before it tries the endpoint again.</summary>
    public double BreakSeconds { get; set; } = 30;
}

/// <summary>The chat settings of one tenant.</summary>
public sealed record EffectiveChatSettings(string Provider, bool CacheEnabled, bool RewriteWithModel, string SystemInstructions, OpenAiEndpointOptions OpenAI);
