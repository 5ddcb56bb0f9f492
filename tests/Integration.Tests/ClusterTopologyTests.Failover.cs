using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit;
using static RagOrleans.Integration.Tests.WorkloadFigures;

namespace RagOrleans.Integration.Tests;

public sealed partial class ClusterTopologyTests
{
    /// <summary>How long the workload keeps going after the kill (longer only while searches still fail).</summary>
    private static readonly TimeSpan AfterKill = TimeSpan.FromSeconds(15);

    /// <summary>Searches must succeed again within this time after the kill.</summary>
    private static readonly TimeSpan MaxRecovery = TimeSpan.FromSeconds(60);

    [Fact]
    public Task Killing_a_silo_hard_loses_nothing_acknowledged() => Diagnosed(async () =>
    {
        await Cluster.StartAsync(silos: 3, frontends: 2);
        var clock = Stopwatch.StartNew();
        var tenants = await StartWorkloadsAsync(["fo-a-", "fo-b-"], clock);
        using var disposeWorkloads = new Disposables(tenants);

        // Continuous ingestion and search for every tenant, through both frontends.
        using var stop = new CancellationTokenSource();
        var loops = RunLoops(tenants, stop.Token);
        await Task.Delay(TimeSpan.FromSeconds(8));
        var beforeKill = tenants.SelectMany(t => t.Attempts).ToList();
        Assert.True(beforeKill.Count(a => a.Kind == "search" && a.Outcome == Outcome.Ok) >= 4, "searches did not run before the kill:\n" + Summary(beforeKill));
        Assert.True(beforeKill.Count(a => a.Kind == "ingest" && a.Outcome == Outcome.Ok) >= 2, "ingestion did not run before the kill:\n" + Summary(beforeKill));

        // The victim: the silo that hosts most of the tenants' shards.
        var (victim, victimShards, placements) = await BusiestSiloAsync(tenants);
        var victimRow = (await Cluster.MembershipAsync()).Single(r => r.Port == victim.SiloPort);
        var survivorLinesBefore = Cluster.Silos.Where(s => s != victim).ToDictionary(s => s.Name, s => s.Lines.Count);
        output.WriteLine($"placement before the kill: {string.Join(", ", placements.Select(p => $"{p.Shard}@{p.Silo}"))}; killing {victim.Name} (pid {victim.Pid}, silo port {victim.SiloPort}, gateway port {victim.GatewayPort})");

        var killAt = clock.Elapsed;
        await victim.KillAsync();
        TimeSpan? declaredDeadAt = null;
        while (true)
        {
            var since = clock.Elapsed - killAt;
            if (declaredDeadAt is null
                && (await Cluster.MembershipAsync()).Any(r => r.Port == victim.SiloPort && r.Generation == victimRow.Generation && r.Status == Dead))
            {
                declaredDeadAt = clock.Elapsed;
            }

            if ((since >= AfterKill && declaredDeadAt is not null && tenants.All(t => t.SearchesRecovered(killAt))) || since > MaxRecovery)
            {
                break;
            }

            await Task.Delay(200);
        }

        await stop.CancelAsync();
        await Task.WhenAll(loops);
        var stoppedAt = clock.Elapsed;

        // The figures.
        var attempts = tenants.SelectMany(t => t.Attempts).OrderBy(a => a.Start).ToList();
        var failed = attempts.Where(a => a.Outcome is Outcome.Failed5xx or Outcome.ConnectionError).ToList();
        var violations = attempts.Where(a => a.Outcome == Outcome.Violation).ToList();
        var searches = attempts.Where(a => a.Kind == "search").ToList();
        var inFlight = attempts.Where(a => a.Start < killAt && a.End > killAt).ToList();
        var searchRecovery = RecoveredAfter(searches, killAt);
        var ingestRecovery = RecoveredAfter(attempts.Where(a => a.Kind == "ingest").ToList(), killAt);
        var acknowledged = tenants.SelectMany(t => t.Acknowledged.Select(d => (Tenant: t, d.Id, d.Text))).ToList();
        var accepted = tenants.SelectMany(t => t.Accepted.Select(id => (Tenant: t, Id: id))).ToList();
        var report = new JsonObject
        {
            ["test"] = nameof(Killing_a_silo_hard_loses_nothing_acknowledged),
            ["measuredAt"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
            ["machine"] = $"{Environment.ProcessorCount} cores",
            ["silos"] = Cluster.Silos.Count,
            ["frontends"] = Cluster.Frontends.Count,
            ["tenants"] = tenants.Count,
            ["shardsPerCollection"] = 3,
            ["killedSilo"] = victim.Name,
            ["killedSiloShards"] = new JsonArray([.. victimShards.Select(s => JsonValue.Create(s))]),
            ["workloadSecondsBeforeKill"] = Seconds(killAt),
            ["workloadSecondsAfterKill"] = Seconds(stoppedAt - killAt),
            ["membershipDeclaredDeadSeconds"] = declaredDeadAt is { } dead ? Seconds(dead - killAt) : null,
            ["searchesSucceededAgainSeconds"] = searchRecovery is { } sr ? Seconds(sr) : null,
            ["ingestionSucceededAgainSeconds"] = ingestRecovery is { } ir ? Seconds(ir) : null,
            ["requests"] = attempts.Count,
            ["searchRequests"] = searches.Count,
            ["ingestRequests"] = attempts.Count - searches.Count,
            ["failedRequests"] = failed.Count,
            ["failedSearches"] = failed.Count(a => a.Kind == "search"),
            ["failedIngests"] = failed.Count(a => a.Kind == "ingest"),
            ["failedBeforeKill"] = failed.Count(a => a.End < killAt),
            ["failedStartedAfterKill"] = failed.Count(a => a.Start >= killAt),
            ["inFlightAtKill"] = inFlight.Count,
            ["inFlightAtKillFailed"] = inFlight.Count(a => a.Outcome != Outcome.Ok),
            ["longestFailedRequestSeconds"] = failed.Count > 0 ? Seconds(failed.Max(a => a.End - a.Start)) : null,
            ["failuresByStatus"] = new JsonObject(failed.GroupBy(a => a.Status == 0 ? "connection" : a.Status.ToString(CultureInfo.InvariantCulture))
                .Select(g => KeyValuePair.Create(g.Key, (JsonNode?)g.Count()))),
            ["firstFailureSeconds"] = failed.Count > 0 ? Seconds(failed.Min(a => a.End) - killAt) : null,
            ["lastFailureSeconds"] = failed.Count > 0 ? Seconds(failed.Max(a => a.End) - killAt) : null,
            ["violations"] = violations.Count,
            ["acknowledgedDocuments"] = acknowledged.Count,
            ["acceptedNotYetIndexed"] = accepted.Count,
        };

        // Every acknowledged document is indexed and is the top hit for its own text.
        var lost = new List<string>();
        await Parallel.ForEachAsync(acknowledged, new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (d, _) =>
        {
            var problem = await d.Tenant.VerifyAsync(d.Id, d.Text);
            if (problem is not null)
            {
                lock (lost)
                {
                    lost.Add($"{d.Tenant.Tenant}/{d.Id}: {problem}");
                }
            }
        });
        report["acknowledgedButNotFound"] = lost.Count;

        // Uploads that were accepted (202) or failed mid-way: where did they end up?
        var unacknowledged = tenants.SelectMany(t => t.Attempts.Where(a => a.Kind == "ingest" && a.Outcome != Outcome.Ok && a.DocumentId is not null)
            .Select(a => (Tenant: t, Id: a.DocumentId!))).Distinct().ToList();
        var finalStatus = new List<(string Upload, string Status)>();
        foreach (var (tenant, id) in unacknowledged)
        {
            finalStatus.Add(($"{tenant.Tenant}/{id}", await tenant.StatusAsync(id)));
        }

        // What a client does after "503, retry shortly": the same upload again, which must end indexed and found.
        var retried = await Task.WhenAll(unacknowledged.Select(async u =>
        {
            var outcome = await u.Tenant.RetryUploadAsync(u.Id);
            if (outcome == "200 indexed" && await u.Tenant.VerifyAsync(u.Id, u.Tenant.UploadText(u.Id)) is { } problem)
            {
                outcome += " but not found: " + problem;
            }

            return (Upload: $"{u.Tenant.Tenant}/{u.Id}", Outcome: outcome);
        }));

        report["unacknowledgedUploads"] = unacknowledged.Count;
        report["unacknowledgedUploadsStatusAfterWorkload"] = Counts(finalStatus.Select(x => x.Status));
        report["unacknowledgedUploadsRetriedOutcome"] = Counts(retried.Select(x => x.Outcome));
        output.WriteLine("unacknowledged uploads (status after the workload -> outcome of the client's retry):\n" +
            string.Join('\n', finalStatus.Zip(retried).Select(x => $"  {x.First.Upload}: {x.First.Status} -> {x.Second.Outcome}")));
        var reactivated = victimShards.Where(shard => Cluster.Silos.Where(s => s != victim)
            .Any(s => s.Lines.Skip(survivorLinesBefore[s.Name]).Any(l => l.Contains($"Shard {shard} activated", StringComparison.Ordinal)))).ToList();
        report["killedSiloShardsReactivatedOnSurvivors"] = reactivated.Count;

        var json = report.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
        output.WriteLine(json);
        output.WriteLine("failed and violating requests:\n" + Summary(failed.Concat(violations).OrderBy(a => a.Start).ToList(), killAt));
        var file = Path.Combine(RagBinaries.RepoRoot, "artifacts", "failover.json");
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        await File.WriteAllTextAsync(file, json + "\n");
        output.WriteLine($"written to {file}");

        Assert.True(declaredDeadAt is not null, $"membership never declared {victim.Name} dead");
        Assert.True(searchRecovery is not null && searchRecovery <= MaxRecovery, $"searches did not succeed again within {MaxRecovery.TotalSeconds} s of the kill");
        Assert.True(violations.Count == 0, $"{violations.Count} requests answered wrongly (not a 5xx problem, not a connection error):\n{Summary(violations, killAt)}");
        Assert.True(lost.Count == 0, $"{lost.Count} of {acknowledged.Count} acknowledged documents are not indexed or not found:\n{string.Join('\n', lost)}");
        Assert.True(failed.All(a => a.End >= killAt), "requests failed before the kill:\n" + Summary(failed.Where(a => a.End < killAt).ToList(), killAt));
        Assert.True(acknowledged.Count >= 10, $"only {acknowledged.Count} documents were acknowledged");
        Assert.Equal(victimShards.Order(), reactivated.Order());
        Assert.True(retried.All(r => r.Outcome == "200 indexed"),
            "uploads that failed during the fault could not be completed by retrying them:\n" + string.Join('\n', retried.Where(r => r.Outcome != "200 indexed").Select(r => $"  {r.Upload}: {r.Outcome}")));
    });

    /// <summary>
    /// Tenants (one per prefix, each created through a different frontend) with a 3-shard collection, a reader key
    /// and three acknowledged documents each.
    /// </summary>
    private async Task<List<Workload>> StartWorkloadsAsync(IReadOnlyList<string> prefixes, Stopwatch clock)
    {
        var tenants = new List<Workload>();
        foreach (var prefix in prefixes)
        {
            var id = prefix + Suffix();
            var adminKey = await Cluster.Frontends[tenants.Count % Cluster.Frontends.Count].CreateTenant(Cluster.OperatorKey, id);
            using var admin = Cluster.Frontends[0].Client(adminKey);
            await admin.CreateCollection(Collection, shards: 3);
            var (_, userKey) = await admin.CreateKey("user", "reader");
            var workload = new Workload(id, Collection, Cluster.Frontends, adminKey, userKey, clock);
            for (var i = 0; i < 3; i++)
            {
                var (docId, text) = workload.NextDocument();
                await admin.Ingest(Collection, docId, text);
                workload.Acknowledge(docId, text, clock.Elapsed);
            }

            tenants.Add(workload);
        }

        return tenants;
    }

    /// <summary>Continuous ingestion (every 300 ms) and search (every 150 ms) for every tenant, until stopped.</summary>
    private static List<Task> RunLoops(IEnumerable<Workload> tenants, CancellationToken stop) =>
        tenants.SelectMany(t => new[]
        {
            Task.Run(() => t.IngestLoop(TimeSpan.FromMilliseconds(300), stop)),
            Task.Run(() => t.SearchLoop(TimeSpan.FromMilliseconds(150), stop)),
        }).ToList();

    /// <summary>The silo hosting most of the tenants' shards, the shards it hosts, and every shard's placement.</summary>
    private async Task<(ClusterNode Silo, List<string> Shards, List<(string Shard, string Silo)> Placements)> BusiestSiloAsync(IEnumerable<Workload> tenants)
    {
        var placements = new List<(string Shard, string Silo)>();
        foreach (var tenant in tenants)
        {
            placements.AddRange(await ShardPlacementsAsync(tenant.Tenant, expected: 3));
        }

        var busiest = Cluster.Silos.OrderByDescending(s => placements.Count(p => p.Silo == s.Name)).First();
        return (busiest, placements.Where(p => p.Silo == busiest.Name).Select(p => p.Shard).ToList(), placements);
    }

    /// <summary>Disposes the workloads' HTTP clients at the end of the test.</summary>
    private sealed class Disposables(IEnumerable<IDisposable> items) : IDisposable
    {
        public void Dispose()
        {
            foreach (var item in items)
            {
                item.Dispose();
            }
        }
    }
}
