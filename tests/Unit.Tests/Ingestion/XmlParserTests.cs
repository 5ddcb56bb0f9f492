using System.Diagnostics;
using System.Text;
using RagOrleans.Grains.Ingestion;
using Xunit;
using static RagOrleans.Unit.Tests.Ingestion.ParsedDocumentChecks;

namespace RagOrleans.Unit.Tests.Ingestion;

public sealed class XmlParserTests
{
    private readonly XmlParser _parser = new();

    [Fact]
    public void Rfc9204_reads_as_the_rfc()
    {
        var doc = ParseFile(_parser, "docs", "xml", "rfc9204.xml");

        AssertWellFormed(doc);
        Assert.Equal("QPACK: Field Compression for HTTP/3", doc.Title);
        Assert.Equal("QPACK: Field Compression for HTTP/3 > Abstract", SectionOf(doc, "This specification defines QPACK").HeadingPath);
        Assert.Equal(
            "QPACK: Field Compression for HTTP/3 > 3. Reference Tables > 3.2. Dynamic Table > 3.2.5. Relative Indexing",
            SectionOf(doc, "Relative indices begin at zero").HeadingPath);
        Assert.Equal(
            "QPACK: Field Compression for HTTP/3 > Appendix B. Encoding and Decoding Examples > B.2. Dynamic Table",
            doc.Sections.First(s => s.HeadingPath?.EndsWith("B.2. Dynamic Table", StringComparison.Ordinal) == true).HeadingPath);
        // Artwork keeps its layout; cross-references read as rendered.
        Assert.Contains("      | n-1 |      ...      |   d   |  Absolute Index", doc.Text, StringComparison.Ordinal);
        Assert.Contains("See Sections 6.3 and 6.5 of [HTTP].", doc.Text, StringComparison.Ordinal);
        Assert.Contains("HPACK ([RFC7541])", doc.Text, StringComparison.Ordinal);
    }

    [Fact]
    public void Rfc_boilerplate_toc_and_reference_lists_are_skipped()
    {
        var doc = ParseFile(_parser, "docs", "xml", "rfc9204.xml");

        Assert.DoesNotContain("Status of This Memo", doc.Text, StringComparison.Ordinal);
        Assert.DoesNotContain("IETF Trust", doc.Text, StringComparison.Ordinal);
        Assert.DoesNotContain(doc.Sections, s => s.HeadingPath?.EndsWith("Normative References", StringComparison.Ordinal) == true);
        // Only the reference list entry for [HTTP] spells out its title.
        Assert.DoesNotContain("HTTP Semantics", doc.Text, StringComparison.Ordinal);
        Assert.Equal(1, (doc.Text.Length - doc.Text.Replace("Compression Process Overview\n", string.Empty, StringComparison.Ordinal).Length) / "Compression Process Overview\n".Length);
    }

    [Fact]
    public void Generic_xml_yields_a_paragraph_per_text_element()
    {
        const string Xml = """
            <?xml version="1.0"?>
            <catalog>
              <title>Parts catalog</title>
              <item id="1"><name>Bolt</name><description>A <b>steel</b> bolt.</description></item>
              <item id="2"><name>Nut</name><description>Fits the bolt.</description></item>
            </catalog>
            """;

        var doc = ParseBytes(_parser, Encoding.UTF8.GetBytes(Xml));

        AssertWellFormed(doc);
        Assert.Equal("Parts catalog", doc.Title);
        Assert.Equal("Parts catalog\n\nBolt\n\nA steel bolt.\n\nNut\n\nFits the bolt.", doc.Text);
    }

    [Fact]
    public void External_entities_are_never_resolved()
    {
        var dir = TestData.NewTempDir("xxe");
        try
        {
            var secret = Path.Combine(dir, "secret.txt");
            File.WriteAllText(secret, "TOP-SECRET-CONTENT");
            var uri = new Uri(secret).AbsoluteUri;
            var xml = $"""
                <?xml version="1.0"?>
                <!DOCTYPE doc [ <!ENTITY xxe SYSTEM "{uri}"> <!ENTITY % dtd SYSTEM "{uri}"> %dtd; ]>
                <doc><p>before &xxe; after</p></doc>
                """;

            var outcome = PdfParserTests.RunBounded(() => ParseBytes(_parser, Encoding.UTF8.GetBytes(xml)), TimeSpan.FromSeconds(10));

            if (outcome is ParsedDocument doc)
            {
                Assert.DoesNotContain("TOP-SECRET", doc.Text, StringComparison.Ordinal);
            }
            else
            {
                Assert.DoesNotContain("TOP-SECRET", Assert.IsType<DocumentParseException>(outcome).Message, StringComparison.Ordinal);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void External_dtd_reference_is_ignored()
    {
        var xml = """<?xml version="1.0"?><!DOCTYPE rfc SYSTEM "http://127.0.0.1:9/rfc2629.dtd"><rfc><front><title>Tiny</title></front><middle><section title="Intro"><t>Hello.</t></section></middle></rfc>""";

        var doc = ParseBytes(_parser, Encoding.UTF8.GetBytes(xml));

        Assert.Equal("Tiny", doc.Title);
        Assert.Equal("Tiny > Intro", SectionOf(doc, "Hello.").HeadingPath);
    }

    [Fact]
    public void Entity_expansion_bomb_is_refused_quickly()
    {
        var sb = new StringBuilder("<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol0 \"lololololololololol\">");
        for (var i = 1; i <= 9; i++)
        {
            sb.Append($"<!ENTITY lol{i} \"{string.Concat(Enumerable.Repeat($"&lol{i - 1};", 10))}\">");
        }

        sb.Append("]><lolz>&lol9;</lolz>");
        var sw = Stopwatch.StartNew();

        Fails(_parser, Encoding.UTF8.GetBytes(sb.ToString()), DocumentFailure.TooLarge);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5));
    }

    [Fact]
    public void Malformed_deep_and_empty_xml_fail_clearly()
    {
        var ex = Fails(_parser, "<root><a>unclosed</root>"u8.ToArray(), DocumentFailure.Corrupt);
        Assert.Contains("line 1", ex.Message, StringComparison.Ordinal);
        Fails(_parser, Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("<a>", 5000)) + string.Concat(Enumerable.Repeat("</a>", 5000))), DocumentFailure.TooLarge);
        Fails(_parser, "<root>  </root>"u8.ToArray(), DocumentFailure.Empty);
        Fails(_parser, [], DocumentFailure.Empty);
    }
}
