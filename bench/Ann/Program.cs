using System.Globalization;
using RagOrleans.Bench;
using RagOrleans.Bench.Ann;

// Usage: Ann siftsmall | real N   [--embed-only 1] [--queries 1000] [--rounds 5] [--round-ms 1000] [--json FILE]
var parsed = new BenchArgs(args);
if (parsed.Positional.Count == 0 || parsed.Positional[0] is not ("siftsmall" or "real"))
{
    Console.Error.WriteLine("usage: Ann siftsmall | real N  [--queries 1000] [--rounds 5] [--round-ms 1000] [--json FILE]");
    return 2;
}

var run = RunInfo.Start();
var sharedData = BenchPaths.SharedData();
AnnDataset data;
if (parsed.Positional[0] == "siftsmall")
{
    data = AnnDataset.SiftSmall(sharedData);
}
else
{
    var n = parsed.Positional.Count > 1 ? int.Parse(parsed.Positional[1], CultureInfo.InvariantCulture) : 20_000;
    data = RealEmbeddings.Load(sharedData, n, parsed.Int("queries", 1000));
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

var report = AnnBenchmark.Run(data, settings, run);
Console.WriteLine($"peak RSS {report.Run.PeakRssBytes / 1e6:F1} MB; load average at end {string.Join(' ', report.Run.LoadAverageAtEnd)}");
if (parsed.Json is { } json)
{
    JsonReport.Write(json, report);
}

return 0;
