using Microsoft.Extensions.Options;
using RagOrleans.Grains.Telemetry;

namespace RagOrleans.Grains.Ingestion;

/// <summary>
/// Bounds how many documents one silo parses and embeds at once, and shares those slots fairly between tenants.
/// The model already uses every core, so beyond the few documents that keep it busy while others parse or index,
/// more concurrent documents only lengthen the embedder queue until grain calls time out. Waiting documents queue per tenant and free slots go round-robin over the tenants that wait,
/// so one tenant's backlog of thousands of documents delays another tenant's single document by at most one
/// document per busy tenant, not by the whole backlog. Within a tenant, documents keep their arrival order.
/// </summary>
public sealed class IngestionThrottle : IDisposable
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Queue<TaskCompletionSource<IDisposable>>> _queues = new(StringComparer.Ordinal);

    // Tenants with waiting documents, in the order they are next served.
    private readonly LinkedList<string> _ring = new();
    private readonly IDisposable? _tracked;
    private int _free;
    private int _waiting;
    private int _running;

    public IngestionThrottle(IOptions<RagOptions> options, RagMetrics? metrics = null)
    {
        _free = Math.Max(1, options.Value.MaxConcurrentIngestions);
        _tracked = metrics?.TrackBacklog(() => (Volatile.Read(ref _waiting), Volatile.Read(ref _running)));
    }

    /// <summary>Documents waiting for a slot.</summary>
    public int Waiting => Volatile.Read(ref _waiting);

    /// <summary>Documents holding a slot.</summary>
    public int Running => Volatile.Read(ref _running);

    /// <summary>Waits for a slot in <paramref name="tenant"/>'s turn; dispose the result to release it.</summary>
    public async Task<IDisposable> AcquireAsync(string tenant, CancellationToken cancellationToken)
    {
        TaskCompletionSource<IDisposable> waiter;
        lock (_gate)
        {
            if (_free > 0 && _ring.Count == 0)
            {
                _free--;
                Interlocked.Increment(ref _running);
                return new Release(this);
            }

            waiter = new TaskCompletionSource<IDisposable>(TaskCreationOptions.RunContinuationsAsynchronously);
            if (!_queues.TryGetValue(tenant, out var queue))
            {
                queue = new Queue<TaskCompletionSource<IDisposable>>();
                _queues[tenant] = queue;
                _ring.AddLast(tenant);
            }

            queue.Enqueue(waiter);
            Interlocked.Increment(ref _waiting);
        }

        // A cancelled waiter stays in its queue, completed; handing out slots skips it.
        await using var registration = cancellationToken.Register(() =>
        {
            if (waiter.TrySetCanceled(cancellationToken))
            {
                Interlocked.Decrement(ref _waiting);
            }
        });
        return await waiter.Task;
    }

    public void Dispose() => _tracked?.Dispose();

    /// <summary>Gives a released slot to the next tenant in the ring (its oldest live waiter), or frees it.</summary>
    private void Handover()
    {
        lock (_gate)
        {
            while (_ring.First is { } node)
            {
                var tenant = node.Value;
                var queue = _queues[tenant];
                var waiter = queue.Dequeue();
                _ring.RemoveFirst();
                if (queue.Count > 0)
                {
                    _ring.AddLast(node);
                }
                else
                {
                    _queues.Remove(tenant);
                }

                Interlocked.Increment(ref _running);
                if (waiter.TrySetResult(new Release(this)))
                {
                    Interlocked.Decrement(ref _waiting);
                    return;
                }

                // Cancelled meanwhile: its count was taken back when it was cancelled.
                Interlocked.Decrement(ref _running);
            }

            _free++;
        }
    }

    private sealed class Release(IngestionThrottle owner) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                Interlocked.Decrement(ref owner._running);
                owner.Handover();
            }
        }
    }
}
