using System.Globalization;
using System.Text;
using RagOrleans.Abstractions;

namespace RagOrleans.Grains.Storage;

/// <summary>The keyset cursor of a conversation list: the last row's activity time and id, base64url-encoded.</summary>
public static class ConversationCursor
{
    /// <summary>The cursor after <paramref name="last"/>.</summary>
    public static string Encode(ConversationSummary last) =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes(
            string.Create(CultureInfo.InvariantCulture, $"{last.UpdatedAt.ToUnixTimeMilliseconds()}|{last.Id}")))
            .TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>Decodes a cursor; Invalid when it was not made by <see cref="Encode"/>.</summary>
    public static (long UpdatedAtMs, string Id)? Decode(string? cursor)
    {
        if (string.IsNullOrEmpty(cursor))
        {
            return null;
        }

        try
        {
            var b64 = cursor.Replace('-', '+').Replace('_', '/');
            b64 = b64.PadRight(b64.Length + ((4 - (b64.Length % 4)) % 4), '=');
            var text = Encoding.UTF8.GetString(Convert.FromBase64String(b64));
            var bar = text.IndexOf('|', StringComparison.Ordinal);
            if (bar > 0 && long.TryParse(text.AsSpan(0, bar), NumberStyles.Integer, CultureInfo.InvariantCulture, out var ms) && Ids.IsValidName(text[(bar + 1)..]))
            {
                return (ms, text[(bar + 1)..]);
            }
        }
        catch (FormatException)
        {
        }

        throw RagException.Invalid("The cursor is not valid; pass the nextCursor of a previous page.");
    }

    /// <summary>
    /// Orders all of a user's conversations (most recently active first, then id descending) and cuts the page
    /// after <paramref name="cursor"/>. Sorting happens here, not in SQL, so both stores order identically.
    /// </summary>
    public static ConversationPage Page(IEnumerable<ConversationSummary> all, string? cursor, int limit)
    {
        var after = Decode(cursor);
        var ordered = all
            .OrderByDescending(c => c.UpdatedAt.ToUnixTimeMilliseconds())
            .ThenByDescending(c => c.Id, StringComparer.Ordinal)
            .Where(c => after is not { } a
                || c.UpdatedAt.ToUnixTimeMilliseconds() < a.UpdatedAtMs
                || (c.UpdatedAt.ToUnixTimeMilliseconds() == a.UpdatedAtMs && string.CompareOrdinal(c.Id, a.Id) < 0))
            .Take(limit + 1)
            .ToList();
        return ordered.Count > limit
            ? new ConversationPage(ordered.Take(limit).ToList(), Encode(ordered[limit - 1]))
            : new ConversationPage(ordered, null);
    }

    /// <summary>A summary from the columns both stores select.</summary>
    public static ConversationSummary Summary(string id, string collection, string? firstQuestion, string? firstAt, string? lastAt, long turns)
    {
        var created = ParseAt(firstAt);
        return new ConversationSummary(id, collection, firstQuestion ?? "", (int)turns, created, lastAt is null ? created : ParseAt(lastAt));
    }

    private static DateTimeOffset ParseAt(string? at) =>
        DateTimeOffset.TryParse(at, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var t) ? t : DateTimeOffset.UnixEpoch;
}
