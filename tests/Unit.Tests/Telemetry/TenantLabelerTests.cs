using RagOrleans.Grains.Telemetry;
using Xunit;

namespace RagOrleans.Unit.Tests.Telemetry;

public sealed class TenantLabelerTests
{
    [Fact]
    public void The_first_tenants_fill_the_top_set_and_later_ones_are_other()
    {
        var labeler = new TenantLabeler(topN: 2);
        Assert.Equal("a", labeler.Observe("a"));
        Assert.Equal("b", labeler.Observe("b"));
        Assert.Equal(TenantLabeler.Other, labeler.Observe("c"));
        Assert.Equal(TenantLabeler.Other, labeler.Label("c"));
        Assert.Equal("a", labeler.Label("a"));
    }

    [Fact]
    public void A_tenant_that_becomes_busier_than_the_weakest_in_the_top_set_takes_its_place()
    {
        var labeler = new TenantLabeler(topN: 2);
        for (var i = 0; i < 5; i++)
        {
            labeler.Observe("a");
        }

        labeler.Observe("b");
        labeler.Observe("c");

        // c ties b: the incumbent keeps its label.
        Assert.Equal(TenantLabeler.Other, labeler.Label("c"));
        Assert.Equal("c", labeler.Observe("c"));
        Assert.Equal(TenantLabeler.Other, labeler.Label("b"));
        Assert.Equal(new[] { "a", "c" }, labeler.TopTenants().Order().ToArray());
    }

    [Fact]
    public void Labels_stay_bounded_however_many_tenants_come()
    {
        const int topN = 5;
        var labeler = new TenantLabeler(topN);
        var labels = new HashSet<string>();
        for (var i = 0; i < 10_000; i++)
        {
            labels.Add(labeler.Observe($"t{i}"));
            labels.Add(labeler.Observe("heavy"));
        }

        Assert.Contains("heavy", labels.Where(l => l != TenantLabeler.Other));
        Assert.Equal("heavy", labeler.Label("heavy"));
        Assert.True(labeler.TopTenants().Count <= topN);

        // Every label ever handed out was a top-set member at the time; with churn that is still far below the tenant count.
        Assert.Contains(TenantLabeler.Other, labels);
    }

    [Fact]
    public void The_busiest_tenants_survive_a_flood_of_one_off_tenants()
    {
        var labeler = new TenantLabeler(topN: 3);
        foreach (var tenant in new[] { "x", "y", "z" })
        {
            for (var i = 0; i < 100; i++)
            {
                labeler.Observe(tenant);
            }
        }

        for (var i = 0; i < 1000; i++)
        {
            Assert.Equal(TenantLabeler.Other, labeler.Observe($"once-{i}"));
        }

        Assert.Equal(new[] { "x", "y", "z" }, labeler.TopTenants().Order().ToArray());
    }

    [Fact]
    public void No_tenant_and_a_zero_top_set_are_other()
    {
        Assert.Equal(TenantLabeler.Other, new TenantLabeler(2).Observe(null));
        Assert.Equal(TenantLabeler.Other, new TenantLabeler(2).Observe(""));
        Assert.Equal(TenantLabeler.Other, new TenantLabeler(0).Observe("a"));
    }
}
