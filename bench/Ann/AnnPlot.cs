using ScottPlot;

namespace RagOrleans.Bench.Ann;

/// <summary>Recall@10 against QPS (log scale) for every series of one run, with the hnswlib reference points.</summary>
internal static class AnnPlot
{
    public static void Write(string path, string dataset, IReadOnlyList<EfResult> sweep, IReadOnlyList<TwoThreadResult> twoThreads, QuantizedResult int8)
    {
        var plot = new Plot();
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

    private static ScottPlot.Plottables.Scatter Add(Plot plot, string label, IEnumerable<(double Recall, double Qps)> points)
    {
        var list = points.OrderBy(p => p.Recall).ToArray();
        var scatter = plot.Add.Scatter(list.Select(p => p.Recall).ToArray(), list.Select(p => Math.Log10(p.Qps)).ToArray());
        scatter.LegendText = label;
        scatter.MarkerSize = 7;
        return scatter;
    }
}
