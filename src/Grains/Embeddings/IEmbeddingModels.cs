namespace RagOrleans.Grains.Embeddings;

/// <summary>The silo's embedding models by name; the seam the embedder grains use (and tests wrap to count or fail calls).</summary>
public interface IEmbeddingModels
{
    /// <summary>True once the default model is loaded.</summary>
    bool IsReady { get; }

    /// <summary>The service of <paramref name="model"/> (canonical or short name); <c>RagException</c> (Invalid) if unknown.</summary>
    IEmbeddingService Get(string model);
}
