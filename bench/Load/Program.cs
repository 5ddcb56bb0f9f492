using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using RagOrleans.Bench;
using RagOrleans.Bench.Load;

// Usage: Load [--docs 1000] [--tenants 20] [--tenant-docs 40] [--clients 8] [--seconds 20] [--requests 0] [--warmup 2]
//             [--model NAME] [--frontend DLL] [--data DIR] [--json FILE]
// --warmup: untimed seconds of each search mode before a scenario's timed phases (0: none).
// --model creates the bench collections with that embedding model (e.g. minilm-int8); default: the service's default.
//        Load --scale big100k|tenants1000 [--scale-tenants T] [--scale-chunks C] [--clients 8] [--seconds 20] [--json FILE]
//        Load plot OUT.png REPORT.json[=label] [REPORT.json[=label] ...]
// End to end over HTTP against the real frontend (embedded mode) started as a child process. --scale runs the full-size
// scenarios of issue 9 item 3, bulk-loaded from bench/Ann's real-embedding cache through tenant import (ScaleRun.cs).
// plot draws the latency percentiles of --json reports (LoadPlot.cs).
if (args is ["plot", var png, .. var reports] && reports.Length > 0)
{
    LoadPlot.Write(png, reports);
    Console.WriteLine($"wrote {png}");
    return 0;
}

var parsed = new BenchArgs(args);
var run = RunInfo.Start();
var shared = BenchPaths.SharedData();
var options = new LoadOptions(
    Docs: parsed.Int("docs", 1000),
    Tenants: parsed.Int("tenants", 20),
    TenantDocs: parsed.Int("tenant-docs", 40),
    Clients: parsed.Int("clients", 8),
    Seconds: parsed.Int("seconds", 20),
    Requests: parsed.Int("requests", 0),
    Model: parsed.String("model"),
    WarmupSeconds: parsed.Int("warmup", 2));
var frontend = Arg("frontend") ?? FindFrontend();
var corpus = SciFact.Corpus(Path.Combine(shared, "scifact", "corpus.jsonl"));
var claims = SciFact.Claims(Path.Combine(shared, "scifact", "queries-train.jsonl"));
Console.WriteLine($"frontend {frontend}; {corpus.Count} SciFact documents, {claims.Count} claims; load average {string.Join(' ', run.LoadAverageAtStart)}");
if (Arg("scale") is { } scaleName)
{
    var scale = ScaleScenario.Parse(scaleName, parsed.Int("scale-tenants", 0), parsed.Int("scale-chunks", 0));
    return await ScaleRun.RunAsync(scale, options, frontend, corpus, claims, run, parsed.Json, Arg("data"));
}


// The data folder is cached by scenario size: ingesting real text is the slow part, and reruns only need the searches.
var dataDir = Arg("data") ?? Path.Combine(BenchPaths.CacheDirectory(), $"load-d{options.Docs}-t{options.Tenants}x{options.TenantDocs}" + (options.Model is { } m ? $"-{m}" : string.Empty));
var stateFile = Path.Combine(dataDir, "bench-load-state.json");
var fresh = !File.Exists(stateFile);
Directory.CreateDirectory(dataDir);
const string OperatorKey = "bench-load-operator-key-0123456789abcdef";
await using var service = await Service.StartAsync(frontend, dataDir, OperatorKey);

IngestResult? ingest = null;
LoadState state;
if (fresh)
{
    (state, ingest) = await Setup.RunAsync(service, corpus, options);
    File.WriteAllText(stateFile, JsonSerializer.Serialize(state));
}
else
{
    state = JsonSerializer.Deserialize<LoadState>(File.ReadAllText(stateFile))!;
    Console.WriteLine($"reusing {dataDir} (delete it to ingest again)");
}

// Query sets: the claims repeat (so after the first pass every query embedding is a cache hit); the uncached set is
// made of distinct texts never sent before in this process's life, enough for any --seconds (see UncachedQueries).
var cachedQueries = claims.Take(200).ToArray();
var uncached = new UncachedQueries(corpus, claims.Skip(200));
Console.WriteLine($"{uncached.Distinct:N0} distinct uncached queries before variants are needed");

var scenarios = new List<ScenarioResult>();
foreach (var scenario in new[] { "one-tenant", "many-tenants" })
{
    var targets = scenario == "one-tenant" ? [state.Big] : state.Small;
    Console.WriteLine($"\n{scenario}: {targets.Length} tenant(s), {targets.Sum(t => t.Chunks):N0} chunks; {options.Clients} clients, {options.Seconds} s per phase");
    await Prewarm(service, targets);
    var phases = await Driver.RunPhasesAsync(service, targets, cachedQueries, uncached, options);

    scenarios.Add(new ScenarioResult(scenario, targets.Length, targets.Sum(t => t.Chunks), phases));
}

if (ingest is not null)
{
    Console.WriteLine($"\ningest: {ingest.Documents:N0} documents, {ingest.Chunks:N0} chunks in {ingest.Seconds:F1} s = {ingest.ChunksPerSecond:F1} chunks/s; " +
        $"model busy {ingest.ModelSeconds:F1} s = embedding limit {ingest.EmbeddingLimitChunksPerSecond:F1} chunks/s; ingest at {ingest.ShareOfLimit:P1} of it");
}

var report = new LoadReport("load", options, dataDir, ingest, scenarios, run.Finish());
Console.WriteLine($"load average at end {string.Join(' ', report.Run.LoadAverageAtEnd ?? [])}; service peak RSS {service.PeakRssMb():F0} MB");
if (parsed.Json is { } json)
{
    JsonReport.Write(json, report);
}

await service.StopAsync();
return 0;

string? Arg(string name)
{
    var i = Array.IndexOf(args, "--" + name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}

static string FindFrontend()
{
    for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
    {
        var dll = Path.Combine(dir.FullName, "src", "Frontend", "bin", "Release", "net10.0", "RagOrleans.Frontend.dll");
        if (File.Exists(dll))
        {
            return dll;
        }
    }

    throw new FileNotFoundException("Build the frontend first (dotnet build src/Frontend -c Release) or pass --frontend DLL.");
}

static async Task Prewarm(Service service, TenantTarget[] targets)
{
    var watch = Stopwatch.StartNew();
    foreach (var t in targets)
    {
        using var client = service.Client(t.Key);
        using var response = await client.PostAsync($"/v1/collections/{t.Collection}/prewarm", null);
        response.EnsureSuccessStatusCode();
    }

    Console.WriteLine($"  prewarmed {targets.Length} collection(s) in {watch.Elapsed.TotalMilliseconds:F0} ms");
}

/// <param name="Model">Embedding model of the bench collections; null for the service's default.</param>
/// <param name="WarmupSeconds">Untimed seconds of each search mode, all clients, before a scenario's timed phases.</param>
internal sealed record LoadOptions(int Docs, int Tenants, int TenantDocs, int Clients, int Seconds, int Requests, string? Model = null, int WarmupSeconds = 2);

internal sealed record TenantTarget(string Tenant, string Key, string Collection, long Chunks);

internal sealed record LoadState(TenantTarget Big, TenantTarget[] Small);

internal sealed record IngestResult(int Documents, long Chunks, double Seconds, double ChunksPerSecond, double ModelSeconds, double EmbeddingLimitChunksPerSecond, double ShareOfLimit);

/// <param name="ServiceCpuMsPerRequest">The service process's CPU time per answered request (both cores summed).</param>
/// <param name="QueryTextsPerModelCall">Query texts per model call the service formed during the phase (0 if none ran).</param>
/// <param name="QueryModelMsPerText">Model time per query text (summed over concurrent workers).</param>
internal sealed record PhaseResult(string Name, string Mode, long Requests, long Errors, double Seconds, double Qps, double P50Ms, double P90Ms, double P99Ms, double MaxMs, string? FirstError,
    double ServiceCpuMsPerRequest = 0, double QueryTextsPerModelCall = 0, double QueryModelMsPerText = 0);

internal sealed record ScenarioResult(string Name, int Tenants, long Chunks, IReadOnlyList<PhaseResult> Phases);

internal sealed record LoadReport(string Benchmark, LoadOptions Options, string DataDir, IngestResult? Ingest, IReadOnlyList<ScenarioResult> Scenarios, RunInfo Run);

internal sealed record SciFactDoc(string Id, string Title, string Text);

internal static class SciFact
{
    public static List<SciFactDoc> Corpus(string path) =>
        File.ReadLines(path).Select(l => JsonNode.Parse(l)!).Select(n => new SciFactDoc(
            n["_id"]!.GetValue<string>(), n["title"]?.GetValue<string>() ?? "", n["text"]?.GetValue<string>() ?? "")).ToList();

    public static List<string> Claims(string path) =>
        File.ReadLines(path).Select(l => JsonNode.Parse(l)!["text"]!.GetValue<string>()).ToList();
}

/// <summary>
/// Query texts that are never repeated within a run, so every one misses the query-embedding cache: SciFact titles,
/// the claims not in the cached set and abstract sentences, all of 20-140 characters (query-sized), tens of thousands
/// in a fixed shuffled order. Should a long run use them all, each comes back with a variant number appended, still a
/// new text for the cache.
/// </summary>
internal sealed class UncachedQueries
{
    private readonly string[] _pool;
    private long _next = -1;

    public UncachedQueries(IEnumerable<SciFactDoc> corpus, IEnumerable<string> claims)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var pool = new List<string>();
        foreach (var text in corpus.Select(d => d.Title).Concat(claims).Concat(corpus.SelectMany(d => Sentences(d.Text))))
        {
            var trimmed = text.Trim();
            if (trimmed.Length is >= 20 and <= 140 && seen.Add(trimmed))
            {
                pool.Add(trimmed);
            }
        }

        _pool = [.. pool];
        new Random(20261130).Shuffle(_pool);
    }

    public int Distinct => _pool.Length;

    public string Next()
    {
        var i = Interlocked.Increment(ref _next);
        var round = i / _pool.Length;
        var text = _pool[i % _pool.Length];
        return round == 0 ? text : $"{text} ({round + 1})";
    }

    private static IEnumerable<string> Sentences(string text)
    {
        var start = 0;
        for (var i = 0; i < text.Length - 1; i++)
        {
            if (text[i] is ('.' or '?' or '!') && text[i + 1] == ' ')
            {
                yield return text[start..(i + 1)];
                start = i + 2;
            }
        }

        if (start < text.Length)
        {
            yield return text[start..];
        }
    }
}

/// <summary>Creates the tenants and ingests real SciFact documents through the public API, timing the big tenant's ingest.</summary>
internal static class Setup
{
    public static async Task<(LoadState, IngestResult)> RunAsync(Service service, List<SciFactDoc> corpus, LoadOptions options)
    {
        var big = await CreateTenant(service, "load-big", options.Model);
        var before = await service.ModelDocumentSecondsAsync();
        var watch = Stopwatch.StartNew();
        var docs = corpus.Take(options.Docs).ToList();
        await Upload(service, big, docs);
        var chunks = await WaitIndexed(service, big, docs.Count);
        var seconds = watch.Elapsed.TotalSeconds;
        var model = await service.ModelDocumentSecondsAsync() - before;
        var ingest = new IngestResult(docs.Count, chunks, seconds, chunks / seconds, model, chunks / model, model / seconds);
        Console.WriteLine($"ingested {docs.Count} documents ({chunks} chunks) in {seconds:F1} s: {chunks / seconds:F1} chunks/s, {model / seconds:P1} of the model's time");

        // Small tenants reuse the corpus in rotating windows: their content differs from each other's.
        var small = new List<TenantTarget>();
        for (var t = 0; t < options.Tenants; t++)
        {
            var tenant = await CreateTenant(service, $"load-t{t:D4}", options.Model);
            var slice = Enumerable.Range(0, options.TenantDocs).Select(i => corpus[(options.Docs + (t * options.TenantDocs) + i) % corpus.Count]).ToList();
            await Upload(service, tenant, slice);
            small.Add(tenant with { Chunks = await WaitIndexed(service, tenant, slice.Count) });
            Console.WriteLine($"  tenant {t + 1}/{options.Tenants} ready");
        }

        return (new LoadState(big with { Chunks = chunks }, small.ToArray()), ingest);
    }

    private static async Task<TenantTarget> CreateTenant(Service service, string id, string? model)
    {
        using var op = service.Client(service.OperatorKey);
        using var created = await op.PostAsJsonAsync("/v1/tenants", new { id, name = id });
        created.EnsureSuccessStatusCode();
        var key = (await created.Content.ReadFromJsonAsync<JsonNode>())!["adminKey"]!.GetValue<string>();
        using var admin = service.Client(key);
        using var collection = model is null
            ? await admin.PostAsJsonAsync("/v1/collections", new { name = "kb", shards = 1 })
            : await admin.PostAsJsonAsync("/v1/collections", new { name = "kb", shards = 1, model });
        collection.EnsureSuccessStatusCode();
        return new TenantTarget(id, key, "kb", 0);
    }

    private static async Task Upload(Service service, TenantTarget tenant, List<SciFactDoc> docs)
    {
        using var admin = service.Client(tenant.Key);
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, 4).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < docs.Count)
            {
                using var r = await admin.PostAsJsonAsync($"/v1/collections/{tenant.Collection}/documents",
                    new { id = docs[i].Id, title = docs[i].Title, text = docs[i].Text });
                if (!r.IsSuccessStatusCode)
                {
                    throw new HttpRequestException($"Upload of {docs[i].Id} failed: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
                }
            }
        }));
    }

    private static async Task<long> WaitIndexed(Service service, TenantTarget tenant, int documents)
    {
        using var admin = service.Client(tenant.Key);
        while (true)
        {
            var info = (await admin.GetFromJsonAsync<JsonNode>($"/v1/collections/{tenant.Collection}"))!;
            var pending = 0;
            foreach (var status in new[] { "queued", "processing" })
            {
                var page = (await admin.GetFromJsonAsync<JsonNode>($"/v1/collections/{tenant.Collection}/documents?status={status}&limit=1"))!;
                pending += page["documents"]!.AsArray().Count;
            }

            if (pending == 0)
            {
                var failed = (await admin.GetFromJsonAsync<JsonNode>($"/v1/collections/{tenant.Collection}/documents?status=failed&limit=100"))!["documents"]!.AsArray().Count;
                if (failed > 0)
                {
                    Console.WriteLine($"  warning: {failed} document(s) of {tenant.Tenant} failed");
                }

                return info["chunkCount"]!.GetValue<long>();
            }

            await Task.Delay(500);
        }
    }
}

/// <summary>N closed-loop clients, each sending its next search as soon as the previous one answers.</summary>
internal static class Driver
{
    /// <summary>
    /// The four search phases every scenario runs, printed as they end: the keyword-only baseline of the same run (the
    /// same HTTP path without a query embedding), vector search with cached and with never-seen query embeddings, and
    /// hybrid with never-seen ones.
    /// </summary>
    public static async Task<List<PhaseResult>> RunPhasesAsync(
        Service service, TenantTarget[] targets, string[] cachedQueries, UncachedQueries uncached, LoadOptions options)
    {
        if (options.WarmupSeconds > 0)
        {
            // A service started on a reused data folder has not yet run its search paths: the first timed phase (the
            // keyword baseline every ratio divides by) ran while the JIT compiled and re-tiered them, at a third of its
            // warm rate (1,224-1,447 against 3,595 QPS, bench/README.md session 14). Each mode once, untimed, first.
            var warmup = options with { Seconds = options.WarmupSeconds, Requests = 0 };
            var requests = 0L;
            foreach (var mode in new[] { "keyword", "vector", "hybrid" })
            {
                requests += (await RunAsync(service, targets, "warm-up", mode, _ => uncached.Next(), warmup)).Requests;
            }

            Console.WriteLine($"  warm-up: {requests:N0} untimed requests, {options.WarmupSeconds} s per mode");
        }

        var phases = new List<PhaseResult>
        {
            await RunAsync(service, targets, "keyword (baseline)", "keyword", i => cachedQueries[i % cachedQueries.Length], options),
            await RunAsync(service, targets, "vector, cached query", "vector", i => cachedQueries[i % cachedQueries.Length], options, warm: true),
            await RunAsync(service, targets, "vector, uncached query", "vector", _ => uncached.Next(), options),
            await RunAsync(service, targets, "hybrid, uncached query", "hybrid", _ => uncached.Next(), options),
        };
        var baseline = phases[0].Qps;
        foreach (var p in phases)
        {
            Console.WriteLine($"  {p.Name,-24} {p.Requests,7:N0} req {p.Errors,4} err  {p.Qps,8:F1} QPS ({p.Qps / baseline:F2}x baseline)  p50 {p.P50Ms,6:F2} ms  p90 {p.P90Ms,6:F2}  p99 {p.P99Ms,6:F2}  max {p.MaxMs,7:F1}" +
                $"  service cpu {p.ServiceCpuMsPerRequest,5:F2} ms/req" + (p.QueryTextsPerModelCall > 0 ? $"  model {p.QueryTextsPerModelCall,4:F1} queries/call {p.QueryModelMsPerText,5:F2} ms/query" : ""));
            if (p.FirstError is not null)
            {
                Console.WriteLine($"    first error: {p.FirstError}");
            }
        }

        return phases;
    }

    public static async Task<PhaseResult> RunAsync(
        Service service, TenantTarget[] targets, string name, string mode, Func<long, string> query, LoadOptions options, bool warm = false)
    {
        var clients = targets.Select(t => service.Client(t.Key)).ToArray();
        try
        {
            if (warm)
            {
                // One pass over the repeating set first, so every measured query embedding is a cache hit.
                for (var i = 0; i < 200; i++)
                {
                    using var _ = await Send(clients[0], targets[0], query(i), mode);
                }
            }

            var latencies = new List<double>[options.Clients];
            var modelBefore = await service.ModelTotalsAsync("query");
            var cpuBefore = service.CpuSeconds();
            long sent = -1, errors = 0;
            string? firstError = null;
            var stop = Stopwatch.StartNew();
            var duration = TimeSpan.FromSeconds(options.Seconds);
            await Task.WhenAll(Enumerable.Range(0, options.Clients).Select(c => Task.Run(async () =>
            {
                var mine = latencies[c] = new List<double>(4096);
                while (stop.Elapsed < duration)
                {
                    var i = Interlocked.Increment(ref sent);
                    if (options.Requests > 0 && i >= options.Requests)
                    {
                        break;
                    }

                    var t = (int)(i % targets.Length);
                    var q = query(i);
                    var start = Stopwatch.GetTimestamp();
                    try
                    {
                        using var response = await Send(clients[t], targets[t], q, mode);
                        if (response.StatusCode != HttpStatusCode.OK)
                        {
                            Interlocked.Increment(ref errors);
                            firstError ??= $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
                            continue;
                        }

                        await response.Content.CopyToAsync(Stream.Null);
                    }
                    catch (HttpRequestException e)
                    {
                        Interlocked.Increment(ref errors);
                        firstError ??= e.Message;
                        continue;
                    }

                    mine.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                }
            })));
            var seconds = stop.Elapsed.TotalSeconds;
            var cpu = service.CpuSeconds() - cpuBefore;
            var modelAfter = await service.ModelTotalsAsync("query");
            var (modelSeconds, calls, texts) = (modelAfter.Seconds - modelBefore.Seconds, modelAfter.Calls - modelBefore.Calls, modelAfter.Texts - modelBefore.Texts);
            var all = latencies.SelectMany(l => l).OrderBy(x => x).ToList();
            return new PhaseResult(name, mode, all.Count, errors, seconds, all.Count / seconds,
                Stats.Percentile(all, 50), Stats.Percentile(all, 90), Stats.Percentile(all, 99), all.Count > 0 ? all[^1] : 0, firstError,
                all.Count > 0 ? cpu * 1000 / all.Count : 0, calls > 0 ? texts / calls : 0, texts > 0 ? modelSeconds * 1000 / texts : 0);
        }
        finally
        {
            foreach (var c in clients)
            {
                c.Dispose();
            }
        }
    }

    private static Task<HttpResponseMessage> Send(HttpClient client, TenantTarget target, string query, string mode)
    {
        var body = JsonSerializer.Serialize(new { query, topK = 10, mode });
        return client.PostAsync($"/v1/collections/{target.Collection}/search", new StringContent(body, Encoding.UTF8, "application/json"));
    }
}

/// <summary>The frontend (embedded silo) as a child process with its own data folder, like tests/EndToEnd's ServiceProcess.</summary>
internal sealed class Service : IAsyncDisposable
{
    private static readonly SocketsHttpHandler Handler = new()
    {
        PooledConnectionLifetime = TimeSpan.FromMinutes(10),
        MaxConnectionsPerServer = 256,
    };

    private readonly Process _process;
    private readonly StringBuilder _log = new();

    private Service(Process process, string url, string operatorKey)
    {
        _process = process;
        BaseUrl = url;
        OperatorKey = operatorKey;
    }

    public string BaseUrl { get; }

    public string OperatorKey { get; }

    public static async Task<Service> StartAsync(string dll, string dataDir, string operatorKey)
    {
        var url = $"http://127.0.0.1:{FreePort()}";
        var psi = new ProcessStartInfo("dotnet", [dll, "--urls", url])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(dll)!,
        };
        psi.Environment["Rag__DataDir"] = dataDir;
        psi.Environment["Rag__OperatorKey"] = operatorKey;
        psi.Environment["Rag__EnforceRateLimits"] = "false";
        psi.Environment["Orleans__SiloPort"] = FreePort().ToString(CultureInfo.InvariantCulture);
        psi.Environment["Orleans__GatewayPort"] = FreePort().ToString(CultureInfo.InvariantCulture);
        psi.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        psi.Environment["Logging__LogLevel__Default"] = "Warning";
        var process = Process.Start(psi) ?? throw new InvalidOperationException("Could not start the frontend.");
        var service = new Service(process, url, operatorKey);
        process.OutputDataReceived += (_, e) => service.Append(e.Data);
        process.ErrorDataReceived += (_, e) => service.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var probe = service.Client(null);
        for (var deadline = DateTime.UtcNow.AddSeconds(120); DateTime.UtcNow < deadline; await Task.Delay(250))
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"The frontend exited with {process.ExitCode}:\n{service.Log()}");
            }

            try
            {
                using var ready = await probe.GetAsync("/readyz");
                if (ready.IsSuccessStatusCode)
                {
                    return service;
                }
            }
            catch (HttpRequestException)
            {
            }
        }

        throw new TimeoutException($"The frontend did not become ready:\n{service.Log()}");
    }

    public HttpClient Client(string? key)
    {
        var client = new HttpClient(Handler, disposeHandler: false) { BaseAddress = new Uri(BaseUrl), Timeout = TimeSpan.FromMinutes(5) };
        if (key is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        return client;
    }

    /// <summary>Seconds the embedding model has spent on document batches so far (the service's own histogram).</summary>
    public async Task<double> ModelDocumentSecondsAsync() => (await ModelTotalsAsync("document")).Seconds;

    /// <summary>
    /// The service's own embedding histograms for <paramref name="purpose"/> so far: model seconds (summed over
    /// concurrent workers), model calls and texts embedded.
    /// </summary>
    public async Task<(double Seconds, double Calls, double Texts)> ModelTotalsAsync(string purpose)
    {
        using var op = Client(OperatorKey);
        var text = await op.GetStringAsync("/metrics");
        double seconds = 0, calls = 0, texts = 0;
        var label = $"purpose=\"{purpose}\"";
        foreach (var line in text.Split('\n'))
        {
            if (!line.Contains(label, StringComparison.Ordinal))
            {
                continue;
            }

            var value = line.StartsWith("rag_embedding_", StringComparison.Ordinal)
                ? double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture)
                : 0;
            if (line.StartsWith("rag_embedding_duration_seconds_sum", StringComparison.Ordinal))
            {
                seconds += value;
            }
            else if (line.StartsWith("rag_embedding_batch_size_texts_count", StringComparison.Ordinal) || line.StartsWith("rag_embedding_batch_size_count", StringComparison.Ordinal))
            {
                calls += value;
            }
            else if (line.StartsWith("rag_embedding_batch_size_texts_sum", StringComparison.Ordinal) || line.StartsWith("rag_embedding_batch_size_sum", StringComparison.Ordinal))
            {
                texts += value;
            }
        }

        return (seconds, calls, texts);
    }

    /// <summary>CPU seconds (user + system) the service process has used so far.</summary>
    public double CpuSeconds()
    {
        try
        {
            // Fields 14 and 15 of /proc/PID/stat, after the parenthesised command name.
            var stat = File.ReadAllText($"/proc/{_process.Id}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
        }
        catch (IOException)
        {
            return 0;
        }
    }

    public double PeakRssMb() => StatusMb("VmHWM:");

    /// <summary>Resident set size of the service now.</summary>
    public double RssMb() => StatusMb("VmRSS:");

    private double StatusMb(string field)
    {
        try
        {
            var line = File.ReadLines($"/proc/{_process.Id}/status").FirstOrDefault(l => l.StartsWith(field, StringComparison.Ordinal));
            // "VmHWM:\t 123456 kB", but "VmHWM:\t12345678 kB" from 10 GB on: split on tabs too.
            return line is null ? 0 : long.Parse(line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
        }
        catch (IOException)
        {
            return 0;
        }
    }

    public async Task StopAsync()
    {
        if (!_process.HasExited)
        {
            using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]);
            await kill!.WaitForExitAsync();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            try
            {
                await _process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_log)
        {
            if (_log.Length < 200_000)
            {
                _log.AppendLine(line);
            }
        }
    }

    private string Log()
    {
        lock (_log)
        {
            return _log.ToString();
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
