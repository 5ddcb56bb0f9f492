using RagOrleans.Grains;
using RagOrleans.Grains.Hosting;
using RagOrleans.ServiceDefaults;

// The silo host (no HTTP API beyond probes). Rag:Mode=cluster joins the PostgreSQL-backed cluster; the
// default embedded mode runs a lone localhost silo with the embedded storage.
// Settings ship beside the binary; relative data paths still resolve against the working directory.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.AddRagShutdown();
builder.AddRagTelemetry("ragorleans-silo", traceRedis: ClusterHosting.IsClusterMode(builder.Configuration));
builder.UseOrleans(silo => silo.UseRagSilo(builder.Configuration));

var app = builder.Build();
app.MapRagProbes(checkGateway: false);
app.MapRagMetrics();
if (ClusterHosting.IsClusterMode(builder.Configuration))
{
    await ClusterHosting.EnsureSchemaAsync(builder.Configuration, app.Services.GetRequiredService<ILoggerFactory>());
}

await app.RunAsync();
