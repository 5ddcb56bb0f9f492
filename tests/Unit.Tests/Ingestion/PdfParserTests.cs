using System.Diagnostics;
using System.Globalization;
using PdfSharp.Drawing;
using RagOrleans.Grains.Ingestion;
using Xunit;
using static RagOrleans.Unit.Tests.Ingestion.ParsedDocumentChecks;

namespace RagOrleans.Unit.Tests.Ingestion;

public sealed class PdfParserTests
{
    // A 1x1 grey PNG, enough for PDFsharp to embed an image XObject.
    private const string TinyPng = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg==";

    private readonly PdfParser _parser = new();

    [Fact]
    public void Nist_definition_is_on_page_six_under_its_outline_heading()
    {
        var doc = ParseFile(_parser, "docs", "pdf", "nist-sp800-145.pdf");

        AssertWellFormed(doc);
        Assert.Equal("NIST SP 800-145, The NIST Definition of Cloud Computing", doc.Title);
        var section = SectionOf(doc, "Cloud computing is a model for enabling ubiquitous, convenient, on-demand network access");
        Assert.Equal(6, section.Page);
        Assert.Equal("2. The NIST Definition of Cloud Computing", section.HeadingPath);
        Assert.Equal(6, SectionOf(doc, "Broad network access.").Page);
        Assert.Equal(Enumerable.Range(1, 7), doc.Sections.Select(s => s.Page!.Value).Distinct());
    }

    [Fact]
    public void Nested_outline_entries_build_heading_paths_and_split_pages()
    {
        var doc = ParseFile(_parser, "docs", "pdf", "nist-sp800-145.pdf");

        var authority = doc.Sections.Single(s => s.HeadingPath == "1. Introduction > 1.1 Authority");
        var scope = doc.Sections.Single(s => s.HeadingPath == "1. Introduction > 1.2 Purpose and Scope");
        Assert.Equal(5, authority.Page);
        Assert.Equal(5, scope.Page);
        Assert.StartsWith("1.2 Purpose and Scope", doc.Text.AsSpan(scope.Start, scope.Length).ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Running_headers_are_removed_but_body_text_stays_in_reading_order()
    {
        var doc = ParseFile(_parser, "docs", "pdf", "nist-sp800-30r1.pdf");

        AssertWellFormed(doc);
        // The running title is on every page in the PDF; once per document is left at most (the cover).
        var running = CountOf(doc.Text, "Guide for Conducting Risk Assessments\n");
        Assert.True(running <= 3, $"running header kept {running} times");
        var first = doc.Text.IndexOf("Organizations typically employ a three-step process", StringComparison.Ordinal);
        var second = doc.Text.IndexOf("Threat-vulnerability pairing", StringComparison.Ordinal);
        Assert.True(first >= 0 && second > first);
        Assert.Equal(20, SectionOf(doc, "Organizations typically employ a three-step process").Page);
    }

    [Fact]
    public void Ligatures_are_expanded_and_german_text_is_kept()
    {
        var doc = ParseFile(_parser, "docs", "pdf", "pypdf-GeoTopo-komprimiert.pdf");

        Assert.Equal("Geometrie und Topologie", doc.Title);
        Assert.Contains("Ein topologischer Raum X heißt hausdorffsch", doc.Text, StringComparison.Ordinal);
        Assert.DoesNotContain('\uFB00', doc.Text);
        Assert.Equal(12, SectionOf(doc, "Ein topologischer Raum X heißt hausdorffsch").Page);
    }

    [Fact]
    public void Arabic_text_survives()
    {
        var doc = ParseFile(_parser, "docs", "pdf", "pypdf-habibi.pdf");

        Assert.Contains("habibi", doc.Text, StringComparison.Ordinal);
        Assert.Contains("حَبيبي", doc.Text, StringComparison.Ordinal);
    }

    [Fact]
    public void Image_only_pdf_from_the_corpus_has_no_text_layer()
    {
        var ex = Fails(_parser, File.ReadAllBytes(TestData.Path("docs", "pdf", "pypdf-cmyk-image.pdf")), DocumentFailure.NoTextLayer);
        Assert.Contains("OCR", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Generated_image_only_pdf_has_no_text_layer()
    {
        using var pdf = new PdfSharp.Pdf.PdfDocument();
        var page = pdf.AddPage();
        using (var gfx = XGraphics.FromPdfPage(page))
        using (var png = new MemoryStream(Convert.FromBase64String(TinyPng)))
        {
            gfx.DrawImage(XImage.FromStream(png), 10, 10, 200, 200);
        }

        var ex = Fails(_parser, Save(pdf), DocumentFailure.NoTextLayer);
        Assert.Contains("scanned images", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Password_protected_pdf_is_reported_as_encrypted()
    {
        using var pdf = new PdfSharp.Pdf.PdfDocument();
        pdf.AddPage();
        pdf.SecuritySettings.UserPassword = "user-secret";
        pdf.SecuritySettings.OwnerPassword = "owner-secret";

        var ex = Fails(_parser, Save(pdf), DocumentFailure.Encrypted);
        Assert.Contains("password", ex.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void Truncated_pdf_is_corrupt()
    {
        var bytes = File.ReadAllBytes(TestData.Path("docs", "pdf", "nist-fips-199.pdf"));

        Fails(_parser, bytes[..(bytes.Length / 2)], DocumentFailure.Corrupt);
    }

    [Fact]
    public void Garbage_between_header_and_trailer_is_corrupt()
    {
        var bytes = "%PDF-1.7\n"u8.ToArray().Concat(Enumerable.Repeat((byte)0x9A, 5000)).Concat("\n%%EOF\n"u8.ToArray()).ToArray();

        Fails(_parser, bytes, DocumentFailure.Corrupt);
    }

    [Fact]
    public void Non_pdf_bytes_are_corrupt_and_empty_input_is_empty()
    {
        Fails(_parser, "hello, I am not a PDF"u8.ToArray(), DocumentFailure.Corrupt);
        Fails(_parser, [], DocumentFailure.Empty);
        Fails(_parser, "  \n"u8.ToArray(), DocumentFailure.Empty);
    }

    [Fact]
    public void Hand_written_pdf_with_standard_font_text_is_read()
    {
        var bytes = RawPdf.Build(
        [
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            $"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R {RawPdf.FontResources} >>",
            RawPdf.TextStream("Quarterly revenue grew"),
        ]);

        var doc = ParseBytes(_parser, bytes);

        Assert.Equal("Quarterly revenue grew", doc.Text);
        Assert.Equal("Quarterly revenue grew", doc.Title);
        Assert.Equal(new DocumentSection(0, doc.Text.Length, null, 1), Assert.Single(doc.Sections));
    }

    [Fact]
    public void Reference_cycles_in_page_tree_and_outline_do_not_hang()
    {
        var bytes = RawPdf.Build(
        [
            "<< /Type /Catalog /Pages 2 0 R /Outlines 5 0 R >>",
            // The page tree lists itself as a kid, and the outline item is its own child and sibling.
            "<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>",
            $"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R {RawPdf.FontResources} >>",
            RawPdf.TextStream("Cycle survivor"),
            "<< /Type /Outlines /First 6 0 R /Last 6 0 R /Count 1 >>",
            "<< /Title (Loop) /Parent 5 0 R /Next 6 0 R /First 6 0 R /Last 6 0 R /Dest [3 0 R /Fit] >>",
        ]);

        var outcome = RunBounded(() => ParseBytes(_parser, bytes), TimeSpan.FromSeconds(20));

        if (outcome is ParsedDocument doc)
        {
            Assert.Contains("Cycle survivor", doc.Text, StringComparison.Ordinal);
        }
        else
        {
            Assert.IsType<DocumentParseException>(outcome);
        }
    }

    [Fact]
    public void Page_count_over_the_limit_is_refused_before_reading_pages()
    {
        const int Pages = 40;
        var objects = new List<string>
        {
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [" + string.Join(' ', Enumerable.Range(0, Pages).Select(i => string.Create(CultureInfo.InvariantCulture, $"{i + 3} 0 R"))) + $"] /Count {Pages} >>",
        };
        objects.AddRange(Enumerable.Range(0, Pages).Select(_ => "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 100 100] >>"));
        var parser = new PdfParser(new DocumentParserLimits { MaxPdfPages = 10 });

        var ex = Fails(parser, RawPdf.Build(objects), DocumentFailure.TooLarge);

        Assert.Contains("40", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_time_budget_is_enforced()
    {
        var parser = new PdfParser(new DocumentParserLimits { MaxParseTime = TimeSpan.Zero });

        Fails(parser, File.ReadAllBytes(TestData.Path("docs", "pdf", "nist-fips-199.pdf")), DocumentFailure.TooLarge);
    }

    [Fact]
    public void Title_falls_back_to_the_first_line_when_the_info_dictionary_has_none()
    {
        var doc = ParseFile(_parser, "docs", "pdf", "pypdf-crazyones-pdfa.pdf");

        Assert.Equal("The Crazy Ones", doc.Title);
    }

    internal static object RunBounded(Func<ParsedDocument> parse, TimeSpan limit)
    {
        var task = Task.Run<object>(() =>
        {
            try
            {
                return parse();
            }
            catch (DocumentParseException ex)
            {
                return ex;
            }
        });
        var sw = Stopwatch.StartNew();
        Assert.True(task.Wait(limit), $"parsing did not finish within {limit}");
        Assert.True(sw.Elapsed < limit);
        return task.Result;
    }

    private static byte[] Save(PdfSharp.Pdf.PdfDocument pdf)
    {
        using var ms = new MemoryStream();
        pdf.Save(ms, closeStream: false);
        return ms.ToArray();
    }

    private static int CountOf(string text, string value)
    {
        var count = 0;
        for (var i = text.IndexOf(value, StringComparison.Ordinal); i >= 0; i = text.IndexOf(value, i + 1, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }
}
