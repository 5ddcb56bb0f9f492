using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using RagOrleans.Grains.Storage;
using StackExchange.Redis;

namespace RagOrleans.Grains.Hosting;

/// <summary>Readiness check of the storage a silo depends on; a silo that cannot reach it must not take traffic.</summary>
public interface IStorageProbe
{
    /// <summary>Null when every store answers; otherwise which one does not, and why (no connection strings).</summary>
    Task<string?> CheckAsync(CancellationToken cancellationToken);
}

/// <summary>Embedded mode: the SQLite file answers a query.</summary>
public sealed class SqliteStorageProbe(SqliteDatabase database) : IStorageProbe
{
    public async Task<string?> CheckAsync(CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await database.OpenAsync(cancellationToken);
            await using var command = connection.CreateCommand();
            command.CommandText = "SELECT 1";
            await command.ExecuteScalarAsync(cancellationToken);
            return null;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return $"sqlite: {ex.GetType().Name}";
        }
    }
}

/// <summary>Cluster mode: PostgreSQL answers a query and Redis answers a ping.</summary>
public sealed class ClusterStorageProbe(NpgsqlDataSource postgres, string redisConnectionString) : IStorageProbe, IAsyncDisposable
{
    private readonly SemaphoreSlim _connecting = new(1, 1);
    private ConnectionMultiplexer? _redis;

    public async Task<string?> CheckAsync(CancellationToken cancellationToken)
    {
        try
        {
            await using var command = postgres.CreateCommand("SELECT 1");
            await command.ExecuteScalarAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return $"postgres: {ex.GetType().Name}";
        }

        try
        {
            var redis = await RedisAsync(cancellationToken);
            await redis.GetDatabase().PingAsync().WaitAsync(cancellationToken);
            return null;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return $"redis: {ex.GetType().Name}";
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_redis is not null)
        {
            await _redis.DisposeAsync();
        }

        _connecting.Dispose();
    }

    private async Task<ConnectionMultiplexer> RedisAsync(CancellationToken cancellationToken)
    {
        if (_redis is { } existing)
        {
            return existing;
        }

        await _connecting.WaitAsync(cancellationToken);
        try
        {
            if (_redis is null)
            {
                // Its own connection, so a probe never queues behind grain-state traffic; it reconnects by itself.
                var options = ConfigurationOptions.Parse(redisConnectionString);
                options.AbortOnConnectFail = false;
                options.ConnectTimeout = 2000;
                _redis = await ConnectionMultiplexer.ConnectAsync(options);
            }

            return _redis;
        }
        finally
        {
            _connecting.Release();
        }
    }
}

/// <summary>Registration helpers.</summary>
public static class StorageProbeServiceCollectionExtensions
{
    /// <summary>The SQLite probe of embedded mode.</summary>
    public static IServiceCollection AddSqliteStorageProbe(this IServiceCollection services) =>
        services.AddSingleton<IStorageProbe>(sp => new SqliteStorageProbe(sp.GetRequiredService<SqliteDatabase>()));

    /// <summary>The PostgreSQL and Redis probe of cluster mode.</summary>
    public static IServiceCollection AddClusterStorageProbe(this IServiceCollection services, string redisConnectionString) =>
        services.AddSingleton<IStorageProbe>(sp => new ClusterStorageProbe(sp.GetRequiredService<NpgsqlDataSource>(), redisConnectionString));
}
