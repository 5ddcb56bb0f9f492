using RagOrleans.Abstractions;
using RagOrleans.Grains.Quotas;
using Xunit;

namespace RagOrleans.Unit.Tests.Quotas;

public sealed class LimitsResolverTests
{
    [Fact]
    public void Overrides_replace_plan_values_and_null_means_unlimited()
    {
        var plan = new PlanLimits { MaxDocuments = 10, RequestsPerMinute = 60, MonthlyBudget = 5m };
        var limits = LimitsResolver.Resolve("pro", plan, new Dictionary<string, decimal?>
        {
            [QuotaNames.MaxDocuments] = 25,
            [QuotaNames.RequestsPerMinute] = null,
        });
        Assert.Equal(("pro", 25L, (long?)null, 5m), (limits.Plan, limits.MaxDocuments!.Value, limits.RequestsPerMinute, limits.MonthlyBudget!.Value));
        Assert.Null(limits.MaxCollections);
    }

    [Theory]
    [InlineData("maxWidgets", 1)]
    [InlineData(QuotaNames.MaxDocuments, -1)]
    [InlineData(QuotaNames.MaxDocuments, 1.5)]
    public void Invalid_updates_are_refused(string name, double value)
    {
        var ex = Assert.Throws<RagException>(() => LimitsResolver.Validate(
            new Dictionary<string, decimal?> { [name] = (decimal)value }, QuotaNames.TenantLimits, "tenant"));
        Assert.Equal(RagErrorKind.Invalid, ex.Kind);
    }

    [Fact]
    public void Budget_may_be_fractional_and_null_is_accepted()
    {
        LimitsResolver.Validate(new Dictionary<string, decimal?> { [QuotaNames.MonthlyBudget] = 12.25m, [QuotaNames.MaxVectors] = null }, QuotaNames.TenantLimits, "tenant");
    }

    [Theory]
    [InlineData(5, 1)]
    [InlineData(50, 5)]
    [InlineData(1000, 100)]
    [InlineData(1_000_000, 1000)]
    public void Leases_are_a_tenth_of_the_minute_between_one_and_the_cap(long limit, long expected) =>
        Assert.Equal(expected, LimitsResolver.LeaseBatch(limit, 0.1, 1000));

    [Fact]
    public void Periods_are_utc_minutes_days_and_months()
    {
        var now = new DateTimeOffset(2026, 12, 31, 23, 59, 30, 500, TimeSpan.FromHours(2));
        Assert.Equal(new DateTimeOffset(2026, 12, 31, 21, 59, 0, TimeSpan.Zero), LimitsResolver.MinuteStart(now));
        Assert.Equal("2026-12", LimitsResolver.Month(now));
        Assert.Equal(7230, LimitsResolver.SecondsToNextDay(now));
        Assert.Equal(1, LimitsResolver.SecondsToNextDay(new DateTimeOffset(2026, 12, 31, 23, 59, 59, 900, TimeSpan.Zero)));
    }

    [Fact]
    public void Per_user_request_cap_is_the_smaller_of_the_tenant_limits()
    {
        var limits = new TenantLimits("p", null, null, null, null, null, null, 100, 30, null, null);
        Assert.Equal(30, LimitsResolver.UserRequestCap(limits));
        Assert.Equal(100, LimitsResolver.UserRequestCap(limits with { UserRequestsPerMinute = null }));
        Assert.Null(LimitsResolver.UserRequestCap(limits with { UserRequestsPerMinute = null, RequestsPerMinute = null }));
    }
}
