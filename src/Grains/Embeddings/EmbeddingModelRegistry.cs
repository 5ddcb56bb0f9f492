using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Telemetry;

namespace RagOrleans.Grains.Embeddings;

/// <summary>
/// The silo's embedding models, one lazily loaded <see cref="OnnxEmbeddingService"/> per catalog entry. The default
/// model is loaded in the background at start (readiness waits for it); any other is loaded by the first request that
/// names it, so a silo whose collections never use a model never holds it in memory.
/// </summary>
public sealed class EmbeddingModelRegistry : IEmbeddingModels, IHostedService, IAsyncDisposable
{
    private readonly Dictionary<string, OnnxEmbeddingService> _services = new(StringComparer.Ordinal);
    private readonly ILogger<EmbeddingModelRegistry> _logger;

    /// <summary>Creates the registry; <see cref="RagOptions.ModelPath"/> and <see cref="RagOptions.VocabPath"/> override the default model's files.</summary>
    public EmbeddingModelRegistry(IOptions<RagOptions> options, ILoggerFactory loggers, RagMetrics? metrics = null, IOptions<EmbeddingBatcherOptions>? batching = null)
    {
        _logger = loggers.CreateLogger<EmbeddingModelRegistry>();
        foreach (var model in EmbeddingModelCatalog.All)
        {
            var isDefault = model == EmbeddingModelCatalog.Default;
            _services[model.Name] = new OnnxEmbeddingService(
                model, isDefault ? options.Value.ModelPath : null, isDefault ? options.Value.VocabPath : null, loggers, metrics, batching?.Value,
                options.Value.EmbeddingThreadsPerCall);
        }

        Default = _services[EmbeddingModelCatalog.Default.Name];
    }

    /// <summary>The default model's service (its tokenizer sizes chunks; every catalog model shares the BERT uncased vocabulary).</summary>
    public OnnxEmbeddingService Default { get; }

    /// <summary>True once the default model is loaded.</summary>
    public bool IsReady => Default.IsReady;

    /// <summary>Names of the models loaded so far.</summary>
    public IReadOnlyList<string> Loaded => [.. _services.Values.Where(s => s.IsReady).Select(s => s.ModelName)];

    /// <summary>The service of <paramref name="model"/> (canonical or short name); <see cref="RagException"/> (Invalid) if unknown.</summary>
    public IEmbeddingService Get(string model) => _services[EmbeddingModelCatalog.Resolve(model).Name];

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _ = Task.Run(() =>
        {
            try
            {
                var started = TimeProvider.System.GetTimestamp();
                Default.Load();
                _logger.LogInformation("Embedding model {Model} loaded in {ElapsedMs:F0} ms",
                    Default.ModelName, TimeProvider.System.GetElapsedTime(started).TotalMilliseconds);
            }
            catch (Exception ex)
            {
                _logger.LogCritical(ex, "Embedding model {Model} failed to load", Default.ModelName);
            }
        }, CancellationToken.None);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        foreach (var service in _services.Values)
        {
            await service.DisposeAsync();
        }
    }
}
