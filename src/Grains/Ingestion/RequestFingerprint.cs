using System.Security.Cryptography;
using System.Text;

namespace RagOrleans.Grains.Ingestion;

/// <summary>
/// What a request asked for, as one hash, so a reused <c>Idempotency-Key</c> can tell "the same request again"
/// from "a different request". Fields are length-prefixed: ("ab", "c") and ("a", "bc") differ, as do null and "".
/// </summary>
public static class RequestFingerprint
{
    /// <summary>Lowercase hex SHA-256 over the fields in order.</summary>
    public static string Of(params string?[] fields)
    {
        var text = new StringBuilder();
        foreach (var field in fields)
        {
            text.Append(field is null ? "-1" : field.Length.ToString(System.Globalization.CultureInfo.InvariantCulture)).Append(':').Append(field).Append('\n');
        }

        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    /// <summary>True for a usable <c>Idempotency-Key</c>: 1 to 255 visible ASCII characters.</summary>
    public static bool IsValidKey(string? key) =>
        key is { Length: > 0 and <= 255 } && key.All(c => c is >= '!' and <= '~');
}
