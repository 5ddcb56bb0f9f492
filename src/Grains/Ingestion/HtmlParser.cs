using System.Diagnostics;
using System.Text;
using AngleSharp.Dom;
using AngleSharp.Html.Dom;
using AngleSharp.Html.Parser;

namespace RagOrleans.Grains.Ingestion;

/// <summary>
/// Parses HTML with AngleSharp, keeping the main content only: the <c>&lt;main&gt;</c>, <c>role="main"</c>
/// or single <c>&lt;article&gt;</c> when there is one, without scripts, styles, navigation, asides, page
/// headers/footers, form controls or hidden elements. h1-h6 build <see cref="DocumentSection.HeadingPath"/>;
/// lists become "- item" lines, table rows "cell | cell" lines, and &lt;pre&gt; keeps its layout.
/// </summary>
public sealed class HtmlParser(DocumentParserLimits? limits = null) : IDocumentParser
{
    private const int MaxTitleLength = 200;

    // Past this depth the rest of a subtree is read as flat text; recursion on hostile nesting would
    // otherwise overflow the stack, which no catch can handle.
    private const int MaxDepth = 200;

    private static readonly HashSet<string> Dropped = new(StringComparer.OrdinalIgnoreCase)
    {
        "script", "style", "noscript", "template", "nav", "aside", "iframe", "object", "embed", "svg",
        "canvas", "math", "dialog", "button", "input", "select", "textarea", "option", "label", "datalist",
        "head", "link", "meta", "img", "picture", "video", "audio", "map",
    };

    private static readonly HashSet<string> DroppedRoles = new(StringComparer.OrdinalIgnoreCase)
    {
        "navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar", "toolbar", "dialog", "alert",
    };

    private static readonly HashSet<string> Blocks = new(StringComparer.OrdinalIgnoreCase)
    {
        "p", "div", "section", "article", "main", "header", "footer", "blockquote", "address", "figure",
        "figcaption", "details", "summary", "fieldset", "legend", "hr", "center", "body", "html", "form",
    };

    private readonly DocumentParserLimits _limits = limits ?? DocumentParserLimits.Default;

    /// <inheritdoc />
    public bool CanParse(string sourceType) =>
        string.Equals(sourceType, DocumentTypes.Html, StringComparison.OrdinalIgnoreCase);

    /// <inheritdoc />
    public ParsedDocument Parse(Stream content, string? fileName)
    {
        var source = TextDecoding.Decode(TextDecoding.ReadAll(content));
        if (string.IsNullOrWhiteSpace(source))
        {
            throw new DocumentParseException("The file is empty.", DocumentFailure.Empty);
        }

        IHtmlDocument document;
        try
        {
            document = new AngleSharp.Html.Parser.HtmlParser(new HtmlParserOptions { SkipComments = true, IsScripting = false })
                .ParseDocument(source);
        }
        catch (Exception ex) when (ex is not (OutOfMemoryException or DocumentParseException))
        {
            // The HTML5 algorithm accepts any input, so this only happens on library faults.
            throw new DocumentParseException("The HTML document could not be read.", DocumentFailure.Corrupt, ex);
        }

        using (document)
        {
            var root = FindMainContent(document);
            var renderer = new Renderer(_limits, root);
            renderer.Render(root);
            var title = DocumentTextBuilder.Collapse(document.Title ?? string.Empty);
            if (title.Length == 0 || title.Length > MaxTitleLength)
            {
                title = DocumentTextBuilder.Collapse(document.QuerySelector("h1")?.TextContent ?? string.Empty);
            }

            var parsed = renderer.Finish(title.Length is > 0 and <= MaxTitleLength ? title : null);
            if (parsed.Text.Length == 0)
            {
                throw new DocumentParseException("The HTML document contains no readable text.", DocumentFailure.Empty);
            }

            return parsed;
        }
    }

    /// <summary>
    /// The element holding the page's own content; a candidate is only trusted when it carries a fair
    /// share of the body's text, since some sites mark a small teaser as &lt;main&gt; or &lt;article&gt;.
    /// </summary>
    private static IElement FindMainContent(IHtmlDocument document)
    {
        var body = (IElement?)document.Body ?? document.DocumentElement;
        var bodyLength = TextLength(body);
        var articles = document.QuerySelectorAll("article");
        IElement?[] candidates =
        [
            document.QuerySelector("main"),
            document.QuerySelector("[role=main]"),
            articles.Length == 1 ? articles[0] : null,
        ];
        foreach (var candidate in candidates)
        {
            if (candidate is not null && !IsHidden(candidate) && TextLength(candidate) >= bodyLength / 5)
            {
                return candidate;
            }
        }

        return body;

        static int TextLength(IElement element) => element.TextContent.Count(c => !char.IsWhiteSpace(c));
    }

    private static bool IsHidden(IElement element)
    {
        if (element.HasAttribute("hidden") ||
            string.Equals(element.GetAttribute("aria-hidden"), "true", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        var style = element.GetAttribute("style");
        if (style is null)
        {
            return false;
        }

        var compact = style.Replace(" ", string.Empty, StringComparison.Ordinal);
        return compact.Contains("display:none", StringComparison.OrdinalIgnoreCase) ||
            compact.Contains("visibility:hidden", StringComparison.OrdinalIgnoreCase);
    }

    private sealed class Renderer(DocumentParserLimits limits, IElement root)
    {
        private readonly DocumentTextBuilder _builder = new(limits.MaxTextCharacters);
        private readonly StringBuilder _inline = new();
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private int _visited;

        public void Render(INode node) => Visit(node, depth: 0);

        public ParsedDocument Finish(string? title)
        {
            Flush();
            return _builder.Build(title);
        }

        private void Visit(INode node, int depth)
        {
            if (node is IText text)
            {
                _inline.Append(text.Data);
                return;
            }

            if (node is not IElement element)
            {
                return;
            }

            if ((++_visited & 1023) == 0 && _clock.Elapsed > limits.MaxParseTime)
            {
                throw new DocumentParseException(
                    $"The HTML document took longer than {limits.MaxParseTime.TotalSeconds:N0} s to read and was abandoned.", DocumentFailure.TooLarge);
            }

            if (IsBoilerplate(element))
            {
                return;
            }

            if (depth > MaxDepth)
            {
                _inline.Append(' ').Append(element.TextContent).Append(' ');
                return;
            }

            var name = element.LocalName;
            switch (name)
            {
                case "h1" or "h2" or "h3" or "h4" or "h5" or "h6":
                    Flush();
                    _builder.AddHeading(name[1] - '0', element.TextContent);
                    return;
                case "pre" or "listing" or "xmp" or "plaintext":
                    Flush();
                    _builder.Append(element.TextContent, preformatted: true);
                    return;
                case "br":
                    _inline.Append('\n');
                    return;
                case "ul" or "ol" or "menu":
                    Flush();
                    if (!IsLinkList(element))
                    {
                        RenderList(element, indent: string.Empty, depth);
                    }

                    return;
                case "sup":
                    // Keeps 2^31 from reading as 231.
                    _inline.Append('^');
                    break;
                case "table":
                    Flush();
                    RenderTable(element);
                    return;
                case "dl":
                    Flush();
                    RenderDefinitions(element, depth);
                    return;
                case "td" or "th":
                    _inline.Append(' ');
                    break;
            }

            var block = Blocks.Contains(name) || name is "li" or "dt" or "dd" or "tr" or "caption";
            if (block)
            {
                Flush();
            }

            foreach (var child in element.ChildNodes)
            {
                Visit(child, depth + 1);
            }

            if (block)
            {
                Flush();
            }
        }

        private bool IsBoilerplate(IElement element)
        {
            var name = element.LocalName;
            if (Dropped.Contains(name) || IsHidden(element))
            {
                return true;
            }

            var role = element.GetAttribute("role");
            if (role is not null && DroppedRoles.Contains(role.Trim()))
            {
                return true;
            }

            // Page chrome is dropped, but a header inside the content carries its title.
            if (name is "header" or "footer")
            {
                return name == "footer" || !element.QuerySelectorAll("h1,h2,h3").Any() || !IsInsideRoot(element);
            }

            // A form wrapping the whole page (ASP.NET WebForms) is content; a search or login box is not.
            return name == "form" && element.QuerySelector("p,h1,h2,h3,article") is null;
        }

        /// <summary>
        /// A list that is almost all link text (an in-page table of contents, "related" links) is
        /// navigation even without a &lt;nav&gt; around it.
        /// </summary>
        private static bool IsLinkList(IElement list)
        {
            if (list.QuerySelectorAll("li").Length < 5)
            {
                return false;
            }

            var total = Letters(list.TextContent);
            var linked = list.QuerySelectorAll("a").Sum(a => Letters(a.TextContent));
            return total > 0 && linked >= total * 0.8;

            static int Letters(string text) => text.Count(char.IsLetterOrDigit);
        }

        private bool IsInsideRoot(IElement element)
        {
            for (var e = element.ParentElement; e is not null; e = e.ParentElement)
            {
                if (ReferenceEquals(e, root))
                {
                    return true;
                }
            }

            return false;
        }

        private void RenderList(IElement list, string indent, int depth)
        {
            var ordered = list.LocalName == "ol";
            var number = ordered && int.TryParse(list.GetAttribute("start"), out var start) ? start : 1;
            foreach (var item in list.Children)
            {
                if (item.LocalName != "li" || IsBoilerplate(item))
                {
                    continue;
                }

                var nested = new List<IElement>();
                var sb = new StringBuilder();
                CollectInline(item, sb, nested, depth + 1);
                var text = DocumentTextBuilder.Collapse(sb.ToString());
                var marker = ordered ? $"{number++}. " : "- ";
                if (text.Length > 0)
                {
                    _builder.Append(indent + marker + text, tight: true, preformatted: true);
                }

                foreach (var inner in nested)
                {
                    if (inner.LocalName is "ul" or "ol")
                    {
                        RenderList(inner, indent + "  ", depth + 1);
                    }
                    else
                    {
                        Visit(inner, depth + 1);
                        Flush();
                    }
                }
            }
        }

        /// <summary>Text of an element without nested lists, tables and pre blocks, which are returned for separate rendering.</summary>
        private void CollectInline(INode node, StringBuilder sb, List<IElement> nested, int depth)
        {
            foreach (var child in node.ChildNodes)
            {
                if (child is IText t)
                {
                    sb.Append(t.Data);
                }
                else if (child is IElement e && !IsBoilerplate(e))
                {
                    if (e.LocalName is "ul" or "ol" or "table" or "pre" or "dl" && depth < MaxDepth)
                    {
                        nested.Add(e);
                    }
                    else
                    {
                        if (Blocks.Contains(e.LocalName) || e.LocalName == "br")
                        {
                            sb.Append(' ');
                        }

                        CollectInline(e, sb, nested, depth + 1);
                    }
                }
            }
        }

        private void RenderTable(IElement table)
        {
            var caption = table.QuerySelector("caption");
            if (caption is not null)
            {
                _builder.Append(caption.TextContent);
            }

            var first = true;
            foreach (var row in table.QuerySelectorAll("tr"))
            {
                // Rows of nested tables are read where they sit, as part of their cell.
                if (!ReferenceEquals(row.Closest("table"), table) || IsBoilerplate(row))
                {
                    continue;
                }

                var cells = row.Children
                    .Where(c => c.LocalName is "td" or "th" && !IsBoilerplate(c))
                    .Select(c => CellText(c))
                    .ToList();
                if (cells.All(c => c.Length == 0))
                {
                    continue;
                }

                _builder.Append(string.Join(" | ", cells), tight: !first, preformatted: true);
                first = false;
            }

            string CellText(IElement cell)
            {
                var sb = new StringBuilder();
                var nested = new List<IElement>();
                CollectInline(cell, sb, nested, 0);
                foreach (var inner in nested)
                {
                    sb.Append(' ').Append(inner.TextContent);
                }

                return DocumentTextBuilder.Collapse(sb.ToString());
            }
        }

        private void RenderDefinitions(IElement list, int depth)
        {
            foreach (var item in list.Children)
            {
                if (IsBoilerplate(item))
                {
                    continue;
                }

                if (item.LocalName == "dt")
                {
                    _builder.Append(item.TextContent);
                }
                else
                {
                    foreach (var child in item.ChildNodes)
                    {
                        Visit(child, depth + 1);
                    }

                    Flush(tight: true);
                }
            }
        }

        private void Flush(bool tight = false)
        {
            if (_inline.Length == 0)
            {
                return;
            }

            // Inline text collapses like a browser renders it; only <br> line breaks survive.
            var lines = _inline.ToString().Split('\n').Select(DocumentTextBuilder.Collapse).Where(l => l.Length > 0);
            _builder.Append(string.Join('\n', lines), tight);
            _inline.Clear();
        }
    }
}
