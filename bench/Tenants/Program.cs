using System.Diagnostics;
using System.Text.Json.Nodes;
using RagOrleans.Bench;
using RagOrleans.Grains.Indexing;
using RagOrleans.Grains.Storage;

// Usage: Tenants [--tenants 500] [--chunks 1000] [--big 10000,100000] [--loads 20] [--json FILE]
//
// Measures the shard, not the embedder, so it drives ShardIndex (the in-memory part of IndexShardGrain, the code its
// activation runs) in-process. Vectors are synthetic: 384-d unit vectors drawn around 2,000 random cluster centres
// (not uniform noise), because embedding 100,000 real chunks takes about an hour on this machine. Snapshot size and
// load time depend on the vector count, the graph degree and the text, not on where the vectors came from. Texts
// are real SciFact sentences, so the keyword index in the snapshot is realistic.
var parsed = new BenchArgs(args);
var run = RunInfo.Start();
var tenants = parsed.Int("tenants", 500);
var chunksPerTenant = parsed.Int("chunks", 1000);
var loads = parsed.Int("loads", 20);
var bigSizes = (Array.IndexOf(args, "--big") is var b and >= 0 ? args[b + 1] : "10000,100000").Split(',').Select(int.Parse).ToArray();
var sentences = File.ReadLines(Path.Combine(BenchPaths.SharedData(), "scifact", "corpus.jsonl"))
    .Select(l => JsonNode.Parse(l)!["text"]!.GetValue<string>())
    .SelectMany(t => t.Split(". ", StringSplitOptions.RemoveEmptyEntries))
    .Where(s => s.Length > 40).Take(200_000).ToArray();
var cache = Path.Combine(BenchPaths.CacheDirectory(), "tenants");
Directory.CreateDirectory(cache);
var options = new HnswOptions { ExactSearchThreshold = 2000, EfSearch = 64 };
Console.WriteLine($"{sentences.Length:N0} SciFact sentences; load average {string.Join(' ', run.LoadAverageAtStart)}");

// Cold activation: a shard's activation is "open newest snapshot, ShardIndex.ReadFrom, replay nothing".
var cold = new List<ColdResult>();
foreach (var size in bigSizes)
{
    var path = Path.Combine(cache, $"shard-{size}.snap");
    if (!File.Exists(path))
    {
        var watch = Stopwatch.StartNew();
        var index = Build(size, seed: size);
        var tmp = path + ".tmp";
        using (var file = File.Create(tmp))
        {
            index.WriteTo(file);
        }

        File.Move(tmp, path, overwrite: true);
        Console.WriteLine($"built and saved the {size:N0}-chunk shard in {watch.Elapsed.TotalSeconds:F1} s");
    }

    var bytes = new FileInfo(path).Length;
    var raw = new List<double>();
    var load = new List<double>();
    for (var i = 0; i < loads + 2; i++)
    {
        // Baseline in the same run: reading the snapshot bytes alone (page cache), the floor for any loader.
        var start = Stopwatch.GetTimestamp();
        _ = File.ReadAllBytes(path);
        var rawMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        GC.Collect();
        start = Stopwatch.GetTimestamp();
        ShardIndex loaded;
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan))
        {
            loaded = ShardIndex.ReadFrom(stream, options);
        }

        var loadMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        if (loaded.Count != size)
        {
            throw new InvalidDataException($"Loaded {loaded.Count} chunks, expected {size}.");
        }

        if (i >= 2)
        {
            raw.Add(rawMs);
            load.Add(loadMs);
        }
    }

    raw.Sort();
    load.Sort();
    var result = new ColdResult(size, bytes, bytes / (double)size, loads,
        Stats.Percentile(load, 50), Stats.Percentile(load, 99), load[^1], Stats.Percentile(raw, 50), Stats.Percentile(load, 50) / Stats.Percentile(raw, 50));
    cold.Add(result);
    Console.WriteLine($"cold load {size,7:N0} chunks: snapshot {bytes / 1048576.0:F1} MB ({result.SnapshotBytesPerChunk:F0} B/chunk); " +
        $"p50 {result.P50Ms:F1} ms, p99 {result.P99Ms:F1} ms, max {result.MaxMs:F1} ms; file read alone p50 {result.RawReadP50Ms:F1} ms ({result.RatioToRawRead:F1}x)");
}

// Density: many small tenants resident at once, each shard loaded from a snapshot as its activation would.
Console.WriteLine($"\ndensity: {tenants:N0} tenants x {chunksPerTenant:N0} chunks");
var templates = Enumerable.Range(0, 8).Select(t =>
{
    var path = Path.Combine(cache, $"tenant-{chunksPerTenant}-{t}.snap");
    if (!File.Exists(path))
    {
        using var file = File.Create(path);
        Build(chunksPerTenant, seed: 1000 + t).WriteTo(file);
    }

    return File.ReadAllBytes(path);
}).ToArray();
GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
var heapBefore = GC.GetTotalMemory(forceFullCollection: true);
var rssBefore = ProcessStats.RssBytes();
var resident = new ShardIndex[tenants];
var small = new List<double>(tenants);
for (var t = 0; t < tenants; t++)
{
    var start = Stopwatch.GetTimestamp();
    resident[t] = ShardIndex.ReadFrom(new MemoryStream(templates[t % templates.Length], writable: false), options);
    small.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
}

var heapAfter = GC.GetTotalMemory(forceFullCollection: true);
var rssAfter = ProcessStats.RssBytes();
var estimated = resident.Sum(r => r.EstimatedMemoryBytes);
small.Sort();
var perTenant = (heapAfter - heapBefore) / (double)tenants;
var density = new DensityResult(tenants, chunksPerTenant, perTenant, perTenant / chunksPerTenant, (rssAfter - rssBefore) / (double)tenants,
    estimated / (double)tenants, Stats.Percentile(small, 50), Stats.Percentile(small, 99), 384 * 4);
Console.WriteLine($"  managed heap {perTenant / 1048576.0:F2} MB per tenant = {density.HeapBytesPerVector:F0} B per vector (raw float32 vector {density.RawVectorBytes} B); " +
    $"RSS {density.RssBytesPerTenant / 1048576.0:F2} MB per tenant; shard's own estimate {density.EstimatedBytesPerTenant / 1048576.0:F2} MB");
Console.WriteLine($"  1,000-chunk shard load p50 {density.LoadP50Ms:F2} ms, p99 {density.LoadP99Ms:F2} ms");
Console.WriteLine($"  10,000 such tenants resident would need {perTenant * 10_000 / 1073741824.0:F1} GB of heap");
GC.KeepAlive(resident);

var report = new TenantsReport("tenants", cold, density, run.Finish());
if (parsed.Json is { } json)
{
    JsonReport.Write(json, report);
}

return 0;

ShardIndex Build(int size, int seed)
{
    var random = new Random(seed);
    const int Dimensions = 384;
    var centres = new float[2000][];
    for (var c = 0; c < centres.Length; c++)
    {
        centres[c] = Normalize(Enumerable.Range(0, Dimensions).Select(_ => (float)Gaussian(random)).ToArray());
    }

    var index = new ShardIndex(options);
    var watch = Stopwatch.StartNew();
    for (var i = 0; i < size; i++)
    {
        var centre = centres[random.Next(centres.Length)];
        var vector = new float[Dimensions];
        for (var d = 0; d < Dimensions; d++)
        {
            vector[d] = centre[d] + (0.35f * (float)Gaussian(random) / MathF.Sqrt(Dimensions));
        }

        var doc = $"doc-{i / 4}";
        index.Apply(new ChunkLogEntry(i + 1, ChunkOp.Add, doc, i % 4, sentences[(seed + i) % sentences.Length], Normalize(vector),
            0, 100, null, null, "Title " + doc, null));
        if (size >= 10_000 && i % 10_000 == 9_999)
        {
            Console.WriteLine($"  {i + 1:N0}/{size:N0} inserted ({(i + 1) / watch.Elapsed.TotalSeconds:F0}/s)");
        }
    }

    return index;
}

static float[] Normalize(float[] v)
{
    var norm = MathF.Sqrt(v.Sum(x => x * x));
    for (var i = 0; i < v.Length; i++)
    {
        v[i] /= norm;
    }

    return v;
}

static double Gaussian(Random random) =>
    Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

internal sealed record ColdResult(int Chunks, long SnapshotBytes, double SnapshotBytesPerChunk, int Loads, double P50Ms, double P99Ms, double MaxMs, double RawReadP50Ms, double RatioToRawRead);

internal sealed record DensityResult(int Tenants, int ChunksPerTenant, double HeapBytesPerTenant, double HeapBytesPerVector, double RssBytesPerTenant,
    double EstimatedBytesPerTenant, double LoadP50Ms, double LoadP99Ms, int RawVectorBytes);

internal sealed record TenantsReport(string Benchmark, IReadOnlyList<ColdResult> ColdActivation, DensityResult Density, RunInfo Run);
