using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Telemetry;

namespace RagOrleans.Grains.Embeddings;

/// <summary>
/// The silo's one embedding model (one ONNX session, ~100 MB) behind the micro-batcher. Loaded in the
/// background at start so the silo comes up at once; readiness reports when it is usable.
/// </summary>
public sealed class OnnxEmbeddingService(IOptions<RagOptions> options, ILoggerFactory loggers, RagMetrics? metrics = null) : IEmbeddingService, IHostedService, IAsyncDisposable
{
    private readonly Lazy<(OnnxEmbeddingModel Model, EmbeddingBatcher Batcher)> _loaded = new(() =>
    {
        var model = new OnnxEmbeddingModel(
            new OnnxEmbeddingOptions { ModelPath = options.Value.ModelPath, VocabPath = options.Value.VocabPath },
            loggers.CreateLogger<OnnxEmbeddingModel>());
        return (model, new EmbeddingBatcher(model, new EmbeddingBatcherOptions(), loggers.CreateLogger<EmbeddingBatcher>(), metrics));
    });

    private static readonly EmbeddingModelDescriptor Descriptor = EmbeddingModelDescriptor.MiniLmL6V2;

    public string ModelName => Descriptor.Name;

    public int Dimensions => Descriptor.Dimensions;

    public int MaxTokens => Descriptor.MaxSequenceLength;

    public bool IsReady => _loaded.IsValueCreated;

    public ITokenCounter Tokenizer => _loaded.Value.Model.Tokenizer;

    public Task<float[][]> EmbedAsync(IReadOnlyList<string> texts, EmbeddingKind kind, CancellationToken cancellationToken = default) =>
        _loaded.Value.Batcher.EmbedManyAsync(texts, kind == EmbeddingKind.Query ? EmbeddingPurpose.Query : EmbeddingPurpose.Document, cancellationToken);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _ = Task.Run(() =>
        {
            try
            {
                var started = TimeProvider.System.GetTimestamp();
                _ = _loaded.Value;
                loggers.CreateLogger<OnnxEmbeddingService>().LogInformation("Embedding model {Model} loaded in {ElapsedMs:F0} ms",
                    ModelName, TimeProvider.System.GetElapsedTime(started).TotalMilliseconds);
            }
            catch (Exception ex)
            {
                loggers.CreateLogger<OnnxEmbeddingService>().LogCritical(ex, "Embedding model {Model} failed to load", ModelName);
            }
        }, CancellationToken.None);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        if (_loaded.IsValueCreated)
        {
            await _loaded.Value.Batcher.DisposeAsync();
            _loaded.Value.Model.Dispose();
        }
    }
}
