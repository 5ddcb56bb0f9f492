using System.Globalization;
using System.Text;
using Markdig;
using Markdig.Extensions.Tables;
using Markdig.Extensions.TaskLists;
using Markdig.Extensions.Yaml;
using Markdig.Syntax;
using Markdig.Syntax.Inlines;

namespace RagOrleans.Grains.Ingestion;

/// <summary>
/// Parses Markdown into readable text: markup syntax is dropped (link text kept, images dropped,
/// code kept verbatim, table rows as "cell | cell" lines), headings start new sections whose
/// <see cref="DocumentSection.HeadingPath"/> names the nested headings, and YAML front matter
/// only contributes its <c>title:</c>.
/// </summary>
/// <remarks>
/// Heading lines are written into <see cref="ParsedDocument.Text"/> for readability but are not
/// part of any section: the chunker carries them as <see cref="DocumentSection.HeadingPath"/> and the
/// embedding prefix, so repeating them inside every chunk would waste tokens.
/// </remarks>
public sealed class MarkdownParser : IDocumentParser
{
    private const string HeadingSeparator = " > ";

    private static readonly MarkdownPipeline Pipeline = new MarkdownPipelineBuilder()
        .UseYamlFrontMatter()
        .UsePipeTables()
        .UseGridTables()
        .UseEmphasisExtras()
        .UseListExtras()
        .UseTaskLists()
        .UseAlertBlocks()
        .Build();

    /// <inheritdoc />
    public bool CanParse(string sourceType) =>
        string.Equals(sourceType, DocumentTypes.Markdown, StringComparison.OrdinalIgnoreCase);

    /// <inheritdoc />
    public ParsedDocument Parse(Stream content, string? fileName)
    {
        var source = TextDecoding.NormalizeNewLines(TextDecoding.Decode(TextDecoding.ReadAll(content)));
        return ParseText(source);
    }

    /// <summary>Parses already-decoded Markdown source.</summary>
    public static ParsedDocument ParseText(string markdown)
    {
        ArgumentNullException.ThrowIfNull(markdown);
        var source = markdown.Length > 0 && markdown[0] == '\uFEFF' ? markdown[1..] : markdown;
        var document = Markdown.Parse(RemoveDocFxDirectives(source), Pipeline);
        var renderer = new Renderer();
        foreach (var block in document)
        {
            renderer.RenderBlock(block, indent: string.Empty, tight: false);
        }

        return renderer.Finish();
    }

    /// <summary>
    /// Blanks DocFX-only lines (<c>:::code</c>, <c>:::zone</c>, <c>:::image</c>, <c>[!INCLUDE]</c>):
    /// they reference files we don't have, and CommonMark would otherwise index their attributes as prose.
    /// </summary>
    private static string RemoveDocFxDirectives(string source)
    {
        if (!source.Contains(":::", StringComparison.Ordinal) && !source.Contains("[!INCLUDE", StringComparison.OrdinalIgnoreCase))
        {
            return source;
        }

        var sb = new StringBuilder(source.Length);
        var inFence = false;
        foreach (var line in source.AsSpan().EnumerateLines())
        {
            var trimmed = line.TrimStart();
            if (trimmed.StartsWith("```", StringComparison.Ordinal) || trimmed.StartsWith("~~~", StringComparison.Ordinal))
            {
                inFence = !inFence;
            }

            var directive = !inFence &&
                (trimmed.StartsWith(":::", StringComparison.Ordinal) ||
                 trimmed.StartsWith("[!INCLUDE", StringComparison.OrdinalIgnoreCase));
            if (!directive)
            {
                sb.Append(line);
            }

            sb.Append('\n');
        }

        return sb.ToString();
    }

    private sealed class Renderer
    {
        private readonly StringBuilder _text = new();
        private readonly List<DocumentSection> _sections = [];
        private readonly List<(int Level, string Text)> _headings = [];
        private string? _frontMatterTitle;
        private string? _firstH1;
        private int _sectionStart;
        private string? _pendingPrefix;

        public ParsedDocument Finish()
        {
            CloseSection();
            var end = _text.Length;
            while (end > 0 && char.IsWhiteSpace(_text[end - 1]))
            {
                end--;
            }

            return new ParsedDocument(_text.ToString(0, end), _sections, _frontMatterTitle ?? _firstH1);
        }

        public void RenderBlock(Block block, string indent, bool tight)
        {
            switch (block)
            {
                case YamlFrontMatterBlock frontMatter:
                    _frontMatterTitle ??= ReadFrontMatterTitle(frontMatter);
                    break;
                case HeadingBlock heading:
                    RenderHeading(heading);
                    break;
                case CodeBlock code:
                    RenderCode(code, indent, tight);
                    break;
                case HtmlBlock or ThematicBreakBlock or LinkReferenceDefinitionGroup or LinkReferenceDefinition or BlankLineBlock:
                    break;
                case Table table:
                    RenderTable(table, indent, tight);
                    break;
                case ListBlock list:
                    RenderList(list, indent, tight);
                    break;
                case LeafBlock leaf when leaf.Inline is not null:
                    WriteLines(RenderInline(leaf.Inline), indent, tight);
                    break;
                case ContainerBlock container:
                    foreach (var child in container)
                    {
                        RenderBlock(child, indent, tight);
                    }

                    break;
            }
        }

        private void RenderHeading(HeadingBlock heading)
        {
            var title = heading.Inline is null ? string.Empty : Common.Whitespace.Collapse(RenderInline(heading.Inline));
            CloseSection();
            if (title.Length == 0)
            {
                return;
            }

            while (_headings.Count > 0 && _headings[^1].Level >= heading.Level)
            {
                _headings.RemoveAt(_headings.Count - 1);
            }

            _headings.Add((heading.Level, title));
            if (heading.Level == 1)
            {
                _firstH1 ??= title;
            }

            BeginBlock(tight: false);
            _text.Append(title);
            BeginBlock(tight: false);
            _sectionStart = _text.Length;
        }

        private void CloseSection()
        {
            var start = _sectionStart;
            var end = _text.Length;
            while (start < end && char.IsWhiteSpace(_text[start]))
            {
                start++;
            }

            while (end > start && char.IsWhiteSpace(_text[end - 1]))
            {
                end--;
            }

            if (end > start)
            {
                var path = _headings.Count == 0 ? null : string.Join(HeadingSeparator, _headings.Select(h => h.Text));
                _sections.Add(new DocumentSection(start, end - start, path, null));
            }

            _sectionStart = _text.Length;
        }

        private void RenderCode(CodeBlock code, string indent, bool tight)
        {
            var lines = code.Lines;
            var count = lines.Count;
            while (count > 0 && lines.Lines[count - 1].Slice.IsEmptyOrWhitespace())
            {
                count--;
            }

            if (count == 0)
            {
                return;
            }

            BeginBlock(tight);
            for (var i = 0; i < count; i++)
            {
                if (i > 0)
                {
                    _text.Append('\n');
                }

                var line = lines.Lines[i].Slice.ToString().TrimEnd();
                if (line.Length > 0)
                {
                    StartLine(indent);
                    _text.Append(line);
                }
            }
        }

        private void RenderTable(Table table, string indent, bool tight)
        {
            BeginBlock(tight);
            var first = true;
            foreach (var rowBlock in table)
            {
                if (rowBlock is not TableRow row)
                {
                    continue;
                }

                var cells = new List<string>();
                foreach (var cellBlock in row)
                {
                    if (cellBlock is TableCell cell)
                    {
                        cells.Add(Common.Whitespace.Collapse(RenderContainerText(cell)));
                    }
                }

                if (cells.All(c => c.Length == 0))
                {
                    continue;
                }

                if (!first)
                {
                    _text.Append('\n');
                }

                first = false;
                StartLine(indent);
                _text.Append(string.Join(" | ", cells));
            }
        }

        private void RenderList(ListBlock list, string indent, bool tight)
        {
            BeginBlock(tight);
            var number = 1;
            if (list.IsOrdered && int.TryParse(list.OrderedStart, NumberStyles.Integer, CultureInfo.InvariantCulture, out var start))
            {
                number = start;
            }

            foreach (var child in list)
            {
                if (child is not ListItemBlock item)
                {
                    continue;
                }

                EnsureNewLine();
                _pendingPrefix = indent + (list.IsOrdered ? string.Create(CultureInfo.InvariantCulture, $"{number}. ") : "- ");
                number++;
                foreach (var inner in item)
                {
                    RenderBlock(inner, indent + "  ", tight: true);
                }

                _pendingPrefix = null;
            }
        }

        private void WriteLines(string inlineText, string indent, bool tight)
        {
            var lines = inlineText.Split('\n')
                .Select(t => Common.Whitespace.Collapse(t))
                .Where(l => l.Length > 0)
                .ToList();
            if (lines.Count == 0)
            {
                return;
            }

            BeginBlock(tight);
            for (var i = 0; i < lines.Count; i++)
            {
                if (i > 0)
                {
                    _text.Append('\n');
                }

                StartLine(indent);
                _text.Append(lines[i]);
            }
        }

        private void StartLine(string indent)
        {
            _text.Append(_pendingPrefix ?? indent);
            _pendingPrefix = null;
        }

        private void BeginBlock(bool tight)
        {
            if (tight)
            {
                EnsureNewLine();
                return;
            }

            TrimTrailingSpaces();
            if (_text.Length == 0)
            {
                return;
            }

            if (_text[^1] != '\n')
            {
                _text.Append('\n');
            }

            if (_text.Length < 2 || _text[^2] != '\n')
            {
                _text.Append('\n');
            }
        }

        private void EnsureNewLine()
        {
            TrimTrailingSpaces();
            if (_text.Length > 0 && _text[^1] != '\n')
            {
                _text.Append('\n');
            }
        }

        private void TrimTrailingSpaces()
        {
            var end = _text.Length;
            while (end > _sectionStart && end > 0 && _text[end - 1] is ' ' or '\t')
            {
                end--;
            }

            _text.Length = end;
        }

        private static string RenderContainerText(ContainerBlock container)
        {
            var sb = new StringBuilder();
            foreach (var child in container)
            {
                if (child is LeafBlock { Inline: not null } leaf)
                {
                    if (sb.Length > 0)
                    {
                        sb.Append(' ');
                    }

                    sb.Append(RenderInline(leaf.Inline));
                }
                else if (child is ContainerBlock nested)
                {
                    sb.Append(' ').Append(RenderContainerText(nested));
                }
            }

            return sb.ToString();
        }

        private static string RenderInline(ContainerInline root)
        {
            var sb = new StringBuilder();
            Append(root, sb);
            return sb.ToString();

            static void Append(Inline inline, StringBuilder sb)
            {
                switch (inline)
                {
                    case LiteralInline literal:
                        sb.Append(literal.Content.AsSpan());
                        break;
                    case CodeInline code:
                        sb.Append(code.Content);
                        break;
                    case LinkInline { IsImage: true }:
                        break;
                    case AutolinkInline autolink:
                        sb.Append(DisplayUrl(autolink.Url));
                        break;
                    case HtmlEntityInline entity:
                        sb.Append(entity.Transcoded.AsSpan());
                        break;
                    case LineBreakInline lineBreak:
                        sb.Append(lineBreak.IsHard ? '\n' : ' ');
                        break;
                    case HtmlInline or TaskList:
                        break;
                    case ContainerInline container:
                        for (var child = container.FirstChild; child is not null; child = child.NextSibling)
                        {
                            Append(child, sb);
                        }

                        break;
                }
            }
        }

        /// <summary>
        /// DocFX writes API references as <c>&lt;xref:Orleans.IGrainBase&gt;</c>; readers see the
        /// short type or member name, so that is what we index.
        /// </summary>
        private static string DisplayUrl(string url)
        {
            if (!url.StartsWith("xref:", StringComparison.OrdinalIgnoreCase))
            {
                return url;
            }

            var name = url[5..];
            var query = name.IndexOfAny(['?', '#']);
            if (query >= 0)
            {
                name = name[..query];
            }

            name = Uri.UnescapeDataString(name).TrimEnd('*');
            var generic = name.IndexOf('`', StringComparison.Ordinal);
            if (generic >= 0)
            {
                name = name[..generic];
            }

            var paren = name.IndexOf('(', StringComparison.Ordinal);
            var head = paren >= 0 ? name[..paren] : name;
            var lastDot = head.LastIndexOf('.');
            return lastDot >= 0 ? name[(lastDot + 1)..] : name;
        }

        private static string? ReadFrontMatterTitle(YamlFrontMatterBlock block)
        {
            for (var i = 0; i < block.Lines.Count; i++)
            {
                var line = block.Lines.Lines[i].Slice.ToString();
                if (!line.StartsWith("title:", StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }

                var value = line[6..].Trim();
                if (value.Length >= 2 && (value[0] is '"' or '\'') && value[^1] == value[0])
                {
                    value = value[1..^1];
                }

                return value.Length > 0 ? value : null;
            }

            return null;
        }
    }
}
