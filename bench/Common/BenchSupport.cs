using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace RagOrleans.Bench;

/// <summary>Where the benchmarks find their inputs and keep their caches.</summary>
internal static class BenchPaths
{
    /// <summary>
    /// shared/data, read in place: the data set is large and shared by every checkout, so it is never copied
    /// into the repository. Searched above the current directory first because a build under
    /// <c>--artifacts-path /tmp/...</c> puts the binaries outside the checkout.
    /// </summary>
    public static string SharedData()
    {
        var overridden = Environment.GetEnvironmentVariable("RAG_SHARED_DATA");
        if (!string.IsNullOrEmpty(overridden))
        {
            return Directory.Exists(overridden)
                ? overridden
                : throw new DirectoryNotFoundException($"RAG_SHARED_DATA={overridden} does not exist.");
        }

        return FindUp(d => Directory.Exists(Path.Combine(d, "shared", "data"))) is { } found
            ? Path.Combine(found, "shared", "data")
            : throw new DirectoryNotFoundException(
                "shared/data not found above the current directory or the binaries; run from the checkout or set RAG_SHARED_DATA.");
    }

    /// <summary>bench/.cache of the checkout (git-ignored), created on demand.</summary>
    public static string CacheDirectory()
    {
        var root = FindUp(d => File.Exists(Path.Combine(d, "Directory.Packages.props")) && Directory.Exists(Path.Combine(d, "bench")))
            ?? throw new DirectoryNotFoundException("Repository root (Directory.Packages.props + bench/) not found; run from the checkout.");
        var cache = Path.Combine(root, "bench", ".cache");
        Directory.CreateDirectory(cache);
        return cache;
    }

    private static string? FindUp(Func<string, bool> match)
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (match(dir.FullName))
                {
                    return dir.FullName;
                }
            }
        }

        return null;
    }
}

/// <summary>The machine and its load, recorded with every result because the benchmark machine is shared.</summary>
internal sealed record RunInfo(
    DateTimeOffset StartedUtc,
    string Runtime,
    string Os,
    int ProcessorCount,
    bool ServerGc,
    double[] LoadAverageAtStart,
    double[] LoadAverageAtEnd,
    long PeakRssBytes)
{
    public static RunInfo Start() => new(
        DateTimeOffset.UtcNow,
        RuntimeInformation.FrameworkDescription,
        RuntimeInformation.OSDescription,
        Environment.ProcessorCount,
        System.Runtime.GCSettings.IsServerGC,
        ProcessStats.LoadAverage(),
        [],
        0);

    public RunInfo Finish() => this with { LoadAverageAtEnd = ProcessStats.LoadAverage(), PeakRssBytes = ProcessStats.PeakRssBytes() };
}

/// <summary>Process and machine counters read from /proc (with portable fallbacks).</summary>
internal static class ProcessStats
{
    /// <summary>Resident set size now.</summary>
    public static long RssBytes() => ReadStatusKb("VmRSS:") is { } kb ? kb * 1024 : Environment.WorkingSet;

    /// <summary>Highest resident set size of the process so far (VmHWM).</summary>
    public static long PeakRssBytes() => ReadStatusKb("VmHWM:") is { } kb ? kb * 1024 : Environment.WorkingSet;

    /// <summary>1, 5 and 15 minute load averages; empty where /proc/loadavg does not exist.</summary>
    public static double[] LoadAverage()
    {
        try
        {
            var parts = File.ReadAllText("/proc/loadavg").Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return parts.Take(3).Select(p => double.Parse(p, CultureInfo.InvariantCulture)).ToArray();
        }
        catch (IOException)
        {
            return [];
        }
        catch (UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary>Full collection first, so RSS and heap numbers are not inflated by garbage from the previous phase.</summary>
    public static void Settle()
    {
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
    }

    private static long? ReadStatusKb(string key)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith(key, StringComparison.Ordinal))
                {
                    var value = line[key.Length..].Trim().Split(' ')[0];
                    return long.Parse(value, CultureInfo.InvariantCulture);
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return null;
    }
}

/// <summary>Small statistics helpers.</summary>
internal static class Stats
{
    /// <summary>Nearest-rank percentile of an already sorted list.</summary>
    public static double Percentile(IReadOnlyList<double> sorted, double p)
    {
        if (sorted.Count == 0)
        {
            return double.NaN;
        }

        var rank = (int)Math.Ceiling(p / 100.0 * sorted.Count);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Count - 1)];
    }

    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return Percentile(sorted, 50);
    }
}

/// <summary>Writes the machine-readable summary requested with <c>--json FILE</c>.</summary>
internal static class JsonReport
{
    private static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static void Write<T>(string path, T report)
    {
        var full = Path.GetFullPath(path);
        if (Path.GetDirectoryName(full) is { Length: > 0 } dir)
        {
            Directory.CreateDirectory(dir);
        }

        File.WriteAllText(full, JsonSerializer.Serialize(report, Options) + Environment.NewLine);
        Console.WriteLine($"JSON summary written to {full}");
    }
}

/// <summary>Command-line handling shared by the benchmarks: positional words plus <c>--name value</c> options.</summary>
internal sealed class BenchArgs
{
    private readonly Dictionary<string, string> _options = new(StringComparer.Ordinal);

    public BenchArgs(string[] args)
    {
        var positional = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i].StartsWith("--", StringComparison.Ordinal))
            {
                if (i + 1 >= args.Length)
                {
                    throw new ArgumentException($"Option {args[i]} needs a value.");
                }

                _options[args[i][2..]] = args[++i];
            }
            else
            {
                positional.Add(args[i]);
            }
        }

        Positional = positional;
    }

    public IReadOnlyList<string> Positional { get; }

    public string? Json => _options.GetValueOrDefault("json");

    public string? Plot => _options.GetValueOrDefault("plot");

    /// <summary>The value of <c>--name</c>, or null.</summary>
    public string? String(string name) => _options.GetValueOrDefault(name);

    public int Int(string name, int fallback) =>
        _options.TryGetValue(name, out var value) ? int.Parse(value, CultureInfo.InvariantCulture) : fallback;
}
