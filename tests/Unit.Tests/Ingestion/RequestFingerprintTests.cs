using RagOrleans.Grains.Ingestion;
using Xunit;

namespace RagOrleans.Unit.Tests.Ingestion;

public sealed class RequestFingerprintTests
{
    [Fact]
    public void Fields_are_delimited_so_shifted_or_missing_values_differ()
    {
        Assert.Equal(RequestFingerprint.Of("a", "b", null), RequestFingerprint.Of("a", "b", null));
        Assert.NotEqual(RequestFingerprint.Of("ab", "c"), RequestFingerprint.Of("a", "bc"));
        Assert.NotEqual(RequestFingerprint.Of("a", null), RequestFingerprint.Of("a", ""));
        Assert.NotEqual(RequestFingerprint.Of("a\n1:b"), RequestFingerprint.Of("a", "b"));
        Assert.Matches("^[0-9a-f]{64}$", RequestFingerprint.Of("x"));
    }

    [Theory]
    [InlineData("k", true)]
    [InlineData("4f1c-9a2e_order:17", true)]
    [InlineData("", false)]
    [InlineData("has space", false)]
    [InlineData("tab\t", false)]
    [InlineData("ünïcode", false)]
    public void Keys_are_visible_ascii(string key, bool valid) => Assert.Equal(valid, RequestFingerprint.IsValidKey(key));

    [Fact]
    public void Keys_are_at_most_255_characters()
    {
        Assert.True(RequestFingerprint.IsValidKey(new string('k', 255)));
        Assert.False(RequestFingerprint.IsValidKey(new string('k', 256)));
        Assert.False(RequestFingerprint.IsValidKey(null));
    }

    [Theory]
    [InlineData(0, 10, 0)]
    [InlineData(1, 3, 33)]
    [InlineData(2, 3, 66)]
    [InlineData(999, 1000, 99)]
    [InlineData(1000, 1000, 100)]
    [InlineData(0, 0, 100)]
    public void Embedding_progress_reaches_100_only_when_every_chunk_is_embedded(int embedded, int total, int percent) =>
        Assert.Equal(percent, DocumentGrain.EmbeddingPercent(embedded, total));
}
