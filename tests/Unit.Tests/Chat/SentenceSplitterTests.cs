using RagOrleans.Grains.Chat;
using Xunit;

namespace RagOrleans.Unit.Tests.Chat;

public sealed class SentenceSplitterTests
{
    private static string[] Split(string text) =>
        SentenceSplitter.Split(text).Select(s => text.Substring(s.Start, s.Length)).ToArray();

    [Theory]
    [InlineData("Timers are volatile. Reminders are durable.", new[] { "Timers are volatile.", "Reminders are durable." })]
    [InlineData("Is it durable? Yes! It is.", new[] { "Is it durable?", "Yes!", "It is." })]
    [InlineData("Use a reminder, e.g. for daily work. Then stop.", new[] { "Use a reminder, e.g. for daily work.", "Then stop." })]
    [InlineData("Use a reminder (i.e. durable) here. Done.", new[] { "Use a reminder (i.e. durable) here.", "Done." })]
    [InlineData("Dr. Smith met Mr. Jones in St. Petersburg. They talked.", new[] { "Dr. Smith met Mr. Jones in St. Petersburg.", "They talked." })]
    [InlineData("The U.S. Army arrived. It rained.", new[] { "The U.S. Army arrived.", "It rained." })]
    [InlineData("Apples, pears, etc. are fruit. Bread etc. Then more.", new[] { "Apples, pears, etc. are fruit.", "Bread etc.", "Then more." })]
    [InlineData("Pi is 3.14 roughly. Version 2.0.1 shipped.", new[] { "Pi is 3.14 roughly.", "Version 2.0.1 shipped." })]
    [InlineData("See No. 5 and Fig. 3 for details. Next.", new[] { "See No. 5 and Fig. 3 for details.", "Next." })]
    [InlineData("J. R. R. Tolkien wrote it. Yes.", new[] { "J. R. R. Tolkien wrote it.", "Yes." })]
    [InlineData("He paused... Then he left. And so... it goes.", new[] { "He paused...", "Then he left.", "And so... it goes." })]
    [InlineData("Wait… What?", new[] { "Wait…", "What?" })]
    [InlineData("\"Is it war?\" he asked. \"It is.\" She nodded.", new[] { "\"Is it war?\" he asked.", "\"It is.\"", "She nodded." })]
    [InlineData("It ended (finally.) Then rest.", new[] { "It ended (finally.)", "Then rest." })]
    [InlineData("Call Foo.Bar() on example.com now. Next.", new[] { "Call Foo.Bar() on example.com now.", "Next." })]
    [InlineData("\"Heavens! what a virulent attack!\" replied the prince.", new[] { "\"Heavens! what a virulent attack!\" replied the prince." })]
    [InlineData("第一句。第二句。", new[] { "第一句。", "第二句。" })]
    [InlineData("", new string[0])]
    [InlineData("   \n\n  ", new string[0])]
    [InlineData("no terminal punctuation", new[] { "no terminal punctuation" })]
    public void Splits_prose(string text, string[] expected) => Assert.Equal(expected, Split(text));

    [Fact]
    public void List_items_headings_and_short_lines_stand_alone()
    {
        var text = "Configuration\nSet these options before start:\n- first item without period\n- second item. With two sentences.\n1. numbered step\n# Heading\nTable | Row";
        Assert.Equal(
            [
                "Configuration", "Set these options before start:", "- first item without period", "- second item.",
                "With two sentences.", "1. numbered step", "# Heading", "Table | Row",
            ],
            Split(text));
    }

    [Fact]
    public void Hard_wrapped_prose_is_joined_across_lines()
    {
        var text = "It was in July, 1805, and the speaker was the well-known Anna Pavlovna\nScherer, maid of honor and favorite of the Empress Marya Fedorovna. With\nthese words she greeted Prince Vasili.\n\nNew paragraph.";
        Assert.Equal(
            [
                "It was in July, 1805, and the speaker was the well-known Anna Pavlovna\nScherer, maid of honor and favorite of the Empress Marya Fedorovna.",
                "With\nthese words she greeted Prince Vasili.",
                "New paragraph.",
            ],
            Split(text));
    }

    [Fact]
    public void Code_lines_are_not_split_at_dots()
    {
        var text = "Register the grain:\nsiloBuilder.UseLocalhostClustering().AddMemoryGrainStorage(\"x\");\nvar grain = client.GetGrain<IHello>(0);\nif (ok) {\n}";
        Assert.Equal(
            [
                "Register the grain:", "siloBuilder.UseLocalhostClustering().AddMemoryGrainStorage(\"x\");",
                "var grain = client.GetGrain<IHello>(0);", "if (ok) {", "}",
            ],
            Split(text));
    }

    [Fact]
    public void Range_overload_returns_offsets_into_the_whole_text()
    {
        const string text = "Skip this. Keep one. Keep two. Skip too.";
        var start = text.IndexOf("Keep", StringComparison.Ordinal);
        var spans = SentenceSplitter.Split(text, start, text.IndexOf("Skip too", StringComparison.Ordinal) - start);
        Assert.Equal(["Keep one.", "Keep two."], spans.Select(s => text.Substring(s.Start, s.Length)));
    }
}
