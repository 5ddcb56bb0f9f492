using System.Text.Json;
using System.Text.Json.Serialization;
using RagOrleans.Frontend.Apis;
using RagOrleans.Frontend.Infrastructure;
using RagOrleans.Grains;
using RagOrleans.Grains.Hosting;

// Settings ship beside the binary; relative data paths still resolve against the working directory.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });

builder.Services.AddOptions<RagOptions>().BindConfiguration(RagOptions.Section);
builder.Services.AddProblemDetails();
builder.Services.AddExceptionHandler<ProblemExceptionHandler>();
builder.Services.AddSingleton<OperatorKey>();
builder.Services.AddOpenApi();
builder.Services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
builder.Services.ConfigureHttpJsonOptions(o =>
{
    o.SerializerOptions.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.CamelCase));
    o.SerializerOptions.MaxDepth = 32;
});

var mode = builder.Configuration[$"{RagOptions.Section}:Mode"] ?? "embedded";
if (!string.Equals(mode, "embedded", StringComparison.OrdinalIgnoreCase))
{
    throw new InvalidOperationException($"Rag:Mode '{mode}' is not supported by this build; use 'embedded'.");
}

// Embedded mode: this process co-hosts one silo with localhost clustering; all state lives under Rag:DataDir.
var siloPort = builder.Configuration.GetValue("Orleans:SiloPort", 11111);
var gatewayPort = builder.Configuration.GetValue("Orleans:GatewayPort", 30000);
builder.UseOrleans(silo =>
{
    silo.UseLocalhostClustering(siloPort, gatewayPort, serviceId: "ragorleans", clusterId: "embedded");
    silo.AddRag();
});

var app = builder.Build();
app.UseExceptionHandler();
app.UseStatusCodePages();
app.UseMiddleware<AuthenticationMiddleware>();
app.MapOpenApi();
app.MapHealthApi();
app.MapTenantsApi();
app.MapKeysApi();
app.MapCollectionsApi();
app.MapDocumentsApi();
app.MapSearchApi();

// Creating the key up front makes its location known at start-up, not at the first request.
var operatorKey = app.Services.GetRequiredService<OperatorKey>();
if (operatorKey.KeyFile is not null)
{
    app.Logger.LogInformation("Operator key file: {KeyFile}", operatorKey.KeyFile);
}

app.Run();

/// <summary>Entry point type, visible to integration tests.</summary>
public partial class Program;
