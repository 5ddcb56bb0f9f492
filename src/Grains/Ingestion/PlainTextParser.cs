namespace RagOrleans.Grains.Ingestion;

/// <summary>
/// Parses plain text: decodes the bytes, normalises line endings and emits one section
/// per paragraph (blank lines separate paragraphs).
/// </summary>
public sealed class PlainTextParser : IDocumentParser
{
    // A first line longer than this is prose, not a title.
    private const int MaxTitleLength = 120;

    /// <inheritdoc />
    public bool CanParse(string sourceType) =>
        string.Equals(sourceType, DocumentTypes.Text, StringComparison.OrdinalIgnoreCase);

    /// <inheritdoc />
    public ParsedDocument Parse(Stream content, string? fileName)
    {
        var text = TextDecoding.NormalizeNewLines(TextDecoding.Decode(TextDecoding.ReadAll(content)));
        if (text.Length > 0 && text[0] == '\uFEFF')
        {
            // A BOM that survived decoding (e.g. doubled) would otherwise become part of the title.
            text = text[1..];
        }

        return new ParsedDocument(text, SplitParagraphs(text), FindTitle(text));
    }

    /// <summary>Sections for each run of non-blank lines, trimmed to their visible content.</summary>
    internal static List<DocumentSection> SplitParagraphs(string text)
    {
        var sections = new List<DocumentSection>();
        var pos = 0;
        var paraStart = -1;
        var paraEnd = -1;
        while (pos <= text.Length)
        {
            var nl = text.IndexOf('\n', pos);
            var lineEnd = nl < 0 ? text.Length : nl;
            var line = text.AsSpan(pos, lineEnd - pos);
            if (line.IsWhiteSpace())
            {
                Flush();
            }
            else
            {
                var lead = line.Length - line.TrimStart().Length;
                var trail = line.Length - line.TrimEnd().Length;
                if (paraStart < 0)
                {
                    paraStart = pos + lead;
                }

                paraEnd = lineEnd - trail;
            }

            if (nl < 0)
            {
                break;
            }

            pos = nl + 1;
        }

        Flush();
        return sections;

        void Flush()
        {
            if (paraStart >= 0)
            {
                sections.Add(new DocumentSection(paraStart, paraEnd - paraStart, null, null));
                paraStart = -1;
            }
        }
    }

    private static string? FindTitle(string text)
    {
        foreach (var line in text.AsSpan().EnumerateLines())
        {
            var trimmed = line.Trim();
            if (trimmed.IsEmpty)
            {
                continue;
            }

            return trimmed.Length <= MaxTitleLength ? trimmed.ToString() : null;
        }

        return null;
    }
}
