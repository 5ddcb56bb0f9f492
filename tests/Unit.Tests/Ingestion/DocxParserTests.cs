using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using DocumentFormat.OpenXml;
using DocumentFormat.OpenXml.Packaging;
using DocumentFormat.OpenXml.Wordprocessing;
using RagOrleans.Grains.Ingestion;
using Xunit;
using static RagOrleans.Unit.Tests.Ingestion.ParsedDocumentChecks;

namespace RagOrleans.Unit.Tests.Ingestion;

public sealed class DocxParserTests
{
    private readonly DocxParser _parser = new();

    [Fact]
    public void Real_footnotes_document_includes_body_and_footnote_text()
    {
        var doc = ParseFile(_parser, "docs", "docx", "footnotes.docx");

        AssertWellFormed(doc);
        Assert.Contains("This document shows the usage of footnote.", doc.Text, StringComparison.Ordinal);
        Assert.Equal("Footnotes", SectionOf(doc, "Footnote is for detailed comments.").HeadingPath);
    }

    [Fact]
    public void Smart_tag_text_and_headers_are_read_once()
    {
        var doc = ParseFile(_parser, "docs", "docx", "ut-regents-rule-40101.docx");

        AssertWellFormed(doc);
        // "United States" sits inside w:smartTag elements the SDK does not model.
        Assert.Contains("the top universities in the United States and abroad", doc.Text, StringComparison.Ordinal);
        const string Header = "The University of Texas System Rules and Regulations of the Board of Regents";
        Assert.Equal(doc.Text.IndexOf(Header, StringComparison.Ordinal), doc.Text.LastIndexOf(Header, StringComparison.Ordinal));
        Assert.Null(doc.Title); // the core title is the placeholder "1"
    }

    [Fact]
    public void Heading_styles_build_paths_in_a_real_document()
    {
        var doc = ParseFile(_parser, "docs", "docx", "word-complex-document.docx");

        Assert.Equal("Word Complex Document", doc.Title);
        Assert.Contains(doc.Sections, s => s.HeadingPath == "Word Complex Document > Format Columns: Equal Width Column > Two Columns");
        Assert.Contains("Umlauted A", doc.Text, StringComparison.Ordinal);
    }

    [Fact]
    public void Generated_document_has_headings_table_footnote_and_header_once()
    {
        var doc = ParseBytes(_parser, BuildDocx());

        AssertWellFormed(doc);
        Assert.Equal("Operations Manual", doc.Title);
        Assert.Equal("Operations Manual > Installation", SectionOf(doc, "Install the agent on every node.").HeadingPath);
        Assert.Equal("Operations Manual > Installation > Requirements", SectionOf(doc, "Component | Minimum").HeadingPath);
        Assert.Contains("Component | Minimum\nMemory | 8 GB\nDisk | 100 GB", doc.Text, StringComparison.Ordinal);
        Assert.Contains("- First bullet", doc.Text, StringComparison.Ordinal);
        // Notes go under the Title-style heading like every other top-level heading.
        Assert.Equal("Operations Manual > Footnotes", SectionOf(doc, "Measured on a cold start.").HeadingPath);
        Assert.Equal("Operations Manual > Endnotes", SectionOf(doc, "See the appendix.").HeadingPath);
        Assert.DoesNotContain("deleted words", doc.Text, StringComparison.Ordinal);
        // Two sections reference two header parts with the same text; it is indexed once.
        Assert.Equal(1, Count(doc.Text, "Company Confidential"));
        Assert.Equal(1, Count(doc.Text, "Text box note"));
    }

    [Fact]
    public void Zip_bomb_disguised_as_docx_is_refused_quickly()
    {
        var path = Path.Combine(TestData.NewTempDir("docx-bomb"), "bomb.docx");
        try
        {
            WriteBomb(path, entryBytes: 1L << 30);
            Assert.True(new FileInfo(path).Length < 4 * 1024 * 1024, "the bomb should be small on disk");
            var sw = Stopwatch.StartNew();

            using var stream = File.OpenRead(path);
            var ex = Assert.Throws<DocumentParseException>(() => _parser.Parse(stream, "bomb.docx"));

            Assert.Equal(DocumentFailure.TooLarge, ex.Kind);
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"took {sw.Elapsed}");
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
        }
    }

    [Fact]
    public void Zip_bomb_that_understates_its_sizes_is_caught_while_inflating()
    {
        using var ms = new MemoryStream();
        WriteBomb(ms, entryBytes: 64L * 1024 * 1024);
        var bytes = ms.ToArray();
        // Claim 1 KB in both the local header and the central directory for the big entry.
        PatchUncompressedSizes(bytes, "word/document.xml", 1024);
        var parser = new DocxParser(new DocumentParserLimits { MaxUncompressedBytes = 8L * 1024 * 1024 });
        var sw = Stopwatch.StartNew();

        var ex = Assert.Throws<DocumentParseException>(() => ParseBytes(parser, bytes));

        // .NET stops reading an entry at its declared size, so the lie yields a 1 KB body that is not a
        // Word document; either way nothing near 64 MB is inflated and the refusal is quick.
        Assert.True(ex.Kind is DocumentFailure.TooLarge or DocumentFailure.Corrupt or DocumentFailure.Unsupported, ex.Kind.ToString());
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"took {sw.Elapsed}");
    }

    [Fact]
    public void Zip_that_is_not_a_word_document_is_unsupported()
    {
        using var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            using var w = new StreamWriter(zip.CreateEntry("notes/readme.txt").Open());
            w.Write("just a zip");
        }

        Fails(_parser, ms.ToArray(), DocumentFailure.Unsupported);
    }

    [Fact]
    public void Encrypted_office_file_is_reported_as_encrypted_and_legacy_doc_as_unsupported()
    {
        byte[] ole = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, .. new byte[504]];
        var encrypted = ole.Concat(Encoding.Unicode.GetBytes("EncryptionInfo")).Concat(new byte[64]).Concat(Encoding.Unicode.GetBytes("EncryptedPackage")).ToArray();

        Fails(_parser, encrypted, DocumentFailure.Encrypted);
        Fails(_parser, ole.Concat(Encoding.Unicode.GetBytes("WordDocument")).ToArray(), DocumentFailure.Unsupported);
    }

    [Fact]
    public void Damaged_and_empty_inputs_fail_clearly()
    {
        var real = File.ReadAllBytes(TestData.Path("docs", "docx", "footnotes.docx"));

        Fails(_parser, real[..(real.Length / 2)], DocumentFailure.Corrupt);
        Fails(_parser, "PK\u0003\u0004 not really a zip"u8.ToArray(), DocumentFailure.Corrupt);
        Fails(_parser, "plain text"u8.ToArray(), DocumentFailure.Corrupt);
        Fails(_parser, [], DocumentFailure.Empty);
    }

    internal static byte[] BuildDocx()
    {
        using var ms = new MemoryStream();
        using (var word = WordprocessingDocument.Create(ms, WordprocessingDocumentType.Document))
        {
            word.PackageProperties.Title = "Operations Manual";
            var main = word.AddMainDocumentPart();
            var styles = main.AddNewPart<StyleDefinitionsPart>();
            styles.Styles = new Styles(
                ParagraphStyle("Title", "Title"),
                ParagraphStyle("Heading1", "heading 1"),
                ParagraphStyle("Heading2", "heading 2"));

            var footnotes = main.AddNewPart<FootnotesPart>();
            footnotes.Footnotes = new Footnotes(
                new Footnote(new Paragraph(new Run(new SeparatorMark()))) { Type = FootnoteEndnoteValues.Separator, Id = -1 },
                new Footnote(new Paragraph(new Run(new Text("Measured on a cold start.")))) { Id = 1 });
            var endnotes = main.AddNewPart<EndnotesPart>();
            endnotes.Endnotes = new Endnotes(
                new Endnote(new Paragraph(new Run(new SeparatorMark()))) { Type = FootnoteEndnoteValues.Separator, Id = -1 },
                new Endnote(new Paragraph(new Run(new Text("See the appendix.")))) { Id = 1 });

            var header1 = main.AddNewPart<HeaderPart>();
            header1.Header = new Header(new Paragraph(new Run(new Text("Company Confidential"))));
            var header2 = main.AddNewPart<HeaderPart>();
            header2.Header = new Header(new Paragraph(new Run(new Text("Company Confidential"))));

            main.Document = new Document(new Body(
                Styled("Title", "Operations Manual"),
                Styled("Heading1", "Installation"),
                new Paragraph(
                    new Run(new Text("Install the agent on every node.") { Space = SpaceProcessingModeValues.Preserve }),
                    new DeletedRun(new DeletedText("deleted words")),
                    new Run(new FootnoteReference { Id = 1 }),
                    new Run(new EndnoteReference { Id = 1 })),
                new Paragraph(
                    new ParagraphProperties(new SectionProperties(new HeaderReference { Id = main.GetIdOfPart(header1), Type = HeaderFooterValues.Default })),
                    new Run(new Text("End of the first section."))),
                Styled("Heading2", "Requirements"),
                new Table(
                    Row("Component", "Minimum"),
                    Row("Memory", "8 GB"),
                    Row("Disk", "100 GB")),
                new Paragraph(
                    new ParagraphProperties(new NumberingProperties(new NumberingLevelReference { Val = 0 }, new NumberingId { Val = 1 })),
                    new Run(new Text("First bullet"))),
                new Paragraph(new Run(new Picture(new TextBoxContent(new Paragraph(new Run(new Text("Text box note"))))))),
                new SectionProperties(new HeaderReference { Id = main.GetIdOfPart(header2), Type = HeaderFooterValues.Default })));
        }

        return ms.ToArray();

        static Style ParagraphStyle(string id, string name) =>
            new(new StyleName { Val = name }) { Type = StyleValues.Paragraph, StyleId = id };

        static Paragraph Styled(string styleId, string text) =>
            new(new ParagraphProperties(new ParagraphStyleId { Val = styleId }), new Run(new Text(text)));

        static TableRow Row(params string[] cells) =>
            new(cells.Select(c => new TableCell(new Paragraph(new Run(new Text(c))))));
    }

    private static void WriteBomb(string path, long entryBytes)
    {
        using var file = File.Create(path);
        WriteBomb(file, entryBytes);
    }

    /// <summary>A zip with the parts of a Word document whose body is <paramref name="entryBytes"/> of zeros, streamed.</summary>
    private static void WriteBomb(Stream target, long entryBytes)
    {
        using var zip = new ZipArchive(target, ZipArchiveMode.Create, leaveOpen: true);
        using (var w = new StreamWriter(zip.CreateEntry("[Content_Types].xml").Open()))
        {
            w.Write("<?xml version=\"1.0\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"/>");
        }

        using var entry = zip.CreateEntry("word/document.xml", CompressionLevel.SmallestSize).Open();
        var zeros = new byte[1 << 20];
        for (long written = 0; written < entryBytes; written += zeros.Length)
        {
            entry.Write(zeros);
        }
    }

    private static void PatchUncompressedSizes(byte[] zip, string name, uint size)
    {
        var nameBytes = Encoding.ASCII.GetBytes(name);
        var patched = 0;
        for (var i = 0; i + 46 < zip.Length; i++)
        {
            if (zip[i] != 'P' || zip[i + 1] != 'K')
            {
                continue;
            }

            // Local file header: sizes at +22, name at +30. Central directory: sizes at +24, name at +46.
            if (zip[i + 2] == 3 && zip[i + 3] == 4 && zip.AsSpan(i + 30).StartsWith(nameBytes))
            {
                BitConverter.TryWriteBytes(zip.AsSpan(i + 22), size);
                patched++;
            }
            else if (zip[i + 2] == 1 && zip[i + 3] == 2 && zip.AsSpan(i + 46).StartsWith(nameBytes))
            {
                BitConverter.TryWriteBytes(zip.AsSpan(i + 24), size);
                patched++;
            }
        }

        Assert.Equal(2, patched);
    }

    private static int Count(string text, string value) =>
        (text.Length - text.Replace(value, string.Empty, StringComparison.Ordinal).Length) / value.Length;
}
