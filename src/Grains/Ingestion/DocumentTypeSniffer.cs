using System.Text;

namespace RagOrleans.Grains.Ingestion;

/// <summary>
/// Decides what kind of document an upload is, trusting the bytes first and the file name and
/// declared content type only when the bytes are ordinary text.
/// </summary>
public static class DocumentTypeSniffer
{
    /// <summary>How many leading bytes <see cref="Detect"/> looks at; callers may pass more or fewer.</summary>
    public const int RecommendedHeadLength = 4096;

    private static ReadOnlySpan<byte> OleCompoundFileMagic => [0xD0, 0xCF, 0x11, 0xE0];

    /// <summary>
    /// Detects the source type of an upload.
    /// </summary>
    /// <param name="head">The first bytes of the content (ideally <see cref="RecommendedHeadLength"/>).</param>
    /// <param name="fileName">The uploaded file name, if any.</param>
    /// <param name="contentType">The declared MIME type, if any (parameters such as charset are ignored).</param>
    /// <returns>One of the <see cref="DocumentTypes"/> names.</returns>
    public static string Detect(ReadOnlySpan<byte> head, string? fileName, string? contentType)
    {
        if (IndexOf(head[..Math.Min(head.Length, 1024)], "%PDF-"u8) >= 0)
        {
            return DocumentTypes.Pdf;
        }

        var declaredDocx = HasExtension(fileName, ".docx") ||
            MediaType(contentType) == "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
        if (head.StartsWith("PK\u0003\u0004"u8))
        {
            // Only DOCX is a zip we plan to read; other Office or archive files are refused.
            return declaredDocx || IndexOf(head, "word/"u8) >= 0 ? DocumentTypes.Docx : DocumentTypes.Unsupported;
        }

        if (declaredDocx && head.StartsWith(OleCompoundFileMagic))
        {
            // A password-protected DOCX is an OLE container: let the DOCX parser say "encrypted" instead of "unsupported".
            return DocumentTypes.Docx;
        }

        var isUtf16 = TextDecoding.Detect(head, out var bom) != TextDecoding.Kind.Utf8;
        if (!isUtf16 && LooksBinary(head[bom..]))
        {
            return DocumentTypes.Unsupported;
        }

        var prefix = DecodePrefix(head);
        var markup = SniffMarkup(prefix);
        if (markup is not null)
        {
            return markup;
        }

        var byName = FromExtension(fileName) ?? FromContentType(contentType);
        if (byName is not null)
        {
            return byName;
        }

        return LooksLikeMarkdown(prefix) ? DocumentTypes.Markdown : DocumentTypes.Text;
    }

    private static string? SniffMarkup(string prefix)
    {
        var text = prefix.TrimStart();
        if (text.StartsWith("<!doctype html", StringComparison.OrdinalIgnoreCase) ||
            text.StartsWith("<html", StringComparison.OrdinalIgnoreCase))
        {
            return DocumentTypes.Html;
        }

        if (text.StartsWith("<?xml", StringComparison.OrdinalIgnoreCase))
        {
            // XHTML pages start with an XML declaration too.
            return text.Contains("<html", StringComparison.OrdinalIgnoreCase) ? DocumentTypes.Html : DocumentTypes.Xml;
        }

        return null;
    }

    private static string? FromExtension(string? fileName)
    {
        var ext = Path.GetExtension(fileName ?? string.Empty).ToUpperInvariant();
        return ext switch
        {
            ".MD" or ".MARKDOWN" or ".MDOWN" or ".MKD" => DocumentTypes.Markdown,
            ".TXT" or ".TEXT" or ".LOG" => DocumentTypes.Text,
            ".HTML" or ".HTM" or ".XHTML" => DocumentTypes.Html,
            ".XML" => DocumentTypes.Xml,
            ".PDF" => DocumentTypes.Pdf,
            ".DOCX" => DocumentTypes.Docx,
            _ => null,
        };
    }

    private static string? FromContentType(string? contentType) => MediaType(contentType) switch
    {
        "text/markdown" or "text/x-markdown" => DocumentTypes.Markdown,
        "text/plain" => DocumentTypes.Text,
        "text/html" or "application/xhtml+xml" => DocumentTypes.Html,
        "text/xml" or "application/xml" => DocumentTypes.Xml,
        "application/pdf" => DocumentTypes.Pdf,
        _ => null,
    };

    private static string MediaType(string? contentType)
    {
        if (string.IsNullOrWhiteSpace(contentType))
        {
            return string.Empty;
        }

        var semicolon = contentType.IndexOf(';', StringComparison.Ordinal);
        return (semicolon >= 0 ? contentType[..semicolon] : contentType).Trim().ToLowerInvariant();
    }

    private static bool HasExtension(string? fileName, string extension) =>
        fileName is not null && fileName.EndsWith(extension, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// NULs never occur in UTF-8 text, and many C0 controls mean an executable, image or archive.
    /// </summary>
    private static bool LooksBinary(ReadOnlySpan<byte> bytes)
    {
        var controls = 0;
        foreach (var b in bytes)
        {
            if (b == 0)
            {
                return true;
            }

            if (b < 0x20 && b is not (byte)'\n' and not (byte)'\r' and not (byte)'\t' and not 0x0C and not 0x1B)
            {
                controls++;
            }
        }

        return bytes.Length > 0 && controls > bytes.Length / 10;
    }

    /// <summary>Markdown without a name or type: front matter or ATX headings are a strong hint.</summary>
    private static bool LooksLikeMarkdown(string prefix)
    {
        if (prefix.StartsWith("---\n", StringComparison.Ordinal) || prefix.StartsWith("---\r\n", StringComparison.Ordinal))
        {
            return true;
        }

        foreach (var line in prefix.AsSpan().EnumerateLines())
        {
            if (line.StartsWith("# ") || line.StartsWith("## ") || line.StartsWith("```"))
            {
                return true;
            }
        }

        return false;
    }

    private static string DecodePrefix(ReadOnlySpan<byte> head)
    {
        var kind = TextDecoding.Detect(head, out var bom);
        var body = head[bom..];
        return kind switch
        {
            TextDecoding.Kind.Utf16LittleEndian => Encoding.Unicode.GetString(body[..(body.Length & ~1)]),
            TextDecoding.Kind.Utf16BigEndian => Encoding.BigEndianUnicode.GetString(body[..(body.Length & ~1)]),
            // Lenient on purpose: the head may end in the middle of a multi-byte character.
            _ => Encoding.UTF8.GetString(body),
        };
    }

    private static int IndexOf(ReadOnlySpan<byte> haystack, ReadOnlySpan<byte> needle) => haystack.IndexOf(needle);
}
