using System.Diagnostics;
using System.Globalization;

namespace RagOrleans.Bench.Eval;

/// <summary>A document the service gave up on.</summary>
internal sealed record FailedDocument(string Id, string? Error);

/// <summary>How ingestion went: counts, chunks and rates.</summary>
internal sealed record IngestSummary(
    int Documents,
    int Indexed,
    IReadOnlyList<FailedDocument> Failed,
    long Chunks,
    double UploadSeconds,
    double IngestSeconds,
    double ServerSpanSeconds,
    double DocumentsPerSecond,
    double ChunksPerSecond);

/// <summary>Uploads the corpus through the public API and waits until every document is indexed or failed.</summary>
internal static class Ingest
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan ProgressInterval = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan StallTimeout = TimeSpan.FromMinutes(10);

    public static async Task<IngestSummary> Run(RagClient admin, string collection, IReadOnlyList<CorpusDoc> docs, int concurrency)
    {
        var clock = Stopwatch.StartNew();
        var uploaded = 0;
        await Parallel.ForEachAsync(docs, new ParallelOptions { MaxDegreeOfParallelism = concurrency }, async (doc, _) =>
        {
            await admin.AddDocument(collection, doc.Id, doc.Title, doc.Text);
            var n = Interlocked.Increment(ref uploaded);
            if (n % 1000 == 0)
            {
                Console.WriteLine($"  uploaded {n}/{docs.Count} ({clock.Elapsed.TotalSeconds:F0} s)");
            }
        });
        var uploadSeconds = clock.Elapsed.TotalSeconds;
        Console.WriteLine($"  uploaded {docs.Count} documents in {uploadSeconds:F1} s ({docs.Count / uploadSeconds:F0} docs/s accepted); waiting for indexing");

        var lastProgress = TimeSpan.Zero;
        var lastDone = -1;
        var lastChange = clock.Elapsed;
        while (true)
        {
            var states = await admin.ListDocuments(collection);
            var indexed = states.Count(s => s.Status == "indexed");
            var failed = states.Where(s => s.Status == "failed").ToList();
            var chunks = states.Sum(s => (long)s.ChunkCount);
            var done = indexed + failed.Count;
            if (done != lastDone)
            {
                (lastDone, lastChange) = (done, clock.Elapsed);
            }

            if (states.Count >= docs.Count && done >= docs.Count)
            {
                var seconds = clock.Elapsed.TotalSeconds;
                var span = (states.Max(s => s.UpdatedAt) - states.Min(s => s.CreatedAt)).TotalSeconds;
                Console.WriteLine(
                    $"  indexed {indexed}, failed {failed.Count}: {chunks} chunks in {seconds:F1} s " +
                    $"(server-side first upload to last indexed: {span:F1} s)");
                foreach (var f in failed)
                {
                    Console.WriteLine($"  FAILED {f.Id}: {f.Error}");
                }

                return new IngestSummary(
                    docs.Count, indexed, failed.Select(f => new FailedDocument(f.Id, f.Error)).ToList(), chunks,
                    uploadSeconds, seconds, span, docs.Count / seconds, chunks / seconds);
            }

            if (clock.Elapsed - lastChange > StallTimeout)
            {
                throw new TimeoutException($"No document finished for {StallTimeout.TotalMinutes} minutes ({done}/{docs.Count} done).");
            }

            if (clock.Elapsed - lastProgress >= ProgressInterval)
            {
                lastProgress = clock.Elapsed;
                var queued = states.Count(s => s.Status == "queued");
                Console.WriteLine(string.Create(
                    CultureInfo.InvariantCulture,
                    $"  {clock.Elapsed.TotalSeconds,5:F0} s: indexed {indexed}/{docs.Count}, failed {failed.Count}, queued {queued}, " +
                    $"{chunks} chunks ({chunks / clock.Elapsed.TotalSeconds:F1} chunks/s so far)"));
            }

            await Task.Delay(PollInterval);
        }
    }
}
