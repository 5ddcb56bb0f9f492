using System.Text;

namespace RagOrleans.Grains.Common;

/// <summary>Whitespace normalisation shared by the parsers and the answerer.</summary>
internal static class Whitespace
{
    /// <summary>
    /// Collapses runs of whitespace (line breaks, NBSP, zero-width spaces and control characters included)
    /// to one space and trims both ends, keeping every other character as it is.
    /// </summary>
    public static string Collapse(ReadOnlySpan<char> text)
    {
        var sb = new StringBuilder(text.Length);
        var space = false;
        foreach (var c in text)
        {
            if (char.IsWhiteSpace(c) || c == '\u200B' || char.IsControl(c))
            {
                space = sb.Length > 0;
                continue;
            }

            if (space)
            {
                sb.Append(' ');
                space = false;
            }

            sb.Append(c);
        }

        return sb.ToString();
    }
}
