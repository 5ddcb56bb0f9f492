using Npgsql;
using Xunit;
using Xunit.Abstractions;

namespace RagOrleans.Integration.Tests;

/// <summary>
/// Base of cluster-mode tests that look into PostgreSQL and Redis themselves: each class gets a database of its own
/// (created before its tests, dropped after) and a <see cref="RagCluster"/> on it, so what a test finds there is its own.
/// </summary>
public abstract class OwnDatabaseClusterTest(PostgresFixture pg, ITestOutputHelper output, string databasePrefix) : IAsyncLifetime
{
    private readonly string _database = databasePrefix + Guid.NewGuid().ToString("N")[..12];
    private RagCluster? _cluster;

    /// <summary>The cluster on this class's database; its processes start in each test.</summary>
    protected RagCluster Cluster => _cluster ?? throw new InvalidOperationException("The cluster is created in InitializeAsync.");

    /// <summary>The test's output.</summary>
    protected ITestOutputHelper Output { get; } = output;

    public async Task InitializeAsync()
    {
        var redis = Environment.GetEnvironmentVariable("ConnectionStrings__Redis");
        Assert.False(string.IsNullOrWhiteSpace(redis), "ConnectionStrings__Redis is not set: start scripts/test-services.sh up.");
        await pg.CreateDatabaseAsync(_database);
        _cluster = new RagCluster(pg.ConnectionStringFor(_database), redis!, Output);
    }

    public async Task DisposeAsync()
    {
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }

        NpgsqlConnection.ClearAllPools();
        await pg.DropDatabaseAsync(_database);
    }
}
