namespace RagOrleans.Grains.Embeddings;

/// <summary>
/// Counts the word pieces a text becomes under an embedding model's tokenizer, without the
/// special tokens ([CLS], [SEP]) the model adds around every input.
/// </summary>
public interface ITokenCounter
{
    /// <summary>Number of word pieces <paramref name="text"/> tokenizes to, special tokens excluded.</summary>
    int CountTokens(ReadOnlySpan<char> text);
}
