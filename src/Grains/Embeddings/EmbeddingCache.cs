namespace RagOrleans.Grains.Embeddings;

/// <summary>
/// Bounded least-recently-used cache of embeddings keyed by purpose and text. Meant for queries, which repeat;
/// documents are embedded once and would only evict useful entries. Thread-safe.
/// </summary>
public sealed class EmbeddingCache
{
    private readonly Lock _lock = new();
    private readonly Dictionary<(EmbeddingPurpose Purpose, string Text), LinkedListNode<Entry>> _entries = [];
    private readonly LinkedList<Entry> _recency = new();

    /// <summary>Creates a cache holding at most <paramref name="capacity"/> vectors.</summary>
    public EmbeddingCache(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Capacity = capacity;
    }

    /// <summary>Most vectors kept.</summary>
    public int Capacity { get; }

    /// <summary>Vectors currently kept.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>
    /// Looks up a vector; a hit returns a copy so callers cannot corrupt the cached one.
    /// </summary>
    public bool TryGet(EmbeddingPurpose purpose, string text, out float[] vector)
    {
        lock (_lock)
        {
            if (_entries.TryGetValue((purpose, text), out var node))
            {
                _recency.Remove(node);
                _recency.AddFirst(node);
                vector = (float[])node.Value.Vector.Clone();
                return true;
            }
        }

        vector = [];
        return false;
    }

    /// <summary>Stores a copy of <paramref name="vector"/>, evicting the least recently used entry when full.</summary>
    public void Add(EmbeddingPurpose purpose, string text, float[] vector)
    {
        var entry = new Entry((purpose, text), (float[])vector.Clone());
        lock (_lock)
        {
            if (_entries.TryGetValue(entry.Key, out var existing))
            {
                _recency.Remove(existing);
                _entries.Remove(entry.Key);
            }
            else if (_entries.Count >= Capacity)
            {
                var oldest = _recency.Last!;
                _recency.RemoveLast();
                _entries.Remove(oldest.Value.Key);
            }

            _entries[entry.Key] = _recency.AddFirst(entry);
        }
    }

    private sealed record Entry((EmbeddingPurpose Purpose, string Text) Key, float[] Vector);
}
