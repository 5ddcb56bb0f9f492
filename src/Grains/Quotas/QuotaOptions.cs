namespace RagOrleans.Grains.Quotas;

/// <summary>
/// Plans, costs and quota behaviour, bound from the <c>Rag</c> section: <c>Rag:Plans:&lt;name&gt;:maxDocuments</c>,
/// <c>Rag:DefaultPlan</c>, <c>Rag:Costs:ChatToken</c>, and so on.
/// </summary>
public sealed class QuotaOptions
{
    /// <summary>Configuration section name (shared with <see cref="RagOptions"/>).</summary>
    public const string Section = "Rag";

    /// <summary>
    /// Service key of the clock that decides quota periods (minute, UTC day, month). It defaults to the
    /// system clock; tests replace it alone, leaving the runtime's own clock untouched.
    /// </summary>
    public const string ClockKey = "rag.quota-clock";

    /// <summary>Plans by name; a limit a plan does not set is unlimited.</summary>
    public Dictionary<string, PlanLimits> Plans { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>The plan of a tenant the operator never assigned one; unlimited unless configured.</summary>
    public string DefaultPlan { get; set; } = "default";

    /// <summary>Cost units per charge, counted against <c>monthlyBudget</c>.</summary>
    public QuotaCosts Costs { get; set; } = new();

    /// <summary>Whether frontends enforce <c>requestsPerMinute</c> and <c>userRequestsPerMinute</c> (off only to measure or in an emergency).</summary>
    public bool EnforceRateLimits { get; set; } = true;

    /// <summary>Share of a minute's request budget one frontend leases at a time (at least one token).</summary>
    public double RateLeaseFraction { get; set; } = 0.1;

    /// <summary>Most request tokens leased in one call, whatever the limit.</summary>
    public int MaxRateLease { get; set; } = 1000;

    /// <summary>Whether a tenant over its monthly budget may no longer chat.</summary>
    public bool OverBudgetBlocksChat { get; set; } = true;

    /// <summary>Whether a tenant over its monthly budget may no longer upload documents.</summary>
    public bool OverBudgetBlocksIngestion { get; set; } = true;

    /// <summary>The plan called <paramref name="name"/>; the default plan is implicit (unlimited) when not configured.</summary>
    public PlanLimits? FindPlan(string name) =>
        Plans.TryGetValue(name, out var plan) ? plan
        : string.Equals(name, DefaultPlan, StringComparison.OrdinalIgnoreCase) ? new PlanLimits()
        : null;
}

/// <summary>A plan's default limits; null (or unset) is unlimited.</summary>
public sealed class PlanLimits
{
    /// <summary>See <see cref="RagOrleans.Abstractions.QuotaNames.MaxCollections"/>.</summary>
    public long? MaxCollections { get; set; }
    /// <summary>See <see cref="RagOrleans.Abstractions.QuotaNames.MaxDocuments"/>.</summary>
    public long? MaxDocuments { get; set; }
    /// <summary>See <see cref="RagOrleans.Abstractions.QuotaNames.MaxStoredBytes"/>.</summary>
    public long? MaxStoredBytes { get; set; }
    /// <summary>See <see cref="RagOrleans.Abstractions.QuotaNames.MaxVectors"/>.</summary>
    public long? MaxVectors { get; set; }
    /// <summary>See <see cref="RagOrleans.Abstractions.QuotaNames.MaxUploadBytes"/>.</summary>
    public long? MaxUploadBytes { get; set; }
    /// <summary>See <see cref="RagOrleans.Abstractions.QuotaNames.ChatTokensPerDay"/>.</summary>
    public long? ChatTokensPerDay { get; set; }
    /// <summary>See <see cref="RagOrleans.Abstractions.QuotaNames.RequestsPerMinute"/>.</summary>
    public long? RequestsPerMinute { get; set; }
    /// <summary>See <see cref="RagOrleans.Abstractions.QuotaNames.UserRequestsPerMinute"/>.</summary>
    public long? UserRequestsPerMinute { get; set; }
    /// <summary>See <see cref="RagOrleans.Abstractions.QuotaNames.MaxConcurrentIngestions"/>.</summary>
    public long? MaxConcurrentIngestions { get; set; }
    /// <summary>See <see cref="RagOrleans.Abstractions.QuotaNames.MonthlyBudget"/>.</summary>
    public decimal? MonthlyBudget { get; set; }
}

/// <summary>Cost units of each chargeable unit.</summary>
public sealed class QuotaCosts
{
    /// <summary>Per answer token of a chat.</summary>
    public decimal ChatToken { get; set; } = 1m;

    /// <summary>Per chunk embedded at ingestion.</summary>
    public decimal Vector { get; set; } = 1m;

    /// <summary>Per request admitted.</summary>
    public decimal Request { get; set; }
}
