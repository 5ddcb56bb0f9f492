using RagOrleans.Abstractions;
using Xunit;

namespace RagOrleans.Unit.Tests.Tenancy;

public sealed class IdsTests
{
    [Theory]
    [InlineData("acme", true)]
    [InlineData("a-1", true)]
    [InlineData("-a", false)]
    [InlineData("Acme", false)]
    [InlineData("a/b", false)]
    [InlineData("a.b", false)]
    [InlineData("", false)]
    [InlineData("..", false)]
    public void Tenant_ids_are_lower_case_letters_digits_and_hyphens(string id, bool valid) => Assert.Equal(valid, Ids.IsValidTenantId(id));

    [Theory]
    [InlineData("docs", true)]
    [InlineData("My_Docs-2.0", true)]
    [InlineData(".hidden", false)]
    [InlineData("..", false)]
    [InlineData("a/b", false)]
    [InlineData("a\\b", false)]
    [InlineData("a b", false)]
    [InlineData("a\nb", false)]
    [InlineData("é", false)]
    public void Names_never_contain_separators_or_path_tricks(string name, bool valid) => Assert.Equal(valid, Ids.IsValidName(name));

    [Fact]
    public void Long_ids_are_refused()
    {
        Assert.True(Ids.IsValidTenantId(new string('a', 63)));
        Assert.False(Ids.IsValidTenantId(new string('a', 64)));
        Assert.True(Ids.IsValidName(new string('a', 128)));
        Assert.False(Ids.IsValidName(new string('a', 129)));
    }

    [Fact]
    public void Invalid_ids_throw_an_invalid_error()
    {
        var ex = Assert.Throws<RagException>(() => Ids.RequireName("a/b", "collection name"));
        Assert.Equal(RagErrorKind.Invalid, ex.Kind);
        Assert.Contains("collection name", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Api_keys_round_trip_and_malformed_keys_are_rejected()
    {
        var key = ApiKeyFormat.Format("acme", "k0123", "s3cr3t-s3cr3t-s3cr3t-s3cr3t");
        Assert.True(ApiKeyFormat.TryParse(key, out var tenant, out var keyId, out var secret));
        Assert.Equal(("acme", "k0123", "s3cr3t-s3cr3t-s3cr3t-s3cr3t"), (tenant, keyId, secret));
        Assert.False(ApiKeyFormat.TryParse("rk.acme.k0123", out _, out _, out _));
        Assert.False(ApiKeyFormat.TryParse("xx.acme.k0123.s3cr3t-s3cr3t-s3cr3t", out _, out _, out _));
        Assert.False(ApiKeyFormat.TryParse("rk.ACME.k0123.s3cr3t-s3cr3t-s3cr3t", out _, out _, out _));
        Assert.False(ApiKeyFormat.TryParse("rk.acme.k0123.short", out _, out _, out _));
        Assert.False(ApiKeyFormat.TryParse(null, out _, out _, out _));
    }
}
