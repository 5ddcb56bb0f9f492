namespace RagOrleans.Grains.Telemetry;

/// <summary>
/// Maps tenant ids to a metric label with bounded cardinality: a tenant among the <c>topN</c> busiest seen
/// so far keeps its id, every other tenant is <see cref="Other"/>. Traffic is counted with the Space-Saving
/// sketch (a fixed number of counters; a newcomer takes over the smallest counter and inherits its count),
/// so memory stays bounded however many tenants exist, and a tenant that becomes busy enters the top set as
/// soon as its count passes the smallest count in it.
/// </summary>
public sealed class TenantLabeler
{
    /// <summary>The label of every tenant outside the top set.</summary>
    public const string Other = "other";

    private readonly object _gate = new();
    private readonly int _topN;
    private readonly int _capacity;
    private readonly Dictionary<string, long> _counts;
    private readonly HashSet<string> _top;

    /// <param name="topN">How many tenants get their own label (0 = all are <see cref="Other"/>).</param>
    /// <param name="capacity">Counters kept; more counters estimate the top set better. At least <paramref name="topN"/>.</param>
    public TenantLabeler(int topN, int capacity = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(topN);
        _topN = topN;
        _capacity = Math.Max(Math.Max(capacity, topN), Math.Max(4 * topN, 16));
        _counts = new Dictionary<string, long>(_capacity, StringComparer.Ordinal);
        _top = new HashSet<string>(topN, StringComparer.Ordinal);
    }

    /// <summary>How many tenants get their own label.</summary>
    public int TopN => _topN;

    /// <summary>Counts one unit of traffic of <paramref name="tenantId"/> and returns its label.</summary>
    public string Observe(string? tenantId, long weight = 1)
    {
        if (string.IsNullOrEmpty(tenantId) || _topN == 0)
        {
            return Other;
        }

        lock (_gate)
        {
            if (!_counts.TryGetValue(tenantId, out var count))
            {
                if (_counts.Count >= _capacity)
                {
                    var (victim, min) = Smallest(_counts);
                    _counts.Remove(victim);
                    _top.Remove(victim);
                    count = min;
                }
            }

            count += weight;
            _counts[tenantId] = count;
            Promote(tenantId, count);
            return _top.Contains(tenantId) ? tenantId : Other;
        }
    }

    /// <summary>The label of <paramref name="tenantId"/> without counting traffic.</summary>
    public string Label(string? tenantId)
    {
        if (string.IsNullOrEmpty(tenantId))
        {
            return Other;
        }

        lock (_gate)
        {
            return _top.Contains(tenantId) ? tenantId : Other;
        }
    }

    /// <summary>The tenants that currently have their own label.</summary>
    public IReadOnlyCollection<string> TopTenants()
    {
        lock (_gate)
        {
            return [.. _top];
        }
    }

    private void Promote(string tenantId, long count)
    {
        if (_top.Contains(tenantId))
        {
            return;
        }

        if (_top.Count < _topN)
        {
            _top.Add(tenantId);
            return;
        }

        // Strictly greater: ties keep the incumbent, so labels do not flap between equally busy tenants.
        var (weakest, weakestCount) = Smallest(_top.Select(t => KeyValuePair.Create(t, _counts[t])));
        if (count > weakestCount)
        {
            _top.Remove(weakest);
            _top.Add(tenantId);
        }
    }

    private static (string Key, long Count) Smallest(IEnumerable<KeyValuePair<string, long>> counts)
    {
        var key = "";
        var min = long.MaxValue;
        foreach (var (k, c) in counts)
        {
            if (c < min || (c == min && string.CompareOrdinal(k, key) < 0))
            {
                (key, min) = (k, c);
            }
        }

        return (key, min);
    }
}
