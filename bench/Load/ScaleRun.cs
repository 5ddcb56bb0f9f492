using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using RagOrleans.Grains.Tenancy;

namespace RagOrleans.Bench.Load;

/// <summary>A full-size scenario of issue 9 item 3: <see cref="Tenants"/> tenants of <see cref="Chunks"/> chunks each.</summary>
internal sealed record ScaleScenario(string Name, int Tenants, int Chunks)
{
    /// <summary><c>big100k</c> (one tenant, 100,000 chunks) or <c>tenants1000</c> (1,000 tenants of 1,000), sizes overridable for smoke runs.</summary>
    public static ScaleScenario Parse(string name, int tenants, int chunks) => name switch
    {
        "big100k" => new("big100k", tenants > 0 ? tenants : 1, chunks > 0 ? chunks : 100_000),
        "tenants1000" => new("tenants1000", tenants > 0 ? tenants : 1_000, chunks > 0 ? chunks : 1_000),
        _ => throw new ArgumentException($"Unknown --scale '{name}': use big100k or tenants1000."),
    };
}

internal sealed record ScaleState(ScaleScenario Scenario, TenantTarget[] Targets, ScaleSample[] Samples, ScaleSetup Setup);

/// <summary>How the data got in: archive build (bulk loader, in this process) and import over HTTP, per tenant.</summary>
internal sealed record ScaleSetup(
    double WallSeconds, double BuildSecondsTotal, double ImportSecondsTotal, double ImportP50Ms, double ImportP99Ms, double ImportMaxMs,
    double ArchiveMegabytesTotal, long Documents, long Chunks, double ImportChunksPerSecond, double[] LoadAverageAtEnd);

/// <summary>Latency of one pass of single requests (first touches of cold tenants, or the same requests again warm).</summary>
internal sealed record TouchResult(string Name, int Requests, int Errors, double Seconds, double P50Ms, double P90Ms, double P99Ms, double MaxMs, string? FirstError);

/// <summary>The shards' own snapshot-load time at activation (as the prewarm endpoint reports it), over all tenants.</summary>
internal sealed record ShardLoadResult(int Shards, double P50Ms, double P90Ms, double P99Ms, double MaxMs);

/// <summary>The searchable check: sampled chunks searched by their own text.</summary>
internal sealed record VerifyResult(int Samples, int VectorTop1, int VectorTop10, int KeywordTop10);

internal sealed record ScaleReport(
    string Benchmark, ScaleScenario Scenario, LoadOptions Options, string DataDir, ScaleSetup Setup, double ServiceStartSeconds,
    double RssIdleMb, double? ColdPrewarmMs, double? ColdShardLoadMs, VerifyResult Verify, IReadOnlyList<TouchResult> Touches,
    ShardLoadResult? ShardLoads, double PrewarmAllMs, double RssAllActiveMb, IReadOnlyList<PhaseResult> Phases, double RssEndMb, double PeakRssMb, RunInfo Run);

/// <summary>
/// The full-size runs: bulk-load (build archives in process, import them over HTTP into the real frontend), restart the
/// service so every tenant is cold, check the data is searchable, time cold and warm first touches, then run the same
/// search phases as the small scenarios.
/// </summary>
internal static class ScaleRun
{
    private const int SamplesTotal = 40;
    private const string OperatorKey = "bench-load-operator-key-0123456789abcdef";

    public static async Task<int> RunAsync(ScaleScenario scenario, LoadOptions options, string frontend, List<SciFactDoc> corpus, List<string> claims, RunInfo run, string? json, string? dataOverride)
    {
        var dataDir = dataOverride ?? Path.Combine(BenchPaths.CacheDirectory(), $"load-scale-t{scenario.Tenants}x{scenario.Chunks}");
        var stateFile = Path.Combine(dataDir, "bench-scale-state.json");
        ScaleState state;
        if (File.Exists(stateFile))
        {
            state = JsonSerializer.Deserialize<ScaleState>(File.ReadAllText(stateFile))!;
            Console.WriteLine($"reusing {dataDir} (delete it to bulk-load again); set-up took {state.Setup.WallSeconds:F0} s");
        }
        else
        {
            // A half-done set-up (interrupted) cannot be resumed: tenants that exist refuse a second import.
            if (Directory.Exists(dataDir))
            {
                Directory.Delete(dataDir, recursive: true);
            }

            Directory.CreateDirectory(dataDir);
            state = await BulkLoadAsync(scenario, frontend, dataDir);
            File.WriteAllText(stateFile, JsonSerializer.Serialize(state));
        }

        // A fresh process: every tenant is cold, as after a restart or a deployment.
        Console.WriteLine($"\nstarting the service on {dataDir}; load average {string.Join(' ', ProcessStats.LoadAverage())}");
        var startWatch = Stopwatch.StartNew();
        await using var service = await Service.StartAsync(frontend, dataDir, OperatorKey);
        var startSeconds = startWatch.Elapsed.TotalSeconds;
        await Task.Delay(2000);
        var rssIdle = service.RssMb();
        Console.WriteLine($"service ready in {startSeconds:F1} s; RSS idle {rssIdle:F0} MB");

        var targets = state.Targets;
        double? coldPrewarm = null, coldLoad = null;
        if (targets.Length == 1)
        {
            // One big tenant: its cold activation is the prewarm of its shard from the imported snapshot.
            (coldPrewarm, coldLoad) = await PrewarmOneAsync(service, targets[0]);
            Console.WriteLine($"cold prewarm of {targets[0].Chunks:N0} chunks: {coldPrewarm:F0} ms over HTTP, shard load {coldLoad:F0} ms; RSS {service.RssMb():F0} MB");
        }

        var verify = await VerifyAsync(service, targets, state.Samples);
        var cachedQueries = claims.Take(200).ToArray();
        var touches = new List<TouchResult>();
        if (targets.Length > 1)
        {
            // The query embeddings are made cached first (on a tenant the check already woke), so first touches
            // measure what being cold costs (tenant, collection and shard activation; snapshot load), not the embedder.
            var sampleTenants = state.Samples.Select(s => s.Tenant).ToHashSet();
            using (var warmer = service.Client(targets[state.Samples[0].Tenant].Key))
            {
                foreach (var q in cachedQueries)
                {
                    using var response = await Search(warmer, q, "hybrid");
                    response.EnsureSuccessStatusCode();
                }
            }

            var coldTargets = targets.Where((_, i) => !sampleTenants.Contains(i)).ToArray();
            if (coldTargets.Length == 0)
            {
                throw new InvalidOperationException("Every tenant was woken by the searchable check: use more tenants.");
            }

            // Half the cold tenants one at a time (the latency of being cold alone), half with 8 clients (under
            // concurrency); then the same requests again, now warm, the same way.
            var alone = coldTargets[..(coldTargets.Length / 2)];
            var together = coldTargets[(coldTargets.Length / 2)..];
            touches.Add(await TouchAsync(service, alone, cachedQueries, "cold first touch, 1 client", 1));
            touches.Add(await TouchAsync(service, together, cachedQueries, $"cold first touch, {options.Clients} clients", options.Clients));
            var rssCold = service.RssMb();
            touches.Add(await TouchAsync(service, alone, cachedQueries, "warm, same requests, 1 client", 1));
            touches.Add(await TouchAsync(service, together, cachedQueries, $"warm, same requests, {options.Clients} clients", options.Clients));
            Console.WriteLine($"RSS after touching {coldTargets.Length} tenants: {rssCold:F0} MB");
        }

        // Every shard is active by now; each reports how long its activation spent loading its snapshot.
        var prewarmWatch = Stopwatch.StartNew();
        var loads = new List<double>(targets.Length);
        foreach (var t in targets)
        {
            loads.Add((await PrewarmOneAsync(service, t)).LoadMs);
        }

        var prewarmAll = prewarmWatch.Elapsed.TotalMilliseconds;
        loads.Sort();
        var shardLoads = new ShardLoadResult(loads.Count, Stats.Percentile(loads, 50), Stats.Percentile(loads, 90), Stats.Percentile(loads, 99), loads[^1]);
        Console.WriteLine($"shard snapshot load at activation (inside the silo), {loads.Count} shard(s): p50 {shardLoads.P50Ms:F1} ms  p90 {shardLoads.P90Ms:F1}  p99 {shardLoads.P99Ms:F1}  max {shardLoads.MaxMs:F1}");
        await Task.Delay(1000);
        var rssActive = service.RssMb();
        Console.WriteLine($"prewarm of all {targets.Length} tenant(s) (already active): {prewarmAll:F0} ms; RSS with every shard active {rssActive:F0} MB");

        var uncached = new UncachedQueries(corpus, claims.Skip(200));
        Console.WriteLine($"\n{scenario.Name}: {targets.Length} tenant(s), {targets.Sum(t => t.Chunks):N0} chunks; {options.Clients} clients, {options.Seconds} s per phase; load average {string.Join(' ', ProcessStats.LoadAverage())}");
        var phases = await Driver.RunPhasesAsync(service, targets, cachedQueries, uncached, options);

        var rssEnd = service.RssMb();
        var peak = service.PeakRssMb();
        var report = new ScaleReport("load-scale", scenario, options, dataDir, state.Setup, startSeconds, rssIdle, coldPrewarm, coldLoad, verify, touches,
            shardLoads, prewarmAll, rssActive, phases, rssEnd, peak, run.Finish());
        Console.WriteLine($"RSS at end {rssEnd:F0} MB, peak {peak:F0} MB; load average at end {string.Join(' ', report.Run.LoadAverageAtEnd)}");
        if (json is not null)
        {
            JsonReport.Write(json, report);
        }

        await service.StopAsync();
        return phases.Any(p => p.Errors > 0) || touches.Any(t => t.Errors > 0) ? 1 : 0;
    }

    /// <summary>Builds each tenant's archive (2 workers) and imports it over HTTP as soon as it is built; archives are deleted once imported.</summary>
    private static async Task<ScaleState> BulkLoadAsync(ScaleScenario scenario, string frontend, string dataDir)
    {
        // Rows 0..999 of the cache are bench/Ann's held-apart queries; tenants take windows of the 100,000 after them.
        const int HeldApart = 1000;
        var rows = RealEmbeddings.Load(BenchPaths.SharedData(), HeldApart + 100_000, embedMissing: false);
        var baseRows = rows.Texts.Count - HeldApart;
        if (scenario.Chunks > baseRows)
        {
            throw new ArgumentOutOfRangeException(nameof(scenario), scenario.Chunks, $"At most {baseRows:N0} chunks per tenant.");
        }

        var archives = Path.Combine(dataDir, "archives-tmp");
        Directory.CreateDirectory(archives);
        await using var service = await Service.StartAsync(frontend, dataDir, OperatorKey);
        var targets = new TenantTarget[scenario.Tenants];
        var samples = new List<ScaleSample>[scenario.Tenants];
        var buildMs = new double[scenario.Tenants];
        var importMs = new double[scenario.Tenants];
        long bytes = 0, documents = 0;
        // The big tenant: 40 samples. Many tenants: one sample in each of up to 40 tenants (a tenth at most, so the
        // rest stay untouched for the cold first-touch measurement).
        var samplesPerTenant = scenario.Tenants == 1 ? SamplesTotal : 1;
        var sampleTenants = scenario.Tenants == 1 ? 1 : Math.Clamp(scenario.Tenants / 10, 1, SamplesTotal);
        var sampleEvery = Math.Max(1, scenario.Tenants / sampleTenants);
        var now = DateTimeOffset.UtcNow;
        var wall = Stopwatch.StartNew();
        var next = -1;
        var done = 0;
        Console.WriteLine($"bulk load: {scenario.Tenants:N0} tenant(s) x {scenario.Chunks:N0} chunks ({ScaleArchive.ChunksPerDocument} chunks per document)");

        // Two builders (CPU: the HNSW graph) feed two importers (mostly the service's disk writes), so both overlap.
        var built = System.Threading.Channels.Channel.CreateBounded<(int Tenant, NewApiKey Key, BuiltArchive Archive)>(4);
        var builders = Task.WhenAll(Enumerable.Range(0, Math.Min(2, scenario.Tenants)).Select(_ => Task.Run(async () =>
        {
            int t;
            while ((t = Interlocked.Increment(ref next)) < scenario.Tenants)
            {
                var tenantId = TenantId(scenario, t);
                var start = HeldApart + (scenario.Tenants == 1 ? 0 : (int)((long)t * 7919 % (baseRows - scenario.Chunks + 1)));
                var chunks = new ScaleChunk[scenario.Chunks];
                for (var i = 0; i < chunks.Length; i++)
                {
                    chunks[i] = new ScaleChunk(rows.Texts[start + i], rows.Vectors[start + i]);
                }

                var key = ApiKeySecrets.Create(tenantId);
                var watch = Stopwatch.StartNew();
                var archive = ScaleArchive.Write(Path.Combine(archives, tenantId + ".zip"), tenantId, t, key, chunks,
                    t % sampleEvery == 0 && t / sampleEvery < sampleTenants ? samplesPerTenant : 0, now);
                buildMs[t] = watch.Elapsed.TotalMilliseconds;
                await built.Writer.WriteAsync((t, key, archive));
            }
        })));
        var importers = Task.WhenAll(Enumerable.Range(0, 2).Select(_ => Task.Run(async () =>
        {
            await foreach (var (t, key, archive) in built.Reader.ReadAllAsync())
            {
                var watch = Stopwatch.StartNew();
                try
                {
                    await ImportAsync(service, archive.Path);
                }
                catch (Exception e)
                {
                    // Stops the builders too (their next write fails) instead of leaving them blocked on a full channel.
                    built.Writer.TryComplete(e);
                    throw;
                }

                importMs[t] = watch.Elapsed.TotalMilliseconds;
                File.Delete(archive.Path);
                targets[t] = new TenantTarget(TenantId(scenario, t), key.Key, ScaleArchive.Collection, archive.Chunks);
                samples[t] = [.. archive.Samples];
                Interlocked.Add(ref bytes, archive.Bytes);
                Interlocked.Add(ref documents, archive.Documents);
                var n = Interlocked.Increment(ref done);
                if (scenario.Tenants == 1 || n % 50 == 0 || n == scenario.Tenants)
                {
                    Console.WriteLine($"  {n}/{scenario.Tenants} imported ({wall.Elapsed.TotalSeconds:F0} s; last: build {buildMs[t]:F0} ms, {archive.Bytes / 1e6:F1} MB archive, import {importMs[t]:F0} ms)");
                }
            }
        })));
        try
        {
            await builders;
        }
        finally
        {
            built.Writer.TryComplete();
        }

        await importers;
        Directory.Delete(archives, recursive: true);
        var sorted = importMs.Order().ToList();
        var chunksTotal = (long)scenario.Tenants * scenario.Chunks;
        var setup = new ScaleSetup(wall.Elapsed.TotalSeconds, buildMs.Sum() / 1000, importMs.Sum() / 1000, Stats.Percentile(sorted, 50), Stats.Percentile(sorted, 99),
            sorted[^1], bytes / 1e6, documents, chunksTotal, chunksTotal / (importMs.Sum() / 1000), ProcessStats.LoadAverage());
        Console.WriteLine($"bulk load done in {setup.WallSeconds:F0} s: build {setup.BuildSecondsTotal:F0} s, import {setup.ImportSecondsTotal:F0} s in total " +
            $"(per tenant p50 {setup.ImportP50Ms:F0} ms, p99 {setup.ImportP99Ms:F0} ms; {setup.ImportChunksPerSecond:F0} chunks/s imported), {setup.ArchiveMegabytesTotal:F0} MB of archives");
        await service.StopAsync();
        return new ScaleState(scenario, targets, samples.SelectMany(s => s).ToArray(), setup);
    }

    private static string TenantId(ScaleScenario scenario, int t) => scenario.Tenants == 1 ? "scale-big" : $"scale-t{t:D4}";

    private static async Task ImportAsync(Service service, string archive)
    {
        using var op = service.Client(OperatorKey);
        await using var file = File.OpenRead(archive);
        using var content = new StreamContent(file, 1 << 16);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/zip");
        using var response = await op.PostAsync("/v1/tenants/import", content);
        if (response.StatusCode != HttpStatusCode.Created)
        {
            throw new HttpRequestException($"Import of {Path.GetFileName(archive)} failed: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
    }

    private static async Task<(double HttpMs, double LoadMs)> PrewarmOneAsync(Service service, TenantTarget target)
    {
        using var client = service.Client(target.Key);
        var watch = Stopwatch.StartNew();
        using var response = await client.PostAsync($"/v1/collections/{target.Collection}/prewarm", null);
        response.EnsureSuccessStatusCode();
        var elapsed = watch.Elapsed.TotalMilliseconds;
        var body = (await response.Content.ReadFromJsonAsync<JsonNode>())!;
        var load = body["shards"]!.AsArray().Sum(s => s!["loadMs"]!.GetValue<double>());
        return (elapsed, load);
    }

    /// <summary>
    /// Each sampled chunk searched by its own text: the vector search must rank the chunk itself first (the same text
    /// embeds to the same vector) and the keyword search must return its document. Refuses to time a store that fails.
    /// </summary>
    private static async Task<VerifyResult> VerifyAsync(Service service, TenantTarget[] targets, ScaleSample[] samples)
    {
        int top1 = 0, top10 = 0, keyword = 0;
        foreach (var s in samples)
        {
            using var client = service.Client(targets[s.Tenant].Key);
            var vector = await ResultsAsync(client, s.Text, "vector");
            top1 += vector.Count > 0 && vector[0].ChunkId == s.ChunkId ? 1 : 0;
            top10 += vector.Any(r => r.ChunkId == s.ChunkId) ? 1 : 0;
            keyword += (await ResultsAsync(client, s.Text, "keyword")).Any(r => r.DocumentId == s.DocumentId) ? 1 : 0;
        }

        var result = new VerifyResult(samples.Length, top1, top10, keyword);
        Console.WriteLine($"searchable check on {samples.Length} sampled chunks of {samples.Select(s => s.Tenant).Distinct().Count()} tenant(s), each searched by its own text: " +
            $"vector top-1 {top1}, vector top-10 {top10}, keyword (its document in the top 10) {keyword}");
        if (samples.Length == 0 || top10 < samples.Length * 0.95 || keyword < samples.Length * 0.95)
        {
            throw new InvalidOperationException("The restored data is not searchable as expected; not timing it.");
        }

        return result;
    }

    private static async Task<List<(string DocumentId, string ChunkId)>> ResultsAsync(HttpClient client, string query, string mode)
    {
        using var response = await Search(client, query, mode);
        response.EnsureSuccessStatusCode();
        var body = (await response.Content.ReadFromJsonAsync<JsonNode>())!;
        return body["results"]!.AsArray().Select(r => (r!["documentId"]!.GetValue<string>(), r["chunkId"]!.GetValue<string>())).ToList();
    }

    /// <summary>One request per target, <paramref name="clients"/> at a time: the latency of each.</summary>
    private static async Task<TouchResult> TouchAsync(Service service, TenantTarget[] targets, string[] queries, string name, int clients)
    {
        var latencies = new double[targets.Length];
        var next = -1;
        var errors = 0;
        string? firstError = null;
        var watch = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < targets.Length)
            {
                using var client = service.Client(targets[i].Key);
                var start = Stopwatch.GetTimestamp();
                using var response = await Search(client, queries[i % queries.Length], "hybrid");
                await response.Content.CopyToAsync(Stream.Null);
                latencies[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                if (response.StatusCode != HttpStatusCode.OK)
                {
                    Interlocked.Increment(ref errors);
                    firstError ??= $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
                }
            }
        })));
        var seconds = watch.Elapsed.TotalSeconds;
        var sorted = latencies.Order().ToList();
        var result = new TouchResult(name, targets.Length, errors, seconds, Stats.Percentile(sorted, 50), Stats.Percentile(sorted, 90), Stats.Percentile(sorted, 99), sorted[^1], firstError);
        Console.WriteLine($"  {name}: {targets.Length} tenants, {clients} clients, {errors} err in {seconds:F1} s: p50 {result.P50Ms:F2} ms  p90 {result.P90Ms:F2}  p99 {result.P99Ms:F2}  max {result.MaxMs:F1}");
        return result;
    }

    private static Task<HttpResponseMessage> Search(HttpClient client, string query, string mode)
    {
        var body = JsonSerializer.Serialize(new { query, topK = 10, mode });
        return client.PostAsync("/v1/collections/" + ScaleArchive.Collection + "/search", new StringContent(body, Encoding.UTF8, "application/json"));
    }
}
