using RagOrleans.Grains.Chat;
using Xunit;

namespace RagOrleans.Unit.Tests.Chat;

public sealed class ExtractiveAnswererTests
{
    private const string NotFound = "I could not find an answer in the collection.";

    private static readonly AnswerPassage[] TimerPassages =
    [
        new(1, "Reminders are persistent and continue to trigger in almost all situations, including partial or full cluster restarts. A reminder is registered with the reminder service, which stores it in durable storage. Reminders are usually used for infrequent work measured in minutes or hours.", 0.82f),
        new(2, "Grain timers are not durable: a timer belongs to one activation and stops when that activation is deactivated. Timers are used for frequent work while an activation is active. The runtime schedules the next tick after the callback completes.", 0.79f),
        new(3, "Orleans stores grain state through storage providers. Configure a provider in the silo builder before you start the host.", 0.41f),
    ];

    private static ExtractiveAnswerer Answerer(ExtractiveAnswerOptions? options = null) => new(options ?? new ExtractiveAnswerOptions());

    [Fact]
    public void Picks_the_sentences_that_answer_the_question_with_citations()
    {
        var answer = Answerer().Compose("What is the difference between timers and reminders?", TimerPassages);

        Assert.NotEmpty(answer.Sentences);
        Assert.InRange(answer.Sentences.Count, 2, 4);
        Assert.Contains(answer.Sentences, s => s.CitationNumber == 1 && s.Text.StartsWith("Reminders are persistent", StringComparison.Ordinal));
        Assert.Contains(answer.Sentences, s => s.CitationNumber == 2 && s.Text.StartsWith("Grain timers are not durable", StringComparison.Ordinal));
        Assert.DoesNotContain(answer.Sentences, s => s.CitationNumber == 3);

        // Ordered by passage rank, then position; each sentence followed by its marker.
        Assert.Equal(answer.Sentences.OrderBy(s => s.CitationNumber).Select(s => s.CitationNumber), answer.Sentences.Select(s => s.CitationNumber));
        Assert.Equal(string.Join(' ', answer.Sentences.Select(s => $"{s.Text} [{s.CitationNumber}]")), answer.Answer);
        Assert.StartsWith("Reminders are persistent and continue to trigger", answer.Answer, StringComparison.Ordinal);
    }

    [Fact]
    public void Answers_a_focused_question_from_the_right_passage()
    {
        var answer = Answerer().Compose("How do I configure a storage provider?", TimerPassages);
        var first = answer.Sentences[0];
        Assert.Equal(3, first.CitationNumber);
        Assert.Equal("Configure a provider in the silo builder before you start the host.", answer.Sentences.Last().Text);
    }

    [Fact]
    public void Citation_numbers_are_those_of_the_passages_not_their_positions()
    {
        AnswerPassage[] passages =
        [
            new(7, "Streams deliver events to subscribers in order per stream.", 0.9f),
            new(3, "Reminders survive cluster restarts because they are stored durably.", 0.8f),
        ];
        var answer = Answerer().Compose("Do reminders survive restarts?", passages);
        var sentence = Assert.Single(answer.Sentences);
        Assert.Equal(3, sentence.CitationNumber);
        Assert.Equal("Reminders survive cluster restarts because they are stored durably. [3]", answer.Answer);
    }

    [Fact]
    public void Duplicate_sentences_from_overlapping_passages_are_quoted_once()
    {
        AnswerPassage[] passages =
        [
            new(1, "Timers run on one activation. Reminders are persistent and survive cluster restarts.", 0.9f),
            new(2, "Reminders are persistent and survive cluster restarts. They are stored by the reminder provider.", 0.85f),
            new(3, "Note that reminders are persistent and survive  cluster restarts!", 0.8f),
        ];
        var answer = Answerer().Compose("Are reminders persistent across cluster restarts?", passages);
        var restarts = answer.Sentences.Where(s => s.Text.Contains("survive", StringComparison.Ordinal)).ToList();
        var kept = Assert.Single(restarts);
        Assert.Equal(1, kept.CitationNumber);
    }

    [Fact]
    public void Sentences_are_quoted_exactly_with_whitespace_collapsed()
    {
        AnswerPassage[] passages = [new(1, "- Reminders   are\n  durable across   silo restarts.\n- other", 0.5f)];
        var answer = Answerer().Compose("Are reminders durable?", passages);
        Assert.Equal("Reminders are durable across silo restarts. [1]", answer.Answer);
    }

    [Fact]
    public void Irrelevant_or_empty_passages_give_the_not_found_message()
    {
        var none = Answerer().Compose("How do I bake sourdough bread?", TimerPassages);
        Assert.Equal(NotFound, none.Answer);
        Assert.Empty(none.Sentences);

        Assert.Equal(NotFound, Answerer().Compose("What are reminders?", []).Answer);
        Assert.Equal(NotFound, Answerer().Compose("What are reminders?", [new AnswerPassage(1, "   ", 1f)]).Answer);
        Assert.Equal(NotFound, Answerer().Compose("the of and", TimerPassages).Answer);
    }

    [Fact]
    public void Code_and_markup_noise_is_not_quoted()
    {
        AnswerPassage[] passages =
        [
            new(1, "var reminder = await this.RegisterOrUpdateReminder(\"reminder\", due, period);\n}\n---\nRegister a reminder with RegisterOrUpdateReminder from the grain.", 0.9f),
        ];
        var answer = Answerer().Compose("How do I register a reminder?", passages);
        var sentence = Assert.Single(answer.Sentences);
        Assert.Equal("Register a reminder with RegisterOrUpdateReminder from the grain.", sentence.Text);
    }

    [Fact]
    public void Respects_max_sentences_and_max_chars()
    {
        var passages = Enumerable.Range(1, 10)
            .Select(i => new AnswerPassage(i, $"Reminder fact number {i} says reminders are durable in scenario {i * 17}.", 1f / i))
            .ToArray();
        var answer = Answerer(new ExtractiveAnswerOptions { MaxSentences = 3, DuplicateJaccard = 1f }).Compose("Are reminders durable?", passages);
        Assert.Equal(3, answer.Sentences.Count);

        var shortAnswer = Answerer(new ExtractiveAnswerOptions { MaxChars = 120, DuplicateJaccard = 1f }).Compose("Are reminders durable?", passages);
        Assert.True(shortAnswer.Answer.Length <= 120, shortAnswer.Answer);
        Assert.NotEmpty(shortAnswer.Sentences);
    }

    [Fact]
    public void Semantic_similarity_can_find_a_paraphrase_without_shared_terms()
    {
        AnswerPassage[] passages =
        [
            new(1, "The cluster keeps working when one machine crashes.", 0.7f),
            new(2, "Streams deliver events to subscribers in order.", 0.6f),
        ];

        // A toy embedder: "fault tolerance" and "crashes" share a direction, everything else is orthogonal.
        static float[][] Embed(IReadOnlyList<string> texts) => texts
            .Select(t => t.Contains("fault", StringComparison.Ordinal) || t.Contains("crashes", StringComparison.Ordinal)
                ? new[] { 3f, 0f, 1f }
                : new[] { 0f, 2f, 0f })
            .ToArray();

        Assert.Equal(NotFound, Answerer().Compose("Is there fault tolerance?", passages).Answer);
        var answer = Answerer().Compose("Is there fault tolerance?", passages, Embed);
        Assert.Equal("The cluster keeps working when one machine crashes. [1]", answer.Answer);
    }
}
