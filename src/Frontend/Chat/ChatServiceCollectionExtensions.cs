using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Options;
using Polly;
using RagOrleans.Grains.Chat;

namespace RagOrleans.Frontend.Chat;

/// <summary>Registration of chat generation in the frontend.</summary>
public static class ChatServiceCollectionExtensions
{
    /// <summary>
    /// Chat options (<c>Rag:Chat</c>), the chat service, and the HttpClient for OpenAI-compatible endpoints with its
    /// resilience pipeline: a total timeout, retries with exponential backoff and jitter on 429/408/5xx and
    /// connection failures (Retry-After honoured), a circuit breaker, and a per-attempt timeout. Each endpoint
    /// authority gets its own pipeline instance, so one tenant's failing endpoint never opens another's circuit.
    /// </summary>
    public static IServiceCollection AddRagChat(this IServiceCollection services)
    {
        services.AddOptions<ChatOptions>().BindConfiguration(ChatOptions.Section);
        services.TryAddSingleton(new ExtractiveAnswerer(new ExtractiveAnswerOptions()));
        services.AddSingleton<OpenAiChatClient>();
        services.AddSingleton<ChatService>();
        services.AddHttpClient(OpenAiChatClient.HttpClientName, c => c.Timeout = Timeout.InfiniteTimeSpan)
            .AddResilienceHandler("rag-openai", static (pipeline, context) =>
            {
                var o = context.ServiceProvider.GetRequiredService<IOptions<ChatOptions>>().Value.OpenAI;
                pipeline.AddTimeout(TimeSpan.FromSeconds(Math.Max(1, o.TotalTimeoutSeconds)));
                if (o.MaxRetries > 0)
                {
                    pipeline.AddRetry(new HttpRetryStrategyOptions
                    {
                        MaxRetryAttempts = o.MaxRetries,
                        BackoffType = DelayBackoffType.Exponential,
                        UseJitter = true,
                        Delay = TimeSpan.FromSeconds(Math.Max(0, o.RetryDelaySeconds)),
                        MaxDelay = TimeSpan.FromSeconds(30),
                    });
                }

                pipeline.AddCircuitBreaker(new HttpCircuitBreakerStrategyOptions
                {
                    FailureRatio = Math.Clamp(o.BreakerFailureRatio, 0.01, 1),
                    MinimumThroughput = Math.Max(2, o.BreakerMinimumThroughput),
                    SamplingDuration = TimeSpan.FromSeconds(Math.Max(1, o.BreakerSamplingSeconds)),
                    BreakDuration = TimeSpan.FromSeconds(Math.Max(1, o.BreakSeconds)),
                });
                pipeline.AddTimeout(TimeSpan.FromSeconds(Math.Max(1, o.AttemptTimeoutSeconds)));
            })
            .SelectPipelineByAuthority();
        return services;
    }
}
