using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using RagOrleans.Grains.Storage.Postgres;
using Xunit;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace RagOrleans.Integration.Tests;

/// <summary>
/// A private database on the PostgreSQL named by <c>ConnectionStrings__Postgres</c>, migrated once, dropped
/// afterwards. Missing or unreachable servers fail every test that needs them: never a silent skip.
/// </summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    /// <summary>The environment variable the tests read.</summary>
    public const string Variable = "ConnectionStrings__Postgres";

    private const string Hint = "Start them with `scripts/test-services.sh up`, then `set -a; . artifacts/test-services.env; set +a` before `dotnet test`.";

    private NpgsqlDataSource? _dataSource;

    /// <summary>Connection string of the server's maintenance database.</summary>
    public string ServerConnectionString { get; private set; } = "";

    /// <summary>Connection string of this run's private database.</summary>
    public string ConnectionString { get; private set; } = "";

    /// <summary>The data source of this run's private database.</summary>
    public NpgsqlDataSource DataSource => _dataSource ?? throw new InvalidOperationException("Fixture not initialized.");

    private string DatabaseName { get; } = "rag_it_" + Guid.NewGuid().ToString("N")[..12];

    public async Task InitializeAsync()
    {
        var configured = Environment.GetEnvironmentVariable(Variable);
        if (string.IsNullOrWhiteSpace(configured))
        {
            throw new InvalidOperationException($"{Variable} is not set: these integration tests need a real PostgreSQL. {Hint}");
        }

        ServerConnectionString = new NpgsqlConnectionStringBuilder(configured) { Database = "postgres", Pooling = false }.ConnectionString;
        try
        {
            await CreateDatabaseAsync(DatabaseName);
        }
        catch (Exception e) when (e is NpgsqlException or System.Net.Sockets.SocketException or TimeoutException)
        {
            throw new InvalidOperationException($"PostgreSQL at '{configured}' is unreachable ({e.Message}). {Hint}", e);
        }

        ConnectionString = ConnectionStringFor(DatabaseName);
        _dataSource = NpgsqlDataSource.Create(ConnectionString);
        await new PostgresSchema(_dataSource, NullLogger<PostgresSchema>.Instance).ApplyAsync();
    }

    public async Task DisposeAsync()
    {
        if (_dataSource is not null)
        {
            await _dataSource.DisposeAsync();
            NpgsqlConnection.ClearAllPools();
            await DropDatabaseAsync(DatabaseName);
        }
    }

    /// <summary>The connection string of another database on the same server.</summary>
    public string ConnectionStringFor(string database) =>
        new NpgsqlConnectionStringBuilder(Environment.GetEnvironmentVariable(Variable)) { Database = database }.ConnectionString;

    /// <summary>Creates an empty database.</summary>
    public async Task CreateDatabaseAsync(string name)
    {
        await using var connection = new NpgsqlConnection(ServerConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>Drops a database, closing whatever still uses it.</summary>
    public async Task DropDatabaseAsync(string name)
    {
        await using var connection = new NpgsqlConnection(ServerConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)", connection);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>Runs a scalar query on this run's database.</summary>
    public async Task<T> ScalarAsync<T>(string sql, params (string Name, object Value)[] parameters)
    {
        await using var command = DataSource.CreateCommand(sql);
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }

        return (T)(await command.ExecuteScalarAsync())!;
    }
}

[CollectionDefinition(Name)]
public sealed class PostgresCollection : ICollectionFixture<PostgresFixture>
{
    public const string Name = "postgres";
}
