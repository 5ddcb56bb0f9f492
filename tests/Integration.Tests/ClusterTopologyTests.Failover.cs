using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit;

namespace RagOrleans.Integration.Tests;

public sealed partial class ClusterTopologyTests
{
    /// <summary>How long the workload keeps going after the kill (longer only while searches still fail).</summary>
    private static readonly TimeSpan AfterKill = TimeSpan.FromSeconds(15);

    /// <summary>Searches must succeed again within this time after the kill.</summary>
    private static readonly TimeSpan MaxRecovery = TimeSpan.FromSeconds(60);

    private static readonly string[] Words =
    [
        "amber", "basalt", "cobalt", "dune", "ember", "fjord", "granite", "harbor", "indigo", "juniper", "kelp", "lagoon",
        "meadow", "nebula", "orchard", "prairie", "quartz", "reef", "savanna", "tundra", "umber", "valley", "willow", "zenith",
        "falcon", "otter", "heron", "lynx", "badger", "walrus", "bison", "gecko", "marmot", "osprey", "puffin", "salmon",
        "lantern", "compass", "anchor", "saddle", "kettle", "loom", "anvil", "chisel", "barrel", "ladder", "mortar", "sickle",
        "drifts", "glows", "hums", "melts", "rusts", "sings", "sways", "wanders", "whistles", "blooms", "crumbles", "shimmers",
    ];

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
            var workload = new Workload(id, Cluster.Frontends, adminKey, userKey, clock);
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

    private static JsonObject Counts(IEnumerable<string> values) =>
        new(values.GroupBy(v => v).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => KeyValuePair.Create(g.Key, (JsonNode?)g.Count())));

    private static double Seconds(TimeSpan t) => Math.Round(t.TotalSeconds, 2);

    /// <summary>
    /// When requests of this kind succeeded again, relative to the kill: the end of the first success among the
    /// requests started after the kill that started after the last failing one of them (the first success at all
    /// when none of them failed); null when there is none.
    /// </summary>
    private static TimeSpan? RecoveredAfter(IEnumerable<Attempt> attempts, TimeSpan killAt)
    {
        var after = attempts.Where(a => a.Start >= killAt).ToList();
        var failures = after.Where(a => a.Outcome is not (Outcome.Ok or Outcome.Accepted)).ToList();
        var from = failures.Count == 0 ? killAt : failures.Max(a => a.Start);
        var success = after.Where(a => a.Outcome == Outcome.Ok && a.Start >= from && !failures.Contains(a)).OrderBy(a => a.End).FirstOrDefault();
        return success?.End - killAt;
    }

    private static string Summary(IReadOnlyList<Attempt> attempts, TimeSpan? origin = null) =>
        attempts.Count == 0
            ? "(none)"
            : string.Join('\n', attempts.Take(60).Select(a =>
                $"  {a.Kind} {a.Tenant} via {a.Frontend} at {(a.Start - (origin ?? TimeSpan.Zero)).TotalSeconds:+0.00;-0.00}s for {(a.End - a.Start).TotalSeconds:F2}s: {a.Outcome} {a.Status} {a.Detail}"))
              + (attempts.Count > 60 ? $"\n  … {attempts.Count - 60} more" : "");

    /// <summary>How a request ended.</summary>
    private enum Outcome
    {
        /// <summary>200: indexed (ingestion) or the expected top hit (search).</summary>
        Ok,

        /// <summary>202: stored, not indexed within the request's wait.</summary>
        Accepted,

        /// <summary>A 5xx with an RFC 7807 problem body.</summary>
        Failed5xx,

        /// <summary>No HTTP answer (connection refused or reset).</summary>
        ConnectionError,

        /// <summary>Anything else: a wrong answer, a 4xx, a 5xx without a problem body, no answer in time.</summary>
        Violation,
    }

    /// <summary>One request of the workload (times relative to the test's clock).</summary>
    private sealed record Attempt(string Kind, string Tenant, string Frontend, string? DocumentId, TimeSpan Start, TimeSpan End, int Status, Outcome Outcome, string Detail);

    /// <summary>One tenant's continuous ingestion and search, alternating between the frontends.</summary>
    private sealed class Workload(string tenant, IReadOnlyList<ClusterNode> frontends, string adminKey, string userKey, Stopwatch clock) : IDisposable
    {
        private const int MaxInFlight = 64;
        private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(60);
        private readonly List<HttpClient> _admins = [.. frontends.Select(f => f.Client(adminKey, RequestTimeout))];
        private readonly List<HttpClient> _users = [.. frontends.Select(f => f.Client(userKey, RequestTimeout))];
        private readonly List<Attempt> _attempts = [];
        private readonly List<(string Id, string Text, TimeSpan At)> _acknowledged = [];
        private readonly List<string> _accepted = [];
        private readonly Dictionary<string, string> _uploads = [];
        private int _next;

        public string Tenant => tenant;

        public void Dispose()
        {
            foreach (var http in _admins.Concat(_users))
            {
                http.Dispose();
            }
        }

        public IReadOnlyList<Attempt> Attempts { get { lock (_attempts) { return [.. _attempts]; } } }

        public IReadOnlyList<(string Id, string Text, TimeSpan At)> Acknowledged { get { lock (_acknowledged) { return [.. _acknowledged]; } } }

        public IReadOnlyList<string> Accepted { get { lock (_accepted) { return [.. _accepted]; } } }

        /// <summary>A new document id and a short text no other document shares (distinct words and a unique code).</summary>
        public (string Id, string Text) NextDocument()
        {
            var n = Interlocked.Increment(ref _next);
            string Word() => Words[Random.Shared.Next(Words.Length)];
            var code = "q" + Convert.ToHexStringLower(Guid.NewGuid().ToByteArray()[..5]);
            return ($"p{n:D5}", $"Probe {n} of {tenant}: the {Word()} {Word()} {Word()} near the {Word()} {Word()} while the {Word()} {Word()}. Marker {code}.");
        }

        public void Acknowledge(string id, string text, TimeSpan at)
        {
            lock (_acknowledged)
            {
                _acknowledged.Add((id, text, at));
            }
        }

        /// <summary>True when a search started after the kill, and after the last failed one, has succeeded.</summary>
        public bool SearchesRecovered(TimeSpan killAt) => RecoveredAfter(Attempts.Where(a => a.Kind == "search"), killAt) is not null;

        /// <summary>Uploads a new document with <c>?wait=true</c> every <paramref name="interval"/>, whatever earlier uploads are doing.</summary>
        public Task IngestLoop(TimeSpan interval, CancellationToken stop) => Paced(interval, stop, async i =>
        {
            var (id, text) = NextDocument();
            lock (_uploads)
            {
                _uploads[id] = text;
            }

            var attempt = await Send("ingest", i, id, async http =>
            {
                using var response = await http.PostAsJsonAsync($"/v1/collections/{Collection}/documents?wait=true&timeoutSeconds=20", new { id, text });
                var body = await response.Content.ReadAsStringAsync();
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    var status = JsonNode.Parse(body).Str("status");
                    return status == "indexed" ? (200, Outcome.Ok, "") : (200, Outcome.Violation, "answered 200 with status " + body);
                }

                return response.StatusCode == HttpStatusCode.Accepted ? (202, Outcome.Accepted, body) : Classify(response, body);
            });
            if (attempt.Outcome == Outcome.Ok)
            {
                Acknowledge(id, text, attempt.End);
            }
            else if (attempt.Outcome == Outcome.Accepted)
            {
                lock (_accepted)
                {
                    _accepted.Add(id);
                }
            }
        });

        /// <summary>Every <paramref name="interval"/>, searches the exact text of a document acknowledged earlier and expects it first.</summary>
        public Task SearchLoop(TimeSpan interval, CancellationToken stop) => Paced(interval, stop, async i =>
        {
            var known = Acknowledged;
            var (id, text, _) = known[Random.Shared.Next(known.Count)];
            await Send("search", i, id, async http =>
            {
                using var response = await http.PostAsJsonAsync($"/v1/collections/{Collection}/search", new { query = text, topK = 3 });
                var body = await response.Content.ReadAsStringAsync();
                if (response.StatusCode != HttpStatusCode.OK)
                {
                    return Classify(response, body);
                }

                var hits = ClusterApi.Hits(JsonNode.Parse(body)!);
                return hits.Count > 0 && hits[0].DocumentId == id
                    ? (200, Outcome.Ok, "")
                    : (200, Outcome.Violation, $"wrong answer: expected {id} first, got [{string.Join(", ", hits.Select(h => h.DocumentId))}]");
            });
        });

        /// <summary>Null when the document is indexed and its own text finds it first; else what is wrong.</summary>
        public async Task<string?> VerifyAsync(string id, string text)
        {
            var http = _users[Random.Shared.Next(_users.Count)];
            using var document = await http.GetAsync(new Uri($"/v1/collections/{Collection}/documents/{id}", UriKind.Relative));
            var body = await document.Content.ReadAsStringAsync();
            if (document.StatusCode != HttpStatusCode.OK || JsonNode.Parse(body).Str("status") != "indexed")
            {
                return $"GET answered {(int)document.StatusCode}: {body}";
            }

            using var search = await http.PostAsJsonAsync($"/v1/collections/{Collection}/search", new { query = text, topK = 3 });
            body = await search.Content.ReadAsStringAsync();
            if (search.StatusCode != HttpStatusCode.OK)
            {
                return $"search answered {(int)search.StatusCode}: {body}";
            }

            var hits = ClusterApi.Hits(JsonNode.Parse(body)!);
            return hits.Count > 0 && hits[0].DocumentId == id ? null : $"search for its text found [{string.Join(", ", hits.Select(h => h.DocumentId))}]";
        }

        /// <summary>Sends an earlier upload again (same id and text) with <c>?wait=true</c>; returns its outcome.</summary>
        public async Task<string> RetryUploadAsync(string id)
        {
            var text = UploadText(id);
            using var response = await _admins[0].PostAsJsonAsync($"/v1/collections/{Collection}/documents?wait=true&timeoutSeconds=15", new { id, text });
            var body = await response.Content.ReadAsStringAsync();
            var outcome = response.StatusCode is HttpStatusCode.OK or HttpStatusCode.Accepted
                ? $"{(int)response.StatusCode} {JsonNode.Parse(body).Str("status")}"
                : $"{(int)response.StatusCode}";
            return outcome;
        }

        /// <summary>The text of an earlier upload.</summary>
        public string UploadText(string id)
        {
            lock (_uploads)
            {
                return _uploads[id];
            }
        }

        /// <summary>The document's status now ("missing" when the collection does not know it).</summary>
        public async Task<string> StatusAsync(string id)
        {
            using var response = await _users[0].GetAsync(new Uri($"/v1/collections/{Collection}/documents/{id}", UriKind.Relative));
            var body = await response.Content.ReadAsStringAsync();
            return response.StatusCode switch
            {
                HttpStatusCode.OK => JsonNode.Parse(body).Str("status"),
                HttpStatusCode.NotFound => "missing",
                _ => $"http-{(int)response.StatusCode}",
            };
        }

        /// <summary>
        /// Starts <paramref name="request"/> every <paramref name="interval"/> (at most <see cref="MaxInFlight"/> at once), so a
        /// request that hangs does not hide when new ones succeed again; returns when stopped and all have finished.
        /// </summary>
        private static async Task Paced(TimeSpan interval, CancellationToken stop, Func<int, Task> request)
        {
            using var slots = new SemaphoreSlim(MaxInFlight);
            var running = new List<Task>();
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                await slots.WaitAsync(CancellationToken.None);
                var n = i;
                running.Add(Task.Run(async () =>
                {
                    try
                    {
                        await request(n);
                    }
                    finally
                    {
                        slots.Release();
                    }
                }, CancellationToken.None));
                try
                {
                    await Task.Delay(interval, stop);
                }
                catch (OperationCanceledException)
                {
                }
            }

            await Task.WhenAll(running);
        }

        private async Task<Attempt> Send(string kind, int i, string id, Func<HttpClient, Task<(int Status, Outcome Outcome, string Detail)>> request)
        {
            var frontend = i % frontends.Count;
            var http = kind == "ingest" ? _admins[frontend] : _users[frontend];
            var start = clock.Elapsed;
            (int Status, Outcome Outcome, string Detail) result;
            try
            {
                result = await request(http);
            }
            catch (HttpRequestException e)
            {
                result = (0, Outcome.ConnectionError, e.Message);
            }
            catch (TaskCanceledException)
            {
                result = (0, Outcome.Violation, $"no answer within {RequestTimeout.TotalSeconds} s");
            }
            catch (JsonException e)
            {
                result = (0, Outcome.Violation, "unreadable answer: " + e.Message);
            }

            var attempt = new Attempt(kind, tenant, frontends[frontend].Name, id, start, clock.Elapsed, result.Status, result.Outcome, result.Detail);
            lock (_attempts)
            {
                _attempts.Add(attempt);
            }

            return attempt;
        }

        private static (int, Outcome, string) Classify(HttpResponseMessage response, string body)
        {
            var status = (int)response.StatusCode;
            var isProblem = response.Content.Headers.ContentType?.MediaType == "application/problem+json"
                && TryParse(body)?["status"]?.GetValue<int>() == status;
            var detail = body.Length > 300 ? body[..300] : body;
            return status >= 500 && isProblem ? (status, Outcome.Failed5xx, detail) : (status, Outcome.Violation, "unexpected answer: " + detail);
        }

        private static JsonNode? TryParse(string body)
        {
            try
            {
                return JsonNode.Parse(body);
            }
            catch (JsonException)
            {
                return null;
            }
        }
    }
}
