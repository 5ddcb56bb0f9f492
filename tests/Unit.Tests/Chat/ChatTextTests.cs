using RagOrleans.Abstractions;
using RagOrleans.Grains.Chat;
using RagOrleans.Grains.Storage;
using Xunit;

namespace RagOrleans.Unit.Tests.Chat;

public sealed class FollowUpRewriterTests
{
    private static ChatTurn Turn(string question, string? rewritten = null) => new(question, "An answer.", [], DateTimeOffset.UnixEpoch, rewritten);

    [Theory]
    [InlineData("And what about its limits?")]
    [InlineData("What about timers?")]
    [InlineData("Does that survive restarts?")]
    [InlineData("Why?")]
    [InlineData("How do they work?")]
    public void Follow_ups_carry_the_previous_turns_key_terms(string message)
    {
        var rewritten = FollowUpRewriter.Rewrite(message, [Turn("Are Orleans reminders persistent?")]);

        Assert.StartsWith(message, rewritten, StringComparison.Ordinal);
        Assert.Contains("Orleans", rewritten, StringComparison.Ordinal);
        Assert.Contains("reminders", rewritten, StringComparison.Ordinal);
        Assert.DoesNotContain("Are", rewritten[message.Length..], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("How hot is the oven for bread?")]
    [InlineData("Why do timers stop when the silo fails?")]
    [InlineData("What is the difference between grains and silos?")]
    public void Standalone_questions_are_left_alone(string message) =>
        Assert.Equal(message, FollowUpRewriter.Rewrite(message, [Turn("Are reminders persistent?")]));

    [Fact]
    public void Without_history_nothing_is_rewritten() =>
        Assert.Equal("And its limits?", FollowUpRewriter.Rewrite("  And its limits? ", []));

    [Fact]
    public void The_previous_rewritten_query_is_the_source_and_terms_already_present_are_not_repeated()
    {
        var history = new[] { Turn("Are reminders persistent?"), Turn("And their period?", "And their period? (reminders persistent)") };
        var rewritten = FollowUpRewriter.Rewrite("What about its reminders table?", history);

        Assert.Equal("What about its reminders table? (period persistent)", rewritten);
    }
}

public sealed class ChatPromptTests
{
    private static Citation Passage(int n, string text) => new(n, "doc" + n, "doc" + n + "#0", text, 1f / n, "Title " + n, null);

    [Fact]
    public void Passages_are_numbered_and_history_fills_what_is_left_of_the_budget()
    {
        var passages = new[] { Passage(1, "Reminders are persistent."), Passage(2, "Timers are not durable.") };
        var history = new[] { ("Old question one?", "Old answer one."), ("Old question two?", "Old answer two.") };

        var roomy = ChatPrompt.Build("SYSTEM", "Are reminders persistent?", passages, history, 10_000, ChatPrompt.EstimateTokens);
        Assert.Equal(["system", "user", "assistant", "user", "assistant", "user"], roomy.Messages.Select(m => m.Role).ToArray());
        Assert.Equal((2, 2), (roomy.Passages, roomy.HistoryTurns));
        var last = roomy.Messages[^1].Content;
        Assert.Contains("[1] (Title 1)\nReminders are persistent.", last, StringComparison.Ordinal);
        Assert.Contains("[2] (Title 2)\nTimers are not durable.", last, StringComparison.Ordinal);
        Assert.EndsWith("Question: Are reminders persistent?", last, StringComparison.Ordinal);

        // A tight budget keeps the passages and drops the oldest turns first.
        var used = ChatPrompt.Build("SYSTEM", "Are reminders persistent?", passages, [], 10_000, ChatPrompt.EstimateTokens).EstimatedTokens;
        var tight = ChatPrompt.Build("SYSTEM", "Are reminders persistent?", passages, history, used + 20, ChatPrompt.EstimateTokens);
        Assert.Equal((2, 1), (tight.Passages, tight.HistoryTurns));
        Assert.Equal("Old question two?", tight.Messages[1].Content);
    }

    [Fact]
    public void Low_ranked_passages_are_dropped_before_the_best_one_is_cut()
    {
        var passages = Enumerable.Range(1, 5).Select(i => Passage(i, new string('x', 400))).ToArray();
        var prompt = ChatPrompt.Build("S", "Q?", passages, [], 300, ChatPrompt.EstimateTokens);
        Assert.InRange(prompt.Passages, 1, 2);
        Assert.Contains("[1]", prompt.Messages[^1].Content, StringComparison.Ordinal);
        Assert.DoesNotContain("[5]", prompt.Messages[^1].Content, StringComparison.Ordinal);

        var tiny = ChatPrompt.Build("S", "Q?", passages, [], 60, ChatPrompt.EstimateTokens);
        Assert.Equal(1, tiny.Passages);
    }

    [Fact]
    public void Markers_are_read_in_order_of_first_use() =>
        Assert.Equal([2, 1, 3], ChatPrompt.Markers("A [2]. B [1][2]. C [1, 3]. Not a marker [x]."));

    [Theory]
    [InlineData("Are reminders persistent?", "are reminders persistent")]
    [InlineData("  ARE   reminders\tpersistent ?! ", "are reminders persistent")]
    public void Questions_are_normalized_for_the_cache(string question, string expected) =>
        Assert.Equal(expected, ChatPrompt.NormalizeQuestion(question));
}

public sealed class ExtractiveDeduplicationTests
{
    [Fact]
    public void A_sentence_quoted_again_with_extra_text_around_it_is_a_duplicate()
    {
        // Overlapping chunks: the second repeats the first's sentence inside a longer one.
        var passages = new AnswerPassage[]
        {
            new(1, "Reminders are persistent and survive cluster restarts. They are stored in the reminder table.", 0.9f),
            new(2, "As noted above, reminders are persistent and survive cluster restarts, unlike grain timers.", 0.8f),
            new(3, "Persistent reminders survive cluster restarts because the reminder table keeps them.", 0.7f),
        };
        var answer = new ExtractiveAnswerer(new ExtractiveAnswerOptions { DuplicateJaccard = 0.95f }).Compose("Do reminders survive cluster restarts?", passages);

        var survive = answer.Sentences.Where(s => s.Text.Contains("survive cluster restarts", StringComparison.Ordinal)).ToList();
        Assert.Single(survive);
        Assert.Equal(1, survive[0].CitationNumber);
        Assert.Contains("Reminders are persistent and survive cluster restarts. [1]", answer.Answer, StringComparison.Ordinal);

        // Kept in passage order, each sentence quoted exactly as in its passage.
        Assert.All(answer.Sentences, s => Assert.Contains(s.Text, passages[s.CitationNumber - 1].Text, StringComparison.Ordinal));
        Assert.Equal(answer.Sentences.OrderBy(s => s.CitationNumber).Select(s => s.CitationNumber), answer.Sentences.Select(s => s.CitationNumber));
    }
}

public sealed class ConversationCursorTests
{
    private static ConversationSummary Conv(string id, int minute) =>
        new(id, "kb", "Q " + id, 1, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch.AddMinutes(minute));

    [Fact]
    public void Pages_run_newest_first_without_gaps_or_repeats()
    {
        var all = new[] { Conv("a", 1), Conv("b", 3), Conv("c", 2), Conv("d", 3), Conv("e", 0) };
        var seen = new List<string>();
        string? cursor = null;
        do
        {
            var page = ConversationCursor.Page(all, cursor, 2);
            seen.AddRange(page.Conversations.Select(c => c.Id));
            cursor = page.NextCursor;
        }
        while (cursor is not null);

        Assert.Equal(["d", "b", "c", "a", "e"], seen);
        Assert.Throws<RagException>(() => ConversationCursor.Page(all, "bogus!", 2));
    }
}
