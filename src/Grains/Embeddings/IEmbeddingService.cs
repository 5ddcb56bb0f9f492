using RagOrleans.Abstractions;

namespace RagOrleans.Grains.Embeddings;

/// <summary>The silo's embedding model: one shared ONNX session behind a micro-batcher.</summary>
public interface IEmbeddingService
{
    /// <summary>Model name as used in collection settings and the OpenAI-compatible API.</summary>
    string ModelName { get; }

    /// <summary>Vector length.</summary>
    int Dimensions { get; }

    /// <summary>Most word pieces the model reads, special tokens included; longer input is truncated.</summary>
    int MaxTokens { get; }

    /// <summary>True once the model is loaded.</summary>
    bool IsReady { get; }

    /// <summary>The model's own tokenizer, for token-aware chunking.</summary>
    ITokenCounter Tokenizer { get; }

    /// <summary>Unit-length embeddings in input order.</summary>
    Task<float[][]> EmbedAsync(IReadOnlyList<string> texts, EmbeddingKind kind, CancellationToken cancellationToken = default);
}
