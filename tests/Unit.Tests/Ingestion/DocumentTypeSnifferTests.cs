using System.Text;
using RagOrleans.Grains.Ingestion;
using Xunit;

namespace RagOrleans.Unit.Tests.Ingestion;

public sealed class DocumentTypeSnifferTests
{
    private static string Detect(string content, string? fileName = null, string? contentType = null) =>
        DocumentTypeSniffer.Detect(Encoding.UTF8.GetBytes(content), fileName, contentType);

    [Theory]
    [InlineData("%PDF-1.7\n%âãÏÓ", "file.txt", "pdf")]
    [InlineData("<!DOCTYPE html><html><body>x</body></html>", "page.md", "html")]
    [InlineData("  \n<html lang=\"en\">", null, "html")]
    [InlineData("<?xml version=\"1.0\"?><rfc/>", null, "xml")]
    [InlineData("<?xml version=\"1.0\"?>\n<html xmlns=\"http://www.w3.org/1999/xhtml\">", null, "html")]
    [InlineData("just words", "notes.md", "markdown")]
    [InlineData("just words", "notes.MARKDOWN", "markdown")]
    [InlineData("# Heading", "notes.txt", "text")]
    [InlineData("just words", null, "text")]
    [InlineData("just words", null, "markdown", "text/markdown; charset=utf-8")]
    [InlineData("---\ntitle: x\n---\nbody", null, "markdown")]
    [InlineData("intro\n\n## Section\n", null, "markdown")]
    [InlineData("", "empty.md", "markdown")]
    [InlineData("", null, "text")]
    public void Detects_by_content_then_name_then_content_type(string content, string? fileName, string expected, string? contentType = null) =>
        Assert.Equal(expected, Detect(content, fileName, contentType));

    [Fact]
    public void Zip_is_docx_only_when_it_looks_like_word()
    {
        byte[] zip = [(byte)'P', (byte)'K', 3, 4, 20, 0, 6, 0, .. "[Content_Types].xml"u8];
        byte[] word = [.. zip, .. "word/document.xml"u8];
        Assert.Equal("docx", DocumentTypeSniffer.Detect(word, null, null));
        Assert.Equal("docx", DocumentTypeSniffer.Detect(zip, "report.docx", null));
        Assert.Equal("unsupported", DocumentTypeSniffer.Detect(zip, "archive.zip", "application/zip"));
    }

    [Fact]
    public void Binary_is_unsupported_but_utf16_text_is_text()
    {
        byte[] binary = [0x7F, (byte)'E', (byte)'L', (byte)'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0x3E, 0];
        Assert.Equal("unsupported", DocumentTypeSniffer.Detect(binary, "tool.txt", "text/plain"));
        Assert.Equal("text", DocumentTypeSniffer.Detect(Encoding.Unicode.GetBytes("Hello there, plain words."), null, null));
        Assert.Equal("markdown", DocumentTypeSniffer.Detect([0xFF, 0xFE, .. Encoding.Unicode.GetBytes("Hello")], "a.md", null));
    }

    [Fact]
    public void Real_files_are_detected()
    {
        foreach (var (folder, type) in new[] { ("pdf", "pdf"), ("docx", "docx"), ("html", "html"), ("xml", "xml"), ("md", "markdown"), ("txt", "text") })
        {
            foreach (var file in Directory.GetFiles(Path.Combine(TestData.DocsDirectory, folder), "*", SearchOption.AllDirectories))
            {
                var head = new byte[DocumentTypeSniffer.RecommendedHeadLength];
                int read;
                using (var stream = File.OpenRead(file))
                {
                    read = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
                }

                Assert.Equal((file, type), (file, DocumentTypeSniffer.Detect(head.AsSpan(0, read), Path.GetFileName(file), null)));
            }
        }
    }
}
