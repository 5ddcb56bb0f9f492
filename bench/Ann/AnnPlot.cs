using ScottPlot;

namespace RagOrleans.Bench.Ann;

/// <summary>Recall@10 against QPS (log scale) for every series of one run, with the hnswlib reference points.</summary>
internal static class AnnPlot
{
    public static void Write(string path, string dataset, IReadOnlyList<EfResult> sweep, IReadOnlyList<TwoThreadResult> twoThreads, QuantizedResult int8)
    {
        var plot = BenchPlot.Create();

        Add(plot, "HNSW float32, 1 thread", sweep.Select(r => (r.Recall, r.Qps.BestQps)));
        Add(plot, "HNSW float32, 2 threads", twoThreads.Select(r => (r.Recall, r.BestQps)));
        Add(plot, "HNSW int8 + float re-score, 1 thread", int8.Sweep.Select(r => (r.Recall, r.BestQps)));
        var reference = Add(plot, "hnswlib (C++), 1 thread, 20k (issue 9)", AnnBenchmark.HnswlibReference.Select(r => (r.Recall, r.Qps)));
        reference.LinePattern = LinePattern.Dashed;
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { LabelFormatter = y => $"{Math.Pow(10, y):N0}" };
        plot.Title($"{dataset}: recall@10 vs queries per second (M=16, efConstruction=200, ef 16..128)");
        plot.XLabel("recall@10");
        plot.YLabel("queries per second (log scale)");
        plot.ShowLegend(Alignment.LowerLeft);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        plot.SavePng(path, 1000, 650);
    }

    public static void Replot(string reportJson, string png)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(reportJson));
        var root = doc.RootElement;
        var sweep = root.GetProperty("sweep").EnumerateArray()
            .Select(e => new EfResult(e.GetProperty("ef").GetInt32(), e.GetProperty("recall").GetDouble(),
                new QpsResult(e.GetProperty("qps").GetProperty("bestQps").GetDouble(), 0, [], 0), 0, 0))
            .ToList();
        var two = root.GetProperty("twoThreads").EnumerateArray()
            .Select(e => new TwoThreadResult(e.GetProperty("ef").GetInt32(), e.GetProperty("recall").GetDouble(), e.GetProperty("bestQps").GetDouble(), 0))
            .ToList();
        var int8 = new QuantizedResult(0, 0, 0, 0, 0, root.GetProperty("int8").GetProperty("sweep").EnumerateArray()
            .Select(e => new QuantizedEf(e.GetProperty("ef").GetInt32(), e.GetProperty("recall").GetDouble(), 0, 0, e.GetProperty("bestQps").GetDouble(), 0))
            .ToList());
        Write(png, root.GetProperty("dataset").GetString() ?? "ann", sweep, two, int8);
    }


    private static ScottPlot.Plottables.Scatter Add(Plot plot, string label, IEnumerable<(double Recall, double Qps)> points)
    {
        var list = points.OrderBy(p => p.Recall).ToArray();
        var scatter = plot.Add.Scatter(list.Select(p => p.Recall).ToArray(), list.Select(p => Math.Log10(p.Qps)).ToArray());
        scatter.LegendText = label;
        scatter.MarkerSize = 7;
        return scatter;
    }
}
