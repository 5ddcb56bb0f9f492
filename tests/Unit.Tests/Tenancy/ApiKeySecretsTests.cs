using RagOrleans.Abstractions;
using RagOrleans.Grains.Tenancy;
using Xunit;

namespace RagOrleans.Unit.Tests.Tenancy;

public sealed class ApiKeySecretsTests
{
    [Fact]
    public void The_stored_hash_is_sha256_of_salt_then_utf8_secret()
    {
        // Pinned: keys already stored and key hashes in backup archives were written in this format and must keep verifying.
        var hash = ApiKeySecrets.Hash([1, 2, 3, 4], "s3crét-key");
        Assert.Equal("464ffce344375a3b17a81354ce3ab876f648c96c7ba9d81c829e539135bb2b9f", Convert.ToHexStringLower(hash));
    }

    [Fact]
    public void A_created_key_parses_and_its_secret_matches_the_stored_hash()
    {
        var key = ApiKeySecrets.Create("acme");

        Assert.True(ApiKeyFormat.TryParse(key.Key, out var tenantId, out var keyId, out var secret));
        Assert.Equal("acme", tenantId);
        Assert.Equal(key.KeyId, keyId);
        Assert.True(Ids.IsValidName(keyId));
        Assert.Equal(ApiKeySecrets.SaltBytes, key.Salt.Length);
        Assert.Equal(key.Hash, ApiKeySecrets.Hash(key.Salt, secret));
        Assert.NotEqual(key.Hash, ApiKeySecrets.Hash(key.Salt, secret + "x"));
    }

    [Fact]
    public void Every_key_gets_its_own_id_secret_and_salt()
    {
        var a = ApiKeySecrets.Create("acme");
        var b = ApiKeySecrets.Create("acme");

        Assert.NotEqual(a.KeyId, b.KeyId);
        Assert.NotEqual(a.Key, b.Key);
        Assert.NotEqual(a.Salt, b.Salt);
    }
}
