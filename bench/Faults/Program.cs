using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using RagOrleans.Bench;
using RagOrleans.Bench.Faults;
using RagOrleans.Integration.Tests;
using static RagOrleans.Integration.Tests.WorkloadFigures;

// Backing-service faults: a cluster (2 silos, 1 frontend) on a PostgreSQL and a Redis of its own, under continuous
// ingestion and search from two tenants. Redis is stopped for --outage-seconds (30), then started again; after
// a recovery period PostgreSQL likewise. Every request during an outage must fail fast (a 503 problem within a few
// seconds) or succeed, nothing acknowledged may be lost, and the service must recover by itself (no process restarted).
//
// Usage: dotnet run -c Release --project bench/Faults -- [--outage-seconds 30] [--fast-seconds 5] [--json FILE]
var options = new BenchArgs(args);
var outage = TimeSpan.FromSeconds(options.Int("outage-seconds", 30));
var fastLimit = TimeSpan.FromSeconds(options.Int("fast-seconds", 5));
const string collection = "kb";
var run = RunInfo.Start();

await using var servers = await BackingServers.StartAsync();
Log($"own PostgreSQL on {servers.PgPort}, Redis on {servers.RedisPort} (folder {servers.Dir})");
await using var cluster = new RagCluster(servers.Postgres, servers.Redis);
await cluster.StartStaggeredAsync(silos: 2, frontends: 1);
var pids = cluster.All.ToDictionary(n => n.Name, n => n.Pid);
var clock = Stopwatch.StartNew();
var tenants = new List<Workload>();
for (var t = 0; t < 2; t++)
{
    var id = $"faults{t}-{Guid.NewGuid().ToString("N")[..8]}";
    var adminKey = await cluster.Frontends[0].CreateTenant(cluster.OperatorKey, id);
    using var admin = cluster.Frontends[0].Client(adminKey);
    await admin.CreateCollection(collection, shards: 2);
    var (_, userKey) = await admin.CreateKey("user", "reader");
    var workload = new Workload(id, collection, cluster.Frontends, adminKey, userKey, clock);
    for (var i = 0; i < 3; i++)
    {
        var (docId, text) = workload.NextDocument();
        await admin.Ingest(collection, docId, text);
        workload.Acknowledge(docId, text, clock.Elapsed);
    }

    tenants.Add(workload);
}

using var stop = new CancellationTokenSource();
var loops = tenants.SelectMany(t => new[]
{
    Task.Run(() => t.IngestLoop(TimeSpan.FromMilliseconds(400), stop.Token)),
    Task.Run(() => t.SearchLoop(TimeSpan.FromMilliseconds(250), stop.Token)),
}).ToList();
await Task.Delay(TimeSpan.FromSeconds(10));

var faults = new JsonArray();
var windows = new List<(TimeSpan From, TimeSpan To)>();
foreach (var (name, stopIt, startIt) in new (string, Func<Task>, Func<Task>)[]
{
    ("Redis", servers.StopRedisAsync, servers.StartRedisAsync),
    ("PostgreSQL", servers.StopPostgresAsync, servers.StartPostgresAsync),
})
{
    Log($"stopping {name} for {outage.TotalSeconds:F0} s");
    var stoppedAt = clock.Elapsed;
    await stopIt();
    var down = clock.Elapsed;
    await Task.Delay(outage);
    var restartedAt = clock.Elapsed;
    await startIt();
    var up = clock.Elapsed;
    Log($"{name} is back; waiting for the service to recover");
    while (clock.Elapsed - up < TimeSpan.FromSeconds(90))
    {
        var attempts = tenants.SelectMany(t => t.Attempts).ToList();
        if (RecoveredAfter(attempts.Where(a => a.Kind == "search"), up) is not null && RecoveredAfter(attempts.Where(a => a.Kind == "ingest"), up) is not null
            && clock.Elapsed - up > TimeSpan.FromSeconds(10))
        {
            break;
        }

        await Task.Delay(500);
    }

    var all = tenants.SelectMany(t => t.Attempts).ToList();
    var during = all.Where(a => a.Start >= down && a.Start < restartedAt).ToList();
    var failed = during.Where(a => a.Outcome is not (Outcome.Ok or Outcome.Accepted)).ToList();
    var slowFailures = failed.Where(a => a.End - a.Start > fastLimit).ToList();
    var durations = during.Select(a => (a.End - a.Start).TotalSeconds).Order().ToList();
    var failedDurations = failed.Select(a => (a.End - a.Start).TotalSeconds).Order().ToList();
    var searchBack = RecoveredAfter(all.Where(a => a.Kind == "search"), up);
    var ingestBack = RecoveredAfter(all.Where(a => a.Kind == "ingest"), up);
    windows.Add((stoppedAt, clock.Elapsed));
    var report = new JsonObject
    {
        ["store"] = name,
        ["outageSeconds"] = Seconds(restartedAt - down),
        ["stopTookSeconds"] = Seconds(down - stoppedAt),
        ["requestsDuringOutage"] = during.Count,
        ["byOutcome"] = Counts(during.Select(a => $"{a.Kind} {a.Outcome} {a.Status}")),
        ["failedDuringOutage"] = failed.Count,
        ["failedSlowerThanLimit"] = slowFailures.Count,
        ["failedSecondsP50"] = failedDurations.Count > 0 ? Math.Round(Stats.Percentile(failedDurations, 50), 2) : null,
        ["failedSecondsP95"] = failedDurations.Count > 0 ? Math.Round(Stats.Percentile(failedDurations, 95), 2) : null,
        ["failedSecondsMax"] = failedDurations.Count > 0 ? Math.Round(failedDurations[^1], 2) : null,
        ["allSecondsMax"] = durations.Count > 0 ? Math.Round(durations[^1], 2) : null,
        ["violations"] = during.Count(a => a.Outcome == Outcome.Violation),
        ["sampleProblems"] = new JsonArray([.. failed.Select(a => a.Detail).Distinct().Take(3).Select(d => JsonValue.Create(d))]),
        ["searchesRecoveredSecondsAfterRestart"] = searchBack is { } s ? Seconds(s) : null,
        ["ingestionRecoveredSecondsAfterRestart"] = ingestBack is { } i ? Seconds(i) : null,
    };
    faults.Add(report);
    Log(report.ToJsonString());
}

await stop.CancelAsync();
await Task.WhenAll(loops);

// Nothing acknowledged is lost; uploads that failed complete when the client sends them again.
var acknowledged = tenants.SelectMany(t => t.Acknowledged.Select(d => (Tenant: t, d.Id, d.Text))).ToList();
var lost = new List<string>();
foreach (var d in acknowledged)
{
    if (await d.Tenant.VerifyAsync(d.Id, d.Text) is { } problem)
    {
        lost.Add($"{d.Tenant.Tenant}/{d.Id}: {problem}");
    }
}

var unacknowledged = tenants.SelectMany(t => t.Attempts.Where(a => a.Kind == "ingest" && a.Outcome != Outcome.Ok && a.DocumentId is not null)
    .Select(a => (Tenant: t, Id: a.DocumentId!))).Distinct().ToList();
var retried = new List<string>();
foreach (var (tenant, id) in unacknowledged)
{
    retried.Add(await tenant.RetryUploadAsync(id));
}

var restarted = cluster.All.Where(n => n.HasExited || pids[n.Name] != n.Pid).Select(n => n.Name).ToList();
var violationsOutside = tenants.SelectMany(t => t.Attempts).Where(a => a.Outcome == Outcome.Violation && !windows.Any(w => a.Start >= w.From && a.Start < w.To)).Count();
var summary = new JsonObject
{
    ["benchmark"] = "backing-service faults",
    ["measuredAt"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
    ["machine"] = $"{Environment.ProcessorCount} cores",
    ["silos"] = 2,
    ["frontends"] = 1,
    ["tenants"] = tenants.Count,
    ["fastLimitSeconds"] = fastLimit.TotalSeconds,
    ["faults"] = faults,
    ["acknowledged"] = acknowledged.Count,
    ["acknowledgedButNotFound"] = lost.Count,
    ["lost"] = new JsonArray([.. lost.Take(20).Select(l => JsonValue.Create(l))]),
    ["unacknowledgedUploads"] = unacknowledged.Count,
    ["unacknowledgedRetriedOutcome"] = Counts(retried),
    ["processesRestartedOrExited"] = new JsonArray([.. restarted.Select(r => JsonValue.Create(r))]),
    ["violationsOutsideFaults"] = violationsOutside,
    ["loadAverageAtStart"] = new JsonArray([.. run.LoadAverageAtStart.Select(v => JsonValue.Create(v))]),
    ["loadAverageAtEnd"] = new JsonArray([.. ProcessStats.LoadAverage().Select(v => JsonValue.Create(v))]),
};
var json = summary.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
Console.WriteLine(json);
if (options.Json is { } file)
{
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(file))!);
    await File.WriteAllTextAsync(file, json + "\n");
    Log($"written to {Path.GetFullPath(file)}");
}

var ok = lost.Count == 0 && restarted.Count == 0 && faults.All(f => f!["violations"]!.GetValue<int>() == 0 && f["failedSlowerThanLimit"]!.GetValue<int>() == 0
    && f["searchesRecoveredSecondsAfterRestart"] is not null && f["ingestionRecoveredSecondsAfterRestart"] is not null);
Log(ok ? "PASS" : "FAIL: see the JSON" + Environment.NewLine + cluster.Describe(10));
foreach (var t in tenants)
{
    t.Dispose();
}

return ok ? 0 : 1;

static void Log(string message) => Console.WriteLine($"{DateTime.UtcNow:HH:mm:ss} {message}");
