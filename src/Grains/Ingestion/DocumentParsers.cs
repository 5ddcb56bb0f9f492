namespace RagOrleans.Grains.Ingestion;

/// <summary>
/// The parser for each source type reported by <see cref="DocumentTypeSniffer.Detect"/>.
/// </summary>
public sealed class DocumentParsers
{
    private readonly IDocumentParser[] _parsers;

    /// <summary>Creates the registry over every built-in parser.</summary>
    /// <param name="limits">Resource limits for the binary and markup parsers; <see cref="DocumentParserLimits.Default"/> when null.</param>
    public DocumentParsers(DocumentParserLimits? limits = null)
    {
        _parsers =
        [
            new MarkdownParser(),
            new PlainTextParser(),
            new PdfParser(limits),
            new DocxParser(limits),
            new HtmlParser(limits),
            new XmlParser(limits),
        ];
    }

    /// <summary>All registered parsers.</summary>
    public IReadOnlyList<IDocumentParser> All => _parsers;

    /// <summary>The parser for <paramref name="sourceType"/>.</summary>
    /// <exception cref="DocumentParseException">No parser reads this type (<see cref="DocumentFailure.Unsupported"/>).</exception>
    public IDocumentParser For(string sourceType) =>
        Array.Find(_parsers, p => p.CanParse(sourceType))
        ?? throw new DocumentParseException(
            string.IsNullOrWhiteSpace(sourceType) || string.Equals(sourceType, DocumentTypes.Unsupported, StringComparison.OrdinalIgnoreCase)
                ? "This file type is not supported; upload PDF, Word (.docx), HTML, XML, Markdown or plain text."
                : $"Documents of type '{sourceType}' are not supported; upload PDF, Word (.docx), HTML, XML, Markdown or plain text.",
            DocumentFailure.Unsupported);
}
