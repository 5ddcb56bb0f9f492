using System.Runtime.ExceptionServices;
using RagOrleans.Grains.Embeddings;

namespace RagOrleans.Bench.Embed;

/// <summary>
/// One way of calling the model directly: a batching setting, the session's intra-op threads, and how many threads call
/// it at once. <c>t2x1</c> is one caller on a two-thread session; <c>t1x2</c> is two callers sharing a one-thread session
/// (its <c>Run</c> is thread-safe), each running its own model calls.
/// </summary>
internal sealed record DirectSetting(BatchSetting Batch, int IntraOpNumThreads, int Callers)
{
    public string Label => $"{Batch.Label} t{IntraOpNumThreads}x{Callers}";
}

/// <summary>The direct paths' ways of handing texts to the model.</summary>
internal static class DirectCalls
{
    /// <summary>
    /// <paramref name="texts"/> as the model's own sequence of calls: sorted by length (model positions) and cut with the
    /// same limits as <c>OnnxEmbeddingModel</c> (<see cref="InferenceBatching"/>), so each group is exactly one inference when embedded alone (a
    /// contiguous run of a sorted list, re-sorted, meets the limits the same way).
    /// </summary>
    public static IReadOnlyList<string>[] ModelCalls(IReadOnlyList<string> texts, BatchSetting setting, OnnxEmbeddingModel model, EmbeddingPurpose purpose)
    {
        var descriptor = model.Descriptor;
        var prefix = descriptor.PrefixFor(purpose);
        var lengths = texts.Select(t => model.WordPieceTokenizer.Encode(prefix + t, descriptor.MaxSequenceLength).Length).ToArray();
        var order = Enumerable.Range(0, texts.Count).OrderBy(i => lengths[i]).ToArray();
        var sorted = order.Select(i => lengths[i]).ToArray();
        var options = setting.Options(descriptor, 1);
        var calls = new List<IReadOnlyList<string>>();
        var start = 0;
        while (start < order.Length)
        {
            var rows = InferenceBatching.NextBatch(sorted.AsSpan(start), options);
            calls.Add(order.Skip(start).Take(rows).Select(i => texts[i]).ToArray());
            start += rows;
        }

        return [.. calls];
    }

    /// <summary>
    /// The texts <paramref name="size"/> at a time in arrival order, as <paramref name="size"/> closed-loop callers offer
    /// them, each such slice split into <paramref name="parts"/> near-equal contiguous calls (one per calling thread), so
    /// that no more than <paramref name="size"/> texts are ever in the model at once.
    /// </summary>
    public static IReadOnlyList<string>[] Slices(IReadOnlyList<string> texts, int size, int parts)
    {
        var calls = new List<IReadOnlyList<string>>();
        for (var start = 0; start < texts.Count; start += size)
        {
            var slice = Math.Min(size, texts.Count - start);
            var pieces = Math.Min(parts, slice);
            var offset = start;
            for (var p = 0; p < pieces; p++)
            {
                var length = (slice / pieces) + (p < slice % pieces ? 1 : 0);
                calls.Add(texts.Skip(offset).Take(length).ToArray());
                offset += length;
            }
        }

        return [.. calls];
    }

    /// <summary>
    /// Embeds every call, <paramref name="callers"/> dedicated threads taking the next call from a shared counter (in
    /// order) as soon as they are free; one caller runs them on the calling thread.
    /// </summary>
    public static void Run(OnnxEmbeddingModel model, IReadOnlyList<string>[] calls, int callers)
    {
        if (callers == 1)
        {
            foreach (var call in calls)
            {
                model.Embed(call, EmbeddingPurpose.Document);
            }

            return;
        }

        var next = -1;
        ExceptionDispatchInfo? failure = null;
        var threads = Enumerable.Range(0, callers).Select(i => new Thread(() =>
        {
            try
            {
                int c;
                while ((c = Interlocked.Increment(ref next)) < calls.Length)
                {
                    model.Embed(calls[c], EmbeddingPurpose.Document);
                }
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref failure, ExceptionDispatchInfo.Capture(e), null);
                Interlocked.Exchange(ref next, calls.Length);
            }
        })
        {
            IsBackground = true,
            Name = $"direct caller {i}",
        }).ToArray();
        foreach (var thread in threads)
        {
            thread.Start();
        }

        foreach (var thread in threads)
        {
            thread.Join();
        }

        failure?.Throw();
    }
}
