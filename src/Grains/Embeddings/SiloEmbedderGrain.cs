using Orleans.Concurrency;
using RagOrleans.Abstractions;

namespace RagOrleans.Grains.Embeddings;

/// <summary>
/// The embedder of one silo, addressed by that silo's address so a caller can choose where a batch runs. Reentrant:
/// concurrent batches meet in the silo's micro-batcher, which bounds the work on the cores.
/// </summary>
[GrainType("silo-embedder"), SiloTargetedPlacement, Reentrant]
public sealed class SiloEmbedderGrain(IEmbeddingModels models) : Grain, ISiloEmbedderGrain
{
    public Task<float[][]> Embed(string model, IReadOnlyList<string> texts, EmbeddingKind kind) =>
        models.Get(model).EmbedAsync(texts, kind);
}
