using RagOrleans.ServiceDefaults;

namespace RagOrleans.Frontend.Apis;

/// <summary>Liveness, startup and readiness probes (shared with the silo host; see <see cref="Probes"/>).</summary>
public static class HealthApi
{
    public static IEndpointRouteBuilder MapHealthApi(this IEndpointRouteBuilder app) =>
        // The grain call proves a gateway answers in cluster mode; in embedded mode it is an in-process call.
        app.MapRagProbes(checkGateway: true);
}
