namespace RagOrleans.Grains.Ingestion;

/// <summary>
/// The readable text of a document after parsing, plus the structure the chunker needs.
/// </summary>
/// <param name="Text">Readable text with LF line endings; blank lines separate paragraphs.</param>
/// <param name="Sections">Non-overlapping spans over <paramref name="Text"/>, in order, covering its content.</param>
/// <param name="Title">The document title when one could be found.</param>
public sealed record ParsedDocument(string Text, IReadOnlyList<DocumentSection> Sections, string? Title);

/// <summary>
/// A span of <see cref="ParsedDocument.Text"/> that shares one heading context and page.
/// </summary>
/// <param name="Start">Offset of the first character of the section.</param>
/// <param name="Length">Number of characters in the section.</param>
/// <param name="HeadingPath">Nested headings joined by " &gt; ", e.g. "Timers and reminders &gt; Reminder usage"; null when the text has no headings.</param>
/// <param name="Page">One-based page number for paged formats; null otherwise.</param>
public sealed record DocumentSection(int Start, int Length, string? HeadingPath, int? Page);

/// <summary>
/// Turns the bytes of one source format into a <see cref="ParsedDocument"/>.
/// </summary>
public interface IDocumentParser
{
    /// <summary>Whether this parser handles the source type reported by <see cref="DocumentTypeSniffer.Detect"/>.</summary>
    bool CanParse(string sourceType);

    /// <summary>Parses the whole stream; the stream is read to its end but not disposed.</summary>
    ParsedDocument Parse(Stream content, string? fileName);
}

/// <summary>
/// Source type names produced by <see cref="DocumentTypeSniffer.Detect"/>.
/// </summary>
public static class DocumentTypes
{
    /// <summary>Plain text.</summary>
    public const string Text = "text";

    /// <summary>Markdown (CommonMark plus common extensions).</summary>
    public const string Markdown = "markdown";

    /// <summary>PDF; detected but not parsed yet.</summary>
    public const string Pdf = "pdf";

    /// <summary>Word Open XML; detected but not parsed yet.</summary>
    public const string Docx = "docx";

    /// <summary>HTML; detected but not parsed yet.</summary>
    public const string Html = "html";

    /// <summary>XML; detected but not parsed yet.</summary>
    public const string Xml = "xml";

    /// <summary>Anything else, typically binary content.</summary>
    public const string Unsupported = "unsupported";
}
