using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using System.Xml;
using System.Xml.Linq;

namespace RagOrleans.Grains.Ingestion;

/// <summary>
/// Parses XML safely (no external entities or DTDs are fetched, entity expansion and nesting are
/// bounded). xml2rfc documents (root <c>&lt;rfc&gt;</c>) are read as the RFC they render to:
/// title, abstract, numbered sections building <see cref="DocumentSection.HeadingPath"/>, paragraphs,
/// lists, tables and artwork, without the table of contents, IETF boilerplate or reference lists.
/// Any other XML yields one paragraph per element that holds text.
/// </summary>
public sealed partial class XmlParser(DocumentParserLimits? limits = null) : IDocumentParser
{
    private const int MaxDepth = 256;
    private const int MaxTitleLength = 200;

    // Internal entities still expand (xml2rfc v2 sources declare them), bounded against "billion laughs".
    private const long MaxEntityCharacters = 1_000_000;

    private readonly DocumentParserLimits _limits = limits ?? DocumentParserLimits.Default;

    /// <inheritdoc />
    public bool CanParse(string sourceType) =>
        string.Equals(sourceType, DocumentTypes.Xml, StringComparison.OrdinalIgnoreCase);

    /// <inheritdoc />
    public ParsedDocument Parse(Stream content, string? fileName)
    {
        var bytes = TextDecoding.ReadAll(content);
        if (bytes.AsSpan().Trim(" \t\r\n\0"u8).IsEmpty)
        {
            throw new DocumentParseException("The file is empty.", DocumentFailure.Empty);
        }

        var document = Load(bytes);
        var root = document.Root ?? throw new DocumentParseException("The XML document has no root element.", DocumentFailure.Corrupt);
        var builder = new DocumentTextBuilder(_limits.MaxTextCharacters);
        var clock = Stopwatch.StartNew();
        string? title;
        if (root.Name.LocalName == "rfc")
        {
            title = new RfcRenderer(builder, _limits, clock).Render(root);
        }
        else
        {
            title = root.Descendants().FirstOrDefault(e => e.Name.LocalName.Equals("title", StringComparison.OrdinalIgnoreCase)) is { } t
                ? DocumentTextBuilder.Collapse(t.Value)
                : null;
            RenderGeneric(root, builder, depth: 0, clock);
        }

        var parsed = builder.Build(title is { Length: > 0 and <= MaxTitleLength } ? title : null);
        if (parsed.Text.Length == 0)
        {
            throw new DocumentParseException("The XML document contains no text.", DocumentFailure.Empty);
        }

        return parsed;
    }

    private XDocument Load(byte[] bytes)
    {
        var settings = new XmlReaderSettings
        {
            // Parse (not Prohibit) so documents with an internal DTD subset still read; with no resolver
            // nothing outside the upload is ever opened, so external entities and DTDs cannot leak files.
            DtdProcessing = DtdProcessing.Parse,
            XmlResolver = null,
            MaxCharactersFromEntities = MaxEntityCharacters,
            MaxCharactersInDocument = (long)_limits.MaxTextCharacters * 4,
            IgnoreComments = true,
            IgnoreProcessingInstructions = true,
        };

        try
        {
            // A first pass bounds nesting: LINQ to XML walks trees recursively, and a stack overflow
            // cannot be caught.
            using (var reader = XmlReader.Create(new MemoryStream(bytes, writable: false), settings))
            {
                while (reader.Read())
                {
                    if (reader.Depth > MaxDepth)
                    {
                        throw new DocumentParseException($"The XML document is nested more than {MaxDepth} levels deep.", DocumentFailure.TooLarge);
                    }
                }
            }

            using var second = XmlReader.Create(new MemoryStream(bytes, writable: false), settings);
            return XDocument.Load(second, LoadOptions.None);
        }
        catch (XmlException ex) when (ex.Message.Contains("MaxCharacters", StringComparison.Ordinal))
        {
            throw new DocumentParseException("The XML document expands beyond the size limit (entity expansion or document size).", DocumentFailure.TooLarge, ex);
        }
        catch (XmlException ex)
        {
            var where = ex.LineNumber > 0 ? string.Create(CultureInfo.InvariantCulture, $" (line {ex.LineNumber}, column {ex.LinePosition})") : string.Empty;
            throw new DocumentParseException($"The XML document is malformed{where}.", DocumentFailure.Corrupt, ex);
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or DecoderFallbackException or NotSupportedException)
        {
            throw new DocumentParseException("The XML document could not be read.", DocumentFailure.Corrupt, ex);
        }
    }

    /// <summary>Elements with text of their own become one paragraph (their markup is inline); others are walked.</summary>
    private void RenderGeneric(XElement element, DocumentTextBuilder builder, int depth, Stopwatch clock)
    {
        CheckTime(clock, _limits);
        var ownText = element.Nodes().OfType<XText>().Any(t => !string.IsNullOrWhiteSpace(t.Value));
        if (ownText || depth > MaxDepth)
        {
            builder.Append(element.Value);
            return;
        }

        foreach (var child in element.Elements())
        {
            RenderGeneric(child, builder, depth + 1, clock);
        }
    }

    private static void CheckTime(Stopwatch clock, DocumentParserLimits limits)
    {
        if (clock.Elapsed > limits.MaxParseTime)
        {
            throw new DocumentParseException(
                $"The XML document took longer than {limits.MaxParseTime.TotalSeconds:N0} s to read and was abandoned.", DocumentFailure.TooLarge);
        }
    }

    [GeneratedRegex(@"^section-(\d+(?:\.\d+)*)$", RegexOptions.CultureInvariant)]
    private static partial Regex NumberedSection();

    [GeneratedRegex(@"^section-appendix\.([a-z](?:\.\d+)*)$", RegexOptions.CultureInvariant | RegexOptions.IgnoreCase)]
    private static partial Regex AppendixSection();

    /// <summary>Renders the xml2rfc v2/v3 vocabulary.</summary>
    private sealed class RfcRenderer(DocumentTextBuilder builder, DocumentParserLimits limits, Stopwatch clock)
    {
        public string? Render(XElement rfc)
        {
            var front = Child(rfc, "front");
            var title = front is null ? null : Child(front, "title") is { } t ? DocumentTextBuilder.Collapse(t.Value) : null;
            if (title is { Length: > 0 })
            {
                builder.AddHeading(1, title);
            }

            if (front is not null)
            {
                foreach (var part in front.Elements())
                {
                    switch (part.Name.LocalName)
                    {
                        case "abstract":
                            builder.AddHeading(2, "Abstract");
                            RenderBlocks(part, 2);
                            break;
                        case "note":
                            builder.AddHeading(2, Child(part, "name")?.Value ?? part.Attribute("title")?.Value ?? "Note");
                            RenderBlocks(part, 2);
                            break;
                    }
                }
            }

            foreach (var part in rfc.Elements())
            {
                if (part.Name.LocalName is "middle" or "back")
                {
                    RenderBlocks(part, 1);
                }
            }

            return title;
        }

        /// <summary>Renders block-level children; <paramref name="level"/> is the heading level of the enclosing section.</summary>
        private void RenderBlocks(XElement container, int level)
        {
            foreach (var element in container.Elements())
            {
                CheckTime(clock, limits);
                switch (element.Name.LocalName)
                {
                    case "section":
                        RenderSection(element, level + 1);
                        break;
                    case "t" or "preamble" or "postamble":
                        builder.Append(Inline(element));
                        break;
                    case "artwork" or "sourcecode":
                        if (element.Attribute("src") is null || !string.IsNullOrWhiteSpace(element.Value))
                        {
                            builder.Append(TrimBlankLines(element.Value), preformatted: true);
                        }

                        break;
                    case "figure" or "texttable" or "table":
                        RenderFigure(element, level);
                        break;
                    case "ul" or "ol" or "list":
                        RenderList(element, string.Empty);
                        break;
                    case "dl":
                        RenderDefinitions(element, level);
                        break;
                    case "blockquote" or "aside" or "note" or "li" or "dd" or "td" or "th" or "content":
                        RenderBlocks(element, level);
                        break;
                    case "name" or "references" or "toc" or "boilerplate" or "iref" or "displayreference" or "seriesInfo":
                        break;
                    default:
                        if (!string.IsNullOrWhiteSpace(element.Value))
                        {
                            builder.Append(Inline(element));
                        }

                        break;
                }
            }
        }

        private void RenderSection(XElement section, int level)
        {
            var name = Child(section, "name") is { } n ? Inline(n) : section.Attribute("title")?.Value ?? string.Empty;
            var pn = section.Attribute("pn")?.Value ?? string.Empty;
            var numbered = !string.Equals(section.Attribute("numbered")?.Value, "false", StringComparison.Ordinal);
            var number = NumberedSection().Match(pn);
            var appendix = AppendixSection().Match(pn);
            if (numbered && number.Success)
            {
                name = number.Groups[1].Value + ". " + name;
            }
            else if (numbered && appendix.Success)
            {
                var label = appendix.Groups[1].Value;
                name = (label.Contains('.', StringComparison.Ordinal) ? string.Empty : "Appendix ") +
                    char.ToUpperInvariant(label[0]) + label[1..] + ". " + name;
            }

            builder.AddHeading(level, name);
            RenderBlocks(section, level);
        }

        private void RenderFigure(XElement figure, int level)
        {
            if (Child(figure, "name") is { } caption)
            {
                builder.Append(Inline(caption));
            }

            if (figure.Name.LocalName is "table" or "texttable")
            {
                RenderTable(figure);
                return;
            }

            RenderBlocks(figure, level);
        }

        private void RenderTable(XElement table)
        {
            var first = true;
            if (table.Name.LocalName == "texttable")
            {
                // v2 tables list their cells flat after the column headers.
                var columns = table.Elements().Where(e => e.Name.LocalName == "ttcol").Select(Inline).ToList();
                var cells = table.Elements().Where(e => e.Name.LocalName == "c").Select(Inline).ToList();
                if (columns.Count == 0)
                {
                    return;
                }

                builder.Append(string.Join(" | ", columns), tight: false, preformatted: true);
                for (var i = 0; i < cells.Count; i += columns.Count)
                {
                    builder.Append(string.Join(" | ", cells.Skip(i).Take(columns.Count)), tight: true, preformatted: true);
                }

                return;
            }

            foreach (var row in table.Descendants().Where(e => e.Name.LocalName == "tr"))
            {
                var cells = row.Elements().Where(e => e.Name.LocalName is "td" or "th").Select(Inline).ToList();
                if (cells.All(c => c.Length == 0))
                {
                    continue;
                }

                builder.Append(string.Join(" | ", cells), tight: !first, preformatted: true);
                first = false;
            }
        }

        private void RenderList(XElement list, string indent)
        {
            var ordered = list.Name.LocalName == "ol" ||
                (list.Name.LocalName == "list" && list.Attribute("style")?.Value is "numbers");
            var number = 1;
            foreach (var item in list.Elements().Where(e => e.Name.LocalName is "li" or "t"))
            {
                var marker = ordered ? string.Create(CultureInfo.InvariantCulture, $"{number++}. ") : "- ";
                var nested = item.Elements().Where(e => e.Name.LocalName is "ul" or "ol" or "list" or "artwork" or "sourcecode" or "figure" or "dl").ToList();
                var text = item.Elements().Any(e => e.Name.LocalName == "t")
                    ? string.Join(' ', item.Elements().Where(e => e.Name.LocalName == "t").Select(Inline))
                    : Inline(item, skipBlocks: true);
                if (text.Length > 0)
                {
                    builder.Append(indent + marker + text, tight: true, preformatted: true);
                }

                foreach (var inner in nested)
                {
                    if (inner.Name.LocalName is "ul" or "ol" or "list")
                    {
                        RenderList(inner, indent + "  ");
                    }
                    else
                    {
                        var wrapper = new XElement("wrapper", inner);
                        RenderBlocks(wrapper, 0);
                    }
                }
            }
        }

        private void RenderDefinitions(XElement list, int level)
        {
            foreach (var item in list.Elements())
            {
                if (item.Name.LocalName == "dt")
                {
                    builder.Append(Inline(item));
                }
                else if (item.Name.LocalName == "dd")
                {
                    // A definition that is one paragraph stays on the line under its term.
                    var blocks = item.Elements().Where(e => e.Name.LocalName is "t" or "ul" or "ol" or "artwork" or "sourcecode" or "dl" or "figure").ToList();
                    if (blocks.Count > 1 || blocks.Count == 1 && blocks[0].Name.LocalName != "t")
                    {
                        RenderBlocks(item, level);
                    }
                    else
                    {
                        builder.Append(Inline(item), tight: true);
                    }
                }
            }
        }

        /// <summary>Inline text with cross-references shown as xml2rfc renders them ("Section 2.1", "[RFC9110]").</summary>
        private static string Inline(XElement element) => Inline(element, skipBlocks: false);

        private static string Inline(XElement element, bool skipBlocks)
        {
            var sb = new StringBuilder();
            Append(element, 0);
            return DocumentTextBuilder.Collapse(sb.ToString());

            void Append(XElement e, int depth)
            {
                foreach (var node in e.Nodes())
                {
                    if (node is XText text)
                    {
                        sb.Append(text.Value);
                        continue;
                    }

                    if (node is not XElement child || depth > MaxDepth)
                    {
                        continue;
                    }

                    switch (child.Name.LocalName)
                    {
                        case "iref" or "cref" or "name" when child != element:
                            break;
                        case "ul" or "ol" or "list" or "artwork" or "sourcecode" or "figure" or "dl" when skipBlocks:
                            break;
                        case "xref" or "relref" when string.IsNullOrWhiteSpace(child.Value):
                            sb.Append(XrefText(child));
                            break;
                        case "eref" when string.IsNullOrWhiteSpace(child.Value):
                            sb.Append(child.Attribute("target")?.Value);
                            break;
                        case "br":
                            sb.Append(' ');
                            break;
                        default:
                            Append(child, depth + 1);
                            break;
                    }
                }
            }
        }

        private static string XrefText(XElement xref)
        {
            var derived = xref.Attribute("derivedContent")?.Value;
            var format = xref.Attribute("format")?.Value;
            var section = xref.Attribute("section")?.Value;
            if (string.IsNullOrEmpty(derived))
            {
                derived = xref.Attribute("target")?.Value ?? string.Empty;
                format ??= "default";
            }

            if (format is "counter" or "title" || derived.StartsWith("Section", StringComparison.Ordinal) ||
                derived.StartsWith("Appendix", StringComparison.Ordinal))
            {
                return derived;
            }

            var reference = "[" + derived + "]";
            return section is null ? reference : xref.Attribute("sectionFormat")?.Value switch
            {
                "bare" => section,
                "comma" => $"{reference}, Section {section}",
                "parens" => $"{reference} (Section {section})",
                _ => $"Section {section} of {reference}",
            };
        }

        private static XElement? Child(XElement parent, string name) =>
            parent.Elements().FirstOrDefault(e => e.Name.LocalName == name);

        private static string TrimBlankLines(string text)
        {
            var lines = text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
            var start = 0;
            var end = lines.Length;
            while (start < end && string.IsNullOrWhiteSpace(lines[start]))
            {
                start++;
            }

            while (end > start && string.IsNullOrWhiteSpace(lines[end - 1]))
            {
                end--;
            }

            return string.Join('\n', lines[start..end]);
        }
    }
}
