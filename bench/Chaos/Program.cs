using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Npgsql;
using RagOrleans.Bench;
using RagOrleans.Integration.Tests;
using static RagOrleans.Integration.Tests.WorkloadFigures;

// Chaos: a cluster of real silo and frontend processes (cluster mode, PostgreSQL + Redis) under continuous
// ingestion and search from several tenants, while silos are killed with SIGKILL and replaced at random
// (seeded). Afterwards every acknowledged document must be indexed and searchable, PostgreSQL must hold exactly
// the acknowledged documents with one live copy of each chunk, and no document may be stuck.
//
// Usage: dotnet run -c Release --project bench/Chaos -- [--rounds 20] [--seed 1] [--tenants 3] [--json FILE]
// PostgreSQL and Redis come from ConnectionStrings__Postgres / ConnectionStrings__Redis (for example
// `scripts/test-services.sh up` then `set -a; . artifacts/test-services.env; set +a`).
var args_ = new BenchArgs(args);
var rounds = args_.Int("rounds", 20);
var seed = args_.Int("seed", 1);
var tenantCount = args_.Int("tenants", 3);
var postgres = Environment.GetEnvironmentVariable("ConnectionStrings__Postgres")
    ?? throw new InvalidOperationException("Set ConnectionStrings__Postgres (scripts/test-services.sh up; . artifacts/test-services.env).");
var redis = Environment.GetEnvironmentVariable("ConnectionStrings__Redis")
    ?? throw new InvalidOperationException("Set ConnectionStrings__Redis.");
const string collection = "kb";
const int shards = 3;
var random = new Random(seed);
var run = RunInfo.Start();

await using var cluster = new RagCluster(postgres, redis);
Log($"starting 3 silos and 2 frontends (cluster id {cluster.ClusterId}, logs in {cluster.WorkDir})");
await cluster.StartStaggeredAsync(silos: 3, frontends: 2);
var clock = Stopwatch.StartNew();

// Tenants, each with a 3-shard collection, a reader key and three acknowledged documents.
var tenants = new List<Workload>();
for (var t = 0; t < tenantCount; t++)
{
    // A saturated machine can time a set-up call out (503); start that tenant over under a new id.
    for (var attempt = 1; ; attempt++)
    {
        try
        {
            tenants.Add(await CreateWorkloadAsync(t));
            break;
        }
        catch (Exception e) when (attempt < 5)
        {
            Log($"setting up tenant {t} failed (attempt {attempt}), retrying: {e.Message.Split('\n')[0]}");
            await Task.Delay(TimeSpan.FromSeconds(5));
        }
    }
}

using var stop = new CancellationTokenSource();
var loops = tenants.SelectMany(t => new[]
{
    Task.Run(() => t.IngestLoop(TimeSpan.FromMilliseconds(400), stop.Token)),
    Task.Run(() => t.SearchLoop(TimeSpan.FromMilliseconds(250), stop.Token)),
}).ToList();
await Task.Delay(TimeSpan.FromSeconds(10));

// The rounds: kill one running silo (seeded choice), wait until searches succeed again and membership has
// declared it dead, then start a replacement and wait until it is ready.
var roundReports = new JsonArray();
var windows = new List<(TimeSpan From, TimeSpan To)>();
for (var round = 1; round <= rounds; round++)
{
    var alive = cluster.Silos.Where(s => !s.HasExited).ToList();
    var victim = alive[random.Next(alive.Count)];
    var generation = (await cluster.MembershipAsync()).Where(r => r.Port == victim.SiloPort).Select(r => r.Generation).DefaultIfEmpty(-1).Max();
    var pause = TimeSpan.FromSeconds(2 + random.Next(6));
    await Task.Delay(pause);
    var killAt = clock.Elapsed;
    await victim.KillAsync();
    TimeSpan? deadAt = null;
    while (true)
    {
        var since = clock.Elapsed - killAt;
        if (deadAt is null && (await cluster.MembershipAsync()).Any(r => r.Port == victim.SiloPort && r.Generation == generation && r.Status == 6))
        {
            deadAt = clock.Elapsed;
        }

        var recovered = tenants.All(t => RecoveredAfter(t.Attempts.Where(a => a.Kind == "search"), killAt) is not null);
        if ((since >= TimeSpan.FromSeconds(5) && deadAt is not null && recovered) || since > TimeSpan.FromSeconds(90))
        {
            break;
        }

        await Task.Delay(200);
    }

    var recoveredAt = clock.Elapsed;
    // A replacement that dies during start-up (declared dead while starved of CPU, say) is replaced again, as a
    // Kubernetes Deployment would; every such start is counted in the round's report.
    ClusterNode? replacement = null;
    var failedStarts = new JsonArray();
    for (var start = 1; replacement is null; start++)
    {
        try
        {
            replacement = await cluster.AddSiloAsync();
        }
        catch (InvalidOperationException e) when (start < 4)
        {
            failedStarts.Add(e.Message.Split('\n')[0]);
            Log($"round {round}: a replacement silo failed to start ({e.Message.Split('\n')[0]}); starting another");
        }
    }

    var replacedAt = clock.Elapsed;
    windows.Add((killAt, replacedAt));
    var attempts = tenants.SelectMany(t => t.Attempts).Where(a => a.Start >= killAt && a.Start < replacedAt).ToList();
    var failed = attempts.Where(a => a.Outcome is not (Outcome.Ok or Outcome.Accepted)).ToList();
    var searchRecovery = RecoveredAfter(tenants.SelectMany(t => t.Attempts).Where(a => a.Kind == "search" && a.Start < replacedAt), killAt);
    var ingestRecovery = RecoveredAfter(tenants.SelectMany(t => t.Attempts).Where(a => a.Kind == "ingest" && a.Start < replacedAt), killAt);
    var report = new JsonObject
    {
        ["round"] = round,
        ["killed"] = victim.Name,
        ["killedAtSeconds"] = Seconds(killAt),
        ["declaredDeadSeconds"] = deadAt is { } d ? Seconds(d - killAt) : null,
        ["searchesRecoveredSeconds"] = searchRecovery is { } sr ? Seconds(sr) : null,
        ["ingestionRecoveredSeconds"] = ingestRecovery is { } ir ? Seconds(ir) : null,
        ["replacement"] = replacement.Name,
        ["replacementReadySeconds"] = Seconds(replacedAt - recoveredAt),
        ["replacementFailedStarts"] = failedStarts,
        ["requests"] = attempts.Count,
        ["failed"] = failed.Count,
        ["errorRate"] = attempts.Count == 0 ? 0 : Math.Round((double)failed.Count / attempts.Count, 4),
        ["failuresByOutcome"] = Counts(failed.Select(a => $"{a.Outcome} {a.Status}")),
    };
    roundReports.Add(report);
    Log($"round {round}/{rounds}: killed {victim.Name}; dead after {report["declaredDeadSeconds"]} s, searches back after {report["searchesRecoveredSeconds"]} s, " +
        $"ingestion after {report["ingestionRecoveredSeconds"]} s; {failed.Count}/{attempts.Count} requests failed; {replacement.Name} ready {report["replacementReadySeconds"]} s later");
}

await Task.Delay(TimeSpan.FromSeconds(5));
await stop.CancelAsync();
await Task.WhenAll(loops);
var workloadEnd = clock.Elapsed;
Log("workload stopped; checking");

var all = tenants.SelectMany(t => t.Attempts).OrderBy(a => a.Start).ToList();
var inFaults = all.Where(a => windows.Any(w => a.Start >= w.From && a.Start < w.To)).ToList();
var outsideFaults = all.Except(inFaults).ToList();
static bool Bad(Attempt a) => a.Outcome is not (Outcome.Ok or Outcome.Accepted);
var violations = all.Where(a => a.Outcome == Outcome.Violation).ToList();

// Uploads that were not acknowledged: wait for the durable pipeline to settle them, then do what a client does
// after "503, retry shortly": send the same upload again. Those that end indexed are acknowledged too.
var unacknowledged = tenants.SelectMany(t => t.Attempts.Where(a => a.Kind == "ingest" && a.Outcome != Outcome.Ok && a.DocumentId is not null)
    .Select(a => (Tenant: t, Id: a.DocumentId!))).Distinct().ToList();
var stuckWait = Stopwatch.StartNew();
var stuck = await StuckAsync();
while (stuck.Count > 0 && stuckWait.Elapsed < TimeSpan.FromSeconds(120))
{
    await Task.Delay(TimeSpan.FromSeconds(2));
    stuck = await StuckAsync();
}

var stuckAfterWorkload = stuck.Count;
var settleSeconds = Seconds(stuckWait.Elapsed);
var retried = new List<(Workload Tenant, string Id, string Outcome)>();
foreach (var (tenant, id) in unacknowledged)
{
    retried.Add((tenant, id, await tenant.RetryUploadAsync(id)));
}

var expected = tenants.SelectMany(t => t.Acknowledged.Select(d => (Tenant: t, d.Id, d.Text)))
    .Concat(retried.Where(r => r.Outcome == "200 indexed").Select(r => (r.Tenant, r.Id, Text: r.Tenant.UploadText(r.Id))))
    .DistinctBy(d => (d.Tenant.Tenant, d.Id)).ToList();

// Through the API: each expected document is indexed and its own text finds it first.
var notFound = new List<string>();
await Parallel.ForEachAsync(expected, new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (d, _) =>
{
    if (await d.Tenant.VerifyAsync(d.Id, d.Text) is { } problem)
    {
        lock (notFound)
        {
            notFound.Add($"{d.Tenant.Tenant}/{d.Id}: {problem}");
        }
    }
});

// Directly in PostgreSQL and through the collection's counters.
var storeProblems = new List<string>();
var tenantReports = new JsonArray();
foreach (var tenant in tenants)
{
    var ids = expected.Where(d => d.Tenant == tenant).Select(d => d.Id).ToHashSet(StringComparer.Ordinal);
    var stored = await DocumentsAsync(tenant.Tenant);
    var live = await LiveChunksAsync(tenant.Tenant);
    var indexed = stored.Where(s => s.Value.Status == 2).Select(s => s.Key).ToHashSet(StringComparer.Ordinal);
    var missing = ids.Except(indexed, StringComparer.Ordinal).ToList();
    var extra = indexed.Except(ids, StringComparer.Ordinal).ToList();
    var duplicated = live.Where(c => c.Copies > 1).ToList();
    var liveByDocument = live.GroupBy(c => c.DocId).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
    var countMismatch = indexed.Where(id => liveByDocument.GetValueOrDefault(id) != stored[id].Chunks).ToList();
    var orphans = liveByDocument.Keys.Where(id => !indexed.Contains(id)).ToList();
    using var http = cluster.Frontends[0].Client(tenant.AdminKey);
    var info = await (await http.GetAsync(new Uri($"/v1/collections/{collection}", UriKind.Relative))).ExpectJson(HttpStatusCode.OK);
    var apiDocuments = info["documentCount"]!.GetValue<long>();
    var apiChunks = info["chunkCount"]!.GetValue<long>();
    var expectedChunks = indexed.Sum(id => (long)stored[id].Chunks);
    var duplicateHits = await DuplicateHitsAsync(http, tenant);

    void Problem(bool bad, string what)
    {
        if (bad)
        {
            storeProblems.Add($"{tenant.Tenant}: {what}");
        }
    }

    Problem(missing.Count > 0, $"{missing.Count} acknowledged documents not indexed in PostgreSQL: {string.Join(", ", missing.Take(10))}");
    Problem(extra.Count > 0, $"{extra.Count} indexed documents nobody was told about: {string.Join(", ", extra.Take(10))}");
    Problem(duplicated.Count > 0, $"{duplicated.Count} chunks live more than once in the chunk log: {string.Join(", ", duplicated.Take(10).Select(c => $"{c.Shard}:{c.DocId}#{c.Ordinal}x{c.Copies}"))}");
    Problem(countMismatch.Count > 0, $"{countMismatch.Count} documents whose chunk_count differs from their live chunks: {string.Join(", ", countMismatch.Take(10))}");
    Problem(orphans.Count > 0, $"{orphans.Count} documents with live chunks but not indexed: {string.Join(", ", orphans.Take(10))}");
    Problem(apiDocuments != stored.Count, $"the API counts {apiDocuments} documents, PostgreSQL holds {stored.Count}");
    Problem(apiChunks != expectedChunks, $"the API counts {apiChunks} chunks, PostgreSQL holds {expectedChunks} for indexed documents");
    Problem(duplicateHits > 0, $"{duplicateHits} search answers listed a chunk twice");
    tenantReports.Add(new JsonObject
    {
        ["tenant"] = tenant.Tenant,
        ["expectedDocuments"] = ids.Count,
        ["storedDocuments"] = stored.Count,
        ["storedByStatus"] = Counts(stored.Values.Select(s => s.Status switch { 0 => "queued", 1 => "processing", 2 => "indexed", 3 => "failed", _ => "other" })),
        ["liveChunks"] = live.Count,
        ["apiDocumentCount"] = apiDocuments,
        ["apiChunkCount"] = apiChunks,
    });
}

var faultFailed = inFaults.Count(Bad);
var summary = new JsonObject
{
    ["benchmark"] = "chaos",
    ["measuredAt"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
    ["machine"] = $"{Environment.ProcessorCount} cores",
    ["seed"] = seed,
    ["rounds"] = rounds,
    ["silos"] = 3,
    ["frontends"] = 2,
    ["tenants"] = tenantCount,
    ["shardsPerCollection"] = shards,
    ["workloadSeconds"] = Seconds(workloadEnd),
    ["requests"] = all.Count,
    ["requestsDuringFaults"] = inFaults.Count,
    ["failedDuringFaults"] = faultFailed,
    ["errorRateDuringFaults"] = inFaults.Count == 0 ? 0 : Math.Round((double)faultFailed / inFaults.Count, 4),
    ["requestsOutsideFaults"] = outsideFaults.Count,
    ["failedOutsideFaults"] = outsideFaults.Count(Bad),
    ["violations"] = violations.Count,
    ["searchRecoverySeconds"] = Distribution(roundReports.Select(r => r!["searchesRecoveredSeconds"]?.GetValue<double>())),
    ["ingestionRecoverySeconds"] = Distribution(roundReports.Select(r => r!["ingestionRecoveredSeconds"]?.GetValue<double>())),
    ["declaredDeadSeconds"] = Distribution(roundReports.Select(r => r!["declaredDeadSeconds"]?.GetValue<double>())),
    ["acknowledgedDuringWorkload"] = tenants.Sum(t => t.Acknowledged.Count),
    ["unacknowledgedUploads"] = unacknowledged.Count,
    ["unacknowledgedRetriedOutcome"] = Counts(retried.Select(r => r.Outcome)),
    ["expectedDocuments"] = expected.Count,
    ["acknowledgedButNotFound"] = notFound.Count,
    ["stuckAfterWorkload"] = stuckAfterWorkload,
    ["settleSeconds"] = settleSeconds,
    ["storeProblems"] = new JsonArray([.. storeProblems.Select(p => JsonValue.Create(p))]),
    ["tenantsDetail"] = tenantReports,
    ["roundsDetail"] = roundReports,
    ["loadAverageAtStart"] = new JsonArray([.. run.LoadAverageAtStart.Select(v => JsonValue.Create(v))]),
    ["loadAverageAtEnd"] = new JsonArray([.. ProcessStats.LoadAverage().Select(v => JsonValue.Create(v))]),
};
var json = summary.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
Console.WriteLine(json);
if (args_.Json is { } file)
{
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(file))!);
    await File.WriteAllTextAsync(file, json + "\n");
    Log($"written to {Path.GetFullPath(file)}");
}

foreach (var v in violations.Take(20))
{
    Log($"violation: {v.Kind} {v.Tenant} via {v.Frontend} at {v.Start.TotalSeconds:F1}s: {v.Status} {v.Detail}");
}

foreach (var line in notFound.Take(20).Concat(storeProblems))
{
    Log("PROBLEM " + line);
}

var ok = notFound.Count == 0 && storeProblems.Count == 0 && stuckAfterWorkload == 0 && violations.Count == 0
    && roundReports.All(r => r!["searchesRecoveredSeconds"] is not null);
Log(ok ? "PASS: nothing acknowledged was lost, no duplicate, nothing stuck" : "FAIL: see above and the JSON");
foreach (var t in tenants)
{
    t.Dispose();
}

return ok ? 0 : 1;

async Task<List<string>> StuckAsync()
{
    await using var connection = new NpgsqlConnection(postgres);
    await connection.OpenAsync();
    await using var command = new NpgsqlCommand("SELECT tenant || '/' || id FROM documents WHERE tenant = ANY(@t) AND status IN (0, 1)", connection);
    command.Parameters.AddWithValue("t", tenants.Select(t => t.Tenant).ToArray());
    var rows = new List<string>();
    await using var reader = await command.ExecuteReaderAsync();
    while (await reader.ReadAsync())
    {
        rows.Add(reader.GetString(0));
    }

    return rows;
}

async Task<Dictionary<string, (int Status, int Chunks)>> DocumentsAsync(string tenant)
{
    await using var connection = new NpgsqlConnection(postgres);
    await connection.OpenAsync();
    await using var command = new NpgsqlCommand("SELECT id, status, chunk_count FROM documents WHERE tenant = @t AND collection = @c", connection);
    command.Parameters.AddWithValue("t", tenant);
    command.Parameters.AddWithValue("c", collection);
    var rows = new Dictionary<string, (int, int)>(StringComparer.Ordinal);
    await using var reader = await command.ExecuteReaderAsync();
    while (await reader.ReadAsync())
    {
        rows[reader.GetString(0)] = (reader.GetInt32(1), reader.GetInt32(2));
    }

    return rows;
}

// The chunks the shards hold after replaying their logs: adds after the document's last delete, per (shard,
// document, ordinal), with how many copies of each the log would add.
async Task<List<(string Shard, string DocId, int Ordinal, long Copies)>> LiveChunksAsync(string tenant)
{
    await using var connection = new NpgsqlConnection(postgres);
    await connection.OpenAsync();
    await using var command = new NpgsqlCommand(
        """
        WITH deletes AS (
            SELECT shard, doc_id, max(seq) AS seq FROM chunk_log WHERE shard LIKE @p AND op = 2 GROUP BY shard, doc_id)
        SELECT c.shard, c.doc_id, c.ordinal, count(*) FROM chunk_log c
        LEFT JOIN deletes d ON d.shard = c.shard AND d.doc_id = c.doc_id
        WHERE c.shard LIKE @p AND c.op = 1 AND (d.seq IS NULL OR c.seq > d.seq)
        GROUP BY c.shard, c.doc_id, c.ordinal
        """, connection);
    command.Parameters.AddWithValue("p", $"{tenant}/{collection}/%");
    var rows = new List<(string, string, int, long)>();
    await using var reader = await command.ExecuteReaderAsync();
    while (await reader.ReadAsync())
    {
        rows.Add((reader.GetString(0), reader.GetString(1), reader.GetInt32(2), reader.GetInt64(3)));
    }

    return rows;
}

// Broad searches (top 50) over words every probe uses: a chunk listed twice in one answer is a duplicate.
async Task<int> DuplicateHitsAsync(HttpClient http, Workload tenant)
{
    var duplicates = 0;
    foreach (var query in new[] { $"Probe of {tenant.Tenant}", "the near the while the Marker", "amber granite falcon lantern" })
    {
        var hits = await http.Search(collection, query, topK: 50);
        duplicates += hits.Count - hits.Select(h => h.ChunkId).Distinct(StringComparer.Ordinal).Count();
    }

    return duplicates;
}

async Task<Workload> CreateWorkloadAsync(int t)
{
    var id = $"chaos{t}-{Guid.NewGuid().ToString("N")[..8]}";
    var adminKey = await cluster.Frontends[t % cluster.Frontends.Count].CreateTenant(cluster.OperatorKey, id);
    using var admin = cluster.Frontends[0].Client(adminKey);
    await admin.CreateCollection(collection, shards);
    var (_, userKey) = await admin.CreateKey("user", "reader");
    var workload = new Workload(id, collection, cluster.Frontends, adminKey, userKey, clock);
    for (var i = 0; i < 3; i++)
    {
        var (docId, text) = workload.NextDocument();
        await admin.Ingest(collection, docId, text);
        workload.Acknowledge(docId, text, clock.Elapsed);
    }

    return workload;
}

static JsonObject Distribution(IEnumerable<double?> values)
{
    var list = values.Where(v => v is not null).Select(v => v!.Value).Order().ToList();
    return new JsonObject
    {
        ["count"] = list.Count,
        ["min"] = list.Count > 0 ? list[0] : null,
        ["median"] = list.Count > 0 ? Stats.Percentile(list, 50) : null,
        ["p90"] = list.Count > 0 ? Stats.Percentile(list, 90) : null,
        ["max"] = list.Count > 0 ? list[^1] : null,
    };
}

static void Log(string message) => Console.WriteLine($"{DateTime.UtcNow:HH:mm:ss} {message}");
