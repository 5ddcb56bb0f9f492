using Orleans.Dashboard;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.DependencyInjection.Extensions;
using RagOrleans.Frontend.Apis;
using RagOrleans.Frontend.Chat;
using RagOrleans.Frontend.Infrastructure;
using RagOrleans.Grains;
using RagOrleans.Grains.Hosting;
using RagOrleans.ServiceDefaults;

// Settings ship beside the binary; relative data paths still resolve against the working directory.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });

builder.Services.AddOptions<RagOptions>().BindConfiguration(RagOptions.Section);
builder.AddRagTelemetry("ragorleans-frontend");
builder.AddRagShutdown();
builder.Services.AddProblemDetails();
builder.Services.AddExceptionHandler<ProblemExceptionHandler>();
builder.Services.AddSingleton<OperatorKey>();
builder.Services.AddOptions<AuthGuardOptions>().BindConfiguration(AuthGuardOptions.Section);
builder.Services.AddSingleton(sp => new AuthFailureGuard(
    sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<AuthGuardOptions>>().Value.MaxTrackedSubjects));
builder.Services.TryAddSingleton(TimeProvider.System);
builder.Services.AddOptions<RagOrleans.Grains.Quotas.QuotaOptions>().BindConfiguration(RagOrleans.Grains.Quotas.QuotaOptions.Section);
builder.Services.AddSingleton(sp => new RagOrleans.Grains.Quotas.RateLeaseLimiter(sp.GetRequiredService<IGrainFactory>(), sp.GetRequiredService<TimeProvider>()));
builder.Services.AddOpenApi();
builder.Services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
builder.Services.ConfigureHttpJsonOptions(o =>
{
    o.SerializerOptions.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.CamelCase));
    o.SerializerOptions.MaxDepth = 32;
});

// Embedded mode (default): this process co-hosts one silo; all state lives under Rag:DataDir.
// Cluster mode: a stateless Orleans client of the silos, which it finds through the membership table.
var clusterMode = ClusterHosting.IsClusterMode(builder.Configuration);
if (clusterMode)
{
    builder.UseOrleansClient(client => client.UseRagClient(builder.Configuration));

    // Upload bytes stream from the request straight into the shared blob store, never through grain messages.
    builder.Services.AddSingleton(_ => Npgsql.NpgsqlDataSource.Create(ClusterHosting.PostgresConnectionString(builder.Configuration)));
    builder.Services.AddSingleton<RagOrleans.Grains.Storage.IBlobStore, RagOrleans.Grains.Storage.Postgres.PostgresBlobStore>();
    builder.Services.AddSingleton<RagOrleans.Grains.Storage.IAuditLog, RagOrleans.Grains.Storage.Postgres.PostgresAuditLog>();

    // Tenant export and import stream between HTTP and the shared stores directly, never through grain messages.
    builder.Services.AddSingleton<RagOrleans.Grains.Storage.IDocumentStore, RagOrleans.Grains.Storage.Postgres.PostgresDocumentStore>();
    builder.Services.AddSingleton<RagOrleans.Grains.Storage.IChunkLog, RagOrleans.Grains.Storage.Postgres.PostgresChunkLog>();
    builder.Services.AddSingleton<RagOrleans.Grains.Storage.ISnapshotStore, RagOrleans.Grains.Storage.Postgres.PostgresSnapshotStore>();
    builder.Services.AddSingleton<RagOrleans.Grains.Storage.IConversationStore, RagOrleans.Grains.Storage.Postgres.PostgresConversationStore>();
}
else
{
    builder.UseOrleans(silo => silo.UseRagSilo(builder.Configuration));
}

builder.Services.AddOptions<RagOrleans.Grains.Backup.BackupOptions>().BindConfiguration(RagOrleans.Grains.Backup.BackupOptions.Section);
builder.Services.AddSingleton<RagOrleans.Grains.Backup.TenantExporter>();
builder.Services.AddSingleton<RagOrleans.Grains.Backup.TenantImporter>();

// Chat generation runs here, beside the client's connection (streaming, cancellation); after the silo's own registrations.
builder.Services.AddRagChat();

var app = builder.Build();
app.UseMiddleware<RequestTelemetryMiddleware>();
app.UseMiddleware<AuditMiddleware>();
app.UseExceptionHandler();
app.UseStatusCodePages();
app.UseWebPage();
app.UseMiddleware<AuthenticationMiddleware>();
app.UseMiddleware<IdValidationMiddleware>();
app.UseMiddleware<RateLimitingMiddleware>();
if (app.Configuration.GetValue("Rag:Dashboard", true))
{
    // The Orleans dashboard shows every tenant's grains: operators only.
    app.UseWhen(c => c.Request.Path.StartsWithSegments("/dashboard"), branch => branch.Use(DashboardAccess.RequireOperatorAsync));
    app.MapOrleansDashboard("/dashboard");
}

app.MapOpenApi();
app.MapRagMetrics();
app.MapHealthApi();
app.MapTenantsApi();
app.MapKeysApi();
app.MapCollectionsApi();
app.MapDocumentsApi();
app.MapUploadsApi();
app.MapSearchApi();
app.MapChatApi();
app.MapOpenAiApi();
app.MapLimitsApi();
app.MapAuditApi();
app.MapBackupApi();

// Creating the key up front makes its location known at start-up, not at the first request.
var operatorKey = app.Services.GetRequiredService<OperatorKey>();
if (operatorKey.KeyFile is not null)
{
    app.Logger.LogInformation("Operator key file: {KeyFile}", operatorKey.KeyFile);
}

if (clusterMode)
{
    await ClusterHosting.EnsureSchemaAsync(builder.Configuration, app.Services.GetRequiredService<ILoggerFactory>());
}

await app.RunAsync();

/// <summary>Entry point type, visible to integration tests.</summary>
public partial class Program;
