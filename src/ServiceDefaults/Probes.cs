using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Embeddings;
using RagOrleans.Grains.Hosting;

namespace RagOrleans.ServiceDefaults;

/// <summary>The body of every probe answer.</summary>
/// <param name="Status">alive, started, starting, ready, unavailable or draining.</param>
/// <param name="Reason">Why the probe fails, when it does.</param>
public sealed record ProbeStatus(string Status, string? Reason = null);

/// <summary>
/// Kubernetes probes. <c>/healthz</c> (liveness): the process answers. <c>/startupz</c>: the host has started and a
/// locally hosted embedding model has loaded. <c>/readyz</c>: this process can serve now; the checks depend on
/// what it hosts: a silo (or the embedded frontend) needs its model and its storage, a cluster-mode frontend
/// needs a gateway that answers a grain call. Every probe fails once shutdown has begun, so the pod leaves the
/// Service's endpoints while in-flight requests drain.
/// </summary>
public static class Probes
{
    /// <summary>Probe paths, as the manifests and Dockerfiles use them.</summary>
    public const string Live = "/healthz", Startup = "/startupz", Ready = "/readyz";

    private static readonly TimeSpan CheckTimeout = TimeSpan.FromSeconds(3);

    /// <summary>Maps the three probes; <paramref name="checkGateway"/> adds the grain call of a cluster client.</summary>
    public static IEndpointRouteBuilder MapRagProbes(this IEndpointRouteBuilder app, bool checkGateway)
    {
        app.MapGet(Live, () => TypedResults.Ok(new ProbeStatus("alive"))).WithTags("Health").ExcludeFromDescription();
        app.MapGet(Startup, (IServiceProvider services, IHostApplicationLifetime lifetime) => StartedAsync(services, lifetime))
            .WithTags("Health").ExcludeFromDescription();
        app.MapGet(Ready, (IServiceProvider services, IHostApplicationLifetime lifetime, CancellationToken cancellationToken) =>
            ReadyAsync(services, lifetime, checkGateway, cancellationToken)).WithTags("Health").ExcludeFromDescription();
        return app;
    }

    private static Results<Ok<ProbeStatus>, JsonHttpResult<ProbeStatus>> StartedAsync(IServiceProvider services, IHostApplicationLifetime lifetime)
    {
        if (!lifetime.ApplicationStarted.IsCancellationRequested)
        {
            return Unavailable("starting", "the host is starting");
        }

        return services.GetService<EmbeddingModelRegistry>() is { IsReady: false }
            ? Unavailable("starting", "the embedding model is loading")
            : TypedResults.Ok(new ProbeStatus("started"));
    }

    private static async Task<Results<Ok<ProbeStatus>, JsonHttpResult<ProbeStatus>>> ReadyAsync(
        IServiceProvider services, IHostApplicationLifetime lifetime, bool checkGateway, CancellationToken cancellationToken)
    {
        if (lifetime.ApplicationStopping.IsCancellationRequested)
        {
            return Unavailable("draining", "the process is shutting down");
        }

        if (services.GetService<EmbeddingModelRegistry>() is { IsReady: false })
        {
            return Unavailable("starting", "the embedding model is loading");
        }

        if (services.GetService<IStorageProbe>() is { } storage)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(CheckTimeout);
            string? failure;
            try
            {
                failure = await storage.CheckAsync(timeout.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                failure = "storage did not answer in time";
            }

            if (failure is not null)
            {
                return Unavailable("unavailable", "storage not reachable: " + failure);
            }
        }

        if (checkGateway)
        {
            try
            {
                var ready = await services.GetRequiredService<IGrainFactory>().Reference<IEmbedderGrain>(0).IsReady()
                    .WaitAsync(CheckTimeout, cancellationToken);
                if (!ready)
                {
                    return Unavailable("starting", "the silos' embedding model is loading");
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                // Any failure (no gateway, timeout, an exception type this process cannot even load) means not ready.
                return Unavailable("unavailable", "no silo reachable through a gateway");
            }
        }

        return TypedResults.Ok(new ProbeStatus("ready"));
    }

    private static JsonHttpResult<ProbeStatus> Unavailable(string status, string reason) =>
        TypedResults.Json(new ProbeStatus(status, reason), statusCode: StatusCodes.Status503ServiceUnavailable);
}
