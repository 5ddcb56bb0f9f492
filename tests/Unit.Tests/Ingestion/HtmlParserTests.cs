using System.Text;
using RagOrleans.Grains.Ingestion;
using Xunit;
using static RagOrleans.Unit.Tests.Ingestion.ParsedDocumentChecks;

namespace RagOrleans.Unit.Tests.Ingestion;

public sealed class HtmlParserTests
{
    private readonly HtmlParser _parser = new();

    [Fact]
    public void Rfc_page_has_nested_section_heading_paths()
    {
        var doc = ParseFile(_parser, "docs", "html", "rfc9111.html");

        AssertWellFormed(doc);
        Assert.Equal("RFC 9111 - HTTP Caching", doc.Title);
        Assert.Equal(
            "HTTP Caching > 5. Field Definitions > 5.2. Cache-Control > 5.2.1. Request Directives > 5.2.1.1. max-age",
            doc.Sections.First(s => s.HeadingPath?.EndsWith("5.2.1.1. max-age", StringComparison.Ordinal) == true).HeadingPath);
        Assert.Equal("HTTP Caching > 1. Introduction", SectionOf(doc, "The Hypertext Transfer Protocol (HTTP) is a stateless application-level request/response protocol").HeadingPath);
    }

    [Fact]
    public void Rfc_page_drops_scripts_and_navigation_but_keeps_tables_and_code()
    {
        var doc = ParseFile(_parser, "docs", "html", "rfc9111.html");

        Assert.DoesNotContain("XMLHttpRequest", doc.Text, StringComparison.Ordinal);
        Assert.DoesNotContain("function getMeta", doc.Text, StringComparison.Ordinal);
        // The sidebar and in-page tables of contents list every heading; the headings themselves appear once.
        Assert.Equal(1, Count(doc.Text, "Calculating Heuristic Freshness\n"));
        Assert.Contains("Field Name | Status | Section | Comments\nAge | permanent | 5.1 |", doc.Text, StringComparison.Ordinal);
        Assert.Contains("  delta-seconds  = 1*DIGIT", doc.Text, StringComparison.Ordinal);
        Assert.Contains("(2^31)", doc.Text, StringComparison.Ordinal);
    }

    [Fact]
    public void Large_rfc_parses_with_many_sections()
    {
        var doc = ParseFile(_parser, "docs", "html", "rfc9110.html");

        AssertWellFormed(doc);
        Assert.True(doc.Sections.Count > 200);
        Assert.True(doc.Text.Length > 300_000);
        Assert.Equal("HTTP Semantics > 9. Methods > 9.3. Method Definitions > 9.3.1. GET", SectionOf(doc, "The GET method requests transfer of a current selected representation").HeadingPath);
    }

    [Fact]
    public void Boilerplate_is_excluded_and_main_content_kept()
    {
        const string Html = """
            <!doctype html>
            <html><head><title>Release notes</title><style>.x { color: red }</style>
            <script>var secretToken = "abc";</script></head>
            <body>
              <header><a href="/">Home</a> | <a href="/docs">Docs</a></header>
              <nav><ul><li>Menu item one</li></ul></nav>
              <main>
                <h1>Version 2.0</h1>
                <p>This release adds <b>streaming</b> support.</p>
                <div hidden>Hidden promo</div>
                <p aria-hidden="true">Screen-reader junk</p>
                <p style="display: none">Invisible text</p>
                <h2>Breaking changes</h2>
                <ul><li>Removed the legacy API<ul><li>Use the new client</li></ul></li><li>Renamed settings</li></ul>
                <form><input value="search me"><button>Go</button></form>
                <table><tr><th>Setting</th><th>Default</th></tr><tr><td>timeout</td><td>30 s</td></tr></table>
                <pre>  code   keeps
                spacing</pre>
                <noscript>Enable JavaScript</noscript>
              </main>
              <aside>Related posts</aside>
              <footer>Copyright footer</footer>
              <script>trackVisitor();</script>
            </body></html>
            """;

        var doc = ParseBytes(_parser, Encoding.UTF8.GetBytes(Html));

        AssertWellFormed(doc);
        Assert.Equal("Release notes", doc.Title);
        foreach (var excluded in new[] { "secretToken", "color: red", "Home", "Menu item", "Hidden promo", "Screen-reader", "Invisible", "search me", "Go\n", "Enable JavaScript", "Related posts", "Copyright footer", "trackVisitor" })
        {
            Assert.DoesNotContain(excluded, doc.Text, StringComparison.Ordinal);
        }

        Assert.Equal("Version 2.0", SectionOf(doc, "This release adds streaming support.").HeadingPath);
        Assert.Equal("Version 2.0 > Breaking changes", SectionOf(doc, "- Removed the legacy API").HeadingPath);
        Assert.Contains("- Removed the legacy API\n  - Use the new client\n- Renamed settings", doc.Text, StringComparison.Ordinal);
        Assert.Contains("Setting | Default\ntimeout | 30 s", doc.Text, StringComparison.Ordinal);
        Assert.Contains("  code   keeps", doc.Text, StringComparison.Ordinal);
    }

    [Fact]
    public void Title_falls_back_to_first_h1_and_empty_pages_fail()
    {
        var doc = ParseBytes(_parser, "<html><body><article><h1>Only heading</h1><p>Body text here.</p></article></body></html>"u8.ToArray());

        Assert.Equal("Only heading", doc.Title);
        Fails(_parser, "<html><body><script>x()</script></body></html>"u8.ToArray(), DocumentFailure.Empty);
        Fails(_parser, [], DocumentFailure.Empty);
    }

    [Fact]
    public void Deeply_nested_markup_does_not_overflow_the_stack()
    {
        var html = "<html><body>" + string.Concat(Enumerable.Repeat("<div>", 20_000)) + "deep text" + string.Concat(Enumerable.Repeat("</div>", 20_000)) + "</body></html>";

        var doc = ParseBytes(_parser, Encoding.UTF8.GetBytes(html));

        Assert.Contains("deep text", doc.Text, StringComparison.Ordinal);
    }

    private static int Count(string text, string value) =>
        (text.Length - text.Replace(value, string.Empty, StringComparison.Ordinal).Length) / value.Length;
}
