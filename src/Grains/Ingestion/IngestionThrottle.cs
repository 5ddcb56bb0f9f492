using Microsoft.Extensions.Options;
using RagOrleans.Grains.Telemetry;

namespace RagOrleans.Grains.Ingestion;

/// <summary>
/// Bounds how many documents one silo parses and embeds at once. The model already uses every core, so
/// more concurrent documents only lengthen the embedder queue until grain calls time out; a bounded set
/// keeps each document's embedding calls short and finishes documents in arrival order.
/// </summary>
public sealed class IngestionThrottle : IDisposable
{
    private readonly SemaphoreSlim _slots;
    private readonly IDisposable? _tracked;
    private int _waiting;
    private int _running;

    public IngestionThrottle(IOptions<RagOptions> options, RagMetrics? metrics = null)
    {
        _slots = new SemaphoreSlim(Math.Max(1, options.Value.MaxConcurrentIngestions));
        _tracked = metrics?.TrackBacklog(() => (Volatile.Read(ref _waiting), Volatile.Read(ref _running)));
    }

    /// <summary>Documents waiting for a slot.</summary>
    public int Waiting => Volatile.Read(ref _waiting);

    /// <summary>Documents holding a slot.</summary>
    public int Running => Volatile.Read(ref _running);

    /// <summary>Waits for a slot; dispose the result to release it.</summary>
    public async Task<IDisposable> AcquireAsync(CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _waiting);
        try
        {
            await _slots.WaitAsync(cancellationToken);
        }
        finally
        {
            Interlocked.Decrement(ref _waiting);
        }

        Interlocked.Increment(ref _running);
        return new Release(this);
    }

    public void Dispose()
    {
        _tracked?.Dispose();
        _slots.Dispose();
    }

    private sealed class Release(IngestionThrottle owner) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                Interlocked.Decrement(ref owner._running);
                owner._slots.Release();
            }
        }
    }
}
