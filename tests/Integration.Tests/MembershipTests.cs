using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Xunit;

namespace RagOrleans.Integration.Tests;

/// <summary>A grain that registers a reminder, to see the AdoNet reminder provider write through our queries.</summary>
[Alias("rag.it.IPgReminderGrain")]
public interface IPgReminderGrain : IGrainWithStringKey
{
    /// <summary>Registers the test reminder and returns the silo it runs on.</summary>
    [Alias("Register")] Task<string> Register();

    /// <summary>Removes the test reminder.</summary>
    [Alias("Unregister")] Task Unregister();
}

/// <inheritdoc cref="IPgReminderGrain" />
public sealed class PgReminderGrain : Grain, IPgReminderGrain, IRemindable
{
    /// <summary>The reminder's name.</summary>
    public const string ReminderName = "pg-it";

    /// <inheritdoc />
    public async Task<string> Register()
    {
        await this.RegisterOrUpdateReminder(ReminderName, TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(5));
        return RuntimeIdentity;
    }

    /// <inheritdoc />
    public async Task Unregister()
    {
        var reminder = await this.GetReminder(ReminderName);
        if (reminder is not null)
        {
            await this.UnregisterReminder(reminder);
        }
    }

    /// <inheritdoc />
    public Task ReceiveReminder(string reminderName, TickStatus status) => Task.CompletedTask;
}

[Collection(PostgresCollection.Name)]
public sealed class MembershipTests(PostgresFixture pg)
{
    [Fact]
    public async Task A_real_silo_joins_through_our_queries_serves_a_client_writes_reminders_and_leaves_dead()
    {
        var clusterId = "it-" + Guid.NewGuid().ToString("N")[..10];
        var serviceId = "svc-" + Guid.NewGuid().ToString("N")[..10];
        var (siloPort, gatewayPort) = (FreePort(), FreePort());

        var siloBuilder = Host.CreateApplicationBuilder();
        siloBuilder.Logging.SetMinimumLevel(LogLevel.Warning);
        siloBuilder.UseOrleans(silo =>
        {
            silo.Configure<ClusterOptions>(o => (o.ClusterId, o.ServiceId) = (clusterId, serviceId));
            silo.ConfigureEndpoints(IPAddress.Loopback, siloPort, gatewayPort);
            silo.UseAdoNetClustering(o => (o.Invariant, o.ConnectionString) = ("Npgsql", pg.ConnectionString));
            silo.UseAdoNetReminderService(o => (o.Invariant, o.ConnectionString) = ("Npgsql", pg.ConnectionString));
            // Heartbeats every second so the test sees UpdateIAmAlivetimeKey run through the real provider.
            silo.Configure<ClusterMembershipOptions>(o => o.IAmAliveTablePublishTimeout = TimeSpan.FromSeconds(1));
        });
        using var siloHost = siloBuilder.Build();
        await siloHost.StartAsync();
        var stopped = false;
        try
        {
            Assert.Equal(new[] { 3 }, await StatusesAsync(clusterId));
            Assert.True(await pg.ScalarAsync<int>("SELECT version FROM orleansmembershipversiontable WHERE deploymentid = @c", ("c", clusterId)) >= 1);
            var firstBeat = await pg.ScalarAsync<DateTime>("SELECT iamalivetime FROM orleansmembershiptable WHERE deploymentid = @c", ("c", clusterId));
            var deadline = DateTime.UtcNow.AddSeconds(15);
            while (await pg.ScalarAsync<DateTime>("SELECT iamalivetime FROM orleansmembershiptable WHERE deploymentid = @c", ("c", clusterId)) == firstBeat)
            {
                Assert.True(DateTime.UtcNow < deadline, "the silo never updated its IAmAlive time");
                await Task.Delay(200);
            }

            // A client finds the gateway through GatewaysQueryKey alone.
            var clientBuilder = Host.CreateApplicationBuilder();
            clientBuilder.Logging.SetMinimumLevel(LogLevel.Warning);
            clientBuilder.UseOrleansClient(client =>
            {
                client.Configure<ClusterOptions>(o => (o.ClusterId, o.ServiceId) = (clusterId, serviceId));
                client.UseAdoNetClustering(o => (o.Invariant, o.ConnectionString) = ("Npgsql", pg.ConnectionString));
            });
            using (var clientHost = clientBuilder.Build())
            {
                await clientHost.StartAsync();
                var grain = clientHost.Services.GetRequiredService<IClusterClient>().GetGrain<IPgReminderGrain>("g1");
                Assert.Contains($":{siloPort}:", await grain.Register());
                Assert.Equal(1L, await RemindersAsync(serviceId));
                await grain.Unregister();
                Assert.Equal(0L, await RemindersAsync(serviceId));
                await grain.Register();
                await clientHost.StopAsync();
            }

            Assert.Equal(1L, await RemindersAsync(serviceId));
            await siloHost.StopAsync();
            stopped = true;
            Assert.Equal(new[] { 6 }, await StatusesAsync(clusterId));
        }
        finally
        {
            if (!stopped)
            {
                await siloHost.StopAsync();
            }
        }
    }

    private async Task<int[]> StatusesAsync(string clusterId)
    {
        await using var command = pg.DataSource.CreateCommand("SELECT status FROM orleansmembershiptable WHERE deploymentid = @c ORDER BY port");
        command.Parameters.AddWithValue("c", clusterId);
        var statuses = new List<int>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            statuses.Add(reader.GetInt32(0));
        }

        return [.. statuses];
    }

    private Task<long> RemindersAsync(string serviceId) =>
        pg.ScalarAsync<long>("SELECT count(*) FROM orleansreminderstable WHERE serviceid = @s AND remindername = @n", ("s", serviceId), ("n", PgReminderGrain.ReminderName));

    private static int FreePort() => TestPorts.Next();
}
