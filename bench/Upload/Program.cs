using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;

// Uploads a generated text file of --size-mb through the resumable upload API of a running service and samples
// the service's resident memory (VmRSS of --pid) before, during and after. Usage:
//   dotnet run -c Release --project bench/Upload -- --url http://127.0.0.1:8080 --key <admin key> --pid <frontend pid>
//       [--collection bench] [--size-mb 2048] [--part-mb 64]
// The service must allow the size (Rag__MaxUploadBytes). Parts are generated in memory here, one at a time;
// the service must never hold more than a buffer of them.
var options = Args.Parse(args);
var url = options.Get("url", "http://127.0.0.1:8080");
var key = options.Get("key") ?? throw new ArgumentException("--key <admin key> is required");
var pid = int.Parse(options.Get("pid") ?? throw new ArgumentException("--pid <frontend pid> is required"), CultureInfo.InvariantCulture);
var collection = options.Get("collection", "bench");
var sizeBytes = long.Parse(options.Get("size-mb", "2048"), CultureInfo.InvariantCulture) << 20;
var partBytes = int.Parse(options.Get("part-mb", "64"), CultureInfo.InvariantCulture) << 20;

using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromHours(1) };
http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
await http.PostAsJsonAsync("/v1/collections", new { name = collection });

var sampler = new RssSampler(pid);
await Task.Delay(1000);
var before = sampler.Current();
sampler.Start();
var clock = Stopwatch.StartNew();

var created = await (await http.PostAsJsonAsync($"/v1/collections/{collection}/uploads", new { fileName = "generated.txt", size = sizeBytes })).EnsureSuccessStatusCode()
    .Content.ReadFromJsonAsync<JsonElement>();
var uploadId = created.GetProperty("uploadId").GetString()!;
var parts = (int)((sizeBytes + partBytes - 1) / partBytes);
var buffer = new byte[partBytes];
using var whole = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
for (var n = 1; n <= parts; n++)
{
    var length = (int)Math.Min(partBytes, sizeBytes - (long)(n - 1) * partBytes);
    Generate(buffer.AsSpan(0, length), n);
    whole.AppendData(buffer, 0, length);
    using var content = new ByteArrayContent(buffer, 0, length);
    content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
    content.Headers.TryAddWithoutValidation("x-checksum-sha256", Convert.ToHexStringLower(SHA256.HashData(buffer.AsSpan(0, length))));
    (await http.PutAsync($"/v1/collections/{collection}/uploads/{uploadId}/parts/{n}", content)).EnsureSuccessStatusCode();
    Console.WriteLine($"part {n}/{parts}: {length >> 20} MiB, RSS {sampler.Current() >> 20} MiB");
}

var uploaded = clock.Elapsed;
var complete = await (await http.PostAsync($"/v1/collections/{collection}/uploads/{uploadId}/complete", null)).EnsureSuccessStatusCode()
    .Content.ReadFromJsonAsync<JsonElement>();
var completed = clock.Elapsed;
var duringMax = sampler.Stop();
var after = sampler.Current();
var documentId = complete.GetProperty("documentId").GetString();
var document = await http.GetFromJsonAsync<JsonElement>($"/v1/collections/{collection}/documents/{documentId}");
var hashOk = document.GetProperty("contentHash").GetString() == Convert.ToHexStringLower(whole.GetHashAndReset());

Console.WriteLine($"size {sizeBytes >> 20} MiB in {parts} parts of {partBytes >> 20} MiB; parts sent in {uploaded.TotalSeconds:F1} s " +
    $"({(sizeBytes >> 20) / uploaded.TotalSeconds:F0} MiB/s), complete in {(completed - uploaded).TotalSeconds:F1} s; content hash matches: {hashOk}");
Console.WriteLine($"service RSS (pid {pid}): before {before >> 20} MiB, max during {duringMax >> 20} MiB, after complete {after >> 20} MiB");

// Deterministic, compressible-but-not-trivial English-like text, different in every part.
static void Generate(Span<byte> target, int part)
{
    var words = "wind tide barometer station reading harbour lighthouse keeper evening fog signal vessel north south calm gale"u8.ToArray()
        .Aggregate(new List<List<byte>> { new() }, (acc, b) => { if (b == (byte)' ') { acc.Add([]); } else { acc[^1].Add(b); } return acc; })
        .Select(w => w.ToArray()).ToArray();
    var random = new Random(part);
    var i = 0;
    while (i < target.Length)
    {
        var word = words[random.Next(words.Length)];
        var separator = random.Next(12) == 0 ? (byte)'\n' : (byte)' ';
        for (var j = 0; j < word.Length && i < target.Length; j++)
        {
            target[i++] = word[j];
        }

        if (i < target.Length)
        {
            target[i++] = separator;
        }
    }
}

/// <summary>Reads VmRSS of a process from /proc every 100 ms and keeps the maximum.</summary>
internal sealed class RssSampler(int pid)
{
    private long _max;
    private CancellationTokenSource? _stop;
    private Task? _loop;

    public long Current()
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
            }
        }

        throw new InvalidOperationException($"No VmRSS for pid {pid}.");
    }

    public void Start()
    {
        _stop = new CancellationTokenSource();
        _loop = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                _max = Math.Max(_max, Current());
                await Task.Delay(100);
            }
        });
    }

    public long Stop()
    {
        _stop!.Cancel();
        _loop!.GetAwaiter().GetResult();
        return Math.Max(_max, Current());
    }
}

/// <summary>--name value pairs.</summary>
internal sealed class Args(Dictionary<string, string> values)
{
    public static Args Parse(string[] args)
    {
        var values = new Dictionary<string, string>();
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            values[args[i].TrimStart('-')] = args[i + 1];
        }

        return new Args(values);
    }

    public string Get(string name, string fallback) => values.GetValueOrDefault(name, fallback);

    public string? Get(string name) => values.GetValueOrDefault(name);
}
