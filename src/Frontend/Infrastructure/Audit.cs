using RagOrleans.Abstractions;
using RagOrleans.Grains.Storage;

namespace RagOrleans.Frontend.Infrastructure;

/// <summary>Endpoint metadata: calls of this endpoint by a known key are written to the audit log as <see cref="Action"/>.</summary>
/// <param name="Action">The action's name, e.g. <c>tenant.delete</c>.</param>
public sealed record AuditedAction(string Action);

/// <summary>Marks endpoints as audited.</summary>
public static class AuditExtensions
{
    /// <summary>Writes every authenticated call of this endpoint (allowed or not) to the audit log as <paramref name="action"/>.</summary>
    public static TBuilder Audited<TBuilder>(this TBuilder builder, string action) where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new AuditedAction(action));
}

/// <summary>
/// Writes the audit entry of an audited endpoint once its answer is known. It sits outside the exception handler so
/// it records the status actually answered, failures included; calls without a valid key are not entries (they
/// are counted by the brute-force guard instead). A failure to write is logged, not turned into a failed request:
/// the action has already happened.
/// </summary>
public sealed class AuditMiddleware(RequestDelegate next, ILogger<AuditMiddleware> logger)
{
    public async Task InvokeAsync(HttpContext context)
    {
        var audited = context.GetEndpoint()?.Metadata.GetMetadata<AuditedAction>();
        if (audited is null)
        {
            await next(context);
            return;
        }

        try
        {
            await next(context);
        }
        finally
        {
            if (AuthenticationMiddleware.Principal(context) is { } principal)
            {
                await WriteAsync(context, principal, audited.Action);
            }
        }
    }

    private async Task WriteAsync(HttpContext context, RagPrincipal principal, string action)
    {
        var status = context.Response.StatusCode;
        var location = context.Response.Headers.Location.ToString();
        var target = status == StatusCodes.Status201Created && location.Length > 0 ? location : context.Request.Path.ToString();
        var entry = new AuditEntry(
            DateTimeOffset.UtcNow,
            principal.TenantId ?? TenantOf(target),
            principal.KeyId ?? Roles.Operator,
            principal.Role,
            action,
            target.Length <= 512 ? target : target[..512],
            status < 400 ? "succeeded" : status is 401 or 403 ? "denied" : "failed",
            status,
            context.TraceIdentifier);
        try
        {
            await context.RequestServices.GetRequiredService<IAuditLog>().AppendAsync(entry, CancellationToken.None);
        }
#pragma warning disable CA1031 // The action is done; a lost audit line is logged loudly, not turned into a failed answer.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            logger.LogError(ex, "Could not write the audit entry {Action} {Target} by {KeyId} (request {RequestId})",
                entry.Action, entry.Target, entry.KeyId, entry.RequestId);
        }
    }

    // Operator actions name their tenant in the path: /v1/tenants/{id}/...
    private static string? TenantOf(string path)
    {
        const string prefix = "/v1/tenants/";
        if (!path.StartsWith(prefix, StringComparison.Ordinal))
        {
            return null;
        }

        var rest = path[prefix.Length..];
        var end = rest.IndexOf('/', StringComparison.Ordinal);
        var id = end < 0 ? rest : rest[..end];
        return Ids.IsValidTenantId(id) ? id : null;
    }
}
