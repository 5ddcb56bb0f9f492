using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;

namespace RagOrleans.Grains.Indexing;

public sealed partial class HnswIndex
{
    // Layout (little-endian):
    //   magic "RGHNSW\r\n" | int32 version | header fields | uint32 CRC-32C of everything so far
    //   vectors float[count*dims] | levels byte[count] | deleted byte[count] | links0 int[count*(1+2M)]
    //   | upper links int[upperUsed] | [v2, int8 only: codes sbyte[count*dims] | scales float[count]
    //   | (L2 only) squared norms float[count]] | uint32 CRC-32C of the whole file before it
    // Version 2 added the int32 quantization field at the end of the header and the int8 section; version 1
    // snapshots (no quantization) still load. Version 3 is version 2's layout for an index whose graph is deferred
    // (items, no entry point, every link list empty); an index with a graph is still written as version 2, so a
    // build that predates deferral reads every snapshot except those, and refuses them by their version.
    // The header has its own checksum so a corrupted size can never trigger a huge allocation.
    private static ReadOnlySpan<byte> SnapshotMagic => "RGHNSW\r\n"u8;

    private const int SnapshotVersion = 2;
    private const int DeferredGraphSnapshotVersion = 3;

    // 1M elements per chunk: keeps spans far below the 2 GB byte-span limit and the checksum cache-friendly.
    private const int ChunkElements = 1 << 20;

    /// <summary>
    /// Writes a versioned, checksummed binary snapshot of the whole index (vectors, tombstones, graph and the
    /// level generator's state, so adding after <see cref="ReadFrom"/> continues exactly as without the round trip).
    /// </summary>
    /// <param name="stream">Destination; written sequentially, not closed.</param>
    public void WriteTo(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("HNSW snapshots are only supported on little-endian machines.");
        }

        var writer = new SnapshotWriter(stream);
        writer.Write(SnapshotMagic);
        writer.WriteInt32(GraphDeferred ? DeferredGraphSnapshotVersion : SnapshotVersion);
        writer.WriteInt32(_dims);
        writer.WriteInt32((int)_metric);
        writer.WriteInt32(_options.M);
        writer.WriteInt32(_options.EfConstruction);
        writer.WriteInt32(_options.EfSearch);
        writer.WriteInt32(_options.Seed);
        writer.WriteInt32(_options.ExactSearchThreshold);
        writer.WriteInt32(_count);
        writer.WriteInt32(_live);
        writer.WriteInt32(_entryPoint);
        writer.WriteInt32(_maxLevel);
        writer.WriteInt32(_upperUsed);
        writer.WriteUInt64(_rngState);
        writer.WriteInt32((int)_options.Quantization);
        writer.WriteChecksum();

        writer.WriteArray<float>(UsedVectors);
        writer.WriteArray<byte>(_levels.AsSpan(0, _count));
        writer.WriteArray<byte>(_deleted.AsSpan(0, _count));
        writer.WriteArray<int>(_links0.AsSpan(0, (int)((long)_count * _stride0)));
        writer.WriteArray<int>(_upperLinks.AsSpan(0, _upperUsed));
        if (_quantized)
        {
            // Codes are stored, not recomputed on load, so a cold start is pure copying.
            writer.WriteArray<sbyte>(_codes.AsSpan(0, _count * _dims));
            writer.WriteArray<float>(_scales.AsSpan(0, _count));
            if (_norms.Length > 0)
            {
                writer.WriteArray<float>(_norms.AsSpan(0, _count));
            }
        }

        writer.WriteChecksum();
    }

    /// <summary>Reads a snapshot written by <see cref="WriteTo"/> (any supported version).</summary>
    /// <param name="stream">Source, positioned at the snapshot; read sequentially, not closed.</param>
    /// <param name="scratchDirectory">Where an int8 index keeps its memory-mapped float file (temp directory when null).</param>
    /// <exception cref="InvalidDataException">
    /// Bad magic, unsupported version, truncation, checksum mismatch or an inconsistent graph.
    /// </exception>
    public static HnswIndex ReadFrom(Stream stream, string? scratchDirectory = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("HNSW snapshots are only supported on little-endian machines.");
        }

        try
        {
            return ReadCore(new SnapshotReader(stream), scratchDirectory);
        }
        catch (EndOfStreamException ex)
        {
            throw new InvalidDataException("HNSW snapshot is truncated.", ex);
        }
    }

    private static HnswIndex ReadCore(SnapshotReader reader, string? scratchDirectory)
    {
        Span<byte> magic = stackalloc byte[8];
        reader.Read(magic);
        if (!magic.SequenceEqual(SnapshotMagic))
        {
            throw new InvalidDataException("Not an HNSW snapshot (bad magic).");
        }

        int version = reader.ReadInt32();
        if (version is not (1 or SnapshotVersion or DeferredGraphSnapshotVersion))
        {
            throw new InvalidDataException($"Unsupported HNSW snapshot version {version}; this build reads versions 1 to {DeferredGraphSnapshotVersion}.");
        }

        bool deferred = version == DeferredGraphSnapshotVersion;

        int dims = reader.ReadInt32();
        int metric = reader.ReadInt32();
        int m = reader.ReadInt32();
        int efConstruction = reader.ReadInt32();
        int efSearch = reader.ReadInt32();
        int seed = reader.ReadInt32();
        int exactSearchThreshold = reader.ReadInt32();
        int count = reader.ReadInt32();
        int live = reader.ReadInt32();
        int entryPoint = reader.ReadInt32();
        int maxLevel = reader.ReadInt32();
        int upperUsed = reader.ReadInt32();
        ulong rngState = reader.ReadUInt64();
        var quantization = version >= 2 ? (VectorQuantization)reader.ReadInt32() : VectorQuantization.None;
        reader.VerifyChecksum("header");
        var options = new HnswOptions
        {
            M = m,
            EfConstruction = efConstruction,
            EfSearch = efSearch,
            Seed = seed,
            ExactSearchThreshold = exactSearchThreshold,
            Quantization = quantization,
            ScratchDirectory = scratchDirectory,
        };

        // The header checksum matched, so anything odd below is a writer bug or a crafted file; still refuse it.
        if (dims < 1 || dims > MaxDimensions || metric is not ((int)VectorMetric.Cosine or (int)VectorMetric.L2)
            || options.M < 2 || options.M > HnswOptions.MaxM || options.EfConstruction < 1 || options.EfSearch < 1
            || options.ExactSearchThreshold < 0 || quantization is not (VectorQuantization.None or VectorQuantization.Int8) || count < 0 || live < 0 || live > count
            || entryPoint < -1 || entryPoint >= count || maxLevel < -1 || maxLevel > MaxLevelCap
            || (deferred ? count == 0 || entryPoint != -1 : (count == 0) != (entryPoint == -1)) || (entryPoint == -1) != (maxLevel == -1) || upperUsed < 0
            || (long)count * dims > Array.MaxLength || (long)count * (1 + (2 * options.M)) > Array.MaxLength)
        {
            throw new InvalidDataException("HNSW snapshot header is inconsistent.");
        }

        var index = new HnswIndex(dims, (VectorMetric)metric, options, count, validate: false);
        try
        {
            index.EnsureUpperCapacity(upperUsed);
            index._count = count;
            reader.ReadArray<float>(index.UsedVectors);
            reader.ReadArray<byte>(index._levels.AsSpan(0, count));
            reader.ReadArray<byte>(index._deleted.AsSpan(0, count));
            reader.ReadArray<int>(index._links0.AsSpan(0, count * index._stride0));
            reader.ReadArray<int>(index._upperLinks.AsSpan(0, upperUsed));
            if (index._quantized)
            {
                reader.ReadArray<sbyte>(index._codes.AsSpan(0, count * dims));
                reader.ReadArray<float>(index._scales.AsSpan(0, count));
                if (index._norms.Length > 0)
                {
                    reader.ReadArray<float>(index._norms.AsSpan(0, count));
                }
            }

            reader.VerifyChecksum("payload");
        }
        catch
        {
            index.Dispose();
            throw;
        }

        index._count = count;
        index._live = live;
        index._entryPoint = entryPoint;
        index._maxLevel = maxLevel;
        index._upperUsed = upperUsed;
        index._rngState = rngState;
        try
        {
            index.ValidateGraph();

            // A deferred index saved under a higher threshold than it now has gets its graph now, not at its next add.
            index.LinkDeferred();
        }
        catch
        {
            index.Dispose();
            throw;
        }

        return index;
    }

    /// <summary>
    /// Structural checks after loading. Search uses unchecked pointer arithmetic, so an out-of-range link must
    /// be rejected here rather than read as memory later.
    /// </summary>
    private void ValidateGraph()
    {
        long upperOffset = 0;
        int live = 0;
        for (int id = 0; id < _count; id++)
        {
            int level = _levels[id];
            if (level > (GraphDeferred ? MaxLevelCap : _maxLevel) || _deleted[id] > 1)
            {
                throw new InvalidDataException($"HNSW snapshot node {id} has an invalid level or tombstone.");
            }

            live += _deleted[id] == 0 ? 1 : 0;
            if (level > 0)
            {
                _upperOffset[id] = (int)upperOffset;
                upperOffset += (long)level * _strideUpper;
                if (upperOffset > _upperUsed)
                {
                    throw new InvalidDataException("HNSW snapshot upper-layer links are shorter than the levels require.");
                }
            }
            else
            {
                _upperOffset[id] = -1;
            }

            // A deferred graph has no links at all.
            ValidateLinks(_links0.AsSpan(id * _stride0, _stride0), GraphDeferred ? 0 : _maxM0, id);
            for (int l = 1; l <= level; l++)
            {
                ValidateLinks(_upperLinks.AsSpan(_upperOffset[id] + ((l - 1) * _strideUpper), _strideUpper), GraphDeferred ? 0 : _m, id);
            }
        }

        if (upperOffset != _upperUsed || live != _live || (_entryPoint >= 0 && _levels[_entryPoint] != _maxLevel))
        {
            throw new InvalidDataException("HNSW snapshot counts, levels or entry point are inconsistent.");
        }
    }

    private void ValidateLinks(ReadOnlySpan<int> block, int maxLinks, int id)
    {
        int linkCount = block[0];
        if ((uint)linkCount > (uint)maxLinks)
        {
            throw new InvalidDataException($"HNSW snapshot node {id} has {linkCount} links (max {maxLinks}).");
        }

        foreach (int neighbor in block.Slice(1, linkCount))
        {
            if ((uint)neighbor >= (uint)_count)
            {
                throw new InvalidDataException($"HNSW snapshot node {id} links to unknown id {neighbor}.");
            }
        }
    }

    /// <summary>Stream writer that folds every byte into a running CRC-32C (hardware accelerated via BitOperations).</summary>
    private sealed class SnapshotWriter(Stream stream)
    {
        private uint _crc = uint.MaxValue;

        public void Write(ReadOnlySpan<byte> bytes)
        {
            _crc = Crc32C.Update(_crc, bytes);
            stream.Write(bytes);
        }

        public void WriteInt32(int value)
        {
            Span<byte> buffer = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(buffer, value);
            Write(buffer);
        }

        public void WriteUInt64(ulong value)
        {
            Span<byte> buffer = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(buffer, value);
            Write(buffer);
        }

        public void WriteArray<T>(ReadOnlySpan<T> values)
            where T : unmanaged
        {
            for (int start = 0; start < values.Length; start += ChunkElements)
            {
                Write(MemoryMarshal.AsBytes(values.Slice(start, Math.Min(ChunkElements, values.Length - start))));
            }
        }

        public void WriteChecksum()
        {
            Span<byte> buffer = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(buffer, ~_crc);
            Write(buffer);
        }
    }

    /// <summary>Stream reader that mirrors <see cref="SnapshotWriter"/>'s checksum.</summary>
    private sealed class SnapshotReader(Stream stream)
    {
        private uint _crc = uint.MaxValue;

        public void Read(Span<byte> bytes)
        {
            stream.ReadExactly(bytes);
            _crc = Crc32C.Update(_crc, bytes);
        }

        public int ReadInt32()
        {
            Span<byte> buffer = stackalloc byte[4];
            Read(buffer);
            return BinaryPrimitives.ReadInt32LittleEndian(buffer);
        }

        public ulong ReadUInt64()
        {
            Span<byte> buffer = stackalloc byte[8];
            Read(buffer);
            return BinaryPrimitives.ReadUInt64LittleEndian(buffer);
        }

        public void ReadArray<T>(Span<T> values)
            where T : unmanaged
        {
            for (int start = 0; start < values.Length; start += ChunkElements)
            {
                Read(MemoryMarshal.AsBytes(values.Slice(start, Math.Min(ChunkElements, values.Length - start))));
            }
        }

        public void VerifyChecksum(string section)
        {
            uint expected = ~_crc;
            Span<byte> buffer = stackalloc byte[4];
            Read(buffer);
            uint stored = BinaryPrimitives.ReadUInt32LittleEndian(buffer);
            if (stored != expected)
            {
                throw new InvalidDataException($"HNSW snapshot {section} checksum mismatch (stored 0x{stored:X8}, computed 0x{expected:X8}); the data is corrupt.");
            }
        }
    }
}
