using System.Security.Cryptography;
using System.Text;

namespace RagOrleans.Grains.Ingestion;

/// <summary>
/// Bounded least-recently-used cache of document-chunk embeddings keyed by a hash of model and embedded text, so the
/// same chunk (boilerplate shared by documents, or a document uploaded again) is not run through the model twice on
/// this silo. Keys are 128-bit SHA-256 prefixes: the text itself is not kept. Thread-safe.
/// </summary>
public sealed class ChunkVectorCache
{
    private readonly Lock _lock = new();
    private readonly Dictionary<UInt128, LinkedListNode<(UInt128 Key, float[] Vector)>> _entries = [];
    private readonly LinkedList<(UInt128 Key, float[] Vector)> _recency = new();
    private long _hits;
    private long _misses;

    /// <summary>Creates a cache holding at most <paramref name="capacity"/> vectors (0 disables it).</summary>
    public ChunkVectorCache(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        Capacity = capacity;
    }

    /// <summary>Most vectors kept.</summary>
    public int Capacity { get; }

    /// <summary>Lookups answered from the cache since start.</summary>
    public long Hits => Interlocked.Read(ref _hits);

    /// <summary>Lookups that missed since start.</summary>
    public long Misses => Interlocked.Read(ref _misses);

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

    /// <summary>The key of <paramref name="text"/> embedded by <paramref name="model"/>.</summary>
    public static UInt128 KeyOf(string model, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(model + "\n" + text);
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(bytes, hash);
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt128LittleEndian(hash);
    }

    /// <summary>Looks a vector up; a hit returns a copy so callers cannot corrupt the cached one.</summary>
    public bool TryGet(UInt128 key, out float[] vector)
    {
        lock (_lock)
        {
            if (_entries.TryGetValue(key, out var node))
            {
                _recency.Remove(node);
                _recency.AddFirst(node);
                vector = (float[])node.Value.Vector.Clone();
                _hits++;
                return true;
            }

            _misses++;
        }

        vector = [];
        return false;
    }

    /// <summary>Stores a copy of <paramref name="vector"/>, evicting the least recently used entry when full.</summary>
    public void Add(UInt128 key, float[] vector)
    {
        if (Capacity == 0)
        {
            return;
        }

        var copy = (float[])vector.Clone();
        lock (_lock)
        {
            if (_entries.Remove(key, out var existing))
            {
                _recency.Remove(existing);
            }
            else if (_entries.Count >= Capacity)
            {
                _entries.Remove(_recency.Last!.Value.Key);
                _recency.RemoveLast();
            }

            _entries[key] = _recency.AddFirst((key, copy));
        }
    }
}
