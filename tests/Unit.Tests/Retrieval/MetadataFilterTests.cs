using RagOrleans.Abstractions;
using RagOrleans.Grains.Retrieval;
using Xunit;

namespace RagOrleans.Unit.Tests.Retrieval;

public sealed class MetadataFilterTests
{
    private static readonly DocumentAttributes Doc = new("report-7", "Quarterly report",
        """{"year": 2024, "team": "platform", "published": "2024-03-15T10:00:00Z", "tags": ["ops", "finance"], "owner": {"name": "ada"}, "draft": false}""");

    [Theory]
    [InlineData("""{"team": "platform"}""", true)]
    [InlineData("""{"team": "search"}""", false)]
    [InlineData("""{"year": 2024, "team": "platform"}""", true)]
    [InlineData("""{"year": {"gte": 2020, "lt": 2025}}""", true)]
    [InlineData("""{"year": {"gt": 2024}}""", false)]
    [InlineData("""{"team": {"in": ["search", "platform"]}}""", true)]
    [InlineData("""{"team": {"ne": "search"}}""", true)]
    [InlineData("""{"published": {"gte": "2024-01-01", "lt": "2024-04-01"}}""", true)]
    [InlineData("""{"published": {"gte": "2024-03-16"}}""", false)]
    [InlineData("""{"tags": "finance"}""", true)]
    [InlineData("""{"owner.name": "ada"}""", true)]
    [InlineData("""{"draft": false}""", true)]
    [InlineData("""{"draft": true}""", false)]
    [InlineData("""{"documentId": "report-7"}""", true)]
    [InlineData("""{"title": {"in": ["Quarterly report"]}}""", true)]
    [InlineData("""{"missing": "x"}""", false)]
    [InlineData("""{"missing": {"ne": "x"}}""", true)]
    [InlineData("""{"year": "2024"}""", false)]
    public void Conditions_match_as_documented(string filter, bool expected) =>
        Assert.Equal(expected, MetadataFilter.Parse(filter).Matches(Doc));

    [Theory]
    [InlineData("[1]")]
    [InlineData("""{"year": {"between": [1, 2]}}""")]
    [InlineData("""{"year": {"in": []}}""")]
    [InlineData("""{"year": {"gte": [1]}}""")]
    [InlineData("""{"year": null}""")]
    [InlineData("{")]
    public void Malformed_filters_are_invalid_with_a_message(string filter)
    {
        var ex = Assert.Throws<RagException>(() => MetadataFilter.Parse(filter));
        Assert.Equal(RagErrorKind.Invalid, ex.Kind);
        Assert.Contains("filter", ex.Message, StringComparison.Ordinal);
    }
}
