using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace RagOrleans.Grains.Indexing;

/// <summary>How <see cref="HnswIndex"/> stores the vectors its graph walk reads.</summary>
public enum VectorQuantization
{
    /// <summary>float32 vectors in memory; the walk and the results use exact distances.</summary>
    None = 0,

    /// <summary>
    /// One signed byte per dimension with a per-vector scale in memory (about 4x smaller); the walk uses these
    /// codes and the final candidates are re-scored with the float32 vectors, which live in a memory-mapped file
    /// the operating system may page out.
    /// </summary>
    Int8 = 1,
}

/// <summary>Per-vector symmetric int8 quantization and its SIMD dot product.</summary>
/// <remarks>
/// Per-vector scale (max |x| / 127) instead of per-dimension ranges: it needs no training pass, so an index that
/// grows one vector at a time quantizes its first vector as well as its millionth, and it adapts to every row's
/// own range. Per-dimension ranges would pay off on features with very different spreads; sentence embeddings
/// spread evenly over their dimensions, and the float re-scoring absorbs what the codes lose.
/// </remarks>
internal static unsafe class Int8Quantizer
{
    /// <summary>Writes the codes of <paramref name="vector"/> and returns the scale that maps a code back to a float.</summary>
    public static float Quantize(ReadOnlySpan<float> vector, Span<sbyte> codes)
    {
        float max = 0f;
        foreach (float x in vector)
        {
            max = MathF.Max(max, MathF.Abs(x));
        }

        if (max == 0f || !float.IsFinite(max))
        {
            codes.Clear();
            return 0f;
        }

        float inverse = 127f / max;
        for (int i = 0; i < vector.Length; i++)
        {
            codes[i] = (sbyte)Math.Clamp(MathF.Round(vector[i] * inverse), -127f, 127f);
        }

        return max / 127f;
    }

    /// <summary>Query codes widened to 16 bits once, so the inner loop only widens the stored row.</summary>
    public static float QuantizeQuery(ReadOnlySpan<float> query, Span<short> codes)
    {
        Span<sbyte> narrow = query.Length <= 1024 ? stackalloc sbyte[query.Length] : new sbyte[query.Length];
        float scale = Quantize(query, narrow);
        for (int i = 0; i < narrow.Length; i++)
        {
            codes[i] = narrow[i];
        }

        return scale;
    }

    /// <summary>Integer dot product; |code| &lt;= 127 keeps every 32-bit lane far from overflow below 65k dimensions.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Dot(short* q, sbyte* v, int length)
    {
        int i = 0;
        int sum = 0;
        if (Avx2.IsSupported && length >= 16)
        {
            Vector256<int> s0 = Vector256<int>.Zero, s1 = s0;
            for (; i <= length - 32; i += 32)
            {
                s0 = Avx2.Add(s0, Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(v + i), Avx.LoadVector256(q + i)));
                s1 = Avx2.Add(s1, Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(v + i + 16), Avx.LoadVector256(q + i + 16)));
            }

            for (; i <= length - 16; i += 16)
            {
                s0 = Avx2.Add(s0, Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(v + i), Avx.LoadVector256(q + i)));
            }

            sum = Vector256.Sum(s0 + s1);
        }
        else if (Sse41.IsSupported && length >= 8)
        {
            Vector128<int> s0 = Vector128<int>.Zero;
            for (; i <= length - 8; i += 8)
            {
                s0 = Sse2.Add(s0, Sse2.MultiplyAddAdjacent(Sse41.ConvertToVector128Int16(v + i), Sse2.LoadVector128(q + i)));
            }

            sum = Vector128.Sum(s0);
        }

        for (; i < length; i++)
        {
            sum += q[i] * v[i];
        }

        return sum;
    }
}

/// <summary>
/// Row-major float32 rows in a memory-mapped scratch file that is unlinked as soon as it is opened (on Windows:
/// deleted on close). Quantized indexes keep their exact vectors here: the pages are file-backed, so under memory
/// pressure the kernel drops them instead of the process running out of memory, and they come back on demand.
/// </summary>
internal sealed unsafe class MappedFloatRows : IDisposable
{
    private readonly int _dims;
    private readonly FileStream _file;
    private MemoryMappedFile? _map;
    private MemoryMappedViewAccessor? _view;
    private byte* _pointer;

    public MappedFloatRows(int dims, long capacityRows, string? directory)
    {
        _dims = dims;
        var path = Path.Combine(directory ?? Path.GetTempPath(), $"rag-hnsw-{Guid.NewGuid():N}.f32");
        bool unlinkNow = !OperatingSystem.IsWindows();
        _file = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1, unlinkNow ? FileOptions.None : FileOptions.DeleteOnClose);
        if (unlinkNow)
        {
            File.Delete(path);
        }

        Map(Math.Max(1, capacityRows));
    }

    public long CapacityRows { get; private set; }

    public float* Base => (float*)_pointer;

    /// <summary>Grows the file and the mapping; rows already written stay in the file. Invalidates <see cref="Base"/>.</summary>
    public void EnsureCapacity(long rows)
    {
        if (rows > CapacityRows)
        {
            Map(Math.Max(rows, CapacityRows * 2));
        }
    }

    private void Map(long rows)
    {
        Unmap();
        long bytes = rows * _dims * sizeof(float);
        _file.SetLength(bytes);
        _map = MemoryMappedFile.CreateFromFile(_file, null, bytes, MemoryMappedFileAccess.ReadWrite, HandleInheritability.None, leaveOpen: true);
        _view = _map.CreateViewAccessor(0, bytes, MemoryMappedFileAccess.ReadWrite);
        byte* pointer = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        _pointer = pointer + _view.PointerOffset;
        CapacityRows = rows;
    }

    private void Unmap()
    {
        if (_view is not null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
            _view = null;
        }

        _map?.Dispose();
        _map = null;
        _pointer = null;
    }

    public void Dispose()
    {
        Unmap();
        _file.Dispose();
    }
}
