using System.Globalization;
using Microsoft.AspNetCore.Http.HttpResults;
using RagOrleans.Abstractions;
using RagOrleans.Frontend.Infrastructure;
using RagOrleans.Grains.Storage;

namespace RagOrleans.Frontend.Apis;

/// <summary>The audit log: the operator reads all of it, a tenant admin the entries of their own tenant.</summary>
public static class AuditApi
{
    private const int MaxPage = 1000;

    public static IEndpointRouteBuilder MapAuditApi(this IEndpointRouteBuilder app)
    {
        app.MapGroup("/v1/audit").WithTags("Audit").RequireRole(Roles.Operator, Roles.Admin)
            .MapGet("/", ReadAudit)
            .WithSummary("Audit entries, newest first (?tenant=&action=&from=&to=&limit=&cursor=); a tenant admin sees only their tenant");
        return app;
    }

    private static async Task<Ok<AuditPageResponse>> ReadAudit(
        HttpContext http, IAuditLog log, string? tenant, string? action, string? from, string? to, int? limit, string? cursor)
    {
        var principal = AuthenticationMiddleware.Principal(http)!;
        if (tenant is not null)
        {
            Ids.RequireTenantId(tenant);
        }

        if (principal.Role == Roles.Admin)
        {
            if (tenant is not null && tenant != principal.Tenant)
            {
                throw new RagException(RagErrorKind.Forbidden, "A tenant admin reads only their own tenant's audit log.");
            }

            tenant = principal.Tenant;
        }

        if (action is not null && (action.Length > 64 || !action.All(c => char.IsAsciiLetterLower(c) || c is '.' or '-')))
        {
            throw RagException.Invalid("'action' must be an action name such as 'tenant.delete'.");
        }

        var page = limit ?? 100;
        if (page is < 1 or > MaxPage)
        {
            throw RagException.Invalid($"'limit' must be between 1 and {MaxPage}.");
        }

        long? before = null;
        if (cursor is not null)
        {
            before = long.TryParse(cursor, NumberStyles.None, CultureInfo.InvariantCulture, out var seq) && seq > 0
                ? seq
                : throw RagException.Invalid("'cursor' must be the nextCursor of a previous page.");
        }

        var (first, last) = (Time(from, "from"), Time(to, "to"));
        if (first is not null && last is not null && last < first)
        {
            throw RagException.Invalid("'from' must not be after 'to'.");
        }

        var records = await log.QueryAsync(new AuditQuery(tenant, action, first, last, before, page), http.RequestAborted);
        var next = records.Count == page ? records[^1].Seq.ToString(CultureInfo.InvariantCulture) : null;
        return TypedResults.Ok(new AuditPageResponse(records.Select(AuditEntryResponse.From).ToList(), next));
    }

    private static DateTimeOffset? Time(string? value, string name) =>
        value is null ? null
        : DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t) ? t
        : throw RagException.Invalid($"'{name}' must be an ISO 8601 time, e.g. 2026-11-30T08:00:00Z.");
}

/// <summary>A page of audit entries; <see cref="NextCursor"/> fetches the older ones.</summary>
public sealed record AuditPageResponse(IReadOnlyList<AuditEntryResponse> Entries, string? NextCursor);

/// <summary>One audited action: who (key id and role), on what, with which outcome, when, in which request.</summary>
public sealed record AuditEntryResponse(
    long Seq, DateTimeOffset Time, string? TenantId, string KeyId, string Role, string Action, string Target, string Outcome, int Status, string RequestId)
{
    public static AuditEntryResponse From(AuditRecord r) => new(
        r.Seq, r.Entry.Time, r.Entry.TenantId, r.Entry.KeyId, r.Entry.Role, r.Entry.Action, r.Entry.Target, r.Entry.Outcome, r.Entry.Status, r.Entry.RequestId);
}
