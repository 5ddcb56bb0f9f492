using RagOrleans.Abstractions;
using RagOrleans.Grains;
using RagOrleans.Grains.Hosting;

// The silo host on its own (no HTTP API beyond probes). Cluster membership comes with cluster mode; until
// then it uses localhost clustering with the same storage as the embedded frontend.
// Settings ship beside the binary; relative data paths still resolve against the working directory.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
var siloPort = builder.Configuration.GetValue("Orleans:SiloPort", 11111);
var gatewayPort = builder.Configuration.GetValue("Orleans:GatewayPort", 30000);
builder.UseOrleans(silo =>
{
    silo.UseLocalhostClustering(siloPort, gatewayPort, serviceId: "ragorleans", clusterId: "embedded");
    silo.AddRag();
});

var app = builder.Build();
app.MapGet("/healthz", () => TypedResults.Ok(new { status = "alive" }));
app.MapGet("/readyz", async (IGrainFactory grains) =>
    await grains.GetGrain<IEmbedderGrain>(0).IsReady()
        ? Results.Ok(new { status = "ready" })
        : Results.Json(new { status = "starting" }, statusCode: 503));
app.Run();
