using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using RagOrleans.Frontend.Infrastructure;
using Xunit;

namespace RagOrleans.Ops.Tests;

/// <summary>
/// What a client sees when a call fails inside the cluster: the failures the chaos benchmark met under silo kills and
/// overload are transient 503 problems with Retry-After, never a bare 500.
/// </summary>
public sealed class ProblemMappingTests
{
    [Fact]
    public async Task A_call_the_runtime_gave_up_on_is_a_503_with_retry_after()
    {
        // Orleans' "Message expired before placement could complete" and a cancelled activation during failover.
        var (status, retryAfter, body) = await HandleAsync(new OperationCanceledException("Message expired before placement could complete for grain collection/t/kb."));
        Assert.Equal(503, status);
        Assert.Equal("5", retryAfter);
        Assert.Equal(503, body.GetProperty("status").GetInt32());
        Assert.Contains("retry shortly", body.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain("placement", body.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_client_that_went_away_is_not_reported_as_an_outage()
    {
        using var aborted = new CancellationTokenSource();
        await aborted.CancelAsync();
        var (status, _, _) = await HandleAsync(new TaskCanceledException(), aborted.Token);
        Assert.Equal(499, status);
    }

    [Fact]
    public async Task A_store_exception_that_could_not_cross_the_grain_boundary_still_names_the_store()
    {
        var (status, retryAfter, body) = await HandleAsync(new InvalidOperationException("Could not find a codec for type Npgsql.PostgresException."));
        Assert.Equal(503, status);
        Assert.Equal("5", retryAfter);
        Assert.Contains("PostgreSQL", body.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unexpected_error_is_a_500_that_leaks_nothing()
    {
        var (status, _, body) = await HandleAsync(new InvalidOperationException("secret internal state"));
        Assert.Equal(500, status);
        Assert.DoesNotContain("secret", body.GetRawText(), StringComparison.Ordinal);
    }

    private static async Task<(int Status, string? RetryAfter, JsonElement Body)> HandleAsync(Exception exception, CancellationToken aborted = default)
    {
        var services = new ServiceCollection().AddLogging().AddProblemDetails().BuildServiceProvider();
        var context = new DefaultHttpContext { RequestServices = services, RequestAborted = aborted };
        context.Request.Method = "POST";
        context.Request.Path = "/v1/collections/kb/documents";
        using var body = new MemoryStream();
        context.Response.Body = body;
        var handler = new ProblemExceptionHandler(services.GetRequiredService<Microsoft.AspNetCore.Http.IProblemDetailsService>(), NullLogger<ProblemExceptionHandler>.Instance);
        Assert.True(await handler.TryHandleAsync(context, exception, CancellationToken.None));
        using var json = JsonDocument.Parse(body.ToArray());
        return (context.Response.StatusCode, context.Response.Headers.RetryAfter.ToString() is { Length: > 0 } r ? r : null, json.RootElement.Clone());
    }
}
