using System.Globalization;
using System.Text.Json;

namespace RagOrleans.Bench.Eval;

/// <summary>One corpus document (BEIR <c>corpus.jsonl</c>: <c>{"_id","title","text"}</c>).</summary>
internal sealed record CorpusDoc(string Id, string Title, string Text);

/// <summary>One query (BEIR <c>queries.jsonl</c>: <c>{"_id","text"}</c>).</summary>
internal sealed record EvalQuery(string Id, string Text);

/// <summary>
/// A BEIR data set read in place: corpus, queries and graded relevance judgments
/// (<c>query-id → corpus-id → score</c>).
/// </summary>
internal sealed record BeirData(
    IReadOnlyList<CorpusDoc> Corpus,
    IReadOnlyList<EvalQuery> Queries,
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, int>> Qrels)
{
    public static BeirData Load(string corpusPath, string queriesPath, string qrelsPath)
    {
        var corpus = new List<CorpusDoc>();
        foreach (var line in File.ReadLines(corpusPath))
        {
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            corpus.Add(new CorpusDoc(
                IdOf(root),
                root.TryGetProperty("title", out var title) ? title.GetString() ?? "" : "",
                root.TryGetProperty("text", out var text) ? text.GetString() ?? "" : ""));
        }

        var queries = new List<EvalQuery>();
        foreach (var line in File.ReadLines(queriesPath))
        {
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            using var doc = JsonDocument.Parse(line);
            queries.Add(new EvalQuery(IdOf(doc.RootElement), doc.RootElement.GetProperty("text").GetString() ?? ""));
        }

        var qrels = new Dictionary<string, Dictionary<string, int>>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(qrelsPath))
        {
            var parts = line.Split('\t');
            if (parts.Length < 3 || !int.TryParse(parts[2], NumberStyles.Integer, CultureInfo.InvariantCulture, out var score))
            {
                continue; // the "query-id corpus-id score" header, blank lines
            }

            if (!qrels.TryGetValue(parts[0], out var judged))
            {
                qrels[parts[0]] = judged = new Dictionary<string, int>(StringComparer.Ordinal);
            }

            judged[parts[1]] = score;
        }

        return new BeirData(
            corpus,
            queries,
            qrels.ToDictionary(p => p.Key, p => (IReadOnlyDictionary<string, int>)p.Value, StringComparer.Ordinal));
    }

    /// <summary>
    /// The queries that have judgments (BEIR evaluates only those), in file order, the first
    /// <paramref name="limit"/> of them when given.
    /// </summary>
    public IReadOnlyList<EvalQuery> JudgedQueries(int? limit)
    {
        var judged = Queries.Where(q => Qrels.ContainsKey(q.Id));
        return (limit is { } n ? judged.Take(n) : judged).ToList();
    }

    /// <summary>
    /// The documents to upload: the whole corpus, or with <paramref name="limitDocs"/> every document judged
    /// relevant for <paramref name="queries"/> plus distractors drawn at random (fixed seed) up to that size,
    /// kept in corpus order.
    /// </summary>
    public IReadOnlyList<CorpusDoc> Subset(int? limitDocs, IReadOnlyList<EvalQuery> queries, int seed)
    {
        if (limitDocs is not { } limit || limit >= Corpus.Count)
        {
            return Corpus;
        }

        var relevant = new HashSet<string>(
            queries.SelectMany(q => Qrels[q.Id].Where(j => j.Value > 0).Select(j => j.Key)),
            StringComparer.Ordinal);
        var corpusIds = Corpus.Select(d => d.Id).ToHashSet(StringComparer.Ordinal);
        var keep = new HashSet<string>(relevant.Where(corpusIds.Contains), StringComparer.Ordinal);
        if (keep.Count > limit)
        {
            Console.WriteLine($"note: --limit-docs {limit} is below the {keep.Count} judged-relevant documents; uploading all of those.");
        }

        var distractors = Corpus.Where(d => !keep.Contains(d.Id)).Select(d => d.Id).ToArray();
        new Random(seed).Shuffle(distractors);
        foreach (var id in distractors.Take(Math.Max(0, limit - keep.Count)))
        {
            keep.Add(id);
        }

        return Corpus.Where(d => keep.Contains(d.Id)).ToList();
    }

    private static string IdOf(JsonElement root)
    {
        var id = root.GetProperty("_id");
        return id.ValueKind == JsonValueKind.Number ? id.GetRawText() : id.GetString() ?? "";
    }
}
