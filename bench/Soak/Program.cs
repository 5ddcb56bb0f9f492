using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using RagOrleans.Bench;
using RagOrleans.EndToEnd.Tests;

// Soak: the real frontend (embedded mode) under mixed load — ingestion (upload with ?wait=true, then delete the
// oldest document so the live set stays the same size), search and chat — at half the capacity measured in the
// same run, for --minutes (30). Reports errors, latencies, the service's resident memory after warm-up against
// the end, and the thread pool (queue length and thread count from the runtime meter on /metrics, plus the
// latency of /healthz, which is what starvation shows as first).
//
// Usage: dotnet run -c Release --project bench/Soak -- [--minutes 30] [--warmup-minutes 3] [--capacity-seconds 60]
//        [--concurrency 8] [--documents 300] [--seed 1] [--json FILE]
var options = new BenchArgs(args);
var minutes = options.Int("minutes", 30);
var warmupMinutes = options.Int("warmup-minutes", 3);
var capacitySeconds = options.Int("capacity-seconds", 60);
var concurrency = options.Int("concurrency", 8);
var liveDocuments = options.Int("documents", 300);
var seed = options.Int("seed", 1);
var run = RunInfo.Start();
const string collection = "soak";
const int maxInFlight = 64;

// Texts: SciFact abstracts as documents, SciFact claims as queries and chat messages (read in place).
var data = BenchPaths.SharedData();
var corpus = File.ReadLines(Path.Combine(data, "scifact", "corpus.jsonl")).Take(4000)
    .Select(l => JsonNode.Parse(l)!).Select(n => (Title: n["title"]!.GetValue<string>(), Text: n["text"]!.GetValue<string>()))
    .Where(d => d.Text.Length > 200).ToList();
var queries = File.ReadLines(Path.Combine(data, "scifact", "queries-train.jsonl"))
    .Select(l => JsonNode.Parse(l)!["text"]!.GetValue<string>()).ToList();

var dataDir = Path.Combine(Path.GetTempPath(), "ragorleans-soak-" + Guid.NewGuid().ToString("N")[..8]);
Directory.CreateDirectory(dataDir);
await using var service = await ServiceProcess.StartAsync(dataDir, env: new Dictionary<string, string> { ["Logging__LogLevel__Default"] = "Warning" });
Log($"service pid {service.Pid} at {service.BaseUrl}, data in {dataDir}");
using var op = service.Client(service.OperatorKey);
var admin = await CreateTenantAsync("soak-a");
using var adminClient = admin;
using var userClient = await UserClientAsync(admin);

// The live set: documents uploaded in order; ingestion adds one and deletes the oldest beyond the target size.
var live = new ConcurrentQueue<string>();
var nextDocument = 0;
Log($"loading {liveDocuments} documents");
await Parallel.ForEachAsync(Enumerable.Range(0, liveDocuments), new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (_, _) =>
{
    var (status, _) = await UploadAsync();
    if (status != 200)
    {
        throw new InvalidOperationException($"loading failed with {status}");
    }
});

var random = new Random(seed);
var samples = new ConcurrentBag<Sample>();
using var stopSampling = new CancellationTokenSource();
var clock = Stopwatch.StartNew();
var sampler = Task.Run(() => SampleLoop(stopSampling.Token));

// Capacity: closed loop, `concurrency` workers, the same mix.
Log($"measuring capacity for {capacitySeconds} s with {concurrency} workers");
var capacityResults = new ConcurrentBag<Result>();
var capacityEnd = clock.Elapsed + TimeSpan.FromSeconds(capacitySeconds);
var capacityStart = clock.Elapsed;
await Task.WhenAll(Enumerable.Range(0, concurrency).Select(w => Task.Run(async () =>
{
    var local = new Random(seed * 1000 + w);
    while (clock.Elapsed < capacityEnd)
    {
        capacityResults.Add(await OneAsync(Pick(local)));
    }
})));
var capacity = capacityResults.Count(r => r.Ok) / (clock.Elapsed - capacityStart).TotalSeconds;
var rate = capacity / 2;
Log($"capacity {capacity:F2} ops/s ({capacityResults.Count(r => !r.Ok)} errors); soaking at {rate:F2} ops/s for {minutes} min");

// The soak: open loop at half the capacity, at most `maxInFlight` requests at once.
var soakStart = clock.Elapsed;
var soakEnd = soakStart + TimeSpan.FromMinutes(minutes);
var results = new ConcurrentBag<Result>();
var skipped = 0;
using var slots = new SemaphoreSlim(maxInFlight);
var running = new List<Task>();
var interval = TimeSpan.FromSeconds(1 / rate);
var next = clock.Elapsed;
var lastProgress = clock.Elapsed;
while (clock.Elapsed < soakEnd)
{
    next += interval;
    var wait = next - clock.Elapsed;
    if (wait > TimeSpan.Zero)
    {
        await Task.Delay(wait);
    }

    var kind = Pick(random);
    if (!slots.Wait(0))
    {
        Interlocked.Increment(ref skipped);
        continue;
    }

    running.Add(Task.Run(async () =>
    {
        try
        {
            results.Add(await OneAsync(kind));
        }
        finally
        {
            slots.Release();
        }
    }));
    running.RemoveAll(t => t.IsCompleted);
    if (clock.Elapsed - lastProgress > TimeSpan.FromMinutes(1))
    {
        lastProgress = clock.Elapsed;
        var s = samples.OrderBy(x => x.At).LastOrDefault();
        Log($"{(clock.Elapsed - soakStart).TotalMinutes:F0} min: {results.Count} requests, {results.Count(r => !r.Ok)} errors, {skipped} skipped; " +
            $"RSS {s?.RssBytes / 1048576.0:F0} MiB, thread-pool queue {s?.QueueLength}, threads {s?.Threads}, /healthz {s?.HealthMs:F0} ms");
    }
}

await Task.WhenAll(running);
await stopSampling.CancelAsync();
await sampler;

// Figures.
var soakResults = results.ToList();
var soakSamples = samples.Where(s => s.At >= soakStart).OrderBy(s => s.At).ToList();
var warm = soakStart + TimeSpan.FromMinutes(warmupMinutes);
var afterWarmup = soakSamples.Where(s => s.At >= warm && s.At < warm + TimeSpan.FromMinutes(1)).ToList();
var atEnd = soakSamples.Where(s => s.At >= soakEnd - TimeSpan.FromMinutes(1)).ToList();
var rssWarm = Stats.Median(afterWarmup.Select(s => (double)s.RssBytes));
var rssEnd = Stats.Median(atEnd.Select(s => (double)s.RssBytes));
var growth = (rssEnd - rssWarm) / rssWarm * 100;
var queue = soakSamples.Select(s => (double)s.QueueLength).Order().ToList();
var health = soakSamples.Select(s => s.HealthMs).Order().ToList();
var errors = soakResults.Where(r => !r.Ok).ToList();
var report = new JsonObject
{
    ["benchmark"] = "soak",
    ["measuredAt"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
    ["machine"] = $"{Environment.ProcessorCount} cores",
    ["mode"] = "embedded",
    ["mix"] = "ingest 20 % (upload ?wait=true + delete the oldest), search 60 %, chat 20 %",
    ["liveDocuments"] = liveDocuments,
    ["capacityOpsPerSecond"] = Math.Round(capacity, 3),
    ["capacityErrors"] = capacityResults.Count(r => !r.Ok),
    ["soakRateOpsPerSecond"] = Math.Round(rate, 3),
    ["minutes"] = minutes,
    ["warmupMinutes"] = warmupMinutes,
    ["requests"] = soakResults.Count,
    ["errors"] = errors.Count,
    ["errorsByKind"] = new JsonObject(errors.GroupBy(e => $"{e.Kind} {e.Status}").Select(g => KeyValuePair.Create(g.Key, (JsonNode?)g.Count()))),
    ["firstErrors"] = new JsonArray([.. errors.Take(10).Select(e => JsonValue.Create($"{e.Kind} {e.Status} {e.Detail}"))]),
    ["skippedOverMaxInFlight"] = skipped,
    ["latencyMs"] = new JsonObject(soakResults.GroupBy(r => r.Kind).Select(g =>
    {
        var sorted = g.Select(r => r.Ms).Order().ToList();
        return KeyValuePair.Create(g.Key, (JsonNode?)new JsonObject
        {
            ["count"] = sorted.Count,
            ["p50"] = Math.Round(Stats.Percentile(sorted, 50), 1),
            ["p95"] = Math.Round(Stats.Percentile(sorted, 95), 1),
            ["p99"] = Math.Round(Stats.Percentile(sorted, 99), 1),
            ["max"] = Math.Round(sorted[^1], 1),
        });
    })),
    ["rssMiBAfterWarmup"] = Math.Round(rssWarm / 1048576, 1),
    ["rssMiBAtEnd"] = Math.Round(rssEnd / 1048576, 1),
    ["rssGrowthPercent"] = Math.Round(growth, 2),
    ["rssMiBMax"] = Math.Round(soakSamples.Max(s => s.RssBytes) / 1048576.0, 1),
    ["threadPoolQueueLength"] = new JsonObject { ["median"] = Stats.Percentile(queue, 50), ["p95"] = Stats.Percentile(queue, 95), ["max"] = queue[^1] },
    ["threadPoolThreads"] = new JsonObject { ["afterWarmup"] = afterWarmup.FirstOrDefault()?.Threads, ["atEnd"] = atEnd.LastOrDefault()?.Threads, ["max"] = soakSamples.Max(s => s.Threads) },
    ["healthzMs"] = new JsonObject { ["median"] = Math.Round(Stats.Percentile(health, 50), 1), ["p99"] = Math.Round(Stats.Percentile(health, 99), 1), ["max"] = Math.Round(health[^1], 1) },
    ["samples"] = soakSamples.Count,
    ["loadAverageAtStart"] = new JsonArray([.. run.LoadAverageAtStart.Select(v => JsonValue.Create(v))]),
    ["loadAverageAtEnd"] = new JsonArray([.. ProcessStats.LoadAverage().Select(v => JsonValue.Create(v))]),
    ["rssTimeline"] = new JsonArray([.. soakSamples.Where((_, i) => i % 12 == 0).Select(s => JsonValue.Create($"{(s.At - soakStart).TotalMinutes:F1} min {s.RssBytes / 1048576.0:F0} MiB q{s.QueueLength} t{s.Threads}"))]),
};
var json = report.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
Console.WriteLine(json);
if (options.Json is { } file)
{
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(file))!);
    await File.WriteAllTextAsync(file, json + "\n");
    Log($"written to {Path.GetFullPath(file)}");
}

var starved = health[^1] > 5000;
var pass = errors.Count == 0 && growth < 5 && !starved;
Log(pass ? "PASS" : $"FAIL: {errors.Count} errors, RSS growth {growth:F2} %, /healthz max {health[^1]:F0} ms");
await service.StopAsync();
try
{
    Directory.Delete(dataDir, recursive: true);
}
catch (IOException)
{
}

return pass ? 0 : 1;

string Pick(Random r) => r.NextDouble() switch { < 0.2 => "ingest", < 0.8 => "search", _ => "chat" };

async Task<Result> OneAsync(string kind)
{
    var started = Stopwatch.GetTimestamp();
    try
    {
        var (status, detail) = kind switch
        {
            "ingest" => await IngestAsync(),
            "search" => await PostAsync(userClient, $"/v1/collections/{collection}/search", new { query = Query(), topK = 5 }),
            _ => await PostAsync(userClient, $"/v1/collections/{collection}/chat", new { message = Query(), topK = 4 }),
        };
        return new Result(kind, status, status == 200, Stopwatch.GetElapsedTime(started).TotalMilliseconds, detail);
    }
    catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
    {
        return new Result(kind, 0, false, Stopwatch.GetElapsedTime(started).TotalMilliseconds, e.Message);
    }
}

string Query()
{
    lock (queries)
    {
        return queries[Random.Shared.Next(queries.Count)];
    }
}

async Task<(int, string)> IngestAsync()
{
    var (status, detail) = await UploadAsync();
    if (status != 200)
    {
        return (status, detail);
    }

    if (live.Count > liveDocuments && live.TryDequeue(out var oldest))
    {
        using var response = await adminClient.DeleteAsync(new Uri($"/v1/collections/{collection}/documents/{oldest}", UriKind.Relative));
        if (!response.IsSuccessStatusCode)
        {
            return ((int)response.StatusCode, "delete: " + await response.Content.ReadAsStringAsync());
        }
    }

    return (200, "");
}

async Task<(int, string)> UploadAsync()
{
    var n = Interlocked.Increment(ref nextDocument);
    var source = corpus[n % corpus.Count];
    var id = $"d{n:D6}";
    var (status, detail) = await PostAsync(adminClient, $"/v1/collections/{collection}/documents?wait=true&timeoutSeconds=60",
        new { id, title = source.Title, text = $"{source.Text} (revision {n})" });
    if (status == 200)
    {
        live.Enqueue(id);
    }

    return (status, detail);
}

static async Task<(int, string)> PostAsync(HttpClient http, string path, object body)
{
    using var response = await http.PostAsJsonAsync(path, body);
    var text = await response.Content.ReadAsStringAsync();
    return ((int)response.StatusCode, response.IsSuccessStatusCode ? "" : text.Length > 300 ? text[..300] : text);
}

async Task<HttpClient> CreateTenantAsync(string prefix)
{
    var id = $"{prefix}-{Guid.NewGuid().ToString("N")[..6]}";
    using var created = await op.PostAsJsonAsync("/v1/tenants", new { id, name = "Soak " + id });
    created.EnsureSuccessStatusCode();
    var key = JsonNode.Parse(await created.Content.ReadAsStringAsync())!["adminKey"]!.GetValue<string>();
    var client = service.Client(key);
    client.Timeout = TimeSpan.FromSeconds(120);
    using var collectionCreated = await client.PostAsJsonAsync("/v1/collections", new { name = collection });
    collectionCreated.EnsureSuccessStatusCode();
    return client;
}

async Task<HttpClient> UserClientAsync(HttpClient adminHttp)
{
    using var response = await adminHttp.PostAsJsonAsync("/v1/keys", new { role = "user", userId = "soak-user" });
    response.EnsureSuccessStatusCode();
    var client = service.Client(JsonNode.Parse(await response.Content.ReadAsStringAsync())!["key"]!.GetValue<string>());
    client.Timeout = TimeSpan.FromSeconds(120);
    return client;
}

// Every 5 s: the service's RSS (/proc), the thread pool from /metrics, and how long /healthz takes.
async Task SampleLoop(CancellationToken stop)
{
    using var metricsClient = service.Client(service.OperatorKey);
    metricsClient.Timeout = TimeSpan.FromSeconds(60);
    while (!stop.IsCancellationRequested)
    {
        var at = clock.Elapsed;
        var started = Stopwatch.GetTimestamp();
        try
        {
            using (await metricsClient.GetAsync(new Uri("/healthz", UriKind.Relative)))
            {
            }

            var healthMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            var metrics = await metricsClient.GetStringAsync(new Uri("/metrics", UriKind.Relative));
            samples.Add(new Sample(at, Rss(service.Pid), (long)Metric(metrics, "dotnet_thread_pool_queue_length"), (long)Metric(metrics, "dotnet_thread_pool_thread_count"), healthMs));
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            samples.Add(new Sample(at, Rss(service.Pid), -1, -1, Stopwatch.GetElapsedTime(started).TotalMilliseconds));
        }

        try
        {
            await Task.Delay(TimeSpan.FromSeconds(5), stop);
        }
        catch (OperationCanceledException)
        {
        }
    }
}

// Sum of a Prometheus metric's samples (names may carry a unit suffix); -1 when absent.
static double Metric(string text, string name)
{
    double? sum = null;
    foreach (var line in text.Split('\n'))
    {
        if (line.StartsWith(name, StringComparison.Ordinal) && line.Length > name.Length && line[name.Length] is ' ' or '{' or '_')
        {
            var value = line[(line.LastIndexOf('}') is var b and >= 0 ? b + 1 : name.Length)..].Trim().Split(' ')[0];
            if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var v))
            {
                sum = (sum ?? 0) + v;
            }
        }
    }

    return sum ?? -1;
}

static long Rss(int pid)
{
    foreach (var line in File.ReadLines($"/proc/{pid}/status"))
    {
        if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
        {
            return long.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
        }
    }

    return 0;
}

static void Log(string message) => Console.WriteLine($"{DateTime.UtcNow:HH:mm:ss} {message}");

internal sealed record Result(string Kind, int Status, bool Ok, double Ms, string Detail);

internal sealed record Sample(TimeSpan At, long RssBytes, long QueueLength, long Threads, double HealthMs);
