using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using RagOrleans.Grains.Hosting;
using RagOrleans.Grains.Storage;
using RagOrleans.ServiceDefaults;
using Xunit;

namespace RagOrleans.Ops.Tests;

/// <summary>Readiness follows storage: it turns 503 while a store does not answer and back to 200 when it does.</summary>
public sealed class ProbeTests
{
    [Fact]
    public async Task Readiness_flips_to_503_when_storage_goes_away_and_back_when_it_returns()
    {
        var storage = new SwitchableProbe();
        await using var app = await StartAsync(storage);
        using var client = app.GetTestClient();

        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(Probes.Ready)).StatusCode);
        storage.Failure = "postgres: NpgsqlException";
        using (var down = await client.GetAsync(Probes.Ready))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, down.StatusCode);
            var body = await down.Content.ReadFromJsonAsync<ProbeStatus>();
            Assert.Equal("unavailable", body!.Status);
            Assert.Contains("postgres", body.Reason, StringComparison.Ordinal);
        }

        // Liveness does not follow storage: restarting the pod would not bring the database back.
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(Probes.Live)).StatusCode);
        storage.Failure = null;
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(Probes.Ready)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(Probes.Startup)).StatusCode);
    }

    [Fact]
    public async Task The_cluster_probe_reports_an_unreachable_postgres_without_its_connection_string()
    {
        var port = ClosedPort();
        var connectionString = $"Host=127.0.0.1;Port={port};Database=rag;Username=rag;Password=secret-pw;Timeout=2";
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        await using var probe = new ClusterStorageProbe(dataSource, $"127.0.0.1:{port}");
        var failure = await probe.CheckAsync(CancellationToken.None);
        Assert.NotNull(failure);
        Assert.StartsWith("postgres:", failure, StringComparison.Ordinal);
        Assert.DoesNotContain("secret-pw", failure, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_sqlite_probe_answers_for_a_working_database_and_fails_when_its_folder_is_gone()
    {
        var dir = Path.Combine(Path.GetTempPath(), "rag-ops-probe-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var probe = new SqliteStorageProbe(new SqliteDatabase(Path.Combine(dir, "rag.db")));
        Assert.Null(await probe.CheckAsync(CancellationToken.None));
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(dir, recursive: true);
        Assert.StartsWith("sqlite:", await probe.CheckAsync(CancellationToken.None), StringComparison.Ordinal);
    }

    private static async Task<WebApplication> StartAsync(IStorageProbe storage)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Services.AddSingleton(storage);
        var app = builder.Build();
        app.MapRagProbes(checkGateway: false);
        await app.StartAsync();
        return app;
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private sealed class SwitchableProbe : IStorageProbe
    {
        public volatile string? Failure;

        public Task<string?> CheckAsync(CancellationToken cancellationToken) => Task.FromResult(Failure);
    }
}
