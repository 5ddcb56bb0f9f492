using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using RagOrleans.Grains.Indexing.Keyword;
using Xunit;
using Xunit.Abstractions;

namespace RagOrleans.Unit.Tests.Indexing.Keyword;

/// <summary>
/// Retrieval quality on real data: BEIR SciFact (5,183 abstracts), read in place from shared/data, scored with the
/// 809 training queries and their relevance judgements.
/// </summary>
public sealed class SciFactEvaluationTests(ITestOutputHelper output)
{
    [Fact]
    public void Bm25_reaches_published_ndcg_at_10_on_scifact_train()
    {
        var dir = TestData.Path("scifact");
        var clock = Stopwatch.StartNew();

        var index = new Bm25Index();
        var docIds = new List<string>();
        var idByDoc = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(Path.Combine(dir, "corpus.jsonl")))
        {
            using var json = JsonDocument.Parse(line);
            var root = json.RootElement;
            var docId = root.GetProperty("_id").GetString()!;
            var id = docIds.Count;
            docIds.Add(docId);
            idByDoc[docId] = id;

            // Title and body as one field, as BEIR's "flat" BM25 baseline does.
            index.Add(id, root.GetProperty("title").GetString() + " " + root.GetProperty("text").GetString());
        }

        var indexed = clock.Elapsed;
        var qrels = new Dictionary<string, Dictionary<int, int>>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(Path.Combine(dir, "qrels-train.tsv")).Skip(1))
        {
            var parts = line.Split('\t');
            if (parts.Length < 3 || !idByDoc.TryGetValue(parts[1], out var docId))
            {
                continue;
            }

            var judged = qrels.TryGetValue(parts[0], out var existing) ? existing : qrels[parts[0]] = [];
            judged[docId] = int.Parse(parts[2], CultureInfo.InvariantCulture);
        }

        var queries = File.ReadLines(Path.Combine(dir, "queries-train.jsonl"))
            .Select(line =>
            {
                using var json = JsonDocument.Parse(line);
                return (Id: json.RootElement.GetProperty("_id").GetString()!, Text: json.RootElement.GetProperty("text").GetString()!);
            })
            .ToList();

        double total = 0;
        var evaluated = 0;
        foreach (var (queryId, text) in queries)
        {
            if (!qrels.TryGetValue(queryId, out var relevant))
            {
                continue;
            }

            total += NdcgAt10(index.Search(text, 10), relevant);
            evaluated++;
        }

        var ndcg = total / evaluated;
        output.WriteLine(
            $"SciFact train: nDCG@10 = {ndcg:F4} over {evaluated} queries; {index.Count} docs, {index.TermCount} terms, "
            + $"~{index.EstimatedMemoryBytes / 1024.0 / 1024.0:F1} MiB; indexed in {indexed.TotalMilliseconds:F0} ms, "
            + $"total {clock.Elapsed.TotalMilliseconds:F0} ms.");

        Assert.Equal(809, queries.Count);
        Assert.Equal(5183, index.Count);
        Assert.True(ndcg >= 0.64, $"nDCG@10 {ndcg:F4} is below 0.64");
    }

    /// <summary>nDCG@10 with graded gains and log2 discounts, as trec_eval / BEIR compute it.</summary>
    private static double NdcgAt10(IReadOnlyList<KeywordHit> hits, Dictionary<int, int> relevant)
    {
        double dcg = 0;
        for (var rank = 0; rank < hits.Count && rank < 10; rank++)
        {
            dcg += relevant.GetValueOrDefault(hits[rank].Id) / Math.Log2(rank + 2);
        }

        double ideal = 0;
        var rank2 = 0;
        foreach (var gain in relevant.Values.Where(g => g > 0).OrderDescending().Take(10))
        {
            ideal += gain / Math.Log2(rank2++ + 2);
        }

        return ideal == 0 ? 0 : dcg / ideal;
    }
}
