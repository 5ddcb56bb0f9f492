namespace RagOrleans.Grains.Ingestion;

/// <summary>
/// Runs numbered batches over several workers (one per silo), at most <c>perWorker</c> at a time on each, and returns
/// the results in batch order. Each worker slot takes the next batch as soon as it is free, so a faster or idler
/// silo ends up doing more; the first worker's first slot starts first, so a document of one batch stays on it (the caller's own silo).
/// </summary>
public static class BatchFanOut
{
    /// <summary>
    /// Runs batches 0..<paramref name="batchCount"/>-1 through <paramref name="run"/> (worker, batch index). The first
    /// failure stops the hand-out of further batches and is rethrown once the running ones end.
    /// </summary>
    public static async Task<TResult[]> RunAsync<TWorker, TResult>(
        int batchCount, IReadOnlyList<TWorker> workers, int perWorker, Func<TWorker, int, Task<TResult>> run)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batchCount);
        ArgumentOutOfRangeException.ThrowIfLessThan(perWorker, 1);
        if (workers.Count == 0)
        {
            throw new ArgumentException("At least one worker is needed.", nameof(workers));
        }

        var results = new TResult[batchCount];

        // Batch 0 belongs to the first worker's first slot, whatever order the thread pool starts the slots in: a
        // one-batch document stays on the caller's own silo.
        var next = 0;
        var failed = 0;
        var slots = new List<Task>(workers.Count * perWorker);

        // Slot order: every worker's first slot, then every worker's second, ... so load spreads before it stacks.
        for (var s = 0; s < perWorker; s++)
        {
            foreach (var worker in workers)
            {
                slots.Add(Slot(worker, ownsFirstBatch: slots.Count == 0));
            }
        }

        await Task.WhenAll(slots);
        return results;

        async Task Slot(TWorker worker, bool ownsFirstBatch)
        {
            // Yield first so every slot is created before any takes a second batch.
            await Task.Yield();
            var owned = ownsFirstBatch;
            while (Volatile.Read(ref failed) == 0)
            {
                var batch = owned ? 0 : Interlocked.Increment(ref next);
                owned = false;
                if (batch >= batchCount)
                {
                    return;
                }

                try
                {
                    results[batch] = await run(worker, batch);
                }
                catch
                {
                    Interlocked.Exchange(ref failed, 1);
                    throw;
                }
            }
        }
    }
}
