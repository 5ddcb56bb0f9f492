namespace RagOrleans.Grains.Ingestion;

/// <summary>Exponential backoff with jitter for ingestion retries.</summary>
public static class RetryBackoff
{
    /// <summary>
    /// The wait after failed attempt number <paramref name="attempt"/> (1-based): <paramref name="initial"/> doubled per
    /// earlier attempt, capped at <paramref name="max"/>, then scaled into [50 %, 100 %] by <paramref name="random01"/>
    /// (a value in [0, 1)). The jitter spreads the retries of documents that failed together (an embedder outage)
    /// so they do not all return at the same instant; the lower half keeps every wait at least half the nominal one.
    /// </summary>
    public static TimeSpan Delay(int attempt, TimeSpan initial, TimeSpan max, double random01)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(attempt, 1);
        var nominal = Math.Min(initial.TotalMilliseconds * Math.Pow(2, Math.Min(attempt - 1, 30)), max.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(nominal * (0.5 + (0.5 * Math.Clamp(random01, 0, 1))));
    }
}
