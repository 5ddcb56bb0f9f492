namespace RagOrleans.Grains.Embeddings;

/// <summary>
/// Receives the vectors of one model call made by <see cref="IEmbeddingModel.EmbedInGroups"/>: <paramref name="members"/>
/// are indexes into the submitted texts, and <paramref name="vectors"/> (indexed the same way) holds their vectors.
/// </summary>
public delegate void EmbeddedGroup(ReadOnlySpan<int> members, float[][] vectors);

/// <summary>A sentence embedding model: texts in, unit-length vectors out.</summary>
public interface IEmbeddingModel
{
    /// <summary>Which model this is; vectors of different models must not be compared.</summary>
    EmbeddingModelDescriptor Descriptor { get; }

    /// <summary>The model's own tokenizer, for sizing chunks in the same word pieces the model sees.</summary>
    ITokenCounter Tokenizer { get; }

    /// <summary>
    /// How many calls may usefully run at once: each call uses this many fewer cores than the machine has. A batcher
    /// runs that many workers. One unless the model says otherwise.
    /// </summary>
    int ParallelCalls => 1;

    /// <summary>
    /// Embeds <paramref name="texts"/> (each prefixed for <paramref name="purpose"/>) and returns one L2-normalised
    /// vector of <see cref="EmbeddingModelDescriptor.Dimensions"/> floats per text, in the same order. Texts longer
    /// than <see cref="EmbeddingModelDescriptor.MaxSequenceLength"/> word pieces are truncated. Thread-safe.
    /// </summary>
    float[][] Embed(IReadOnlyList<string> texts, EmbeddingPurpose purpose);

    /// <summary>
    /// Embeds <paramref name="texts"/> like <see cref="Embed"/>, as the model's own sequence of calls (length-sorted
    /// groups), and hands each group to <paramref name="groupDone"/> on the calling thread as soon as it has run,
    /// before the next group starts. The callback may embed other texts itself (more urgent work that arrived), so a
    /// large window of texts can be sorted as a whole without making that work wait for all of it.
    /// Models that cannot split their work report everything as one group.
    /// </summary>
    void EmbedInGroups(IReadOnlyList<string> texts, EmbeddingPurpose purpose, EmbeddedGroup groupDone)
    {
        ArgumentNullException.ThrowIfNull(groupDone);
        var vectors = Embed(texts, purpose);
        var members = new int[vectors.Length];
        for (var i = 0; i < members.Length; i++)
        {
            members[i] = i;
        }

        groupDone(members, vectors);
    }
}
