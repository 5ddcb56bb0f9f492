using System.Data;
using System.Reflection;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using RagOrleans.Grains.Storage.Postgres;
using Xunit;

namespace RagOrleans.Integration.Tests;

[Collection(PostgresCollection.Name)]
public sealed class SchemaTests(PostgresFixture pg)
{
    [Fact]
    public async Task Schema_applies_once_when_many_processes_start_at_once_and_again_later()
    {
        var name = "rag_schema_" + Guid.NewGuid().ToString("N")[..12];
        await pg.CreateDatabaseAsync(name);
        try
        {
            // Separate data sources stand in for separate processes racing at start-up.
            var sources = Enumerable.Range(0, 6).Select(_ => NpgsqlDataSource.Create(pg.ConnectionStringFor(name))).ToArray();
            try
            {
                var applied = await Task.WhenAll(sources.Select(s => new PostgresSchema(s, NullLogger<PostgresSchema>.Instance).ApplyAsync()));
                Assert.Equal(PostgresSchema.Migrations.Count, applied.Sum());
                Assert.Equal(0, await new PostgresSchema(sources[0], NullLogger<PostgresSchema>.Instance).ApplyAsync());

                await using var command = sources[0].CreateCommand("SELECT count(*), max(version) FROM rag_schema_version");
                await using var reader = await command.ExecuteReaderAsync();
                await reader.ReadAsync();
                Assert.Equal(PostgresSchema.Migrations.Count, reader.GetInt64(0));
                Assert.Equal(PostgresSchema.CurrentVersion, reader.GetInt32(1));
            }
            finally
            {
                foreach (var s in sources)
                {
                    await s.DisposeAsync();
                }
            }
        }
        finally
        {
            NpgsqlConnection.ClearAllPools();
            await pg.DropDatabaseAsync(name);
        }
    }

    [Fact]
    public async Task OrleansQuery_has_every_key_the_Orleans_10_4_2_providers_require()
    {
        var keys = new HashSet<string>(StringComparer.Ordinal);
        await using (var command = pg.DataSource.CreateCommand("SELECT QueryKey, QueryText FROM OrleansQuery"))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                keys.Add(reader.GetString(reader.GetOrdinal("QueryKey")));
                Assert.False(string.IsNullOrWhiteSpace(reader.GetString(reader.GetOrdinal("QueryText"))));
            }
        }

        string[] documented =
        [
            "UpdateIAmAlivetimeKey", "InsertMembershipVersionKey", "InsertMembershipKey", "UpdateMembershipKey", "MembershipReadRowKey",
            "MembershipReadAllKey", "DeleteMembershipTableEntriesKey", "GatewaysQueryKey", "CleanupDefunctSiloEntriesKey",
            "UpsertReminderRowKey", "ReadReminderRowsKey", "ReadReminderRowKey", "ReadRangeRows1Key", "ReadRangeRows2Key",
            "DeleteReminderRowKey", "DeleteReminderRowsKey",
        ];
        Assert.Empty(documented.Except(keys));

        // The providers check their required keys by reflecting over DbStoredQueries' properties; do the same
        // against the shipped assemblies so a package upgrade that adds a key fails here, not at silo start.
        foreach (var assembly in new[] { typeof(Orleans.Hosting.AdoNetHostingExtensions).Assembly, typeof(Orleans.Configuration.AdoNetReminderTableOptions).Assembly })
        {
            var stored = assembly.GetTypes().Single(t => t.Name == "DbStoredQueries");
            var required = stored.GetProperties(BindingFlags.Instance | BindingFlags.NonPublic).Select(p => p.Name).ToArray();
            Assert.NotEmpty(required);
            Assert.Empty(required.Except(keys));
        }
    }
}

/// <summary>
/// Runs the stored query texts the way Orleans' RelationalStorage does: parameters named after its
/// columns with the DbTypes its extension methods assign (DateTime as DbType.DateTime, UTC).
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class OrleansContractTests(PostgresFixture pg)
{
    private static readonly DateTime Start = new(2026, 1, 2, 3, 4, 5, 678, DateTimeKind.Utc);

    [Fact]
    public async Task Membership_writes_succeed_only_at_the_current_table_version()
    {
        var cluster = "contract-" + Guid.NewGuid().ToString("N");
        Assert.True(await BoolAsync("InsertMembershipVersionKey", ("DeploymentId", cluster)));
        Assert.False(await BoolAsync("InsertMembershipVersionKey", ("DeploymentId", cluster)));

        var silo = Silo(cluster, 11111, 1);
        Assert.True(await BoolAsync("InsertMembershipKey", [.. silo, .. Entry(status: 3, version: 0)]));
        Assert.False(await BoolAsync("InsertMembershipKey", [.. silo, .. Entry(status: 3, version: 1)]));       // already there
        Assert.False(await BoolAsync("InsertMembershipKey", [.. Silo(cluster, 11112, 1), .. Entry(3, version: 0)])); // stale version
        Assert.True(await BoolAsync("InsertMembershipKey", [.. Silo(cluster, 11112, 1), .. Entry(3, version: 1)]));

        var rows = await ReadMembershipAsync("MembershipReadAllKey", ("DeploymentId", cluster));
        Assert.Equal(2, rows.Count);
        Assert.All(rows, r => Assert.Equal(2, Convert.ToInt32(r["Version"])));
        Assert.Equal(Start, DateTime.SpecifyKind((DateTime)rows[0]["StartTime"], DateTimeKind.Utc));

        var suspect = "S127.0.0.1:11112:1@2,2026-01-02 03:04:05.678 GMT";
        Assert.False(await BoolAsync("UpdateMembershipKey", [.. silo, .. Update(6, suspect, version: 1)]));
        Assert.True(await BoolAsync("UpdateMembershipKey", [.. silo, .. Update(6, suspect, version: 2)]));
        Assert.False(await BoolAsync("UpdateMembershipKey", [.. Silo(cluster, 1, 1), .. Update(6, null, version: 3)])); // no such silo

        var one = await ReadMembershipAsync("MembershipReadRowKey", [.. silo]);
        Assert.Single(one);
        Assert.Equal(6, one[0]["Status"]);
        Assert.Equal(suspect, one[0]["SuspectTimes"]);
        Assert.Equal(3, Convert.ToInt32(one[0]["Version"]));
        var missing = await ReadMembershipAsync("MembershipReadRowKey", [.. Silo(cluster, 9, 9)]);
        Assert.Single(missing);
        Assert.Equal(DBNull.Value, missing[0]["StartTime"]); // the version row alone: "no such member"

        await ExecuteAsync("UpdateIAmAlivetimeKey", [.. Silo(cluster, 11112, 1), ("IAmAliveTime", Start.AddMinutes(1))]);
        var gateways = await ReadMembershipAsync("GatewaysQueryKey", ("DeploymentId", cluster), ("Status", 3));
        var gateway = Assert.Single(gateways);
        Assert.Equal(30000, gateway["ProxyPort"]);
        Assert.Equal(1, gateway["Generation"]);

        // The per-row cleanup only removes the dead row with the times Orleans saw.
        await ExecuteAsync("CleanupDefunctSiloEntryKey", [.. silo, ("SuspectTimes", suspect), ("StartTime", Start.AddSeconds(1)), ("IAmAliveTime", Start)]);
        Assert.Equal(2, (await ReadMembershipAsync("MembershipReadAllKey", ("DeploymentId", cluster))).Count);
        await ExecuteAsync("CleanupDefunctSiloEntryKey", [.. silo, ("SuspectTimes", suspect), ("StartTime", Start), ("IAmAliveTime", Start)]);
        Assert.Single(await ReadMembershipAsync("MembershipReadAllKey", ("DeploymentId", cluster)));
        await ExecuteAsync("CleanupDefunctSiloEntriesKey", ("DeploymentId", cluster), ("IAmAliveTime", DateTime.UtcNow));
        Assert.Single(await ReadMembershipAsync("MembershipReadAllKey", ("DeploymentId", cluster))); // the live one stays

        await ExecuteAsync("DeleteMembershipTableEntriesKey", ("DeploymentId", cluster));
        Assert.Empty(await ReadMembershipAsync("MembershipReadAllKey", ("DeploymentId", cluster)));
    }

    [Fact]
    public async Task Reminder_rows_upsert_with_versions_and_read_by_wrapping_hash_ranges()
    {
        var service = "contract-" + Guid.NewGuid().ToString("N");
        (string Name, object? Value)[] Row(string grain, int hash, string name = "r") =>
            [("ServiceId", service), ("GrainId", grain), ("ReminderName", name), ("StartTime", Start), ("Period", 60_000), ("GrainHash", hash)];

        Assert.Equal(0, await VersionAsync("UpsertReminderRowKey", Row("g/low", int.MinValue + 10)));
        Assert.Equal(1, await VersionAsync("UpsertReminderRowKey", Row("g/low", int.MinValue + 10)));
        Assert.Equal(0, await VersionAsync("UpsertReminderRowKey", Row("g/mid", 0)));
        Assert.Equal(0, await VersionAsync("UpsertReminderRowKey", Row("g/high", int.MaxValue - 10)));
        Assert.Equal(0, await VersionAsync("UpsertReminderRowKey", [.. Row("g/long", 5, "long")[..4], ("Period", (long)int.MaxValue * 3), ("GrainHash", 5)]));

        async Task<string[]> RangeAsync(string key, int begin, int end) =>
            [.. (await ReadMembershipAsync(key, ("ServiceId", service), ("BeginHash", begin), ("EndHash", end))).Select(r => (string)r["GrainId"]).Order()];

        // (Begin, End]: exclusive begin, inclusive end; Rows2 is the wrapping complement.
        Assert.Equal(["g/long", "g/mid"], await RangeAsync("ReadRangeRows1Key", -1, 5));
        Assert.Equal(["g/mid"], await RangeAsync("ReadRangeRows1Key", -1, 4));
        Assert.Equal(["g/high", "g/low"], await RangeAsync("ReadRangeRows2Key", 5, int.MinValue + 10));

        var rows = await ReadMembershipAsync("ReadReminderRowsKey", ("ServiceId", service), ("GrainId", "g/long"));
        Assert.Equal((long)int.MaxValue * 3, Convert.ToInt64(Assert.Single(rows)["Period"]));
        var one = await ReadMembershipAsync("ReadReminderRowKey", ("ServiceId", service), ("GrainId", "g/low"), ("ReminderName", "r"));
        Assert.Equal(1, Convert.ToInt32(Assert.Single(one)["Version"]));

        Assert.False(await BoolAsync("DeleteReminderRowKey", ("ServiceId", service), ("GrainId", "g/low"), ("ReminderName", "r"), ("Version", 0)));
        Assert.True(await BoolAsync("DeleteReminderRowKey", ("ServiceId", service), ("GrainId", "g/low"), ("ReminderName", "r"), ("Version", 1)));
        await ExecuteAsync("DeleteReminderRowsKey", ("ServiceId", service));
        Assert.Empty(await ReadMembershipAsync("ReadRangeRows2Key", ("ServiceId", service), ("BeginHash", 0), ("EndHash", 0)));
    }

    private static (string, object?)[] Silo(string cluster, int port, int generation) =>
        [("DeploymentId", cluster), ("Address", "127.0.0.1"), ("Port", port), ("Generation", generation)];

    private static (string, object?)[] Entry(int status, int version) =>
        [("SiloName", "silo"), ("HostName", "host"), ("Status", status), ("ProxyPort", 30000), ("StartTime", Start), ("IAmAliveTime", Start), ("Version", version)];

    private static (string, object?)[] Update(int status, string? suspectTimes, int version) =>
        [("Status", status), ("SuspectTimes", suspectTimes), ("IAmAliveTime", Start), ("Version", version)];

    private async Task<NpgsqlCommand> CommandAsync(string key, (string Name, object? Value)[] parameters)
    {
        await using var lookup = pg.DataSource.CreateCommand("SELECT querytext FROM orleansquery WHERE querykey = @k");
        lookup.Parameters.AddWithValue("k", key);
        var text = (string)(await lookup.ExecuteScalarAsync())!;
        var command = pg.DataSource.CreateCommand(text);
        foreach (var (name, value) in parameters)
        {
            var parameter = command.CreateParameter();
            parameter.ParameterName = name;
            parameter.Value = value ?? DBNull.Value;
            parameter.DbType = value switch
            {
                DateTime => DbType.DateTime,
                int => DbType.Int32,
                long => DbType.Int64,
                _ => name is "GrainId" or "Address" ? DbType.AnsiString : DbType.String,
            };
            command.Parameters.Add(parameter);
        }

        return command;
    }

    private async Task ExecuteAsync(string key, params (string Name, object? Value)[] parameters)
    {
        await using var command = await CommandAsync(key, parameters);
        await command.ExecuteNonQueryAsync();
    }

    private async Task<bool> BoolAsync(string key, params (string Name, object? Value)[] parameters)
    {
        await using var command = await CommandAsync(key, parameters);
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.Equal(1, reader.FieldCount);
        return Convert.ToBoolean(reader.GetValue(0));
    }

    private async Task<int> VersionAsync(string key, params (string Name, object? Value)[] parameters)
    {
        await using var command = await CommandAsync(key, parameters);
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        return Convert.ToInt32(reader.GetValue(reader.GetOrdinal("Version")));
    }

    private async Task<List<Dictionary<string, object>>> ReadMembershipAsync(string key, params (string Name, object? Value)[] parameters)
    {
        await using var command = await CommandAsync(key, parameters);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<Dictionary<string, object>>();
        while (await reader.ReadAsync())
        {
            rows.Add(Enumerable.Range(0, reader.FieldCount).ToDictionary(reader.GetName, reader.GetValue, StringComparer.OrdinalIgnoreCase));
        }

        return rows;
    }
}
