using System.Text;
using RagOrleans.Grains.Ingestion;
using Xunit;

namespace RagOrleans.Unit.Tests.Ingestion;

public sealed class PlainTextParserTests
{
    private static ParsedDocument Parse(byte[] bytes) => new PlainTextParser().Parse(new MemoryStream(bytes), "a.txt");

    private static byte[] Concat(byte[] a, byte[] b) => [.. a, .. b];

    [Fact]
    public void CanParse_only_text() =>
        Assert.True(new PlainTextParser().CanParse("text") && !new PlainTextParser().CanParse("markdown"));

    [Fact]
    public void Decodes_utf8_with_and_without_bom()
    {
        const string text = "Grüße aus Köln — ½ €";
        Assert.Equal(text, Parse(Encoding.UTF8.GetBytes(text)).Text);
        Assert.Equal(text, Parse(Concat([0xEF, 0xBB, 0xBF], Encoding.UTF8.GetBytes(text))).Text);
    }

    [Fact]
    public void Decodes_utf16_with_bom()
    {
        const string text = "Hello UTF-16 world\nsecond line";
        Assert.Equal(text, Parse(Concat([0xFF, 0xFE], Encoding.Unicode.GetBytes(text))).Text);
        Assert.Equal(text, Parse(Concat([0xFE, 0xFF], Encoding.BigEndianUnicode.GetBytes(text))).Text);
    }

    [Fact]
    public void Detects_utf16_without_bom_by_nul_pattern()
    {
        const string text = "Reminders are persistent; timers are not. Ünïcödé too.";
        Assert.Equal(text, Parse(Encoding.Unicode.GetBytes(text)).Text);
        Assert.Equal(text, Parse(Encoding.BigEndianUnicode.GetBytes(text)).Text);
    }

    [Fact]
    public void Invalid_utf8_falls_back_to_windows_1252()
    {
        // "café – 5€" in Windows-1252: é=0xE9, en dash=0x96, euro=0x80.
        byte[] bytes = [.. "caf"u8, 0xE9, (byte)' ', 0x96, (byte)' ', (byte)'5', 0x80];
        Assert.Equal("café – 5€", Parse(bytes).Text);
    }

    [Fact]
    public void Normalises_crlf_and_cr()
    {
        var doc = Parse(Encoding.UTF8.GetBytes("one\r\ntwo\rthree\n\r\nfour"));
        Assert.Equal("one\ntwo\nthree\n\nfour", doc.Text);
    }

    [Fact]
    public void Sections_are_paragraphs_trimmed_in_order()
    {
        var doc = Parse(Encoding.UTF8.GetBytes("Title line\n\n  First paragraph\nwraps here.  \n \t\nSecond one.\n\n\n"));
        Assert.Equal(["Title line", "First paragraph\nwraps here.", "Second one."],
            doc.Sections.Select(s => doc.Text.Substring(s.Start, s.Length)));
        Assert.All(doc.Sections, s => Assert.Null(s.HeadingPath));
        Assert.Equal("Title line", doc.Title);
    }

    [Fact]
    public void Title_is_null_for_long_first_line_or_empty_text()
    {
        Assert.Null(Parse(Encoding.UTF8.GetBytes(new string('x', 500) + "\nmore")).Title);
        var empty = Parse([]);
        Assert.Null(empty.Title);
        Assert.Empty(empty.Sections);
        Assert.Equal(string.Empty, empty.Text);
    }

    [Fact]
    public void War_and_peace_parses_into_paragraphs()
    {
        using var stream = File.OpenRead(TestData.WarAndPeacePath);
        var doc = new PlainTextParser().Parse(stream, "war-and-peace.txt");
        Assert.Equal("CHAPTER I", doc.Title);
        Assert.True(doc.Sections.Count > 5000);
        var previousEnd = 0;
        foreach (var s in doc.Sections)
        {
            Assert.True(s.Start >= previousEnd && s.Length > 0);
            Assert.False(char.IsWhiteSpace(doc.Text[s.Start]) || char.IsWhiteSpace(doc.Text[s.Start + s.Length - 1]));
            previousEnd = s.Start + s.Length;
        }
    }
}
