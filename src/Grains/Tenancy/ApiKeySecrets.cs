using System.Security.Cryptography;
using RagOrleans.Abstractions;

namespace RagOrleans.Grains.Tenancy;

/// <summary>
/// How tenant API keys are made and stored: a random key id and 256-bit secret, and the salted SHA-256 of the secret
/// that the tenant keeps (and a backup carries) instead of the secret. One place, so the tenant grain and anything
/// that writes a valid backup archive (tools, benchmarks) agree on the format.
/// </summary>
public static class ApiKeySecrets
{
    /// <summary>Bytes of salt per key.</summary>
    public const int SaltBytes = 16;

    /// <summary>A new key: its id, the secret (shown once) and the salt and hash to store.</summary>
    public static NewApiKey Create(string tenantId)
    {
        var keyId = "k" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        var secret = Base64Url(RandomNumberGenerator.GetBytes(32));
        var salt = RandomNumberGenerator.GetBytes(SaltBytes);
        return new NewApiKey(keyId, ApiKeyFormat.Format(tenantId, keyId, secret), salt, Hash(salt, secret));
    }

    /// <summary>
    /// The stored form of <paramref name="secret"/>: SHA-256 of the salt followed by the secret's UTF-8 bytes. Secrets
    /// are 256 random bits, so a salted SHA-256 is enough: a slow KDF only helps low-entropy passwords.
    /// </summary>
    public static byte[] Hash(byte[] salt, string secret)
    {
        ArgumentNullException.ThrowIfNull(salt);
        ArgumentNullException.ThrowIfNull(secret);
        var secretBytes = System.Text.Encoding.UTF8.GetBytes(secret);
        var buffer = new byte[salt.Length + secretBytes.Length];
        salt.CopyTo(buffer, 0);
        secretBytes.CopyTo(buffer, salt.Length);
        return SHA256.HashData(buffer);
    }

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}

/// <summary>A freshly made key: <see cref="Key"/> is the full key string for the client, never stored.</summary>
public sealed record NewApiKey(string KeyId, string Key, byte[] Salt, byte[] Hash);
