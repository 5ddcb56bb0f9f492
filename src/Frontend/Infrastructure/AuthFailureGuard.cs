using System.Collections.Concurrent;

namespace RagOrleans.Frontend.Infrastructure;

/// <summary>Limits of the brute-force guard on failed authentications (section <c>Rag:AuthGuard</c>).</summary>
public sealed class AuthGuardOptions
{
    /// <summary>The configuration section.</summary>
    public const string Section = "Rag:AuthGuard";

    /// <summary>Turns the guard off (tests that hammer bad keys on purpose).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Failed authentications one client address may make within <see cref="Window"/> before it is refused.</summary>
    public int MaxFailuresPerClient { get; set; } = 20;

    /// <summary>
    /// Failed authentications against one key id (tenant and key id of an <c>rk.</c> key) within <see cref="Window"/>,
    /// from any address, before further attempts on that key id are refused. Higher than the per-client limit: it
    /// stops distributed guessing without letting a few bad requests lock the key's owner out.
    /// </summary>
    public int MaxFailuresPerKeyId { get; set; } = 100;

    /// <summary>The sliding window over which failures count.</summary>
    public TimeSpan Window { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Clients and key ids tracked at once; beyond this the stalest are forgotten, so memory stays bounded.</summary>
    public int MaxTrackedSubjects { get; set; } = 20_000;
}

/// <summary>
/// Counts failed authentications per subject (a client address or a key id) in a sliding window and refuses a
/// subject once it reaches its limit, until enough of its failures have aged out. Each subject keeps at most
/// <c>limit</c> timestamps and the number of subjects is capped, so an attacker cannot grow it without bound.
/// Per frontend: every frontend process guards its own door.
/// </summary>
public sealed class AuthFailureGuard(TimeProvider clock, int maxTrackedSubjects)
{
    private readonly ConcurrentDictionary<string, Subject> _subjects = new(StringComparer.Ordinal);
    private readonly Lock _trim = new();

    /// <summary>Subjects tracked right now.</summary>
    public int TrackedSubjects => _subjects.Count;

    /// <summary>
    /// Whether <paramref name="subject"/> is blocked (at least <paramref name="limit"/> failures in the last
    /// <paramref name="window"/>); when it is, <paramref name="retryAfter"/> says when its oldest failure ages out.
    /// </summary>
    public bool IsBlocked(string subject, int limit, TimeSpan window, out TimeSpan retryAfter)
    {
        retryAfter = TimeSpan.Zero;
        if (!_subjects.TryGetValue(subject, out var s))
        {
            return false;
        }

        var now = clock.GetUtcNow();
        lock (s)
        {
            s.Expire(now - window);
            if (s.Failures.Count < limit)
            {
                return false;
            }

            // The count drops below the limit once the oldest failures that keep it there have aged out.
            var oldestThatMatters = s.Failures.ElementAt(s.Failures.Count - limit);
            retryAfter = oldestThatMatters + window - now;
            if (retryAfter < TimeSpan.FromSeconds(1))
            {
                retryAfter = TimeSpan.FromSeconds(1);
            }

            return true;
        }
    }

    /// <summary>Records one failed authentication of <paramref name="subject"/>.</summary>
    public void RecordFailure(string subject, int limit, TimeSpan window)
    {
        var now = clock.GetUtcNow();
        if (_subjects.Count >= maxTrackedSubjects && !_subjects.ContainsKey(subject))
        {
            Trim(now - window);
        }

        var s = _subjects.GetOrAdd(subject, static _ => new Subject());
        lock (s)
        {
            s.Expire(now - window);
            s.Failures.Enqueue(now);

            // Only the newest `limit` failures can ever matter for the decision.
            while (s.Failures.Count > limit)
            {
                s.Failures.Dequeue();
            }

            s.LastFailure = now;
        }
    }

    private void Trim(DateTimeOffset horizon)
    {
        lock (_trim)
        {
            if (_subjects.Count < maxTrackedSubjects)
            {
                return;
            }

            foreach (var (key, s) in _subjects)
            {
                if (s.LastFailure < horizon)
                {
                    _subjects.TryRemove(key, out _);
                }
            }

            // Still full of live subjects (a wide attack): forget the stalest half rather than grow.
            if (_subjects.Count >= maxTrackedSubjects)
            {
                foreach (var key in _subjects.OrderBy(p => p.Value.LastFailure).Take(_subjects.Count / 2).Select(p => p.Key).ToList())
                {
                    _subjects.TryRemove(key, out _);
                }
            }
        }
    }

    private sealed class Subject
    {
        public Queue<DateTimeOffset> Failures { get; } = new();

        public DateTimeOffset LastFailure { get; set; }

        public void Expire(DateTimeOffset horizon)
        {
            while (Failures.Count > 0 && Failures.Peek() <= horizon)
            {
                Failures.Dequeue();
            }
        }
    }
}
