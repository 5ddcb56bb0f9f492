using System.Buffers;

namespace RagOrleans.Abstractions;

/// <summary>
/// Validation and composition of the ids that make up grain keys. Every id is checked at the edge and
/// again where grains split keys, so that a separator can never appear inside an id.
/// </summary>
public static class Ids
{
    /// <summary>Separator between the parts of a composite grain key.</summary>
    public const char Separator = '/';

    private static readonly SearchValues<char> TenantChars = SearchValues.Create("abcdefghijklmnopqrstuvwxyz0123456789-");
    private static readonly SearchValues<char> NameChars = SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.");

    /// <summary>Maximum length of a tenant id.</summary>
    public const int MaxTenantIdLength = 63;

    /// <summary>Maximum length of a collection name, document id, user id or key id.</summary>
    public const int MaxNameLength = 128;

    /// <summary>A tenant id: 1–63 characters, lower-case letters, digits and '-', starting with a letter or digit.</summary>
    public static bool IsValidTenantId(string? id) =>
        !string.IsNullOrEmpty(id) && id.Length <= MaxTenantIdLength && !id.AsSpan().ContainsAnyExcept(TenantChars) && id[0] != '-';

    /// <summary>A collection name, document id, user id or key id: 1–128 of letters, digits, '-', '_' and '.', not starting with '.'.</summary>
    public static bool IsValidName(string? name) =>
        !string.IsNullOrEmpty(name) && name.Length <= MaxNameLength && !name.AsSpan().ContainsAnyExcept(NameChars) && name[0] != '.';

    /// <summary>Throws <see cref="RagException"/> (Invalid) unless <paramref name="id"/> is a valid tenant id.</summary>
    public static string RequireTenantId(string? id) => IsValidTenantId(id)
        ? id!
        : throw RagException.Invalid($"Invalid tenant id '{Truncate(id)}': use 1-{MaxTenantIdLength} characters a-z, 0-9 and '-', not starting with '-'.");

    /// <summary>Throws <see cref="RagException"/> (Invalid) unless <paramref name="name"/> is a valid name of the given kind.</summary>
    public static string RequireName(string? name, string what) => IsValidName(name)
        ? name!
        : throw RagException.Invalid($"Invalid {what} '{Truncate(name)}': use 1-{MaxNameLength} characters A-Z, a-z, 0-9, '-', '_' and '.', not starting with '.'.");

    /// <summary>Joins key parts with <see cref="Separator"/>.</summary>
    public static string Key(string a, string b) => string.Concat(a, "/", b);

    /// <summary>Joins key parts with <see cref="Separator"/>.</summary>
    public static string Key(string a, string b, string c) => string.Concat(a, "/", b, "/", c);

    /// <summary>Splits a composite key into exactly <paramref name="parts"/> parts.</summary>
    public static string[] Split(string key, int parts)
    {
        var split = key.Split(Separator);
        if (split.Length != parts)
        {
            throw RagException.Invalid($"Malformed key '{Truncate(key)}'.");
        }

        return split;
    }

    private static string Truncate(string? value) => value is null ? "" : value.Length <= 64 ? value : value[..64] + "…";
}
