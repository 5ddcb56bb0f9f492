using System.Globalization;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using RagOrleans.Grains.Quotas;

namespace RagOrleans.Frontend.Infrastructure;

/// <summary>
/// Per-tenant and per-user request rates for tenant keys (the operator is not limited). Each request spends a
/// token this frontend leased from the tenant's quota grain; see <see cref="RateLeaseLimiter"/>.
/// </summary>
public sealed class RateLimitingMiddleware(RequestDelegate next, RateLeaseLimiter limiter, IOptionsMonitor<QuotaOptions> options)
{
    public async Task InvokeAsync(HttpContext context)
    {
        var principal = AuthenticationMiddleware.Principal(context);
        if (principal?.TenantId is not { } tenantId || !options.CurrentValue.EnforceRateLimits)
        {
            await next(context);
            return;
        }

        var decision = await limiter.AcquireAsync(tenantId, principal.User, context.RequestAborted);
        QuotaProblems.WriteHeaders(context.Response, decision);
        if (decision.Allowed)
        {
            await next(context);
            return;
        }

        context.RequestServices.GetService<Grains.Telemetry.RagMetrics>()?.Refused("rate_limit", tenantId);
        context.Response.Headers.RetryAfter = decision.ResetSeconds.ToString(CultureInfo.InvariantCulture);
        context.Response.StatusCode = StatusCodes.Status429TooManyRequests;
        var who = decision.Quota == Abstractions.QuotaNames.UserRequestsPerMinute ? $"user '{principal.User}'" : $"tenant '{tenantId}'";
        var problem = new ProblemDetails
        {
            Status = StatusCodes.Status429TooManyRequests,
            Title = "Too Many Requests",
            Detail = $"The request rate of {who} is limited to {decision.Limit?.ToString(CultureInfo.InvariantCulture) ?? "its limit"} per minute; retry in {decision.ResetSeconds} s.",
        };
        problem.Extensions["quota"] = decision.Quota;
        problem.Extensions["limit"] = decision.Limit;
        problem.Extensions["usage"] = decision.Limit;
        problem.Extensions["retryAfterSeconds"] = decision.ResetSeconds;
        await context.RequestServices.GetRequiredService<IProblemDetailsService>().WriteAsync(new ProblemDetailsContext { HttpContext = context, ProblemDetails = problem });
    }
}
