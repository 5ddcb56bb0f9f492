using System.Diagnostics;
using System.Text.Json.Nodes;
using RagOrleans.Bench;
using RagOrleans.Bench.Tenants;
using RagOrleans.Grains.Indexing;
using RagOrleans.Grains.Indexing.Keyword;
using RagOrleans.Grains.Storage;

// Usage: Tenants [--mode cold,density | silo] [--vectors FILE] [--tenants 500] [--chunks 1000] [--big 10000,100000]
//                [--loads 20] [--json FILE]   (silo mode: see SiloRun.cs for its options)
//
// cold/density measure the shard, not the embedder: they drive ShardIndex (the in-memory part of IndexShardGrain, the
// code its activation runs) in-process. silo runs a real in-process silo with many tenants (SiloRun.cs).
// Vectors: --vectors names bench/Ann's cache of real all-MiniLM-L6-v2 vectors (read in place); without it they are
// synthetic 384-d unit vectors drawn around 2,000 random cluster centres. Texts are real SciFact sentences, so the
// keyword index in the snapshot is realistic.
var parsed = new BenchArgs(args);
var run = RunInfo.Start();
var modes = Option(args, "mode", "cold,density").Split(',');
var tenants = parsed.Int("tenants", 500);
var chunksPerTenant = parsed.Int("chunks", 1000);
var loads = parsed.Int("loads", 20);
// --settle none: no full collection before each timed load, so the loads see the GC state earlier loads left (as in a silo).
var settle = Option(args, "settle", "full") != "none";
var bigSizes = Option(args, "big", "10000,100000").Split(',').Select(int.Parse).ToArray();
var vectorSource = VectorSource.Open(Option(args, "vectors", ""));
var sentences = File.ReadLines(Path.Combine(BenchPaths.SharedData(), "scifact", "corpus.jsonl"))
    .Select(l => JsonNode.Parse(l)!["text"]!.GetValue<string>())
    .SelectMany(t => t.Split(". ", StringSplitOptions.RemoveEmptyEntries))
    .Where(s => s.Length > 40).Take(200_000).ToArray();
var cache = Path.Combine(BenchPaths.CacheDirectory(), "tenants");
Directory.CreateDirectory(cache);
// --quantization int8 builds the shards as an int8 collection would (codes on the heap, float rows memory-mapped).
var int8 = Option(args, "quantization", "none") == "int8";
var options = new HnswOptions { ExactSearchThreshold = 2000, EfSearch = 64, Quantization = int8 ? VectorQuantization.Int8 : VectorQuantization.None };
var format = CurrentFormat();
Console.WriteLine($"{sentences.Length:N0} SciFact sentences; vectors: {vectorSource.Name}{(int8 ? " (int8 graph)" : "")}; shard snapshot format v{format}; " +
    $"load average {string.Join(' ', run.LoadAverageAtStart)}");

if (modes.Contains("silo"))
{
    // Shards from the snapshot cache (built once), so big ones do not have to be rebuilt for every run.
    var siloReport = await SiloRun.RunAsync(args, parsed, (size, seed) =>
    {
        using var file = File.OpenRead(Snapshot(size, seed));
        return ShardIndex.ReadFrom(file, options);
    }, run);
    if (parsed.Json is { } siloJson)
    {
        JsonReport.Write(siloJson, siloReport);
    }

    return 0;
}

// Cold activation: a shard's activation is "open newest snapshot, ShardIndex.ReadFrom, replay nothing".
var cold = new List<ColdResult>();
foreach (var size in modes.Contains("cold") ? bigSizes : [])
{
    var path = Snapshot(size, seed: size);
    var bytes = new FileInfo(path).Length;
    var layout = Layout(path);
    var raw = new List<double>();
    var fresh = new List<LoadSample>();
    var samples = new List<LoadSample>();
    var rawBuffer = GC.AllocateUninitializedArray<byte>((int)bytes);
    var poolLimit = ShardArrayPool.LimitBytes;

    // Same-run before/after: blocks of loads alternate between fresh arrays (the pool off: what every load did before
    // ShardArrayPool) and recycled ones (the pool on: each load reuses the arrays the previous load released). The
    // first load of a block is not counted (warm-up; for the pool, its one miss). Two warm-up loads come first.
    const int Block = 10;
    for (var i = 0; i < 2; i++)
    {
        TimedLoad(path, size, layout).Dispose();
    }

    for (var block = 0; fresh.Count < loads || samples.Count < loads; block++)
    {
        var recycle = fresh.Count >= loads || (samples.Count < loads && block % 2 == 1);
        ShardArrayPool.LimitBytes = recycle ? poolLimit : 0;
        var into = recycle ? samples : fresh;
        for (var j = 0; j <= Block && into.Count < loads; j++)
        {
            // Baseline in the same run: the snapshot's bytes copied from the page cache into a buffer that is
            // already touched, the floor for any loader.
            var start = Stopwatch.GetTimestamp();
            using (var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan))
            {
                file.ReadExactly(rawBuffer);
            }

            var rawMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            var sample = TimedLoad(path, size, layout);
            if (j > 0)
            {
                raw.Add(rawMs);
                into.Add(sample.Sample);
            }

            sample.Dispose();
        }
    }

    ShardArrayPool.LimitBytes = poolLimit;
    var load = samples.Select(s => s.WallMs).Order().ToList();
    var freshLoad = fresh.Select(s => s.WallMs).Order().ToList();
    var allocated = samples[^1].AllocatedBytes;
    Console.WriteLine($"  fresh arrays (pool off, as before):");
    PrintSamples(size, fresh);
    Console.WriteLine($"  recycled arrays (pool on):");
    PrintSamples(size, samples);

    // Where the time goes: the two nested formats read alone from memory (the id maps are the rest).
    var image = File.ReadAllBytes(path);
    var parts = new List<(double Total, double Hnsw, double Bm25)>();
    var memorySamples = new List<LoadSample>();
    for (var i = 0; i < Math.Max(3, loads / 2); i++)
    {
        if (settle)
        {
            GC.Collect();
        }

        var meter = LoadMeter.Start();
        ShardIndex.ReadFrom(new MemoryStream(image, writable: false), options).Dispose();
        var memorySample = meter.Stop(null, null);
        memorySamples.Add(memorySample);
        var total = memorySample.WallMs;
        var stream = SkipIdMaps(image);
        var start = Stopwatch.GetTimestamp();
        HnswIndex.ReadFrom(stream).Dispose();
        var hnsw = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        start = Stopwatch.GetTimestamp();
        _ = Bm25Index.ReadFrom(stream);
        var bm25 = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        parts.Add((total, hnsw, bm25));
    }

    Console.WriteLine($"  from memory, median load: {memorySamples.OrderBy(s => s.WallMs).ElementAt(memorySamples.Count / 2)}");
    raw.Sort();
    var result = new ColdResult(size, bytes, bytes / (double)size, loads,
        Stats.Percentile(load, 50), Stats.Percentile(load, 99), load[^1], Stats.Percentile(raw, 50), Stats.Percentile(load, 50) / Stats.Percentile(raw, 50),
        allocated, Stats.Median(parts.Select(p => p.Total)), Stats.Median(parts.Select(p => p.Hnsw)), Stats.Median(parts.Select(p => p.Bm25)),
        Stats.Percentile(freshLoad, 50), Stats.Percentile(freshLoad, 99), freshLoad[^1], Stats.Median(fresh.Select(s => (double)s.MinorFaults)),
        Stats.Median(samples.Select(s => (double)s.MinorFaults)), samples.Sum(s => s.Gen2), samples.Sum(s => s.GcPauseMs), samples.Sum(s => s.JitMs), settle);
    cold.Add(result);
    Console.WriteLine($"cold load {size,7:N0} chunks: snapshot {bytes / 1048576.0:F1} MB ({result.SnapshotBytesPerChunk:F0} B/chunk); " +
        $"p50 {result.P50Ms:F1} ms, p99 {result.P99Ms:F1} ms, max {result.MaxMs:F1} ms; file read alone p50 {result.RawReadP50Ms:F1} ms ({result.RatioToRawRead:F2}x); " +
        $"allocated {allocated / 1048576.0:F1} MB");
    Console.WriteLine($"  same run, fresh arrays (before): p50 {result.FreshP50Ms:F1} ms, p99 {result.FreshP99Ms:F1} ms, max {result.FreshMaxMs:F1} ms; " +
        $"recycled / fresh: p50 {result.P50Ms / result.FreshP50Ms:F2}x, p99 {result.P99Ms / result.FreshP99Ms:F2}x; " +
        $"median page faults per load {result.FreshMedianFaults:F0} -> {result.MedianFaults:F0}");
    Console.WriteLine($"  from memory (median): whole {result.InMemoryMs:F1} ms = HNSW {result.HnswMs:F1} + BM25 {result.Bm25Ms:F1} + id maps {result.InMemoryMs - result.HnswMs - result.Bm25Ms:F1}");
}

DensityResult? density = null;
if (modes.Contains("density"))
{
    // Density: many small tenants resident at once, each shard loaded from a snapshot as its activation would.
    Console.WriteLine($"\ndensity: {tenants:N0} tenants x {chunksPerTenant:N0} chunks");
    var templates = Enumerable.Range(0, 8).Select(t => File.ReadAllBytes(Snapshot(chunksPerTenant, seed: 1000 + t))).ToArray();

    // Each part alone, so the total splits into vectors+graph, keyword index and the shard's id maps.
    var hnswBytes = HeapPerTenant(t => HnswIndex.ReadFrom(SkipIdMaps(templates[t % templates.Length])));
    var bm25Bytes = HeapPerTenant(t =>
    {
        var stream = SkipIdMaps(templates[t % templates.Length]);
        HnswIndex.ReadFrom(stream).Dispose();
        return Bm25Index.ReadFrom(stream);
    });

    ProcessStats.Settle();
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
    density = new DensityResult(tenants, chunksPerTenant, perTenant, perTenant / chunksPerTenant, (rssAfter - rssBefore) / (double)tenants,
        estimated / (double)tenants, Stats.Percentile(small, 50), Stats.Percentile(small, 99), 384 * 4,
        hnswBytes / chunksPerTenant, bm25Bytes / chunksPerTenant, (perTenant - hnswBytes - bm25Bytes) / chunksPerTenant);
    Console.WriteLine($"  managed heap {perTenant / 1048576.0:F2} MB per tenant = {density.HeapBytesPerVector:F0} B per vector (raw float32 vector {density.RawVectorBytes} B); " +
        $"RSS {density.RssBytesPerTenant / 1048576.0:F2} MB per tenant; shard's own estimate {density.EstimatedBytesPerTenant / 1048576.0:F2} MB");
    Console.WriteLine($"  per vector: HNSW (vector + links) {density.HnswBytesPerVector:F0} B, BM25 {density.Bm25BytesPerVector:F0} B, id maps and document table {density.MapsBytesPerVector:F0} B");
    Console.WriteLine($"  1,000-chunk shard load p50 {density.LoadP50Ms:F2} ms, p99 {density.LoadP99Ms:F2} ms");
    Console.WriteLine($"  10,000 such tenants resident would need {perTenant * 10_000 / 1073741824.0:F1} GB of heap");
    GC.KeepAlive(resident);
}

var report = new TenantsReport("tenants", vectorSource.Name + (int8 ? "-int8" : ""), format, cold, density, run.Finish());
if (parsed.Json is { } json)
{
    JsonReport.Write(json, report);
}

return 0;

// Per-load detail: the slowest loads and the median one, and whether the slow ones coincide with collections.
static void PrintSamples(int size, List<LoadSample> samples)
{
    var sorted = samples.OrderBy(s => s.WallMs).ToList();
    Console.WriteLine($"  in load order (ms): {string.Join(' ', samples.Select(s => s.WallMs.ToString("F0", System.Globalization.CultureInfo.InvariantCulture)))}");
    Console.WriteLine($"  {size:N0} chunks, {samples.Count} loads; median load: {sorted[sorted.Count / 2]}");
    foreach (var s in sorted.TakeLast(Math.Min(5, sorted.Count)).Reverse())
    {
        Console.WriteLine($"    slow: {s}");
    }

    var withGc = samples.Where(s => s.Gen0 + s.Gen1 + s.Gen2 > 0).Select(s => s.WallMs).Order().ToList();
    var withoutGc = samples.Where(s => s.Gen0 + s.Gen1 + s.Gen2 == 0).Select(s => s.WallMs).Order().ToList();
    Console.WriteLine($"    {withGc.Count} loads with a collection (p50 {Stats.Percentile(withGc, 50):F1} ms, max {(withGc.Count > 0 ? withGc[^1] : double.NaN):F1} ms), " +
        $"{withoutGc.Count} without (p50 {Stats.Percentile(withoutGc, 50):F1} ms, max {(withoutGc.Count > 0 ? withoutGc[^1] : double.NaN):F1} ms); " +
        $"gen2 collections {samples.Sum(s => s.Gen2)}, total GC pause {samples.Sum(s => s.GcPauseMs):F1} ms, JIT {samples.Sum(s => s.JitMs):F1} ms, " +
        $"involuntary switches {samples.Sum(s => s.InvoluntarySwitches)}, loads with > 256 page faults {samples.Count(s => s.MinorFaults > 256)}, wall - cpu (waiting) p50 {Stats.Median(samples.Select(s => s.WallMs - s.CpuMs)):F1} ms");
}

// One cold load as an activation does it (open the snapshot file, ShardIndex.ReadFrom), measured.
(LoadSample Sample, ShardIndex Index) TimedLoadCore(string path, int size, SnapshotLayout layout)
{
    if (settle)
    {
        GC.Collect();
    }

    var meter = LoadMeter.Start();
    ShardIndex loaded;
    ProbeStream probe;
    using (probe = new ProbeStream(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan)))
    {
        loaded = ShardIndex.ReadFrom(probe, options);
    }

    var sample = meter.Stop(probe, layout);
    if (loaded.Count != size)
    {
        throw new InvalidDataException($"Loaded {loaded.Count} chunks, expected {size}.");
    }

    return (sample, loaded);
}

TimedShard TimedLoad(string path, int size, SnapshotLayout layout)
{
    var (sample, index) = TimedLoadCore(path, size, layout);
    return new TimedShard(sample, index);
}

// Where the snapshot's parts start and end: the HNSW part ends where the keyword index begins.
static SnapshotLayout Layout(string path)
{
    var image = File.ReadAllBytes(path);
    var stream = SkipIdMaps(image);
    HnswIndex.ReadFrom(stream).Dispose();
    return SnapshotLayout.Of(image, stream.Position);
}

// Managed heap per instance when `tenants` copies are resident at once.
double HeapPerTenant(Func<int, object> load)
{
    ProcessStats.Settle();
    var before = GC.GetTotalMemory(forceFullCollection: true);
    var held = new object[tenants];
    for (var t = 0; t < tenants; t++)
    {
        held[t] = load(t);
    }

    var after = GC.GetTotalMemory(forceFullCollection: true);
    GC.KeepAlive(held);
    return (after - before) / (double)tenants;
}

// The shard snapshot is "RSHD" header + id maps, then the HNSW's and the BM25 index's own formats.
static MemoryStream SkipIdMaps(byte[] image)
{
    var mapsLength = BitConverter.ToInt32(image, 8);
    var stream = new MemoryStream(image, writable: false) { Position = 16 + mapsLength };
    return stream;
}

// The formats this build writes ("shard.keyword"), read off an empty shard's snapshot: the shard header, then (no
// graph in an empty shard) the keyword index's header.
string CurrentFormat()
{
    using var probe = new MemoryStream();
    new ShardIndex(options).WriteTo(probe);
    var bytes = probe.ToArray();
    var keyword = 16 + BitConverter.ToInt32(bytes, 8);
    return $"{BitConverter.ToInt32(bytes, 4)}.{BitConverter.ToInt32(bytes, keyword + 4)}";
}

// A cached snapshot in this build's format: built once; a cache file from an older format is loaded (which also
// checks that old snapshots still load) and written again.
string Snapshot(int size, int seed)
{
    var kind = vectorSource.Name + (int8 ? "-int8" : "");
    var path = Path.Combine(cache, $"shard-{size}-{seed}-{kind}-v{format}.snap");
    if (File.Exists(path))
    {
        return path;
    }

    var watch = Stopwatch.StartNew();
    var older = Directory.EnumerateFiles(cache, $"shard-{size}-{seed}-{kind}-v*.snap").Order().FirstOrDefault();
    ShardIndex index;
    if (older is not null)
    {
        using var old = File.OpenRead(older);
        index = ShardIndex.ReadFrom(old, options);
    }
    else
    {
        index = Build(size, seed);
    }

    var tmp = path + ".tmp";
    using (var file = File.Create(tmp))
    {
        index.WriteTo(file);
    }

    File.Move(tmp, path, overwrite: true);
    Console.WriteLine($"{(older is null ? "built" : "converted " + Path.GetFileName(older) + " to")} the {size:N0}-chunk shard snapshot in {watch.Elapsed.TotalSeconds:F1} s");
    return path;
}

ShardIndex Build(int size, int seed)
{
    var vectors = vectorSource.Take(size, seed);
    var index = new ShardIndex(options);
    var watch = Stopwatch.StartNew();
    for (var i = 0; i < size; i++)
    {
        var doc = $"doc-{i / 4}";
        index.Apply(new ChunkLogEntry(i + 1, ChunkOp.Add, doc, i % 4, sentences[(seed + i) % sentences.Length], vectors(i),
            0, 100, null, null, "Title " + doc, null));
        if (size >= 10_000 && i % 10_000 == 9_999)
        {
            Console.WriteLine($"  {i + 1:N0}/{size:N0} inserted ({(i + 1) / watch.Elapsed.TotalSeconds:F0}/s)");
        }
    }

    return index;
}

static string Option(string[] args, string name, string fallback) =>
    Array.IndexOf(args, "--" + name) is var i and >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;

internal sealed record ColdResult(int Chunks, long SnapshotBytes, double SnapshotBytesPerChunk, int Loads, double P50Ms, double P99Ms, double MaxMs,
    double RawReadP50Ms, double RatioToRawRead, long AllocatedBytesPerLoad, double InMemoryMs, double HnswMs, double Bm25Ms,
    double FreshP50Ms, double FreshP99Ms, double FreshMaxMs, double FreshMedianFaults, double MedianFaults, int Gen2Collections, double GcPauseMs,
    double JitMs, bool FullCollectionBeforeEachLoad);

internal sealed record TimedShard(LoadSample Sample, ShardIndex Index) : IDisposable
{
    public void Dispose() => Index.Dispose();
}

internal sealed record DensityResult(int Tenants, int ChunksPerTenant, double HeapBytesPerTenant, double HeapBytesPerVector, double RssBytesPerTenant,
    double EstimatedBytesPerTenant, double LoadP50Ms, double LoadP99Ms, int RawVectorBytes,
    double HnswBytesPerVector, double Bm25BytesPerVector, double MapsBytesPerVector);

internal sealed record TenantsReport(string Benchmark, string Vectors, string SnapshotFormat, IReadOnlyList<ColdResult> ColdActivation, DensityResult? Density, RunInfo Run);
