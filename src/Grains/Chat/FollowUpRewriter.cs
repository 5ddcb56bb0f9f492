using System.Text;
using RagOrleans.Abstractions;

namespace RagOrleans.Grains.Chat;

/// <summary>
/// Local (model-free) rewriting of follow-up questions into stand-alone queries: a message that leans on the
/// previous turn ("and what about its limits?", "why?", "does that survive restarts?") gets the previous turn's
/// key terms appended; a message that stands on its own is left untouched.
/// </summary>
public static class FollowUpRewriter
{
    /// <summary>At most this many terms are carried over from the previous turn.</summary>
    public const int MaxCarriedTerms = 6;

    // Words that point back at something said before.
    private static readonly HashSet<string> Anaphora = new(StringComparer.Ordinal)
    {
        "it", "its", "it's", "itself", "they", "them", "their", "theirs", "this", "that", "these", "those",
        "he", "she", "him", "her", "his", "former", "latter", "previous",
    };

    // Openings of elliptic follow-ups.
    private static readonly string[] FollowUpOpenings =
    [
        "and ", "what about", "how about", "also ", "but ", "what else", "anything else", "more about", "tell me more",
        "what if", "so ", "then ",
    ];

    /// <summary>
    /// The stand-alone query for <paramref name="message"/> given <paramref name="history"/> (oldest first): the
    /// message itself when there is no history or it does not look like a follow-up.
    /// </summary>
    public static string Rewrite(string message, IReadOnlyList<ChatTurn> history)
    {
        ArgumentNullException.ThrowIfNull(message);
        ArgumentNullException.ThrowIfNull(history);
        var trimmed = message.Trim();
        if (history.Count == 0 || !IsFollowUp(trimmed))
        {
            return trimmed;
        }

        var previous = history[^1];
        var source = previous.RewrittenQuery ?? previous.Question;
        var present = ExtractiveAnswerer.Terms(trimmed, null).ToHashSet(StringComparer.Ordinal);
        var carried = new List<string>();
        foreach (var word in Words(source))
        {
            var stem = ExtractiveAnswerer.Terms(word, null).FirstOrDefault();
            if (stem is null || present.Contains(stem) || Anaphora.Contains(word.ToLowerInvariant()))
            {
                continue;
            }

            present.Add(stem);
            carried.Add(word);
            if (carried.Count == MaxCarriedTerms)
            {
                break;
            }
        }

        return carried.Count == 0 ? trimmed : $"{trimmed} ({string.Join(' ', carried)})";
    }

    /// <summary>
    /// Whether <paramref name="message"/> needs the previous turn to be understood: it points back (a pronoun or
    /// demonstrative), opens like an elliptic follow-up, or has almost no content terms of its own.
    /// </summary>
    public static bool IsFollowUp(string message)
    {
        var lower = message.Trim().ToLowerInvariant();
        if (lower.Length == 0)
        {
            return false;
        }

        if (FollowUpOpenings.Any(o => lower.StartsWith(o, StringComparison.Ordinal)))
        {
            return true;
        }

        var words = Words(lower).ToList();
        if (words.Any(Anaphora.Contains))
        {
            return true;
        }

        return ExtractiveAnswerer.Terms(message, null).Count() <= 1;
    }

    /// <summary>The words of a text (letters, digits, inner apostrophes and hyphens), in order.</summary>
    private static IEnumerable<string> Words(string text)
    {
        var sb = new StringBuilder();
        for (var i = 0; i <= text.Length; i++)
        {
            var c = i < text.Length ? text[i] : ' ';
            if (char.IsLetterOrDigit(c) || (sb.Length > 0 && c is '\'' or '-' && i + 1 < text.Length && char.IsLetterOrDigit(text[i + 1])))
            {
                sb.Append(c);
                continue;
            }

            if (sb.Length > 0)
            {
                yield return sb.ToString();
                sb.Clear();
            }
        }
    }
}
