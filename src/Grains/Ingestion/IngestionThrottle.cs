using Microsoft.Extensions.Options;

namespace RagOrleans.Grains.Ingestion;

/// <summary>
/// Bounds how many documents one silo parses and embeds at once. The model already uses every core, so
/// more concurrent documents only lengthen the embedder queue until grain calls time out; a bounded set
/// keeps each document's embedding calls short and finishes documents in arrival order.
/// </summary>
public sealed class IngestionThrottle(IOptions<RagOptions> options) : IDisposable
{
    private readonly SemaphoreSlim _slots = new(Math.Max(1, options.Value.MaxConcurrentIngestions));

    /// <summary>Waits for a slot; dispose the result to release it.</summary>
    public async Task<IDisposable> AcquireAsync(CancellationToken cancellationToken)
    {
        await _slots.WaitAsync(cancellationToken);
        return new Release(_slots);
    }

    public void Dispose() => _slots.Dispose();

    private sealed class Release(SemaphoreSlim slots) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                slots.Release();
            }
        }
    }
}
