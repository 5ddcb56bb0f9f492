using System.Diagnostics;
using System.Security.Cryptography;
using RagOrleans.Bench;
using RagOrleans.Bench.Eval;

// Retrieval quality of the running service, measured through its public HTTP API on a BEIR data set
// (SciFact train split by default). See bench/README.md.
EvalOptions options;
try
{
    options = EvalOptions.Parse(args);
}
catch (Exception e) when (e is ArgumentException or FormatException or DirectoryNotFoundException)
{
    Console.Error.WriteLine(e.Message);
    Console.Error.WriteLine(EvalOptions.Usage);
    return 2;
}

Metrics.SelfCheck();
var run = RunInfo.Start();
var data = BeirData.Load(options.CorpusPath, options.QueriesPath, options.QrelsPath);
var queries = data.JudgedQueries(options.QueryLimit);
var docs = data.Subset(options.LimitDocs, queries, options.Seed);
var uploadedIds = docs.Select(d => d.Id).ToHashSet(StringComparer.Ordinal);
var relevantInSubset = queries.SelectMany(q => data.Qrels[q.Id].Where(j => j.Value > 0).Select(j => j.Key)).Distinct().Count(uploadedIds.Contains);
Console.WriteLine(
    $"{Path.GetFileName(options.CorpusPath)}: {data.Corpus.Count} documents, uploading {docs.Count}" +
    (docs.Count < data.Corpus.Count ? $" (every judged-relevant document of the evaluated queries, {relevantInSubset}, plus random distractors, seed {options.Seed})" : "") +
    $"; {queries.Count} judged queries of {data.Queries.Count}; load average {string.Join(' ', run.LoadAverageAtStart)}");

using var operatorClient = new RagClient(options.Url, options.OperatorKey);
var ready = Stopwatch.StartNew();
while (!await operatorClient.Ready())
{
    if (ready.Elapsed > TimeSpan.FromMinutes(2))
    {
        Console.Error.WriteLine($"{options.Url}readyz did not answer 200 within 2 minutes.");
        return 1;
    }

    await Task.Delay(1000);
}

var tenant = $"eval-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3))}";
const string Collection = "scifact";
var adminKey = await operatorClient.CreateTenant(tenant, "RagOrleans evaluation harness");
Console.WriteLine($"tenant {tenant} created" + (options.Keep ? " (kept afterwards: --keep)" : " (deleted afterwards)"));
try
{
    using var admin = operatorClient.WithKey(adminKey);
    var model = await admin.CreateCollection(Collection, options.Shards, options.Model);
    Console.WriteLine($"collection {Collection}: model {model}; ingesting with {options.Concurrency} concurrent uploads");

    var ingest = await Ingest.Run(admin, Collection, docs, options.Concurrency);

    // Searches run with a user key, as an application would.
    using var user = admin.WithKey(await admin.CreateUserKey("eval"));
    Console.WriteLine($"searching: {queries.Count} queries x {Evaluation.Modes.Length} modes, topK {options.TopK}, 1 caller");
    var results = await Evaluation.Run(user, Collection, queries, data.Qrels, options.TopK);
    var modes = Evaluation.Summarize(results);

    var report = new EvalReport(
        "eval", options.Url.ToString(), tenant, Collection, model,
        options.CorpusPath, options.QueriesPath, options.QrelsPath,
        docs.Count, data.Corpus.Count, options.LimitDocs, queries.Count, options.TopK, options.Concurrency, options.Seed,
        ingest.IngestSeconds, ingest, modes, EvalReport.Judge(modes), EvalReport.SciFactPublished, run.Finish(), results);
    report.Print();
    if (options.Json is { } json)
    {
        JsonReport.Write(json, report);
    }

    return report.Verdict.HybridBeatsBoth ? 0 : 3;
}
finally
{
    if (!options.Keep)
    {
        try
        {
            await operatorClient.DeleteTenant(tenant);
            Console.WriteLine($"tenant {tenant} deleted");
        }
        catch (Exception e) when (e is RagApiException or HttpRequestException or TaskCanceledException)
        {
            Console.Error.WriteLine($"could not delete tenant {tenant}: {e.Message}");
        }
    }
}
