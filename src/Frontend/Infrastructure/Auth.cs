using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using RagOrleans.Abstractions;

namespace RagOrleans.Frontend.Infrastructure;

/// <summary>Who is calling: the operator, or a tenant key's owner.</summary>
public sealed record RagPrincipal(string Role, string? TenantId, string? UserId, string? KeyId)
{
    /// <summary>The tenant, for tenant-scoped routes (guarded by the role filter).</summary>
    public string Tenant => TenantId ?? throw new InvalidOperationException("Not a tenant principal.");

    /// <summary>The user id conversations belong to.</summary>
    public string User => UserId ?? throw new InvalidOperationException("Not a tenant principal.");
}

/// <summary>Holds the operator key, from configuration or generated once into the data folder.</summary>
public sealed class OperatorKey
{
    private readonly byte[] _hash;

    public OperatorKey(IOptions<RagOrleans.Grains.RagOptions> options, ILogger<OperatorKey> logger)
    {
        var configured = options.Value.OperatorKey;
        if (string.IsNullOrWhiteSpace(configured))
        {
            var path = Path.Combine(Path.GetFullPath(options.Value.DataDir), "operator.key");
            KeyFile = path;
            if (File.Exists(path))
            {
                configured = File.ReadAllText(path).Trim();
                logger.LogInformation("Operator key read from {KeyFile}", path);
            }
            else
            {
                configured = "op." + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                File.WriteAllText(path, configured + "\n");
                if (!OperatingSystem.IsWindows())
                {
                    File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                }

                logger.LogWarning("Generated an operator key; it is stored in {KeyFile} (set Rag:OperatorKey to choose your own)", path);
            }
        }

        _hash = SHA256.HashData(Encoding.UTF8.GetBytes(configured));
    }

    /// <summary>The file holding a generated key, when the key was not configured.</summary>
    public string? KeyFile { get; }

    /// <summary>Constant-time comparison (of hashes, so the length does not leak either).</summary>
    public bool Matches(string presented) =>
        CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(presented)), _hash);
}

/// <summary>
/// Resolves the bearer key of every request into a <see cref="RagPrincipal"/>. Failed authentications are counted
/// per client address and per key id (<see cref="AuthFailureGuard"/>): past the limit, attempts are answered 429
/// with Retry-After before any key is checked.
/// </summary>
public sealed class AuthenticationMiddleware(RequestDelegate next, AuthFailureGuard guard, Microsoft.Extensions.Options.IOptionsMonitor<AuthGuardOptions> guardOptions)
{
    private const string ItemKey = "rag.principal";

    public static RagPrincipal? Principal(HttpContext context) => context.Items.TryGetValue(ItemKey, out var p) ? p as RagPrincipal : null;

    public async Task InvokeAsync(HttpContext context, OperatorKey operatorKey, IGrainFactory grains)
    {
        var header = context.Request.Headers.Authorization.ToString();
        if (header.Length > 0)
        {
            var options = guardOptions.CurrentValue;
            var client = "ip:" + (context.Connection.RemoteIpAddress?.ToString() ?? "unknown");
            if (options.Enabled && guard.IsBlocked(client, options.MaxFailuresPerClient, options.Window, out var wait))
            {
                await TooManyFailures(context, wait, "this client");
                return;
            }

            if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            {
                Failed(client, null, options);
                await Problems.Write(context, StatusCodes.Status401Unauthorized, "Unauthorized", "Use 'Authorization: Bearer <api key>'.");
                return;
            }

            var key = header["Bearer ".Length..].Trim();
            RagPrincipal? principal = null;
            string? keySubject = null;
            if (operatorKey.Matches(key))
            {
                principal = new RagPrincipal(Roles.Operator, null, null, null);
            }
            else if (ApiKeyFormat.TryParse(key, out var tenantId, out var keyId, out var secret))
            {
                keySubject = "key:" + tenantId + "." + keyId;
                if (options.Enabled && guard.IsBlocked(keySubject, options.MaxFailuresPerKeyId, options.Window, out wait))
                {
                    await TooManyFailures(context, wait, "this key id");
                    return;
                }

                var tenant = grains.Reference<ITenantGrain>(tenantId);
                var found = await TransientRetry.ReadAsync(() => tenant.Authenticate(keyId, secret), context.RequestAborted);
                if (found is not null)
                {
                    principal = new RagPrincipal(found.Role, found.TenantId, found.UserId, found.KeyId);
                }
            }

            if (principal is null)
            {
                Failed(client, keySubject, options);
                await Problems.Write(context, StatusCodes.Status401Unauthorized, "Unauthorized", "The API key is invalid or has been revoked.");
                return;
            }

            context.Items[ItemKey] = principal;
            RequestTelemetryMiddleware.Authenticated(principal);
        }

        await next(context);
    }

    private void Failed(string client, string? keySubject, AuthGuardOptions options)
    {
        if (!options.Enabled)
        {
            return;
        }

        guard.RecordFailure(client, options.MaxFailuresPerClient, options.Window);
        if (keySubject is not null)
        {
            guard.RecordFailure(keySubject, options.MaxFailuresPerKeyId, options.Window);
        }
    }

    private static async Task TooManyFailures(HttpContext context, TimeSpan wait, string who)
    {
        var seconds = (int)Math.Ceiling(wait.TotalSeconds);
        context.RequestServices.GetService<Grains.Telemetry.RagMetrics>()?.Refused("auth_failures", null);
        context.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await Problems.Write(context, StatusCodes.Status429TooManyRequests, "Too Many Requests",
            $"Too many failed authentications from {who}; retry in {seconds} s.");
    }
}

/// <summary>Role checks for route groups.</summary>
public static class Authorization
{
    /// <summary>Requires one of <paramref name="roles"/>; 401 without a key, 403 with the wrong one.</summary>
    public static TBuilder RequireRole<TBuilder>(this TBuilder builder, params string[] roles) where TBuilder : IEndpointConventionBuilder =>
        builder.AddEndpointFilter(async (context, next) =>
        {
            var principal = AuthenticationMiddleware.Principal(context.HttpContext);
            if (principal is null)
            {
                context.HttpContext.Response.Headers.WWWAuthenticate = "Bearer";
                return Problems.Result(StatusCodes.Status401Unauthorized, "Unauthorized", "This endpoint needs 'Authorization: Bearer <api key>'.");
            }

            if (Array.IndexOf(roles, principal.Role) < 0)
            {
                return Problems.Result(StatusCodes.Status403Forbidden, "Forbidden", $"This endpoint needs the {string.Join(" or ", roles)} role; the key has '{principal.Role}'.");
            }

            return await next(context);
        });
}
