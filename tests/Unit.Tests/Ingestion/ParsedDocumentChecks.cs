using RagOrleans.Grains.Ingestion;
using Xunit;

namespace RagOrleans.Unit.Tests.Ingestion;

/// <summary>Structural invariants every parser's output must satisfy for the chunker.</summary>
internal static class ParsedDocumentChecks
{
    public static void AssertWellFormed(ParsedDocument doc)
    {
        Assert.DoesNotContain('\r', doc.Text);
        Assert.NotEmpty(doc.Sections);
        var previousEnd = 0;
        int? previousPage = null;
        foreach (var s in doc.Sections)
        {
            Assert.True(s.Length > 0, $"empty section at {s.Start}");
            Assert.True(s.Start >= previousEnd, $"section at {s.Start} overlaps or precedes the previous one ending at {previousEnd}");
            Assert.True(s.Start + s.Length <= doc.Text.Length, $"section at {s.Start}+{s.Length} runs past the text ({doc.Text.Length})");
            Assert.False(char.IsWhiteSpace(doc.Text[s.Start]), $"section at {s.Start} starts with whitespace");
            Assert.False(char.IsWhiteSpace(doc.Text[s.Start + s.Length - 1]), $"section at {s.Start} ends with whitespace");
            if (s.Page is not null)
            {
                Assert.True(s.Page >= 1);
                Assert.True(previousPage is null || s.Page >= previousPage, "pages go backwards");
                previousPage = s.Page;
            }

            previousEnd = s.Start + s.Length;
        }
    }

    /// <summary>The section whose span contains the first occurrence of <paramref name="phrase"/>.</summary>
    public static DocumentSection SectionOf(ParsedDocument doc, string phrase)
    {
        var at = doc.Text.IndexOf(phrase, StringComparison.Ordinal);
        Assert.True(at >= 0, $"'{phrase}' not found in the text");
        var section = doc.Sections.FirstOrDefault(s => at >= s.Start && at < s.Start + s.Length);
        Assert.True(section is not null, $"'{phrase}' at {at} is outside every section");
        return section!;
    }

    public static ParsedDocument ParseFile(IDocumentParser parser, params string[] parts)
    {
        using var stream = File.OpenRead(TestData.Path(parts));
        return parser.Parse(stream, parts[^1]);
    }

    public static ParsedDocument ParseBytes(IDocumentParser parser, byte[] bytes, string? fileName = null)
    {
        using var stream = new MemoryStream(bytes);
        return parser.Parse(stream, fileName);
    }

    public static DocumentParseException Fails(IDocumentParser parser, byte[] bytes, DocumentFailure expected)
    {
        var ex = Assert.Throws<DocumentParseException>(() => ParseBytes(parser, bytes));
        Assert.Equal(expected, ex.Kind);
        Assert.False(string.IsNullOrWhiteSpace(ex.Message));
        return ex;
    }
}
