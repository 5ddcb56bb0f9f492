using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using RagOrleans.Abstractions;
using RagOrleans.Frontend.Infrastructure;

namespace RagOrleans.Frontend.Apis;

/// <summary>Limits and usage: operators set a tenant's plan and limits; tenant admins read them and share them among users.</summary>
public static class LimitsApi
{
    public static IEndpointRouteBuilder MapLimitsApi(this IEndpointRouteBuilder app)
    {
        var op = app.MapGroup("/v1/tenants/{id}/limits").WithTags("Limits").RequireRole(Roles.Operator);
        op.MapGet("/", GetTenantLimits).WithSummary("A tenant's effective limits (null is unlimited)");
        op.MapPut("/", SetTenantLimits).WithSummary("Set a tenant's plan and/or limits: absent fields are unchanged, null is unlimited")
            .Accepts<LimitsResponse>("application/json").Audited("limits.set");

        var admin = app.MapGroup("/v1").WithTags("Limits").RequireRole(Roles.Admin);
        admin.MapGet("/limits", GetOwnLimits).WithSummary("The tenant's effective limits");
        admin.MapGet("/usage", GetUsage).WithSummary("The tenant's current usage beside its limits, and the ledger (?from=&to=&groupBy=day|model|user)");
        admin.MapGet("/users/{userId}/limits", GetUserLimits).WithSummary("A user's own limits");
        admin.MapPut("/users/{userId}/limits", SetUserLimits).WithSummary("Set a user's requestsPerMinute and/or chatTokensPerDay, within the tenant's")
            .Accepts<UserLimitsResponse>("application/json").Audited("user-limits.set");
        return app;
    }

    private static async Task<Ok<LimitsResponse>> GetTenantLimits(string id, IGrainFactory grains)
    {
        await grains.Reference<ITenantGrain>(Ids.RequireTenantId(id)).Get();
        return TypedResults.Ok(LimitsResponse.From(await grains.Reference<IQuotaGrain>(id).GetLimits()));
    }

    private static async Task<Ok<LimitsResponse>> SetTenantLimits(string id, HttpContext http, IGrainFactory grains)
    {
        await grains.Reference<ITenantGrain>(Ids.RequireTenantId(id)).Get();
        var update = await ReadUpdateAsync(http, allowPlan: true);
        return TypedResults.Ok(LimitsResponse.From(await grains.Reference<IQuotaGrain>(id).SetLimits(update)));
    }

    private static async Task<Ok<LimitsResponse>> GetOwnLimits(HttpContext http, IGrainFactory grains) =>
        TypedResults.Ok(LimitsResponse.From(await Quota(http, grains).GetLimits()));

    private static async Task<Ok<UsageResponse>> GetUsage(HttpContext http, IGrainFactory grains, TimeProvider clock, string? from, string? to, string? groupBy)
    {
        var today = DateOnly.FromDateTime(clock.GetUtcNow().UtcDateTime);
        var first = ParseDay(from, "from") ?? new DateOnly(today.Year, today.Month, 1);
        var last = ParseDay(to, "to") ?? today;
        if (last < first || last.DayNumber - first.DayNumber > 366)
        {
            throw RagException.Invalid("'from' must not be after 'to', and the range must be at most 366 days.");
        }

        var grouping = (groupBy ?? "day") switch
        {
            "day" => LedgerGrouping.Day,
            "model" => LedgerGrouping.Model,
            "user" => LedgerGrouping.User,
            _ => throw RagException.Invalid($"groupBy must be 'day', 'model' or 'user', not '{groupBy}'."),
        };

        var quota = Quota(http, grains);
        var usage = await quota.GetUsage();
        var limits = await quota.GetLimits();
        var rows = await quota.QueryLedger(first, last, grouping);
        return TypedResults.Ok(new UsageResponse(
            limits.Plan, usage.Collections, usage.Documents, usage.StoredBytes, usage.Vectors, usage.ActiveIngestions,
            usage.ChatTokensToday, usage.Day, usage.BudgetSpent, usage.Month, usage.RequestsThisMinute, usage.MinuteStart,
            LimitsResponse.From(limits),
            new LedgerResponse(first, last, groupBy ?? "day", rows.Select(r => new LedgerRowResponse(r.Key, r.Kind, r.Quantity, r.Cost)).ToList())));
    }

    private static DateOnly? ParseDay(string? value, string name) =>
        value is null ? null
        : DateOnly.TryParseExact(value, "yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.None, out var day) ? day
        : throw RagException.Invalid($"'{name}' must be a UTC day as yyyy-MM-dd.");

    private static async Task<Ok<UserLimitsResponse>> GetUserLimits(string userId, HttpContext http, IGrainFactory grains)
    {
        Ids.RequireName(userId, "user id");
        return TypedResults.Ok(UserLimitsResponse.From(await Quota(http, grains).GetUserLimits(userId)));
    }

    private static async Task<Ok<UserLimitsResponse>> SetUserLimits(string userId, HttpContext http, IGrainFactory grains)
    {
        Ids.RequireName(userId, "user id");
        var update = await ReadUpdateAsync(http, allowPlan: false);
        return TypedResults.Ok(UserLimitsResponse.From(await Quota(http, grains).SetUserLimits(userId, update)));
    }

    private static IQuotaGrain Quota(HttpContext http, IGrainFactory grains) =>
        grains.Reference<IQuotaGrain>(AuthenticationMiddleware.Principal(http)!.Tenant);

    /// <summary>
    /// Reads a partial update. A typed record cannot tell an absent field from an explicit null, and the API gives
    /// them different meanings (unchanged vs unlimited), so the body is walked as JSON.
    /// </summary>
    private static async Task<LimitsUpdate> ReadUpdateAsync(HttpContext http, bool allowPlan)
    {
        if (!(http.Request.ContentType ?? "").StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
        {
            throw new RagException(RagErrorKind.UnsupportedMediaType, "Send the limits as application/json.");
        }

        using var doc = await JsonDocument.ParseAsync(http.Request.Body, default, http.RequestAborted);
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            throw RagException.Invalid("The body must be a JSON object of limits.");
        }

        string? plan = null;
        var values = new Dictionary<string, decimal?>(StringComparer.Ordinal);
        foreach (var property in doc.RootElement.EnumerateObject())
        {
            if (property.Name == "plan")
            {
                if (!allowPlan)
                {
                    throw RagException.Invalid("Only the operator sets a plan, and only for a tenant.");
                }

                plan = property.Value.ValueKind == JsonValueKind.String && !string.IsNullOrWhiteSpace(property.Value.GetString())
                    ? property.Value.GetString()!.Trim()
                    : throw RagException.Invalid("'plan' must be a plan name.");
                continue;
            }

            values[property.Name] = property.Value.ValueKind switch
            {
                JsonValueKind.Null => null,
                JsonValueKind.Number when property.Value.TryGetDecimal(out var d) => d,
                _ => throw RagException.Invalid($"'{property.Name}' must be a number or null (unlimited)."),
            };
        }

        return new LimitsUpdate(plan, values);
    }
}

/// <summary>A tenant's effective limits; null is unlimited.</summary>
public sealed record LimitsResponse(
    string Plan, long? MaxCollections, long? MaxDocuments, long? MaxStoredBytes, long? MaxVectors, long? MaxUploadBytes,
    long? ChatTokensPerDay, long? RequestsPerMinute, long? UserRequestsPerMinute, long? MaxConcurrentIngestions, decimal? MonthlyBudget)
{
    public static LimitsResponse From(TenantLimits l) => new(
        l.Plan, l.MaxCollections, l.MaxDocuments, l.MaxStoredBytes, l.MaxVectors, l.MaxUploadBytes,
        l.ChatTokensPerDay, l.RequestsPerMinute, l.UserRequestsPerMinute, l.MaxConcurrentIngestions, l.MonthlyBudget);
}

/// <summary>A user's own limits; null means only the tenant's apply.</summary>
public sealed record UserLimitsResponse(string UserId, long? RequestsPerMinute, long? ChatTokensPerDay)
{
    public static UserLimitsResponse From(UserLimits l) => new(l.UserId, l.RequestsPerMinute, l.ChatTokensPerDay);
}

/// <summary>
/// A tenant's usage now. <see cref="RequestsThisMinute"/> counts request tokens leased to frontends in the
/// current minute, an upper bound of the requests served.
/// </summary>
public sealed record UsageResponse(
    string Plan, long Collections, long Documents, long StoredBytes, long Vectors, long ActiveIngestions,
    long ChatTokensToday, DateOnly Day, decimal BudgetSpent, string Month, long RequestsThisMinute, DateTimeOffset MinuteStart,
    LimitsResponse Limits, LedgerResponse Ledger);

/// <summary>The usage ledger between two UTC days (inclusive), grouped by day, model or user and by kind.</summary>
public sealed record LedgerResponse(DateOnly From, DateOnly To, string GroupBy, IReadOnlyList<LedgerRowResponse> Rows);

/// <summary>One group and kind of charge: <c>requests</c>, <c>chatTokensOut</c>, <c>embeddings</c> or <c>uploadedBytes</c>.</summary>
public sealed record LedgerRowResponse(string Key, string Kind, long Quantity, decimal Cost);
