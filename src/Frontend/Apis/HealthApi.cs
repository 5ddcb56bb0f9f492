using Microsoft.AspNetCore.Http.HttpResults;
using RagOrleans.Abstractions;

namespace RagOrleans.Frontend.Apis;

/// <summary>Liveness and readiness probes.</summary>
public static class HealthApi
{
    public static IEndpointRouteBuilder MapHealthApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/healthz", () => TypedResults.Ok(new { status = "alive" })).WithTags("Health").ExcludeFromDescription();
        app.MapGet("/readyz", Ready).WithTags("Health").ExcludeFromDescription();
        return app;
    }

    private static async Task<Results<Ok<object>, JsonHttpResult<object>>> Ready(IGrainFactory grains, CancellationToken cancellationToken)
    {
        try
        {
            var ready = await grains.GetGrain<IEmbedderGrain>(0).IsReady().WaitAsync(TimeSpan.FromSeconds(5), cancellationToken);
            return ready
                ? TypedResults.Ok<object>(new { status = "ready" })
                : TypedResults.Json<object>(new { status = "starting", reason = "embedding model is loading" }, statusCode: 503);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return TypedResults.Json<object>(new { status = "unavailable", reason = "silo not reachable" }, statusCode: 503);
        }
    }
}
