using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace RagOrleans.Grains.Telemetry;

/// <summary>Registers <see cref="RagMetrics"/>.</summary>
public static class RagMetricsServiceCollectionExtensions
{
    /// <summary>Adds the process's one <see cref="RagMetrics"/> (idempotent: frontend and co-hosted silo share it).</summary>
    public static IServiceCollection AddRagMetrics(this IServiceCollection services)
    {
        services.AddOptions<TelemetryOptions>().BindConfiguration(TelemetryOptions.Section);
        services.TryAddSingleton(sp => new RagMetrics(sp.GetService<IMeterFactory>(), sp.GetService<IOptions<TelemetryOptions>>()));
        return services;
    }
}
