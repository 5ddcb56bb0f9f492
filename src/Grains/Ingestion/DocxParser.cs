using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;
using System.Xml;
using DocumentFormat.OpenXml;
using DocumentFormat.OpenXml.Packaging;
using DocumentFormat.OpenXml.Wordprocessing;

namespace RagOrleans.Grains.Ingestion;

/// <summary>
/// Parses Word (.docx) documents with the Open XML SDK: body paragraphs and tables in order, heading
/// styles and outline levels building <see cref="DocumentSection.HeadingPath"/>, then footnotes,
/// endnotes and each distinct header/footer once. The zip is inspected before the SDK sees it so
/// decompression bombs, encrypted files and other Office formats are refused with a clear reason.
/// </summary>
public sealed partial class DocxParser(DocumentParserLimits? limits = null) : IDocumentParser
{
    // Below this the compression ratio is not checked: tiny parts of repetitive XML compress very well.
    private const long RatioFloorBytes = 16L * 1024 * 1024;
    private const int MaxNesting = 32;

    private readonly DocumentParserLimits _limits = limits ?? DocumentParserLimits.Default;

    /// <inheritdoc />
    public bool CanParse(string sourceType) =>
        string.Equals(sourceType, DocumentTypes.Docx, StringComparison.OrdinalIgnoreCase);

    /// <inheritdoc />
    public ParsedDocument Parse(Stream content, string? fileName)
    {
        var bytes = TextDecoding.ReadAll(content);
        CheckEnvelope(bytes);
        var clock = Stopwatch.StartNew();
        try
        {
            using var stream = new MemoryStream(bytes, writable: false);
            // Markup-compatibility processing is left off: it drops elements that newer Word versions
            // no longer write (smart tags), losing their text; mc:Fallback branches are skipped by hand.
            using var document = WordprocessingDocument.Open(stream, isEditable: false);
            var main = document.MainDocumentPart ?? throw NotWord();
            var body = main.Document?.Body ?? throw new DocumentParseException("The Word document has no body.", DocumentFailure.Corrupt);
            return new Reader(document, main, _limits, clock).Read(body);
        }
        catch (DocumentParseException)
        {
            throw;
        }
        catch (OpenXmlPackageException ex)
        {
            throw new DocumentParseException("The file is not a valid Word document.", DocumentFailure.Corrupt, ex);
        }
        catch (Exception ex) when (ex is InvalidDataException or XmlException or IOException or InvalidOperationException
            or ArgumentException or FormatException or NotSupportedException)
        {
            throw new DocumentParseException("The Word document is damaged and cannot be read.", DocumentFailure.Corrupt, ex);
        }
    }

    private static DocumentParseException NotWord() =>
        new("The archive is not a Word document (.docx); only Word documents are supported.", DocumentFailure.Unsupported);

    /// <summary>
    /// Refuses what the SDK should never be handed: empty input, password-protected files (which
    /// Office stores as an OLE compound file, not a zip), legacy .doc, non-Office zips and zip bombs.
    /// </summary>
    private void CheckEnvelope(byte[] bytes)
    {
        if (bytes.Length == 0)
        {
            throw new DocumentParseException("The file is empty.", DocumentFailure.Empty);
        }

        if (bytes.AsSpan().StartsWith((ReadOnlySpan<byte>)[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]))
        {
            // An encrypted OOXML file is a compound file whose streams include "EncryptedPackage" (UTF-16 names).
            var encrypted = bytes.AsSpan().IndexOf(Encoding.Unicode.GetBytes("EncryptedPackage")) >= 0;
            throw encrypted
                ? new DocumentParseException("The Word document is password-protected; remove the password and upload it again.", DocumentFailure.Encrypted)
                : new DocumentParseException("Legacy Word 97-2003 (.doc) files are not supported; save the document as .docx.", DocumentFailure.Unsupported);
        }

        if (!bytes.AsSpan().StartsWith("PK\u0003\u0004"u8))
        {
            throw new DocumentParseException("The file is not a valid Word document (not a zip package).", DocumentFailure.Corrupt);
        }

        try
        {
            using var zip = new ZipArchive(new MemoryStream(bytes, writable: false), ZipArchiveMode.Read);
            var names = zip.Entries.Select(e => e.FullName).ToHashSet(StringComparer.OrdinalIgnoreCase);
            if (!names.Contains("[Content_Types].xml") || names.Contains("xl/workbook.xml") || names.Contains("ppt/presentation.xml"))
            {
                throw NotWord();
            }

            var cap = Math.Min(_limits.MaxUncompressedBytes, Math.Max(RatioFloorBytes, (long)_limits.MaxCompressionRatio * bytes.Length));
            var declared = zip.Entries.Sum(e => e.Length);
            if (declared > cap)
            {
                throw TooLarge(declared);
            }

            // Sizes in the zip directory are claims, not facts: inflate everything once, counting, and
            // stop as soon as the real output passes the cap.
            var buffer = new byte[81920];
            long inflated = 0;
            foreach (var entry in zip.Entries)
            {
                using var part = entry.Open();
                int read;
                while ((read = part.Read(buffer)) > 0)
                {
                    inflated += read;
                    if (inflated > cap)
                    {
                        throw TooLarge(inflated);
                    }
                }
            }
        }
        catch (InvalidDataException ex)
        {
            throw new DocumentParseException("The Word document is damaged (invalid zip data).", DocumentFailure.Corrupt, ex);
        }

        DocumentParseException TooLarge(long size) => new(
            $"The Word document expands to more than {size / (1024 * 1024):N0} MB when unpacked; the limit is {_limits.MaxUncompressedBytes / (1024 * 1024):N0} MB and {_limits.MaxCompressionRatio}x the file size.",
            DocumentFailure.TooLarge);
    }

    [GeneratedRegex(@"^heading\s*([1-9])$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex HeadingStyleName();

    private sealed class Reader(WordprocessingDocument document, MainDocumentPart main, DocumentParserLimits limits, Stopwatch clock)
    {
        private readonly DocumentTextBuilder _builder = new(limits.MaxTextCharacters);
        private readonly Dictionary<string, int?> _styleLevels = ReadStyleLevels(main);
        private string? _titleStyleText;

        public ParsedDocument Read(Body body)
        {
            ReadBlocks(body, depth: 0);
            ReadNotes("Footnotes", main.FootnotesPart?.Footnotes?.Elements<Footnote>()
                .Where(n => n.Type is null || n.Type.Value == FootnoteEndnoteValues.Normal));
            ReadNotes("Endnotes", main.EndnotesPart?.Endnotes?.Elements<Endnote>()
                .Where(n => n.Type is null || n.Type.Value == FootnoteEndnoteValues.Normal));
            ReadHeadersAndFooters();

            // Templates leave placeholders such as "1" or "Title" in the core properties.
            var title = DocumentTextBuilder.Collapse(document.PackageProperties.Title ?? string.Empty);
            var meaningful = title.Count(char.IsLetter) >= 2 && !title.Equals("Title", StringComparison.OrdinalIgnoreCase);
            return _builder.Build(meaningful ? title : _titleStyleText);
        }

        /// <summary>False for paragraphs inside an mc:Fallback branch, which repeats the mc:Choice content.</summary>
        private static bool IsPrimary(Paragraph paragraph) => !paragraph.Ancestors<AlternateContentFallback>().Any();

        private void ReadBlocks(OpenXmlElement container, int depth)
        {
            if (depth > MaxNesting)
            {
                return;
            }

            foreach (var child in container.ChildElements)
            {
                if (clock.Elapsed > limits.MaxParseTime)
                {
                    throw new DocumentParseException(
                        $"The Word document took longer than {limits.MaxParseTime.TotalSeconds:N0} s to read and was abandoned.", DocumentFailure.TooLarge);
                }

                switch (child)
                {
                    case Paragraph paragraph:
                        ReadParagraph(paragraph, depth);
                        break;
                    case Table table:
                        ReadTable(table);
                        break;
                    case SectionProperties or SdtProperties or SdtEndCharProperties or AlternateContentFallback:
                        break;
                    default:
                        // Content controls, custom XML and similar wrappers hold ordinary blocks.
                        ReadBlocks(child, depth + 1);
                        break;
                }
            }
        }

        private void ReadParagraph(Paragraph paragraph, int depth)
        {
            var boxes = new List<OpenXmlElement>();
            var text = ParagraphText(paragraph, boxes);
            var level = HeadingLevel(paragraph);
            if (level is not null && text.Length > 0 && !text.Contains('\n', StringComparison.Ordinal))
            {
                if (level == 0)
                {
                    _titleStyleText ??= text;
                }

                _builder.AddHeading(level.Value, text);
            }
            else
            {
                var listItem = paragraph.ParagraphProperties?.NumberingProperties is not null;
                _builder.Append(listItem ? "- " + text : text, tight: listItem);
            }

            foreach (var box in boxes)
            {
                ReadBlocks(box, depth + 1);
            }
        }

        /// <summary>Heading level (0 = Title style, 1-9 = Heading 1-9 or outline level), null for body text.</summary>
        private int? HeadingLevel(Paragraph paragraph)
        {
            var properties = paragraph.ParagraphProperties;
            var outline = properties?.OutlineLevel?.Val?.Value;
            if (outline is >= 0 and <= 8)
            {
                return outline + 1;
            }

            var styleId = properties?.ParagraphStyleId?.Val?.Value;
            return styleId is not null && _styleLevels.TryGetValue(styleId, out var level) ? level : null;
        }

        private static string ParagraphText(OpenXmlElement paragraph, List<OpenXmlElement> boxes)
        {
            var sb = new StringBuilder();
            Walk(paragraph);
            return DocumentTextBuilder.Collapse(sb.Replace('\n', '\u2028').ToString()).Replace('\u2028', '\n');

            void Walk(OpenXmlElement element)
            {
                foreach (var child in element.ChildElements)
                {
                    switch (child)
                    {
                        case Text t:
                            sb.Append(t.Text);
                            break;
                        case TabChar or PositionalTab:
                            sb.Append(' ');
                            break;
                        case Break or CarriageReturn:
                            sb.Append('\n');
                            break;
                        case NoBreakHyphen:
                            sb.Append('-');
                            break;
                        case OpenXmlUnknownElement { LocalName: "t" } unknown:
                            // Elements the SDK does not model (e.g. w:smartTag) keep their runs as unknown
                            // elements, so their w:t children are not typed as Text.
                            sb.Append(unknown.InnerText);
                            break;
                        case OpenXmlUnknownElement { LocalName: "delText" or "instrText" }:
                            break;
                        case TextBoxContent box:
                            boxes.Add(box);
                            break;
                        case DeletedRun or DeletedText or FieldCode or DeletedFieldCode or ParagraphProperties or RunProperties or AlternateContentFallback:
                            break;
                        default:
                            Walk(child);
                            break;
                    }
                }
            }
        }

        private void ReadTable(Table table)
        {
            var first = true;
            foreach (var row in table.Elements<TableRow>())
            {
                var cells = row.Elements<TableCell>()
                    .Select(cell => DocumentTextBuilder.Collapse(string.Join(' ', cell.Descendants<Paragraph>()
                        .Where(p => !p.Ancestors<TextBoxContent>().Any() && !p.Ancestors<AlternateContentFallback>().Any())
                        .Select(p => ParagraphText(p, [])))))
                    .ToList();
                if (cells.All(c => c.Length == 0))
                {
                    continue;
                }

                _builder.Append(string.Join(" | ", cells), tight: !first);
                first = false;
            }
        }

        private void ReadNotes(string heading, IEnumerable<OpenXmlCompositeElement>? notes)
        {
            var texts = notes?
                .Select(n => DocumentTextBuilder.Collapse(string.Join('\n', n.Descendants<Paragraph>().Where(IsPrimary).Select(p => ParagraphText(p, [])))))
                .Where(t => t.Length > 0)
                .ToList();
            if (texts is null || texts.Count == 0)
            {
                return;
            }

            _builder.AddHeading(1, heading);
            foreach (var text in texts)
            {
                _builder.Append(text);
            }
        }

        private void ReadHeadersAndFooters()
        {
            // Each section may carry its own first/even/default header; most repeat the same text.
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var texts = new List<string>();
            var parts = main.HeaderParts.Select(p => (OpenXmlElement?)p.Header)
                .Concat(main.FooterParts.Select(p => (OpenXmlElement?)p.Footer));
            foreach (var root in parts)
            {
                if (root is null)
                {
                    continue;
                }

                foreach (var paragraph in root.Descendants<Paragraph>().Where(IsPrimary))
                {
                    var text = DocumentTextBuilder.Collapse(ParagraphText(paragraph, []));
                    if (text.Any(char.IsLetter) && seen.Add(text))
                    {
                        texts.Add(text);
                    }
                }
            }

            if (texts.Count == 0)
            {
                return;
            }

            _builder.AddHeading(1, "Headers and footers");
            foreach (var text in texts)
            {
                _builder.Append(text, tight: true);
            }
        }

        /// <summary>
        /// Heading level per paragraph style id, following basedOn chains: "heading N" by name
        /// (ids are localised, names are not), "Title" as level 0, otherwise the style's outline level.
        /// </summary>
        private static Dictionary<string, int?> ReadStyleLevels(MainDocumentPart main)
        {
            var styles = main.StyleDefinitionsPart?.Styles?.Elements<Style>()
                .Where(s => s.StyleId?.Value is not null && (s.Type is null || s.Type.Value == StyleValues.Paragraph))
                .GroupBy(s => s.StyleId!.Value!, StringComparer.Ordinal)
                .ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal)
                ?? [];
            var result = new Dictionary<string, int?>(StringComparer.Ordinal);
            foreach (var id in styles.Keys)
            {
                result[id] = Resolve(id, 0);
            }

            return result;

            int? Resolve(string id, int hops)
            {
                if (hops > 16 || !styles.TryGetValue(id, out var style))
                {
                    return null;
                }

                var name = style.StyleName?.Val?.Value ?? id;
                var match = HeadingStyleName().Match(name);
                if (match.Success)
                {
                    return match.Groups[1].Value[0] - '0';
                }

                if (name.Equals("Title", StringComparison.OrdinalIgnoreCase))
                {
                    return 0;
                }

                var outline = style.StyleParagraphProperties?.OutlineLevel?.Val?.Value;
                if (outline is not null)
                {
                    return outline is >= 0 and <= 8 ? outline + 1 : null;
                }

                var basedOn = style.BasedOn?.Val?.Value;
                return basedOn is null ? null : Resolve(basedOn, hops + 1);
            }
        }
    }
}
