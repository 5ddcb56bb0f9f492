using Orleans.Concurrency;
using RagOrleans.Abstractions;

namespace RagOrleans.Grains.Embeddings;

/// <summary>
/// Stateless front of the silo's models. Reentrant so concurrent callers reach the micro-batcher together;
/// the batcher, not the number of activations, bounds the work on the cores.
/// </summary>
[GrainType("embedder"), StatelessWorker, Reentrant]
public sealed class EmbedderGrain(IEmbeddingModels models) : Grain, IEmbedderGrain
{
    public Task<bool> IsReady() => Task.FromResult(models.IsReady);

    public Task<float[][]> Embed(string model, IReadOnlyList<string> texts, EmbeddingKind kind) =>
        models.Get(model).EmbedAsync(texts, kind);
}
