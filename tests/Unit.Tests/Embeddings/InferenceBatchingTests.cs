using RagOrleans.Grains.Embeddings;
using Xunit;

namespace RagOrleans.Unit.Tests.Embeddings;

public sealed class InferenceBatchingTests
{
    private static readonly OnnxEmbeddingOptions Limits = new() { MaxBatchSize = 4, MaxBatchTokens = 100, LongTextTokens = 40, MaxPaddingRatio = 1.2 };

    private static int[] Cut(int[] sortedLengths, OnnxEmbeddingOptions options)
    {
        var sizes = new List<int>();
        for (var start = 0; start < sortedLengths.Length;)
        {
            var rows = InferenceBatching.NextBatch(sortedLengths.AsSpan(start), options);
            Assert.InRange(rows, 1, sortedLengths.Length - start);
            sizes.Add(rows);
            start += rows;
        }

        return [.. sizes];
    }

    [Fact]
    public void Equal_lengths_fill_batches_up_to_the_row_limit() =>
        Assert.Equal([4, 4, 2], Cut([10, 10, 10, 10, 10, 10, 10, 10, 10, 10], Limits));

    [Fact]
    public void The_padded_token_budget_ends_a_batch() =>
        // 3 x 30 = 90 fits 100, a fourth row of 30 would pad to 120.
        Assert.Equal([3, 1], Cut([30, 30, 30, 30], Limits));

    [Fact]
    public void Texts_longer_than_the_long_limit_run_alone() =>
        Assert.Equal([2, 1, 1], Cut([20, 20, 41, 45], Limits with { MaxBatchTokens = 1000 }));

    [Fact]
    public void A_much_longer_text_starts_a_new_batch_instead_of_padding_the_shorter_ones()
    {
        // 10, 10, 11 pad to 33 for 31 real tokens (1.06); adding 20 would pad to 80 for 51 (1.57 > 1.2).
        Assert.Equal([3, 2], Cut([10, 10, 11, 20, 21], Limits));

        // Without the padding limit the same texts batch by rows and tokens alone.
        Assert.Equal([4, 1], Cut([10, 10, 11, 20, 21], Limits with { MaxPaddingRatio = double.PositiveInfinity }));
    }

    [Fact]
    public void A_lone_text_and_an_empty_list()
    {
        Assert.Equal(1, InferenceBatching.NextBatch([500], Limits));
        Assert.Equal(0, InferenceBatching.NextBatch([], Limits));
    }
}
