using System.Globalization;

namespace RagOrleans.Bench.Eval;

/// <summary>
/// Command line of the evaluation harness.
/// <code>
/// Eval --url URL --operator-key KEY [--limit-docs N] [--queries N] [--concurrency 4] [--top-k 100]
///      [--shards N] [--model NAME] [--corpus FILE] [--queries-file FILE] [--qrels FILE] [--seed 42]
///      [--json FILE] [--keep]
/// </code>
/// <c>--key</c> is accepted for <c>--operator-key</c>, and <c>--queries FILE</c> (a value that is not a number)
/// for <c>--queries-file</c>, so the command line in issue 5 works too.
/// </summary>
internal sealed record EvalOptions(
    Uri Url,
    string OperatorKey,
    string CorpusPath,
    string QueriesPath,
    string QrelsPath,
    int? LimitDocs,
    int? QueryLimit,
    int Concurrency,
    int TopK,
    int? Shards,
    string? Model,
    int Seed,
    string? Json,
    bool Keep)
{
    public const string Usage =
        "usage: Eval --url http://127.0.0.1:8080 --operator-key KEY [--limit-docs N] [--queries N] [--concurrency 4] " +
        "[--top-k 100] [--shards N] [--model NAME] [--corpus FILE] [--queries-file FILE] [--qrels FILE] [--seed 42] [--json FILE] [--keep]";

    private static readonly HashSet<string> Flags = new(StringComparer.Ordinal) { "keep" };

    private static readonly HashSet<string> Valued = new(StringComparer.Ordinal)
    {
        "url", "operator-key", "key", "limit-docs", "queries", "queries-file", "qrels", "corpus", "concurrency",
        "top-k", "shards", "model", "seed", "json",
    };

    public static EvalOptions Parse(string[] args)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var flags = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal))
            {
                throw new ArgumentException($"Unexpected argument '{args[i]}'.");
            }

            var name = args[i][2..];
            if (Flags.Contains(name))
            {
                flags.Add(name);
            }
            else if (Valued.Contains(name))
            {
                values[name] = i + 1 < args.Length ? args[++i] : throw new ArgumentException($"Option --{name} needs a value.");
            }
            else
            {
                throw new ArgumentException($"Unknown option --{name}.");
            }
        }

        var url = values.GetValueOrDefault("url") ?? throw new ArgumentException("--url is required.");
        var key = values.GetValueOrDefault("operator-key") ?? values.GetValueOrDefault("key")
            ?? Environment.GetEnvironmentVariable("RAG_OPERATOR_KEY")
            ?? throw new ArgumentException("--operator-key (or RAG_OPERATOR_KEY) is required.");

        int? queryLimit = null;
        var queriesFile = values.GetValueOrDefault("queries-file");
        if (values.TryGetValue("queries", out var queries))
        {
            if (int.TryParse(queries, NumberStyles.None, CultureInfo.InvariantCulture, out var n))
            {
                queryLimit = Positive(n, "queries");
            }
            else
            {
                queriesFile = queries;
            }
        }

        string? scifact = null;
        string SciFact(string file) => Path.Combine(scifact ??= Path.Combine(BenchPaths.SharedData(), "scifact"), file);

        return new EvalOptions(
            new Uri(url.EndsWith('/') ? url : url + "/", UriKind.Absolute),
            key,
            values.GetValueOrDefault("corpus") ?? SciFact("corpus.jsonl"),
            queriesFile ?? SciFact("queries-train.jsonl"),
            values.GetValueOrDefault("qrels") ?? SciFact("qrels-train.tsv"),
            OptionalInt(values, "limit-docs"),
            queryLimit,
            OptionalInt(values, "concurrency") ?? 4,
            OptionalInt(values, "top-k") ?? 100,
            OptionalInt(values, "shards"),
            values.GetValueOrDefault("model"),
            values.TryGetValue("seed", out var seed) ? int.Parse(seed, CultureInfo.InvariantCulture) : 42,
            values.GetValueOrDefault("json"),
            flags.Contains("keep"));
    }

    private static int? OptionalInt(Dictionary<string, string> values, string name) =>
        values.TryGetValue(name, out var value) ? Positive(int.Parse(value, CultureInfo.InvariantCulture), name) : null;

    private static int Positive(int value, string name) =>
        value > 0 ? value : throw new ArgumentException($"--{name} must be positive.");
}
