using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using RagOrleans.Abstractions;

namespace RagOrleans.Frontend.Infrastructure;

/// <summary>RFC 7807 problem details for every error the API returns.</summary>
public static class Problems
{
    /// <summary>A problem result for a handler or filter.</summary>
    public static ProblemHttpResult Result(int status, string title, string detail) =>
        TypedResults.Problem(detail: detail, statusCode: status, title: title);

    /// <summary>Writes a problem directly (middleware paths).</summary>
    public static async Task Write(HttpContext context, int status, string title, string detail)
    {
        if (status == StatusCodes.Status401Unauthorized)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
        }

        var problems = context.RequestServices.GetRequiredService<IProblemDetailsService>();
        context.Response.StatusCode = status;
        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            ProblemDetails = new ProblemDetails { Status = status, Title = title, Detail = detail },
        });
    }

    /// <summary>Maps a grain error kind to its HTTP status and title.</summary>
    public static (int Status, string Title) Map(RagErrorKind kind) => kind switch
    {
        RagErrorKind.NotFound => (StatusCodes.Status404NotFound, "Not Found"),
        RagErrorKind.Conflict => (StatusCodes.Status409Conflict, "Conflict"),
        RagErrorKind.UnsupportedMediaType => (StatusCodes.Status415UnsupportedMediaType, "Unsupported Media Type"),
        RagErrorKind.Unprocessable => (StatusCodes.Status422UnprocessableEntity, "Unprocessable Content"),
        RagErrorKind.TooLarge => (StatusCodes.Status413PayloadTooLarge, "Payload Too Large"),
        RagErrorKind.Forbidden => (StatusCodes.Status403Forbidden, "Forbidden"),
        RagErrorKind.Unavailable => (StatusCodes.Status503ServiceUnavailable, "Service Unavailable"),
        RagErrorKind.TooManyRequests => (StatusCodes.Status429TooManyRequests, "Too Many Requests"),
        _ => (StatusCodes.Status400BadRequest, "Bad Request"),
    };
}

/// <summary>Turns exceptions into problem details; never leaks internals for unexpected ones.</summary>
public sealed class ProblemExceptionHandler(IProblemDetailsService problems, ILogger<ProblemExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        var (status, title, detail) = exception switch
        {
            RagException rag => Describe(rag),
            BadHttpRequestException bad when bad.StatusCode == StatusCodes.Status413PayloadTooLarge =>
                (413, "Payload Too Large", "The request body is larger than allowed."),
            BadHttpRequestException bad => (bad.StatusCode, "Bad Request", BadRequestDetail(bad)),
            JsonException json => (400, "Bad Request", "The body is not valid JSON: " + json.Message),
            InvalidDataException data => (400, "Bad Request", data.Message),
            TimeoutException => (503, "Service Unavailable", "The cluster did not answer in time; retry shortly."),
            SiloUnavailableException or OrleansMessageRejectionException or Orleans.Runtime.Messaging.ConnectionFailedException =>
                (503, "Service Unavailable", "The cluster is not reachable right now; retry shortly."),
            _ when BackingStores.Unavailable(exception) is { } store =>
                (503, "Service Unavailable", $"{store} is not reachable right now; retry shortly."),
            OperationCanceledException when context.RequestAborted.IsCancellationRequested => (499, "Client Closed Request", "The client went away."),
            // Not the client's cancellation: the runtime gave up on the call (a message expired before placement, an
            // activation was cancelled during a failover or under overload). Transient, so 503, never a 500.
            OperationCanceledException => (503, "Service Unavailable", "The cluster did not answer in time; retry shortly."),
            _ => (500, "Internal Server Error", "An unexpected error occurred; it has been logged."),
        };

        if (status >= 500)
        {
            logger.LogError(exception, "Request {Method} {Path} failed", context.Request.Method, context.Request.Path);
        }

        context.Response.StatusCode = status;
        if (status == 503)
        {
            context.Response.Headers.RetryAfter = "5";
        }

        var problem = new ProblemDetails { Status = status, Title = title, Detail = detail };
        if (exception is RagException { Quota: { } quota })
        {
            context.RequestServices.GetService<Grains.Telemetry.RagMetrics>()?.Refused("quota", AuthenticationMiddleware.Principal(context)?.TenantId);
            QuotaProblems.Describe(context, problem, quota);
        }

        return await problems.TryWriteAsync(new ProblemDetailsContext
        {
            HttpContext = context,
            Exception = exception,
            ProblemDetails = problem,
        });
    }

    private static (int, string, string) Describe(RagException rag)
    {
        var (status, title) = Problems.Map(rag.Kind);
        return (status, title, rag.Message);
    }

    private static string BadRequestDetail(BadHttpRequestException bad) =>
        bad.InnerException is JsonException json ? $"The body is not valid JSON: {json.Message}" : bad.Message;
}

/// <summary>
/// Recognises a failure of a backing store (PostgreSQL or Redis) anywhere in an exception's chain, including one
/// that crossed the grain boundary as <see cref="Orleans.Serialization.UnavailableExceptionFallbackException"/>
/// (its type is not known to the frontend), so an outage answers 503 instead of 500.
/// </summary>
public static class BackingStores
{
    /// <summary>"PostgreSQL" or "Redis" when <paramref name="exception"/> was caused by that store; else null.</summary>
    public static string? Unavailable(Exception exception)
    {
        var pending = new Stack<Exception>();
        pending.Push(exception);
        for (var seen = 0; pending.Count > 0 && seen < 32; seen++)
        {
            var e = pending.Pop();
            var type = e is Orleans.Serialization.UnavailableExceptionFallbackException fallback ? fallback.ExceptionType ?? "" : e.GetType().FullName ?? "";
            if (type.StartsWith("Npgsql.", StringComparison.Ordinal) || e.Message.Contains("Npgsql", StringComparison.Ordinal))
            {
                return "PostgreSQL";
            }

            if (type.Contains("Redis", StringComparison.Ordinal))
            {
                return "Redis";
            }

            if (e is AggregateException aggregate)
            {
                foreach (var inner in aggregate.InnerExceptions)
                {
                    pending.Push(inner);
                }
            }
            else if (e.InnerException is { } inner)
            {
                pending.Push(inner);
            }
        }

        return null;
    }
}
