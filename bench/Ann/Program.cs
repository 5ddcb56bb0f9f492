using System.Globalization;
using RagOrleans.Bench;
using RagOrleans.Bench.Ann;

// Usage: Ann siftsmall | real N | tier | replot REPORT.json OUT.png   [--embed-only 1] [--queries 1000] [--rounds 5] [--round-ms 1000]
//        [--ref-qps95 Q] [--plot FILE.png] [--json FILE]
var parsed = new BenchArgs(args);
if (parsed.Positional is ["replot", var reportJson, var png])
{
    // Redraws the PNG of an earlier run from its --json summary.
    AnnPlot.Replot(reportJson, png);
    return 0;
}

if (parsed.Positional.Count == 0 || parsed.Positional[0] is not ("siftsmall" or "real" or "tier"))
{
    Console.Error.WriteLine("usage: Ann siftsmall | real N | tier  [--queries 1000] [--rounds 5] [--round-ms 1000] [--ref-qps95 Q] [--plot FILE.png] [--json FILE]");
    return 2;
}

var run = RunInfo.Start();
var sharedData = BenchPaths.SharedData();
AnnDataset data;
if (parsed.Positional[0] == "tier")
{
    // Exact scan vs graph on prefixes of the real vectors (200 queries are plenty to time a scan).
    int[] sizes = [250, 500, 1000, 2000, 4000, 8000];
    var tierData = AnnDataset.Real(sharedData, sizes[^1], parsed.Int("queries", 200));
    var tierSettings = new AnnSettings(10, 16, 200, [64], parsed.Int("rounds", 3), parsed.Int("round-ms", 500));
    var tier = AnnTier.Run(tierData, sizes, ef: 64, tierSettings, run);
    if (parsed.Json is { } tierJson)
    {
        JsonReport.Write(tierJson, tier);
    }

    return 0;
}

if (parsed.Positional[0] == "siftsmall")
{
    data = AnnDataset.SiftSmall(sharedData);
}
else
{
    var n = parsed.Positional.Count > 1 ? int.Parse(parsed.Positional[1], CultureInfo.InvariantCulture) : 20_000;
    data = AnnDataset.Real(sharedData, n, parsed.Int("queries", 1000));
    if (parsed.Int("embed-only", 0) == 1)
    {
        // Fills the vector cache and stops, so the slow embedding can run once in the background.
        return 0;
    }
}

var settings = new AnnSettings(
    K: 10,
    M: 16,
    EfConstruction: 200,
    EfValues: [16, 24, 32, 64, 128],
    Rounds: parsed.Int("rounds", 5),
    RoundMilliseconds: parsed.Int("round-ms", 1000));

var referenceQps = parsed.Int("ref-qps95", 0);
var report = AnnBenchmark.Run(data, settings, run, referenceQps > 0 ? referenceQps : null, parsed.Plot);
Console.WriteLine($"peak RSS {report.Run.PeakRssBytes / 1e6:F1} MB; load average at end {string.Join(' ', report.Run.LoadAverageAtEnd)}");
if (parsed.Json is { } json)
{
    JsonReport.Write(json, report);
}

return 0;
