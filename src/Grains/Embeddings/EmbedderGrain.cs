using Orleans.Concurrency;
using RagOrleans.Abstractions;

namespace RagOrleans.Grains.Embeddings;

/// <summary>
/// Stateless front of the silo's model. Reentrant so concurrent callers reach the micro-batcher together;
/// the batcher, not the number of activations, bounds the work on the cores.
/// </summary>
[GrainType("embedder"), StatelessWorker, Reentrant]
public sealed class EmbedderGrain(IEmbeddingService embeddings) : Grain, IEmbedderGrain
{
    public Task<bool> IsReady() => Task.FromResult(embeddings.IsReady);

    public Task<float[][]> Embed(string model, IReadOnlyList<string> texts, EmbeddingKind kind)
    {
        if (!string.Equals(model, embeddings.ModelName, StringComparison.OrdinalIgnoreCase))
        {
            throw RagException.Invalid($"Unknown embedding model '{model}'. Available: {embeddings.ModelName}.");
        }

        return embeddings.EmbedAsync(texts, kind);
    }
}
