using System.Globalization;
using System.Text.Json;
using ScottPlot;

namespace RagOrleans.Bench.Load;

/// <summary>
/// Latency percentiles (p50, p90, p99) of every search phase of one or more <c>--json</c> reports as grouped bars,
/// with issue 9's targets (p50 10 ms, p99 50 ms) as dashed lines; a phase's label carries its QPS.
/// </summary>
internal static class LoadPlot
{
    private static readonly (string Name, Color Color)[] Percentiles =
    [
        ("p50", Color.FromHex("#1f77b4")),
        ("p90", Color.FromHex("#ff7f0e")),
        ("p99", Color.FromHex("#d62728")),
    ];

    /// <summary>Draws the reports named by <paramref name="reports"/> (<c>FILE.json</c> or <c>FILE.json=label</c>) into <paramref name="png"/>.</summary>
    public static void Write(string png, IReadOnlyList<string> reports)
    {
        var groups = new List<(string Label, double[] Values)>();
        foreach (var spec in reports)
        {
            var split = spec.IndexOf('=', StringComparison.Ordinal);
            var (file, prefix) = split < 0 ? (spec, string.Empty) : (spec[..split], spec[(split + 1)..] + ": ");
            using var doc = JsonDocument.Parse(File.ReadAllText(file));
            foreach (var scenario in doc.RootElement.GetProperty("scenarios").EnumerateArray())
            {
                var name = scenario.GetProperty("name").GetString();
                foreach (var phase in scenario.GetProperty("phases").EnumerateArray())
                {
                    var qps = phase.GetProperty("qps").GetDouble();
                    groups.Add((
                        $"{prefix}{name}\n{phase.GetProperty("name").GetString()}\n{qps.ToString("N0", CultureInfo.InvariantCulture)} QPS",
                        [phase.GetProperty("p50Ms").GetDouble(), phase.GetProperty("p90Ms").GetDouble(), phase.GetProperty("p99Ms").GetDouble()]));
                }
            }
        }

        var plot = BenchPlot.Create();

        var bars = new List<Bar>();
        var ticks = new List<(double, string)>();
        for (var g = 0; g < groups.Count; g++)
        {
            var center = g * (Percentiles.Length + 1);
            for (var p = 0; p < Percentiles.Length; p++)
            {
                bars.Add(new Bar { Position = center + p - 1, Value = groups[g].Values[p], FillColor = Percentiles[p].Color, Size = 0.9 });
            }

            ticks.Add((center, groups[g].Label));
        }

        plot.Add.Bars(bars);
        foreach (var (target, text) in new[] { (10.0, "p50 target 10 ms"), (50.0, "p99 target 50 ms") })
        {
            var line = plot.Add.HorizontalLine(target, 1.5f, Colors.Black, LinePattern.Dashed);
            line.Text = text;
        }

        foreach (var (name, color) in Percentiles)
        {
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = name, FillColor = color });
        }

        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual([.. ticks.Select(t => t.Item1)], [.. ticks.Select(t => t.Item2)]);
        plot.Axes.Margins(bottom: 0);
        plot.Title("bench/Load: search latency per phase, 8 closed-loop clients over HTTP");
        plot.YLabel("latency (ms)");
        plot.ShowLegend(Alignment.UpperLeft);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(png))!);
        plot.SavePng(png, Math.Max(900, 150 * groups.Count), 650);
    }
}
