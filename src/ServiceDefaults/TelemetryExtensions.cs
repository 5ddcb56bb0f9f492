using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Npgsql;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using RagOrleans.Grains.Telemetry;

namespace RagOrleans.ServiceDefaults;

/// <summary>
/// Metrics, traces and logs of a RagOrleans process (frontend or silo). Metrics are scraped at
/// <see cref="MetricsPath"/> in Prometheus format; traces and logs go to an OTLP collector when the standard
/// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set (the other <c>OTEL_*</c> variables apply as usual).
/// </summary>
public static class TelemetryExtensions
{
    /// <summary>Where Prometheus scrapes.</summary>
    public const string MetricsPath = "/metrics";

    /// <summary>Orleans' activity sources: grain calls (runtime and application) and its storage providers.</summary>
    public static readonly string[] OrleansSources = ["Microsoft.Orleans.Runtime", "Microsoft.Orleans.Application", "Microsoft.Orleans.Storage"];

    /// <summary>Orleans' meter.</summary>
    public const string OrleansMeter = "Microsoft.Orleans";

    /// <summary>The .NET runtime's built-in meter (thread pool, GC, process memory).</summary>
    public const string RuntimeMeter = "System.Runtime";

    /// <summary>
    /// Adds metrics, tracing and structured logging; <paramref name="serviceName"/> names the process kind. With
    /// <paramref name="traceRedis"/>, Redis commands of the <c>IConnectionMultiplexer</c> the host registers (cluster
    /// silos: grain state) become spans too.
    /// </summary>
    public static WebApplicationBuilder AddRagTelemetry(this WebApplicationBuilder builder, string serviceName, bool traceRedis = false)
    {
        builder.Services.AddRagMetrics();
        builder.AddRagLogging();

        var otel = builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(serviceName, serviceInstanceId: Environment.GetEnvironmentVariable("POD_NAME") ?? Environment.MachineName))
            .WithMetrics(metrics => metrics
                // System.Runtime: thread-pool queue length and thread count, GC and working set, so starvation and
                // memory growth show on /metrics (the soak benchmark reads them there).
                .AddMeter(RagMetrics.MeterName, OrleansMeter, "Npgsql", RuntimeMeter)
                .AddAspNetCoreInstrumentation()
                .AddPrometheusExporter())
            .WithTracing(tracing => tracing
                .AddSource(RagActivity.SourceName)
                .AddSource(OrleansSources)
                .AddAspNetCoreInstrumentation(o => o.Filter = context => !IsOperationalPath(context.Request.Path))
                .AddNpgsql());
        if (traceRedis)
        {
            otel.WithTracing(tracing => tracing.AddRedisInstrumentation());
        }

        // Only with a collector to talk to: without one, the exporter would retry into the void.
        if (!string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        {
            otel.WithLogging();
            otel.UseOtlpExporter();
        }

        return builder;
    }

    /// <summary>Maps the Prometheus scrape endpoint.</summary>
    public static IEndpointConventionBuilder MapRagMetrics(this WebApplication app) =>
        app.MapPrometheusScrapingEndpoint(MetricsPath);

    /// <summary>Probe and scrape paths: kept out of traces (they would drown the real requests).</summary>
    public static bool IsOperationalPath(PathString path) =>
        path.StartsWithSegments(MetricsPath, StringComparison.Ordinal)
        || path.StartsWithSegments("/healthz", StringComparison.Ordinal)
        || path.StartsWithSegments("/readyz", StringComparison.Ordinal)
        || path.StartsWithSegments("/startupz", StringComparison.Ordinal);

    /// <summary>
    /// Structured console logs: JSON when <c>Logging:Console:FormatterName</c> says <c>json</c> and by default in
    /// Production; every line carries its scopes (request id, tenant id) and the trace and span ids.
    /// </summary>
    public static WebApplicationBuilder AddRagLogging(this WebApplicationBuilder builder)
    {
        builder.Logging.Configure(o => o.ActivityTrackingOptions =
            ActivityTrackingOptions.TraceId | ActivityTrackingOptions.SpanId | ActivityTrackingOptions.ParentId | ActivityTrackingOptions.Baggage);
        var production = builder.Environment.IsProduction();
        builder.Services.Configure<ConsoleLoggerOptions>(o =>
        {
            if (string.IsNullOrEmpty(o.FormatterName) && production)
            {
                o.FormatterName = ConsoleFormatterNames.Json;
            }
        });
        builder.Services.Configure<JsonConsoleFormatterOptions>(o =>
        {
            o.IncludeScopes = true;
            o.UseUtcTimestamp = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
        });
        return builder;
    }

    /// <summary>
    /// How long a stop (SIGTERM) may take: in-flight requests drain and, on silos, grains deactivate and shards
    /// snapshot. <c>Rag:ShutdownTimeout</c>, default one minute; Kubernetes' terminationGracePeriodSeconds must exceed it.
    /// </summary>
    public static WebApplicationBuilder AddRagShutdown(this WebApplicationBuilder builder)
    {
        var timeout = builder.Configuration.GetValue("Rag:ShutdownTimeout", TimeSpan.FromSeconds(60));
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = timeout);
        return builder;
    }

    /// <summary>The current trace id, for error bodies and response headers.</summary>
    public static string? CurrentTraceId => Activity.Current?.TraceId.ToString();
}
