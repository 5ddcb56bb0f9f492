using System.Text;
using RagOrleans.Grains.Ingestion;
using Xunit;

namespace RagOrleans.Unit.Tests.Ingestion;

public sealed class MarkdownParserTests
{
    private static ParsedDocument Parse(string markdown) =>
        new MarkdownParser().Parse(new MemoryStream(Encoding.UTF8.GetBytes(markdown)), "page.md");

    private static string Slice(ParsedDocument doc, DocumentSection s) => doc.Text.Substring(s.Start, s.Length);

    [Fact]
    public void Front_matter_title_is_used_and_rest_is_not_indexed()
    {
        var doc = Parse("---\ntitle: \"Grain timers and reminders\"\ndescription: Secret description.\nms.date: 08/21/2026\n---\n\n# Timers\n\nBody text.\n");
        Assert.Equal("Grain timers and reminders", doc.Title);
        Assert.DoesNotContain("description", doc.Text, StringComparison.Ordinal);
        Assert.DoesNotContain("ms.date", doc.Text, StringComparison.Ordinal);
        Assert.Contains("Body text.", doc.Text, StringComparison.Ordinal);
    }

    [Fact]
    public void First_h1_is_the_title_without_front_matter()
    {
        var doc = Parse("Intro para.\n\n# The Title\n\ntext\n\n# Another\n");
        Assert.Equal("The Title", doc.Title);
    }

    [Fact]
    public void Nested_headings_give_heading_paths_and_heading_lines_are_outside_sections()
    {
        var doc = Parse("""
            # Timers and reminders

            Intro.

            ## Timer usage

            Timers are not durable.

            ### Details

            Deep.

            ## Reminder usage

            Reminders are durable.
            """);
        Assert.Equal(
            [
                ("Timers and reminders", "Intro."),
                ("Timers and reminders > Timer usage", "Timers are not durable."),
                ("Timers and reminders > Timer usage > Details", "Deep."),
                ("Timers and reminders > Reminder usage", "Reminders are durable."),
            ],
            doc.Sections.Select(s => (s.HeadingPath!, Slice(doc, s))));
        Assert.Contains("Reminder usage", doc.Text, StringComparison.Ordinal);
    }

    [Fact]
    public void Inline_markup_is_removed_link_text_kept_images_dropped()
    {
        var doc = Parse("Use **bold**, _em_, `Code.Call()` and [the docs](https://x.test/a) ![diagram](img.png) here.\n");
        Assert.Equal("Use bold, em, Code.Call() and the docs here.", doc.Text);
    }

    [Fact]
    public void Code_blocks_are_kept_verbatim_as_their_own_block()
    {
        var doc = Parse("Before:\n\n```csharp\nvar x = 1;\n\nif (x > 0) { Go(); }\n```\n\nAfter.\n");
        Assert.Equal("Before:\n\nvar x = 1;\n\nif (x > 0) { Go(); }\n\nAfter.", doc.Text);
    }

    [Fact]
    public void Tables_become_rows_of_cells()
    {
        var doc = Parse("| Mechanism | Owner |\n|---|---|\n| [Grain timer](timers.md) | One activation |\n| Reminder | One **grain** |\n");
        Assert.Equal("Mechanism | Owner\nGrain timer | One activation\nReminder | One grain", doc.Text);
    }

    [Fact]
    public void Lists_keep_one_item_per_line()
    {
        var doc = Parse("Steps:\n\n1. First step.\n2. Second step with `code`.\n   - nested bullet\n\n- a\n- b\n");
        Assert.Equal("Steps:\n\n1. First step.\n2. Second step with code.\n  - nested bullet\n\n- a\n- b", doc.Text);
    }

    [Fact]
    public void DocFx_directives_alerts_xrefs_and_html_are_cleaned()
    {
        var doc = Parse("""
            ## Observers <a name="observable"></a>

            :::code language="csharp" source="../snippets/X.cs" id="a":::

            :::zone pivot="azure"

            > [!NOTE]
            > Grains implementing <xref:Orleans.IGrainBase> use <xref:Orleans.ILifecycleObserver.OnStop*> and <xref:Orleans.ILifecycleParticipant`1>.

            :::zone-end

            [!INCLUDE [managed-identities](../../includes/managed-identities.md)]

            <!-- hidden comment -->
            """);
        Assert.Equal("Observers\n\nGrains implementing IGrainBase use OnStop and ILifecycleParticipant.", doc.Text);
        Assert.Equal("Observers", doc.Sections.Single().HeadingPath);
    }

    [Fact]
    public void CanParse_only_markdown() =>
        Assert.True(new MarkdownParser().CanParse("markdown") && !new MarkdownParser().CanParse("text"));

    [Fact]
    public void Real_orleans_pages_parse_to_clean_text_with_valid_sections()
    {
        var files = Directory.GetFiles(TestData.MarkdownDirectory, "*.md", SearchOption.AllDirectories);
        Assert.Equal(177, files.Length);
        foreach (var file in files)
        {
            using var stream = File.OpenRead(file);
            var doc = new MarkdownParser().Parse(stream, Path.GetFileName(file));
            if (File.ReadAllText(file).StartsWith("---", StringComparison.Ordinal))
            {
                Assert.False(string.IsNullOrWhiteSpace(doc.Title), file);
            }

            Assert.DoesNotContain("ms.date:", doc.Text, StringComparison.Ordinal);
            Assert.DoesNotContain(":::", doc.Text, StringComparison.Ordinal);
            Assert.DoesNotContain("[!NOTE]", doc.Text, StringComparison.Ordinal);
            Assert.DoesNotContain("<xref:", doc.Text, StringComparison.Ordinal);
            Assert.DoesNotContain("](http", doc.Text, StringComparison.Ordinal);
            var previousEnd = 0;
            foreach (var s in doc.Sections)
            {
                Assert.True(s.Start >= previousEnd && s.Length > 0 && s.Start + s.Length <= doc.Text.Length, file);
                Assert.False(char.IsWhiteSpace(doc.Text[s.Start]), file);
                previousEnd = s.Start + s.Length;
            }
        }
    }
}
