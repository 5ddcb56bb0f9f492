using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Npgsql;
using Xunit;
using Xunit.Abstractions;

namespace RagOrleans.Integration.Tests;

/// <summary>
/// The production topology on this machine: real silo and frontend processes in cluster mode, membership
/// and documents in PostgreSQL (a fresh database per test, its schema applied by the processes themselves
/// as they start all at once), grain state in Redis.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed partial class ClusterTopologyTests(PostgresFixture pg, ITestOutputHelper output) : IAsyncLifetime
{
    /// <summary>Membership status values (Orleans' SiloStatus).</summary>
    private const int Active = 3;
    private const int Dead = 6;

    private const string RedisVariable = "ConnectionStrings__Redis";
    private const string Collection = "kb";

    /// <summary>Ten short documents on distinct subjects and a query that should find each.</summary>
    private static readonly (string Id, string Text, string Query)[] Facts =
    [
        ("volcano", "Volcanoes erupt when magma from the mantle rises through cracks in the crust and pours out as lava.", "how does lava reach the surface"),
        ("honeybee", "Honeybees communicate the direction of flowers to their hive mates with a waggle dance.", "how do bees tell each other where food is"),
        ("tides", "Ocean tides are caused by the gravitational pull of the moon and, to a lesser degree, the sun.", "what causes the ocean tides"),
        ("sourdough", "Sourdough bread rises because wild yeast and lactic acid bacteria ferment the dough slowly.", "why does naturally leavened bread rise"),
        ("bicycle", "A bicycle chain transfers the force from the pedals to the rear wheel through a set of sprockets.", "how pedalling moves a bike"),
        ("glacier", "Glaciers carve U-shaped valleys as the slowly moving ice grinds rock from the mountainsides.", "how ice shapes valleys"),
        ("compiler", "A compiler translates source code written by programmers into machine instructions a processor can run.", "turning program source into machine code"),
        ("coffee", "Coffee beans are roasted to develop their aroma; darker roasts taste more bitter and less acidic.", "what roasting does to coffee flavour"),
        ("lighthouse", "Lighthouses warn ships away from dangerous rocks with a bright rotating lamp and a fog horn.", "how sailors are warned about rocky coasts"),
        ("photosynthesis", "Plants use photosynthesis to turn sunlight, water and carbon dioxide into sugar and oxygen.", "how plants make food from light"),
    ];

    private readonly string _database = "rag_topo_" + Guid.NewGuid().ToString("N")[..12];
    private readonly Stopwatch _elapsed = Stopwatch.StartNew();
    private RagCluster? _cluster;
    private bool _databaseCreated;

    private RagCluster Cluster => _cluster ?? throw new InvalidOperationException("Not initialized.");

    public async Task InitializeAsync()
    {
        var redis = Environment.GetEnvironmentVariable(RedisVariable);
        if (string.IsNullOrWhiteSpace(redis))
        {
            throw new InvalidOperationException($"{RedisVariable} is not set: the cluster tests need a real Redis. Start it with `scripts/test-services.sh up`, then `set -a; . artifacts/test-services.env; set +a`.");
        }

        await RequireReachableAsync(redis);
        await pg.CreateDatabaseAsync(_database);
        _databaseCreated = true;
        _cluster = new RagCluster(pg.ConnectionStringFor(_database), redis, output);
    }

    public async Task DisposeAsync()
    {
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }

        if (_databaseCreated)
        {
            NpgsqlConnection.ClearAllPools();
            await pg.DropDatabaseAsync(_database);
        }

        output.WriteLine($"test took {_elapsed.Elapsed.TotalSeconds:F1} s");
    }

    [Fact]
    public Task Three_silos_and_two_frontends_share_one_cluster() => Diagnosed(async () =>
    {
        await Cluster.StartAsync(silos: 3, frontends: 2);
        var (a, b) = (Cluster.Frontends[0], Cluster.Frontends[1]);

        // Three silos, all active, and only silos (the frontends are clients, not members).
        var rows = await Cluster.WaitForMembershipAsync(r => r.Count(x => x.Status == Active) == 3, TimeSpan.FromSeconds(30));
        Assert.Equal(3, rows.Count);
        Assert.All(rows, r => Assert.Equal(Active, r.Status));
        Assert.Equal(Cluster.Silos.Select(s => s.Name).Order(), rows.Select(r => r.Name).Order());
        Assert.Equal(Cluster.Silos.Select(s => s.SiloPort).Order(), rows.Select(r => r.Port).Order());

        // A tenant made through A, a collection and its documents through B.
        var tenant = "topo-" + Suffix();
        var adminKey = await a.CreateTenant(Cluster.OperatorKey, tenant);
        using var adminA = a.Client(adminKey);
        using var adminB = b.Client(adminKey);
        await adminB.CreateCollection(Collection, shards: 6);
        await Parallel.ForEachAsync(Facts, new ParallelOptions { MaxDegreeOfParallelism = 3 },
            async (f, _) => await adminB.Ingest(Collection, f.Id, f.Text));

        foreach (var admin in new[] { adminA, adminB })
        {
            var info = await (await admin.GetAsync(new Uri($"/v1/collections/{Collection}", UriKind.Relative))).ExpectJson(HttpStatusCode.OK);
            Assert.Equal(Facts.Length, info["documentCount"]!.GetValue<long>());
            Assert.Equal(6, info["shards"]!.GetValue<int>());
        }

        // The same answers through either frontend.
        foreach (var (id, _, query) in Facts)
        {
            var viaA = await adminA.Search(Collection, query);
            var viaB = await adminB.Search(Collection, query);
            Assert.Equal(id, viaA[0].DocumentId);
            Assert.Equal(viaA, viaB);
        }

        // A key revoked through A is refused by B at once (and by A).
        var (userKeyId, userKey) = await adminA.CreateKey("user", "alice");
        using var userA = a.Client(userKey);
        using var userB = b.Client(userKey);
        Assert.Equal("volcano", (await userB.Search(Collection, Facts[0].Query))[0].DocumentId);
        Assert.Equal(HttpStatusCode.NoContent, (await adminA.DeleteAsync(new Uri($"/v1/keys/{userKeyId}", UriKind.Relative))).StatusCode);
        foreach (var user in new[] { userB, userA })
        {
            using var refused = await user.PostAsJsonAsync($"/v1/collections/{Collection}/search", new { query = "volcano", topK = 3 });
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
            Assert.Equal("application/problem+json", refused.Content.Headers.ContentType?.MediaType);
        }

        // The six shards were each activated exactly once in the cluster.
        var placements = await ShardPlacementsAsync(tenant, expected: 6);
        output.WriteLine("shard placement: " + string.Join(", ", placements.OrderBy(p => p.Shard, StringComparer.Ordinal).Select(p => $"{p.Shard}@{p.Silo}")));
        Assert.Equal(Enumerable.Range(0, 6).Select(i => $"{tenant}/{Collection}/{i}"), placements.Select(p => p.Shard).Order(StringComparer.Ordinal));

        // Grains spread over the silos: tenants created through both frontends are activated on more than one
        // silo. (A collection's shards follow the silo of their caller under the default resource-optimized
        // placement, so one collection alone does not show spreading reliably.) That placement puts every new
        // activation on the silo with the lowest load score from the last statistics the silos published (every
        // second), so a burst of creations inside one interval can all land on one silo, as it did once in CI:
        // the tenants come in three rounds, with the statistics refreshed between them.
        var spread = new List<string>();
        for (var i = 0; i < 12; i++)
        {
            if (i > 0 && i % 4 == 0)
            {
                await Task.Delay(TimeSpan.FromSeconds(2.5));
            }

            var id = $"spread{i}-{Suffix()}";
            await Cluster.Frontends[i % 2].CreateTenant(Cluster.OperatorKey, id);
            spread.Add(id);
        }

        var tenantSilos = await TenantPlacementsAsync(spread);
        output.WriteLine("tenant grains per silo: " + string.Join(", ", tenantSilos.GroupBy(t => t.Silo).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key} {g.Count()}")));
        Assert.Equal(spread.Order(StringComparer.Ordinal), tenantSilos.Select(t => t.Tenant).Order(StringComparer.Ordinal));
        Assert.True(tenantSilos.Select(t => t.Silo).Distinct().Count() >= 2, "all tenant grains were activated on one silo");
    });

    [Fact]
    public Task Data_survives_a_full_cluster_restart() => Diagnosed(async () =>
    {
        await Cluster.StartAsync(silos: 3, frontends: 2);
        var tenant = "restart-" + Suffix();
        var adminKey = await Cluster.Frontends[0].CreateTenant(Cluster.OperatorKey, tenant);
        using (var admin0 = Cluster.Frontends[0].Client(adminKey))
        using (var admin1 = Cluster.Frontends[1].Client(adminKey))
        {
            await admin0.CreateCollection(Collection, shards: 3);
            await Parallel.ForEachAsync(Facts.Select((f, i) => (f, i)), new ParallelOptions { MaxDegreeOfParallelism = 3 },
                async (x, _) => await (x.i % 2 == 0 ? admin0 : admin1).Ingest(Collection, x.f.Id, x.f.Text));
        }

        string userKey, revokedKey, userKeyId;
        IReadOnlyList<ClusterApi.Hit>[] before;
        JsonNode infoBefore;
        using (var admin = Cluster.Frontends[1].Client(adminKey))
        {
            (userKeyId, userKey) = await admin.CreateKey("user", "bob");
            string revokedId;
            (revokedId, revokedKey) = await admin.CreateKey("user", "mallory");
            Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync(new Uri($"/v1/keys/{revokedId}", UriKind.Relative))).StatusCode);
            using var user = Cluster.Frontends[0].Client(userKey);
            before = await Task.WhenAll(Facts.Select(f => user.Search(Collection, f.Query, topK: 5)));
            infoBefore = await (await admin.GetAsync(new Uri($"/v1/collections/{Collection}", UriKind.Relative))).ExpectJson(HttpStatusCode.OK);
        }

        Assert.All(Facts.Zip(before), x => Assert.Equal(x.First.Id, x.Second[0].DocumentId));

        // Every process down (SIGTERM), every silo leaves the membership cleanly.
        var killed = await Cluster.StopAllAsync(TimeSpan.FromSeconds(60));
        Assert.Empty(killed);
        var left = await Cluster.MembershipAsync();
        Assert.Equal(3, left.Count);
        Assert.All(left, r => Assert.True(r.Status == Dead, $"{r.Name} has status {r.Status} after a graceful stop"));

        // Up again: same cluster id, same PostgreSQL and Redis.
        await Cluster.StartAsync(silos: 3, frontends: 2);
        var rows = await Cluster.WaitForMembershipAsync(r => r.Count(x => x.Status == Active) == 3, TimeSpan.FromSeconds(30));
        Assert.Equal(3, rows.Count(r => r.Status == Active));
        Assert.Equal(Cluster.Silos.Select(s => s.Name).Order(), rows.Where(r => r.Status == Active).Select(r => r.Name).Order());

        foreach (var frontend in Cluster.Frontends)
        {
            using var user = frontend.Client(userKey);
            var after = await Task.WhenAll(Facts.Select(f => user.Search(Collection, f.Query, topK: 5)));
            for (var i = 0; i < Facts.Length; i++)
            {
                Assert.Equal(before[i].Select(h => h.ChunkId), after[i].Select(h => h.ChunkId));
                Assert.Equal(before[i].Select(h => h.DocumentId), after[i].Select(h => h.DocumentId));
                Assert.All(before[i].Zip(after[i]), x => Assert.Equal(x.First.Score, x.Second.Score, 4));
            }

            using var revoked = frontend.Client(revokedKey);
            using var refused = await revoked.PostAsJsonAsync($"/v1/collections/{Collection}/search", new { query = "tides", topK = 3 });
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);

            using var op = frontend.Client(Cluster.OperatorKey);
            var got = await (await op.GetAsync(new Uri($"/v1/tenants/{tenant}", UriKind.Relative))).ExpectJson(HttpStatusCode.OK);
            Assert.Equal(tenant, got.Str("id"));

            using var admin = frontend.Client(adminKey);
            var keys = await (await admin.GetAsync(new Uri("/v1/keys", UriKind.Relative))).ExpectJson(HttpStatusCode.OK);
            Assert.Contains(keys.AsArray(), k => k.Str("id") == userKeyId);
            var infoAfter = await (await admin.GetAsync(new Uri($"/v1/collections/{Collection}", UriKind.Relative))).ExpectJson(HttpStatusCode.OK);
            Assert.Equal(infoBefore["documentCount"]!.GetValue<long>(), infoAfter["documentCount"]!.GetValue<long>());
            Assert.Equal(infoBefore["chunkCount"]!.GetValue<long>(), infoAfter["chunkCount"]!.GetValue<long>());
        }

        // And it keeps working: a new document after the restart is indexed and found.
        using (var admin = Cluster.Frontends[1].Client(adminKey))
        {
            await admin.Ingest(Collection, "aurora", "Auroras glow when charged particles from the sun strike gases high in the atmosphere.");
            Assert.Equal("aurora", (await admin.Search(Collection, "why the northern lights glow"))[0].DocumentId);
        }

        foreach (var silo in Cluster.Silos)
        {
            foreach (var line in silo.LinesContaining($"Shard {tenant}/"))
            {
                output.WriteLine($"{silo.Name}: {line}");
            }
        }
    });

    /// <summary>Runs a test body; on failure, writes every process's warnings and last lines to the test output.</summary>
    private async Task Diagnosed(Func<Task> body)
    {
        try
        {
            await body();
        }
        catch
        {
            if (_cluster is not null)
            {
                output.WriteLine(_cluster.Describe());
            }

            throw;
        }
    }

    /// <summary>Which silo logged each activation of a shard of <paramref name="tenant"/> (waits briefly for log lines to arrive).</summary>
    private async Task<List<(string Shard, string Silo)>> ShardPlacementsAsync(string tenant, int expected)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            var placements = Cluster.Silos
                .SelectMany(s => s.Lines.Select(l => ShardActivated().Match(l)).Where(m => m.Success && m.Groups[1].Value.StartsWith(tenant + "/", StringComparison.Ordinal))
                    .Select(m => (Shard: m.Groups[1].Value, Silo: s.Name)))
                .ToList();
            if (placements.Count >= expected || DateTime.UtcNow > deadline)
            {
                return placements;
            }

            await Task.Delay(200);
        }
    }

    /// <summary>Which silo logged the creation of each of <paramref name="tenants"/> (waits briefly for log lines to arrive).</summary>
    private async Task<List<(string Tenant, string Silo)>> TenantPlacementsAsync(IReadOnlyCollection<string> tenants)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            var placements = Cluster.Silos
                .SelectMany(s => s.Lines.Select(l => TenantCreated().Match(l)).Where(m => m.Success && tenants.Contains(m.Groups[1].Value))
                    .Select(m => (Tenant: m.Groups[1].Value, Silo: s.Name)))
                .ToList();
            if (placements.Count >= tenants.Count || DateTime.UtcNow > deadline)
            {
                return placements;
            }

            await Task.Delay(200);
        }
    }

    private static string Suffix() => Guid.NewGuid().ToString("N")[..8];

    private static async Task RequireReachableAsync(string redis)
    {
        var endpoint = redis.Split(',')[0];
        var colon = endpoint.LastIndexOf(':');
        var (host, port) = colon > 0 ? (endpoint[..colon], int.Parse(endpoint[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture)) : (endpoint, 6379);
        try
        {
            using var tcp = new TcpClient();
            await tcp.ConnectAsync(host, port).WaitAsync(TimeSpan.FromSeconds(5));
        }
        catch (Exception e) when (e is SocketException or TimeoutException)
        {
            throw new InvalidOperationException($"Redis at '{redis}' is unreachable ({e.Message}). Start it with `scripts/test-services.sh up`.", e);
        }
    }

    [GeneratedRegex(@"Shard (\S+) activated")]
    private static partial Regex ShardActivated();

    [GeneratedRegex(@"Tenant (\S+) created")]
    private static partial Regex TenantCreated();
}
