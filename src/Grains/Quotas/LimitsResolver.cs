using RagOrleans.Abstractions;

namespace RagOrleans.Grains.Quotas;

/// <summary>Plan defaults plus field overrides, and the validation of updates; no Orleans dependency.</summary>
public static class LimitsResolver
{
    /// <summary>The effective limits of <paramref name="plan"/> with <paramref name="overrides"/> (a null value is unlimited).</summary>
    public static TenantLimits Resolve(string plan, PlanLimits defaults, IReadOnlyDictionary<string, decimal?> overrides)
    {
        long? L(string name, long? planValue) => overrides.TryGetValue(name, out var v) ? (v is null ? null : (long)v.Value) : planValue;
        return new TenantLimits(
            plan,
            L(QuotaNames.MaxCollections, defaults.MaxCollections),
            L(QuotaNames.MaxDocuments, defaults.MaxDocuments),
            L(QuotaNames.MaxStoredBytes, defaults.MaxStoredBytes),
            L(QuotaNames.MaxVectors, defaults.MaxVectors),
            L(QuotaNames.MaxUploadBytes, defaults.MaxUploadBytes),
            L(QuotaNames.ChatTokensPerDay, defaults.ChatTokensPerDay),
            L(QuotaNames.RequestsPerMinute, defaults.RequestsPerMinute),
            L(QuotaNames.UserRequestsPerMinute, defaults.UserRequestsPerMinute),
            L(QuotaNames.MaxConcurrentIngestions, defaults.MaxConcurrentIngestions),
            overrides.TryGetValue(QuotaNames.MonthlyBudget, out var budget) ? budget : defaults.MonthlyBudget);
    }

    /// <summary>Rejects unknown fields, negatives and fractions (only the budget may be fractional).</summary>
    public static void Validate(IReadOnlyDictionary<string, decimal?> values, IReadOnlyList<string> allowed, string who)
    {
        foreach (var (name, value) in values)
        {
            if (!allowed.Contains(name))
            {
                throw RagException.Invalid($"'{name}' is not a {who} limit; use {string.Join(", ", allowed.Select(a => $"'{a}'"))}.");
            }

            if (value is null)
            {
                continue;
            }

            if (value < 0)
            {
                throw RagException.Invalid($"'{name}' must not be negative.");
            }

            if (name != QuotaNames.MonthlyBudget && (value != decimal.Truncate(value.Value) || value > long.MaxValue))
            {
                throw RagException.Invalid($"'{name}' must be a whole number.");
            }
        }
    }

    /// <summary>The per-user request cap the tenant imposes: its per-user limit, else its whole limit.</summary>
    public static long? UserRequestCap(TenantLimits tenant) => Min(tenant.UserRequestsPerMinute, tenant.RequestsPerMinute);

    /// <summary>The smaller of two limits, null being unlimited.</summary>
    public static long? Min(long? a, long? b) => a is null ? b : b is null ? a : Math.Min(a.Value, b.Value);

    /// <summary>Request tokens one lease hands out under <paramref name="limit"/>.</summary>
    public static long LeaseBatch(long limit, double fraction, int max) =>
        Math.Clamp((long)Math.Ceiling(limit * fraction), 1, Math.Max(1, max));

    /// <summary>Seconds until the next UTC midnight (at least one).</summary>
    public static int SecondsToNextDay(DateTimeOffset now) =>
        Math.Max(1, (int)Math.Ceiling((now.UtcDateTime.Date.AddDays(1) - now.UtcDateTime).TotalSeconds));

    /// <summary>The UTC minute window containing <paramref name="now"/>.</summary>
    public static DateTimeOffset MinuteStart(DateTimeOffset now)
    {
        var utc = now.UtcDateTime;
        return new DateTimeOffset(utc.Year, utc.Month, utc.Day, utc.Hour, utc.Minute, 0, TimeSpan.Zero);
    }

    /// <summary>The UTC calendar month of <paramref name="now"/>, as yyyy-MM.</summary>
    public static string Month(DateTimeOffset now) => now.UtcDateTime.ToString("yyyy-MM", System.Globalization.CultureInfo.InvariantCulture);
}
