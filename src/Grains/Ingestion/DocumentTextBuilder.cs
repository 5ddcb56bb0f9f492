using System.Text;

namespace RagOrleans.Grains.Ingestion;

/// <summary>
/// Accumulates readable text block by block and records the sections the chunker needs,
/// following the same conventions as <see cref="MarkdownParser"/>: blank lines separate blocks,
/// heading lines are written into the text but belong to no section (the chunker carries them as
/// <see cref="DocumentSection.HeadingPath"/>), and sections are trimmed to visible content.
/// </summary>
internal sealed class DocumentTextBuilder(int maxCharacters)
{
    private const string HeadingSeparator = " > ";

    private readonly StringBuilder _text = new();
    private readonly List<DocumentSection> _sections = [];
    private readonly List<(int Level, string Text)> _headings = [];
    private string? _headingPath;
    private int? _page;
    private int _sectionStart;

    /// <summary>The heading path now in force, or null before the first heading.</summary>
    public string? HeadingPath => _headingPath;

    /// <summary>Characters written so far.</summary>
    public int Length => _text.Length;

    /// <summary>Starts a new section under a heading of the given level (1 = outermost).</summary>
    public void AddHeading(int level, string heading)
    {
        var title = Collapse(heading);
        if (title.Length == 0)
        {
            return;
        }

        CloseSection();
        while (_headings.Count > 0 && _headings[^1].Level >= level)
        {
            _headings.RemoveAt(_headings.Count - 1);
        }

        _headings.Add((level, title));
        _headingPath = string.Join(HeadingSeparator, _headings.Select(h => h.Text));
        Append(title, tight: false);
        _sectionStart = _text.Length;
    }

    /// <summary>Starts a new section for a new page without changing the heading path.</summary>
    public void StartPage(int page)
    {
        CloseSection();
        _page = page;
        _sectionStart = _text.Length;
    }

    /// <summary>
    /// Starts a new section with an explicit heading path whose heading text is already part
    /// of the content (PDF outlines point into page text rather than adding lines).
    /// </summary>
    public void SetHeadingPath(string? headingPath)
    {
        CloseSection();
        _headingPath = headingPath;
        _sectionStart = _text.Length;
    }

    /// <summary>
    /// Appends a block of text. Each line is trimmed at the end and whitespace runs inside it are
    /// collapsed unless <paramref name="preformatted"/>; runs of blank lines become one.
    /// </summary>
    /// <param name="block">The block's text; may span several lines.</param>
    /// <param name="tight">True to start on the next line (list items, table rows) rather than after a blank line.</param>
    /// <param name="preformatted">True to keep leading indentation and inner spacing (code, ASCII art).</param>
    public void Append(string block, bool tight = false, bool preformatted = false)
    {
        var lines = new List<string>();
        var blank = false;
        foreach (var raw in block.AsSpan().EnumerateLines())
        {
            var line = preformatted ? raw.TrimEnd().ToString().Replace('\t', ' ') : Collapse(raw.ToString());
            if (line.Length == 0)
            {
                blank = lines.Count > 0;
                continue;
            }

            if (blank)
            {
                lines.Add(string.Empty);
                blank = false;
            }

            lines.Add(line);
        }

        if (lines.Count == 0)
        {
            return;
        }

        if (_text.Length > 0)
        {
            EnsureNewLine();
            if (!tight && !EndsWithBlankLine())
            {
                _text.Append('\n');
            }
        }

        for (var i = 0; i < lines.Count; i++)
        {
            if (i > 0)
            {
                _text.Append('\n');
            }

            _text.Append(lines[i]);
        }

        if (_text.Length > maxCharacters)
        {
            throw new DocumentParseException(
                $"The document's text exceeds the limit of {maxCharacters:N0} characters.", DocumentFailure.TooLarge);
        }
    }

    /// <summary>Closes the last section and returns the document.</summary>
    public ParsedDocument Build(string? title)
    {
        CloseSection();
        var end = _text.Length;
        while (end > 0 && char.IsWhiteSpace(_text[end - 1]))
        {
            end--;
        }

        var cleanTitle = title is null ? string.Empty : Collapse(title);
        return new ParsedDocument(_text.ToString(0, end), _sections, cleanTitle.Length == 0 ? null : cleanTitle);
    }

    /// <summary>Collapses whitespace runs (including NBSP and line breaks) to one space and trims.</summary>
    internal static string Collapse(string text) => Common.Whitespace.Collapse(text);

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
            _sections.Add(new DocumentSection(start, end - start, _headingPath, _page));
        }

        _sectionStart = _text.Length;
    }

    private void EnsureNewLine()
    {
        if (_text.Length > 0 && _text[^1] != '\n')
        {
            _text.Append('\n');
        }
    }

    private bool EndsWithBlankLine() => _text.Length >= 2 && _text[^1] == '\n' && _text[^2] == '\n';
}
