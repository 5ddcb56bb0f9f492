using System.Data.Common;
using System.Net;
using Orleans.Dashboard;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using Orleans.Configuration;
using Orleans.Storage;
using RagOrleans.Grains.Storage;
using RagOrleans.Grains.Storage.Postgres;
using StackExchange.Redis;

namespace RagOrleans.Grains.Hosting;

/// <summary>
/// Topology choices shared by the silo host and the frontend. <c>Rag:Mode</c> = <c>embedded</c> (default:
/// one process, localhost clustering, SQLite + files) or <c>cluster</c> (membership and reminders in
/// PostgreSQL through Orleans' ADO.NET providers, grain state in Redis, documents/chunk log/snapshots/blobs
/// in PostgreSQL).
/// </summary>
public static class ClusterHosting
{
    /// <summary>Orleans service id: part of every storage key, so it never changes between deployments.</summary>
    public const string ServiceId = "ragorleans";

    /// <summary>True when <c>Rag:Mode</c> is <c>cluster</c>; throws on an unknown mode.</summary>
    public static bool IsClusterMode(IConfiguration configuration)
    {
        var mode = configuration[$"{RagOptions.Section}:Mode"] ?? "embedded";
        return mode.ToLowerInvariant() switch
        {
            "embedded" => false,
            "cluster" => true,
            _ => throw new InvalidOperationException($"Rag:Mode '{mode}' is not supported; use 'embedded' or 'cluster'."),
        };
    }

    /// <summary>The PostgreSQL connection string of cluster mode.</summary>
    /// <remarks>
    /// Unless the string sets its own, the connect timeout is 3 s instead of Npgsql's 15 s: while PostgreSQL is down a
    /// request must fail fast with 503, not wait for a connection attempt that cannot succeed.
    /// </remarks>
    public static string PostgresConnectionString(IConfiguration configuration) =>
        configuration.GetConnectionString("Postgres") is { Length: > 0 } cs
            ? WithDefaultPostgresTimeouts(cs)
            : throw new InvalidOperationException("Cluster mode needs ConnectionStrings:Postgres (env ConnectionStrings__Postgres).");

    /// <summary>Adds <c>Timeout=3</c> to a PostgreSQL connection string that sets no connect timeout.</summary>
    public static string WithDefaultPostgresTimeouts(string connectionString)
    {
        var given = new DbConnectionStringBuilder { ConnectionString = connectionString };
        if (given.ContainsKey("Timeout"))
        {
            return connectionString;
        }

        return new NpgsqlConnectionStringBuilder(connectionString) { Timeout = 3 }.ConnectionString;
    }

    /// <summary>
    /// Redis options of cluster mode: reconnect in the background (no abort at start), and while disconnected fail
    /// commands at once instead of queueing them until a timeout, so callers get a 503 within a few seconds.
    /// Timeouts the connection string sets itself win.
    /// </summary>
    public static ConfigurationOptions RedisOptions(string connectionString)
    {
        var options = ConfigurationOptions.Parse(connectionString);
        options.AbortOnConnectFail = false;
        options.BacklogPolicy = BacklogPolicy.FailFast;
        var lower = connectionString.ToLowerInvariant();
        if (!lower.Contains("connecttimeout=", StringComparison.Ordinal))
        {
            options.ConnectTimeout = 2000;
        }

        if (!lower.Contains("synctimeout=", StringComparison.Ordinal))
        {
            options.SyncTimeout = 3000;
        }

        if (!lower.Contains("asynctimeout=", StringComparison.Ordinal))
        {
            options.AsyncTimeout = 3000;
        }

        return options;
    }

    /// <summary>The Redis connection string of cluster mode.</summary>
    public static string RedisConnectionString(IConfiguration configuration) =>
        configuration.GetConnectionString("Redis") is { Length: > 0 } cs
            ? cs
            : throw new InvalidOperationException("Cluster mode needs ConnectionStrings:Redis (env ConnectionStrings__Redis).");

    /// <summary>Creates or upgrades our PostgreSQL schema (Orleans' tables included); safe when many processes start at once.</summary>
    /// <remarks>
    /// A process that starts while PostgreSQL is briefly unreachable or slow (a restart, a saturated node) waits for it,
    /// with backoff, for up to <c>Rag:StartupStoreWait</c> (default 2 minutes) instead of crashing on the first
    /// connect timeout; only then does the error stop the start-up.
    /// </remarks>
    public static async Task EnsureSchemaAsync(IConfiguration configuration, ILoggerFactory loggers, CancellationToken cancellationToken = default)
    {
        var logger = loggers.CreateLogger<PostgresSchema>();
        var patience = configuration.GetValue("Rag:StartupStoreWait", TimeSpan.FromMinutes(2));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var delay = TimeSpan.FromMilliseconds(500);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await using var dataSource = NpgsqlDataSource.Create(PostgresConnectionString(configuration));
                await new PostgresSchema(dataSource, logger).ApplyAsync(cancellationToken);
                return;
            }
            catch (Exception e) when (e is NpgsqlException { IsTransient: true } or TimeoutException && clock.Elapsed + delay < patience && !cancellationToken.IsCancellationRequested)
            {
                logger.LogWarning(e, "PostgreSQL is not reachable yet (attempt {Attempt}, {Elapsed:F0} s); retrying in {Delay:F1} s",
                    attempt, clock.Elapsed.TotalSeconds, delay.TotalSeconds);
                await Task.Delay(delay, cancellationToken);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(10).Ticks));
            }
        }
    }

    /// <summary>Configures a silo's clustering, endpoints and storage for the configured mode, plus the grains' services.</summary>
    public static ISiloBuilder UseRagSilo(this ISiloBuilder silo, IConfiguration configuration)
    {
        silo.AddActivityPropagation();
        var siloPort = configuration.GetValue("Orleans:SiloPort", 11111);
        var gatewayPort = configuration.GetValue("Orleans:GatewayPort", 30000);
        if (configuration.GetValue("Rag:Dashboard", true))
        {
            // The Orleans dashboard's data (silos, grain types, call rates); frontends serve its pages to operators.
            silo.AddDashboard();
        }

        if (!IsClusterMode(configuration))
        {
            silo.UseLocalhostClustering(siloPort, gatewayPort, serviceId: ServiceId, clusterId: "embedded");

            // One process: reminders in memory. They drive retries and their backoff while the process lives; a restart
            // loses them, and IngestionRecovery's start-up sweep resumes every unfinished document instead.
            silo.UseInMemoryReminderService();
            return silo.AddRag();
        }

        var postgres = PostgresConnectionString(configuration);
        var redis = RedisConnectionString(configuration);
        silo.Configure<ClusterOptions>(o =>
        {
            o.ServiceId = ServiceId;
            o.ClusterId = configuration["Orleans:ClusterId"] ?? "rag";
        });
        // In Kubernetes the downward API's POD_NAME and POD_IP name and address the silo unless Orleans:* says otherwise.
        silo.Configure<SiloOptions>(o => o.SiloName = configuration["Orleans:SiloName"] ?? configuration["POD_NAME"] ?? $"silo-{Environment.MachineName}-{siloPort}");
        var advertised = IPAddress.Parse(configuration["Orleans:AdvertisedIP"] ?? configuration["POD_IP"] ?? "127.0.0.1");
        silo.ConfigureEndpoints(advertised, siloPort, gatewayPort, listenOnAnyHostAddress: configuration.GetValue("Orleans:ListenOnAnyHostAddress", false));
        silo.UseAdoNetClustering(o =>
        {
            o.Invariant = "Npgsql";
            o.ConnectionString = postgres;
        });
        silo.UseAdoNetReminderService(o =>
        {
            o.Invariant = "Npgsql";
            o.ConnectionString = postgres;
        });

        // Seconds, not a minute: a dead silo's shards must move quickly. 2 s, not 1 s: at 1 s a silo merely starved
        // of CPU (throttling, a long GC) was declared dead by its peers in the chaos runs. Overridable under
        // Orleans:Membership.
        silo.Configure<ClusterMembershipOptions>(o =>
        {
            o.ProbeTimeout = TimeSpan.FromSeconds(2);
            o.NumMissedProbesLimit = 3;
            o.NumVotesForDeathDeclaration = 2;
            o.TableRefreshTimeout = TimeSpan.FromSeconds(2);
            o.IAmAliveTablePublishTimeout = TimeSpan.FromSeconds(10);
            configuration.GetSection("Orleans:Membership").Bind(o);
        });

        silo.AddRag(storage: services =>
        {
            services.AddSingleton(_ => NpgsqlDataSource.Create(postgres));
            services.AddClusterStorageProbe(redis);
            services.AddSingleton<IDocumentStore, PostgresDocumentStore>();
            services.AddSingleton<IChunkLog, PostgresChunkLog>();
            services.AddSingleton<IConversationStore, PostgresConversationStore>();
            services.AddSingleton<IUsageLedger, PostgresUsageLedger>();
            services.AddSingleton<IIdempotencyStore, PostgresIdempotencyStore>();
            services.AddSingleton<ISnapshotStore, PostgresSnapshotStore>();
            services.AddSingleton<IBlobStore, PostgresBlobStore>();
        });
        // One shared connection, registered so telemetry can trace its commands (and probes could reuse it).
        silo.Services.AddSingleton<IConnectionMultiplexer>(_ =>
        {
            return ConnectionMultiplexer.Connect(RedisOptions(redis));
        });
        silo.AddRedisGrainStorage(RagStorage.GrainStateProvider, ob => ob.Configure<IServiceProvider>((o, sp) =>
        {
            o.ConfigurationOptions = RedisOptions(redis);
            o.CreateMultiplexer = _ => Task.FromResult((sp.GetRequiredService<IConnectionMultiplexer>(), IsShared: true));
            o.GrainStorageSerializer = sp.GetRequiredService<IGrainStorageSerializer>();

            // A cleared state (a deleted tenant, collection or upload) must leave Redis, not linger as an empty record.
            o.DeleteStateOnClear = true;
        }));
        return silo;
    }

    /// <summary>Configures an Orleans client (the cluster-mode frontend) to find gateways through the membership table.</summary>
    public static IClientBuilder UseRagClient(this IClientBuilder client, IConfiguration configuration)
    {
        client.AddActivityPropagation();
        var postgres = PostgresConnectionString(configuration);
        client.Configure<ClusterOptions>(o =>
        {
            o.ServiceId = ServiceId;
            o.ClusterId = configuration["Orleans:ClusterId"] ?? "rag";
        });
        client.UseAdoNetClustering(o =>
        {
            o.Invariant = "Npgsql";
            o.ConnectionString = postgres;
        });
        client.Configure<GatewayOptions>(o => o.GatewayListRefreshPeriod = TimeSpan.FromSeconds(5));
        if (configuration.GetValue("Rag:Dashboard", true))
        {
            client.AddDashboard();
        }

        // A request forwarded by a gateway to a silo that then dies gets no answer until this timeout, whatever the
        // membership says: keep it short (every call a frontend makes is short; long waits are loops of short calls).
        client.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = configuration.GetValue("Orleans:ClientResponseTimeout", TimeSpan.FromSeconds(10)));
        client.UseConnectionRetryFilter(async (exception, cancellationToken) =>
        {
            // Frontends may start before any silo: keep trying instead of failing the host.
            await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            return true;
        });
        return client;
    }
}
