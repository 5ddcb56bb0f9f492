using RagOrleans.Grains.Ingestion;
using Xunit;
using static RagOrleans.Unit.Tests.Ingestion.ParsedDocumentChecks;

namespace RagOrleans.Unit.Tests.Ingestion;

public sealed class DocumentParsersTests
{
    /// <summary>Files in the corpus that must be refused, with the reason; every other file must parse.</summary>
    private static readonly Dictionary<string, DocumentFailure> ExpectedFailures = new(StringComparer.Ordinal)
    {
        ["pypdf-cmyk-image.pdf"] = DocumentFailure.NoTextLayer,
    };

    /// <summary>Files whose whole text is legitimately tiny (a one-word Arabic sample, empty forms).</summary>
    private static readonly Dictionary<string, int> MinimumLengths = new(StringComparer.Ordinal)
    {
        ["pypdf-habibi.pdf"] = 15,
        ["pypdf-pdflatex-forms.pdf"] = 10,
        ["pypdf-libreoffice-form.pdf"] = 100,
        ["footnotes.docx"] = 400,
    };

    private readonly DocumentParsers _parsers = new();

    public static TheoryData<string, string> CorpusFiles()
    {
        var data = new TheoryData<string, string>();
        foreach (var folder in new[] { "pdf", "docx", "html", "xml" })
        {
            foreach (var file in Directory.GetFiles(TestData.Path("docs", folder)).Order(StringComparer.Ordinal))
            {
                data.Add(folder, Path.GetFileName(file));
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(CorpusFiles))]
    public void Every_corpus_file_parses_or_fails_with_the_expected_reason(string folder, string file)
    {
        var bytes = File.ReadAllBytes(TestData.Path("docs", folder, file));
        var type = DocumentTypeSniffer.Detect(bytes.AsSpan(0, Math.Min(bytes.Length, DocumentTypeSniffer.RecommendedHeadLength)), file, null);
        var parser = _parsers.For(type);

        if (ExpectedFailures.TryGetValue(file, out var failure))
        {
            Fails(parser, bytes, failure);
            return;
        }

        var doc = ParseBytes(parser, bytes, file);

        AssertWellFormed(doc);
        Assert.True(doc.Text.Length >= MinimumLengths.GetValueOrDefault(file, 500), $"{file}: only {doc.Text.Length} characters");
        Assert.DoesNotContain('\uFFFD', doc.Text);
        if (folder == "pdf")
        {
            Assert.All(doc.Sections, s => Assert.NotNull(s.Page));
        }
        else
        {
            Assert.All(doc.Sections, s => Assert.Null(s.Page));
        }

        if (folder is "html" or "xml")
        {
            Assert.NotNull(doc.Title);
            Assert.True(doc.Sections.Count(s => s.HeadingPath is not null) > 20, $"{file}: too few headed sections");
        }
    }

    [Theory]
    [InlineData(DocumentTypes.Pdf, typeof(PdfParser))]
    [InlineData(DocumentTypes.Docx, typeof(DocxParser))]
    [InlineData(DocumentTypes.Html, typeof(HtmlParser))]
    [InlineData(DocumentTypes.Xml, typeof(XmlParser))]
    [InlineData(DocumentTypes.Markdown, typeof(MarkdownParser))]
    [InlineData(DocumentTypes.Text, typeof(PlainTextParser))]
    [InlineData("PDF", typeof(PdfParser))]
    public void Each_source_type_has_its_parser(string sourceType, Type expected)
    {
        Assert.IsType(expected, _parsers.For(sourceType));
    }

    [Theory]
    [InlineData(DocumentTypes.Unsupported)]
    [InlineData("xlsx")]
    [InlineData("")]
    public void Unknown_types_are_unsupported(string sourceType)
    {
        var ex = Assert.Throws<DocumentParseException>(() => _parsers.For(sourceType));

        Assert.Equal(DocumentFailure.Unsupported, ex.Kind);
        Assert.Contains("not supported", ex.Message, StringComparison.Ordinal);
    }
}
