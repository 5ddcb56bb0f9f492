using System.Globalization;
using Microsoft.AspNetCore.Mvc;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Quotas;

namespace RagOrleans.Frontend.Infrastructure;

/// <summary>The machine-readable side of quota refusals: problem extensions and rate-limit headers.</summary>
public static class QuotaProblems
{
    /// <summary>Adds <c>quota</c>, <c>limit</c>, <c>usage</c> and <c>requested</c> to a problem, and <c>Retry-After</c> when known.</summary>
    public static void Describe(HttpContext context, ProblemDetails problem, QuotaViolation quota)
    {
        problem.Extensions["quota"] = quota.Quota;
        problem.Extensions["limit"] = quota.Limit;
        problem.Extensions["usage"] = quota.Usage;
        problem.Extensions["requested"] = quota.Requested;
        if (quota.RetryAfterSeconds is { } retry)
        {
            context.Response.Headers.RetryAfter = retry.ToString(CultureInfo.InvariantCulture);
        }
    }

    /// <summary>Writes the <c>RateLimit-*</c> headers of a decision (none when the caller is unlimited).</summary>
    public static void WriteHeaders(HttpResponse response, RateDecision decision)
    {
        if (decision.Limit is not { } limit)
        {
            return;
        }

        response.Headers["RateLimit-Limit"] = limit.ToString(CultureInfo.InvariantCulture);
        response.Headers["RateLimit-Remaining"] = Math.Max(0, decision.Remaining).ToString(CultureInfo.InvariantCulture);
        response.Headers["RateLimit-Reset"] = decision.ResetSeconds.ToString(CultureInfo.InvariantCulture);
    }
}
