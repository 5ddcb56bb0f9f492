using System.Collections;
using System.Diagnostics;
using Microsoft.AspNetCore.Http.Features;
using RagOrleans.Grains.Telemetry;
using RagOrleans.ServiceDefaults;

namespace RagOrleans.Frontend.Infrastructure;

/// <summary>
/// Gives every request a request id (the caller's <c>X-Request-Id</c> when it is a sane token, else the server's),
/// echoes it, and opens a logging scope carrying it and the tenant id; the tenant is read when a line is
/// written, so lines after authentication carry it. The tenant also goes on the request's span, into the
/// baggage that follows grain calls (so silo-side lines carry it too) and, as a bounded label, on the HTTP
/// metrics. Never the API key.
/// </summary>
public sealed class RequestTelemetryMiddleware(RequestDelegate next, ILogger<RequestTelemetryMiddleware> logger, RagMetrics metrics)
{
    /// <summary>The request id header, in and out.</summary>
    public const string RequestIdHeader = "X-Request-Id";

    public async Task InvokeAsync(HttpContext context)
    {
        if (context.Request.Headers[RequestIdHeader].ToString() is { Length: > 0 } incoming && IsSafeId(incoming))
        {
            context.TraceIdentifier = incoming;
        }

        context.Response.Headers[RequestIdHeader] = context.TraceIdentifier;
        var started = Stopwatch.GetTimestamp();
        using (logger.BeginScope(new RequestScope(context)))
        {
            try
            {
                await next(context);
            }
            finally
            {
                var tenant = AuthenticationMiddleware.Principal(context)?.TenantId;
                context.Features.Get<IHttpMetricsTagsFeature>()?.Tags.Add(new("rag.tenant", tenant is null ? "none" : metrics.Tenants.Observe(tenant)));
                if (!TelemetryExtensions.IsOperationalPath(context.Request.Path))
                {
                    // The route template, not the path or query: those can carry tenants' text (search queries).
                    AccessLog(logger, context.Request.Method, (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "(no route)",
                        context.Response.StatusCode, Stopwatch.GetElapsedTime(started).TotalMilliseconds, null);
                }
            }
        }
    }

    /// <summary>Tags the current span and baggage once the caller is known (called by the authentication middleware).</summary>
    public static void Authenticated(RagPrincipal principal)
    {
        if (Activity.Current is { } activity && principal.TenantId is { } tenant)
        {
            activity.SetTag("rag.tenant", tenant);
            activity.SetBaggage("rag.tenant", tenant);
        }
    }

    private static readonly Action<ILogger, string, string, int, double, Exception?> AccessLog = LoggerMessage.Define<string, string, int, double>(
        LogLevel.Information, new EventId(1, "Request"), "{Method} {Route} answered {StatusCode} in {ElapsedMs:F1} ms");

    private static bool IsSafeId(string id) =>
        id.Length <= 64 && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':');

    /// <summary>Scope state read lazily, so it shows the tenant once authentication has run.</summary>
    private sealed class RequestScope(HttpContext context) : IReadOnlyList<KeyValuePair<string, object?>>
    {
        public int Count => 2;

        public KeyValuePair<string, object?> this[int index] => index switch
        {
            0 => new("RequestId", context.TraceIdentifier),
            1 => new("TenantId", AuthenticationMiddleware.Principal(context)?.TenantId),
            _ => throw new ArgumentOutOfRangeException(nameof(index)),
        };

        public IEnumerator<KeyValuePair<string, object?>> GetEnumerator()
        {
            for (var i = 0; i < Count; i++)
            {
                yield return this[i];
            }
        }

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

        public override string ToString() => $"RequestId:{context.TraceIdentifier} TenantId:{AuthenticationMiddleware.Principal(context)?.TenantId}";
    }
}
