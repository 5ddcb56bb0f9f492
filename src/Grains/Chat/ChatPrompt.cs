using System.Text;
using System.Text.RegularExpressions;
using RagOrleans.Abstractions;

namespace RagOrleans.Grains.Chat;

/// <summary>One message of a chat-completions prompt.</summary>
/// <param name="Role"><c>system</c>, <c>user</c> or <c>assistant</c>.</param>
/// <param name="Content">The text.</param>
public sealed record PromptMessage(string Role, string Content);

/// <summary>A prompt and what it kept within its token budget.</summary>
/// <param name="Messages">System instructions, earlier turns (oldest first), then the question with the numbered passages.</param>
/// <param name="Passages">How many passages fitted (the best-ranked ones); their numbers are 1..Passages.</param>
/// <param name="HistoryTurns">How many of the most recent turns fitted.</param>
/// <param name="EstimatedTokens">The prompt's size under the counter it was built with.</param>
public sealed record BuiltPrompt(IReadOnlyList<PromptMessage> Messages, int Passages, int HistoryTurns, int EstimatedTokens);

/// <summary>Builds grounded prompts for an OpenAI-compatible model and reads the <c>[n]</c> markers of its answers.</summary>
public static partial class ChatPrompt
{
    /// <summary>The default system instructions.</summary>
    public const string DefaultSystemInstructions =
        "You answer questions using only the numbered passages provided with each question. " +
        "Cite every statement with the number of the passage it comes from in square brackets, like [1] or [2][3]. " +
        "If the passages do not contain the answer, say that you could not find it in the documents. " +
        "Be concise and do not invent facts, numbers or citations.";

    /// <summary>Instructions for rewriting a follow-up question into a stand-alone search query.</summary>
    public const string RewriteInstructions =
        "Rewrite the user's last message into a single stand-alone search query that can be understood without the " +
        "conversation, resolving pronouns and ellipsis from the earlier turns. Keep the user's language. " +
        "Answer with the query only, no quotes and no explanation. If the message already stands alone, repeat it unchanged.";

    /// <summary>Per-message overhead of the chat format (role markers), in tokens.</summary>
    private const int MessageOverhead = 4;

    /// <summary>
    /// The prompt for <paramref name="question"/>: the system instructions, then as many of the most recent turns of
    /// <paramref name="history"/> as fit, then the question with the passages numbered as their citations. Passages
    /// have priority over history; the lowest-ranked passages are dropped first when even they do not fit (the best
    /// one is always kept, truncated if need be).
    /// </summary>
    public static BuiltPrompt Build(
        string systemInstructions, string question, IReadOnlyList<Citation> passages, IReadOnlyList<(string Question, string Answer)> history,
        int tokenBudget, Func<string, int> countTokens)
    {
        ArgumentNullException.ThrowIfNull(question);
        ArgumentNullException.ThrowIfNull(passages);
        ArgumentNullException.ThrowIfNull(history);
        ArgumentNullException.ThrowIfNull(countTokens);

        var used = countTokens(systemInstructions) + countTokens(question) + (3 * MessageOverhead) + 40;
        var kept = new List<string>(passages.Count);
        foreach (var p in passages)
        {
            var block = PassageBlock(p);
            var cost = countTokens(block);
            if (used + cost > tokenBudget)
            {
                if (kept.Count == 0)
                {
                    // The best passage always goes in, cut to what is left.
                    var room = Math.Max(32, tokenBudget - used);
                    var ratio = Math.Min(1.0, (double)room / Math.Max(1, cost));
                    block = block[..Math.Max(1, (int)(block.Length * ratio))];
                    kept.Add(block);
                    used += countTokens(block);
                }

                break;
            }

            kept.Add(block);
            used += cost;
        }

        var turns = new List<(string Question, string Answer)>();
        for (var i = history.Count - 1; i >= 0; i--)
        {
            var cost = countTokens(history[i].Question) + countTokens(history[i].Answer) + (2 * MessageOverhead);
            if (used + cost > tokenBudget)
            {
                break;
            }

            turns.Insert(0, history[i]);
            used += cost;
        }

        var messages = new List<PromptMessage>(turns.Count * 2 + 2) { new("system", systemInstructions) };
        foreach (var (q, a) in turns)
        {
            messages.Add(new PromptMessage("user", q));
            messages.Add(new PromptMessage("assistant", a));
        }

        var user = new StringBuilder();
        user.Append("Passages:\n\n");
        foreach (var block in kept)
        {
            user.Append(block).Append("\n\n");
        }

        user.Append("Question: ").Append(question);
        messages.Add(new PromptMessage("user", user.ToString()));
        return new BuiltPrompt(messages, kept.Count, turns.Count, used);
    }

    /// <summary>The messages asking a model to rewrite <paramref name="message"/> given the last turns.</summary>
    public static IReadOnlyList<PromptMessage> BuildRewrite(string message, IReadOnlyList<(string Question, string Answer)> history, int maxTurns = 3)
    {
        var transcript = new StringBuilder();
        foreach (var (q, a) in history.Skip(Math.Max(0, history.Count - maxTurns)))
        {
            transcript.Append("User: ").Append(q).Append('\n');
            transcript.Append("Assistant: ").Append(a.Length > 600 ? a[..600] + "…" : a).Append('\n');
        }

        return
        [
            new PromptMessage("system", RewriteInstructions),
            new PromptMessage("user", $"Conversation so far:\n{transcript}\nLast message: {message}\n\nStand-alone query:"),
        ];
    }

    /// <summary>The distinct citation numbers the answer's <c>[n]</c> (or <c>[n, m]</c>) markers name, in order of first use.</summary>
    public static IReadOnlyList<int> Markers(string answer)
    {
        var result = new List<int>();
        foreach (Match m in MarkerRegex().Matches(answer))
        {
            foreach (var part in m.Groups[1].Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                if (int.TryParse(part, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && !result.Contains(n))
                {
                    result.Add(n);
                }
            }
        }

        return result;
    }

    /// <summary>A model's rewritten query made clean: trimmed, unquoted, on one line.</summary>
    public static string CleanQuery(string text) => Common.Whitespace.Collapse(text.AsSpan().Trim().Trim('"').Trim());

    /// <summary>A rough token count for text of an unknown tokenizer: about four characters per token (English, BPE).</summary>
    public static int EstimateTokens(string text) => string.IsNullOrEmpty(text) ? 0 : (text.Length + 3) / 4;

    /// <summary>Normalizes a question for the response cache: case, spacing and trailing punctuation do not matter.</summary>
    public static string NormalizeQuestion(string question)
    {
        var collapsed = Common.Whitespace.Collapse(question.AsSpan().Trim()).ToLowerInvariant();
        return collapsed.TrimEnd('?', '.', '!', ' ', '。', '？', '！');
    }

    private static string PassageBlock(Citation p)
    {
        var header = string.IsNullOrWhiteSpace(p.Title) ? $"[{p.Number}]" : $"[{p.Number}] ({p.Title}{(string.IsNullOrWhiteSpace(p.Section) ? "" : " — " + p.Section)})";
        return header + "\n" + p.Text.Trim();
    }

    [GeneratedRegex(@"\[(\d+(?:\s*,\s*\d+)*)\]")]
    private static partial Regex MarkerRegex();
}
