using System.Diagnostics;
using RagOrleans.Grains.Indexing;

namespace RagOrleans.Bench.Ann;

internal sealed record TierPoint(int Count, double ExactQps, double GraphQps, double GraphRecall, double BuildSeconds);

internal sealed record TierReport(string Benchmark, int Ef, IReadOnlyList<TierPoint> Points, int? CrossoverCount, RunInfo Run);

/// <summary>
/// Small-tenant tier: exact scan against the graph walk (the service's ef) on growing prefixes of the real vectors,
/// to find the size below which a shard should scan (HnswOptions.ExactSearchThreshold).
/// </summary>
internal static class AnnTier
{
    public static TierReport Run(AnnDataset data, int[] sizes, int ef, AnnSettings settings, RunInfo run)
    {
        const int k = 10;
        var points = new List<TierPoint>();
        var destination = new VectorHit[k];
        Console.WriteLine($"tier: exact scan vs HNSW (ef {ef}), {data.Queries.Length} queries, k={k}");
        Console.WriteLine($"{"N",7} {"exact QPS",10} {"graph QPS",10} {"graph recall",13} {"graph/exact",12}");
        foreach (var n in sizes)
        {
            var options = new HnswOptions { M = settings.M, EfConstruction = settings.EfConstruction, ExactSearchThreshold = 0 };
            using var index = new HnswIndex(data.Dimensions, data.Metric, options, n);
            var watch = Stopwatch.StartNew();
            index.AddBatch(AnnBenchmark.Flatten(data.Base[..n]));
            var build = watch.Elapsed.TotalSeconds;
            double recall = 0;
            foreach (var query in data.Queries)
            {
                var truth = index.SearchExact(query, k).Select(h => h.Id).ToHashSet();
                var count = index.Search(query, k, destination, ef);
                recall += destination.AsSpan(0, count).ToArray().Count(h => truth.Contains(h.Id)) / (double)truth.Count;
            }

            // Interleaved rounds; best of each (the machine is shared).
            double exact = 0, graph = 0;
            for (var r = 0; r < settings.Rounds; r++)
            {
                exact = Math.Max(exact, AnnBenchmark.Qps(q => index.SearchExact(data.Queries[q], k), data.Queries.Length, settings.RoundMilliseconds));
                graph = Math.Max(graph, AnnBenchmark.Qps(q => index.Search(data.Queries[q], k, destination, ef), data.Queries.Length, settings.RoundMilliseconds));
            }

            var point = new TierPoint(n, exact, graph, recall / data.Queries.Length, build);
            points.Add(point);
            Console.WriteLine($"{n,7} {exact,10:F0} {graph,10:F0} {point.GraphRecall,13:F4} {graph / exact,12:F2}");
        }

        // First size where the graph is faster, interpolated in log(N) against the previous size.
        int? crossover = null;
        for (var i = 0; i < points.Count; i++)
        {
            if (points[i].GraphQps > points[i].ExactQps)
            {
                if (i == 0)
                {
                    crossover = points[0].Count;
                    break;
                }

                var (a, b) = (points[i - 1], points[i]);
                var ra = Math.Log(a.GraphQps / a.ExactQps);
                var rb = Math.Log(b.GraphQps / b.ExactQps);
                var t = ra / (ra - rb);
                crossover = (int)Math.Round(Math.Exp(Math.Log(a.Count) + (t * (Math.Log(b.Count) - Math.Log(a.Count)))));
                break;
            }
        }

        Console.WriteLine(crossover is { } c ? $"crossover: the graph overtakes the exact scan at about {c} vectors" : "crossover: exact scan faster at every size measured");
        return new TierReport("ann-tier", ef, points, crossover, run.Finish());
    }
}
