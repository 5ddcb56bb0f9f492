using Microsoft.Extensions.Logging;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Telemetry;

namespace RagOrleans.Grains.Embeddings;

/// <summary>
/// One embedding model (one ONNX session, ~100 MB) behind the micro-batcher, loaded on first use: a silo pays for
/// a model only once a collection uses it.
/// </summary>
public sealed class OnnxEmbeddingService : IEmbeddingService, IAsyncDisposable
{
    private readonly EmbeddingModelDescriptor _descriptor;
    private readonly Lazy<(OnnxEmbeddingModel Model, EmbeddingBatcher Batcher)> _loaded;

    /// <summary>Creates the service; nothing is loaded until the first embedding or <see cref="Load"/>.</summary>
    /// <param name="descriptor">The model.</param>
    /// <param name="modelPath">A model.onnx to load instead of the packaged one.</param>
    /// <param name="vocabPath">A vocab.txt to load instead of the packaged one.</param>
    /// <param name="loggers">Logger factory.</param>
    /// <param name="metrics">Batcher metrics, when the silo records them.</param>
    /// <param name="batching">How texts are grouped into model calls; the defaults when null.</param>
    /// <param name="threadsPerCall">Threads one model call uses (<see cref="OnnxEmbeddingOptions.IntraOpNumThreads"/>).</param>
    public OnnxEmbeddingService(EmbeddingModelDescriptor descriptor, string? modelPath, string? vocabPath, ILoggerFactory loggers, RagMetrics? metrics = null,
        EmbeddingBatcherOptions? batching = null, int threadsPerCall = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threadsPerCall, 1);
        _descriptor = descriptor;
        _loaded = new(() =>
        {
            var model = new OnnxEmbeddingModel(
                new OnnxEmbeddingOptions { Model = descriptor, ModelPath = modelPath, VocabPath = vocabPath, IntraOpNumThreads = threadsPerCall },
                loggers.CreateLogger<OnnxEmbeddingModel>());
            return (model, new EmbeddingBatcher(model, batching ?? new EmbeddingBatcherOptions(), loggers.CreateLogger<EmbeddingBatcher>(), metrics));
        });
    }

    /// <summary>The model served.</summary>
    public EmbeddingModelDescriptor Descriptor => _descriptor;

    public string ModelName => _descriptor.Name;

    public int Dimensions => _descriptor.Dimensions;

    public int MaxTokens => _descriptor.MaxSequenceLength;

    public bool IsReady => _loaded.IsValueCreated;

    public ITokenCounter Tokenizer => _loaded.Value.Model.Tokenizer;

    public Task<float[][]> EmbedAsync(IReadOnlyList<string> texts, EmbeddingKind kind, CancellationToken cancellationToken = default) =>
        _loaded.Value.Batcher.EmbedManyAsync(texts, kind == EmbeddingKind.Query ? EmbeddingPurpose.Query : EmbeddingPurpose.Document, cancellationToken);

    /// <summary>Loads the model now (blocking); a no-op once loaded. Thread-safe.</summary>
    public void Load() => _ = _loaded.Value;

    public async ValueTask DisposeAsync()
    {
        if (_loaded.IsValueCreated)
        {
            await _loaded.Value.Batcher.DisposeAsync();
            _loaded.Value.Model.Dispose();
        }
    }
}
