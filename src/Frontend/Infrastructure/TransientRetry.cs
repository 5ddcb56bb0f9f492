using Orleans.Runtime;

namespace RagOrleans.Frontend.Infrastructure;

/// <summary>
/// Retries a read-only grain call that was refused before it ran: while a silo shuts down or has just died, its
/// gateway rejects messages or its connection drops, and the client routes the next attempt to a live silo.
/// Only for calls that are safe to repeat: reads (authentication, search, waits) and uploads, which deduplicate by
/// content, so an attempt after one that did get through answers as a duplicate of it.
/// </summary>
public static class TransientRetry
{
    private static readonly TimeSpan[] Delays = [TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(400), TimeSpan.FromSeconds(1)];

    /// <summary>Runs <paramref name="read"/>, again after a short delay when the cluster refused it (at most <c>Delays.Length</c> more times).</summary>
    public static async Task<T> ReadAsync<T>(Func<Task<T>> read, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return await read();
            }
            catch (Exception e) when (attempt < Delays.Length && IsRefusal(e))
            {
                await Task.Delay(Delays[attempt], cancellationToken);
            }
        }
    }

    private static bool IsRefusal(Exception e) =>
        e is SiloUnavailableException or OrleansMessageRejectionException or Orleans.Runtime.Messaging.ConnectionFailedException;
}
