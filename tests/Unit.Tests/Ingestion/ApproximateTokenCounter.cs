using RagOrleans.Grains.Embeddings;

namespace RagOrleans.Unit.Tests.Ingestion;

/// <summary>
/// Deterministic stand-in for the BERT WordPiece counter: BERT basic tokenisation (whitespace, every
/// punctuation or symbol character and every CJK character is a token), and words longer than six
/// characters cost ceil(length / 5) pieces, roughly what WordPiece does to rare long words.
/// </summary>
internal sealed class ApproximateTokenCounter : ITokenCounter
{
    public int CountTokens(ReadOnlySpan<char> text)
    {
        var count = 0;
        var word = 0;
        foreach (var c in text)
        {
            if (char.IsWhiteSpace(c) || char.IsControl(c))
            {
                count += Pieces(word);
                word = 0;
            }
            else if (IsPunctuation(c) || IsCjk(c))
            {
                count += Pieces(word) + 1;
                word = 0;
            }
            else
            {
                word++;
            }
        }

        return count + Pieces(word);
    }

    private static int Pieces(int length) => length == 0 ? 0 : length <= 6 ? 1 : (length + 4) / 5;

    private static bool IsPunctuation(char c) =>
        (c < 128 && !char.IsAsciiLetterOrDigit(c)) || char.IsPunctuation(c) || char.IsSymbol(c);

    private static bool IsCjk(char c) =>
        c is >= '\u4E00' and <= '\u9FFF' or >= '\u3400' and <= '\u4DBF' or >= '\uF900' and <= '\uFAFF' or >= '\u3040' and <= '\u30FF';
}
