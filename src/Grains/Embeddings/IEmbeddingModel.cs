namespace RagOrleans.Grains.Embeddings;

/// <summary>A sentence embedding model: texts in, unit-length vectors out.</summary>
public interface IEmbeddingModel
{
    /// <summary>Which model this is; vectors of different models must not be compared.</summary>
    EmbeddingModelDescriptor Descriptor { get; }

    /// <summary>The model's own tokenizer, for sizing chunks in the same word pieces the model sees.</summary>
    ITokenCounter Tokenizer { get; }

    /// <summary>
    /// Embeds <paramref name="texts"/> (each prefixed for <paramref name="purpose"/>) and returns one L2-normalised
    /// vector of <see cref="EmbeddingModelDescriptor.Dimensions"/> floats per text, in the same order. Texts longer
    /// than <see cref="EmbeddingModelDescriptor.MaxSequenceLength"/> word pieces are truncated. Thread-safe.
    /// </summary>
    float[][] Embed(IReadOnlyList<string> texts, EmbeddingPurpose purpose);
}
