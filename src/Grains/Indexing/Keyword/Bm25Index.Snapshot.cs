using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text;

namespace RagOrleans.Grains.Indexing.Keyword;

public sealed partial class Bm25Index
{
    // "BM25" read as a little-endian uint.
    private const uint SnapshotMagic = 0x3532_4D42;
    private const int SnapshotVersion = 1;
    private const int HeaderSize = 16; // magic, version, payload length
    private const int TrailerSize = 4; // CRC-32C of header and payload

    // Refuses absurd sizes from a damaged header before allocating; far above any realistic shard.
    private const long MaxPayloadBytes = int.MaxValue - 64;

    /// <summary>
    /// Writes a versioned, checksummed binary snapshot: settings (BM25 and analyzer), document states and lengths,
    /// and the live postings. Removed ids are kept as tombstones so they stay unusable after a reload. Must not run
    /// concurrently with a writer.
    /// </summary>
    /// <param name="stream">Destination; written from its current position and left open.</param>
    public void WriteTo(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var payload = new MemoryStream();
        using (var w = new BinaryWriter(payload, Encoding.UTF8, leaveOpen: true))
        {
            WritePayload(w);
        }

        Span<byte> header = stackalloc byte[HeaderSize];
        BinaryPrimitives.WriteUInt32LittleEndian(header, SnapshotMagic);
        BinaryPrimitives.WriteInt32LittleEndian(header[4..], SnapshotVersion);
        BinaryPrimitives.WriteInt64LittleEndian(header[8..], payload.Length);
        var body = payload.GetBuffer().AsSpan(0, (int)payload.Length);
        var crc = Checksum.Finish(Checksum.Update(Checksum.Update(Checksum.Seed, header), body));

        Span<byte> trailer = stackalloc byte[TrailerSize];
        BinaryPrimitives.WriteUInt32LittleEndian(trailer, crc);
        stream.Write(header);
        stream.Write(body);
        stream.Write(trailer);
    }

    /// <summary>Reads a snapshot written by <see cref="WriteTo"/>.</summary>
    /// <param name="stream">Source, read from its current position and left open.</param>
    /// <returns>An index equal to the one written (same settings, documents, tombstones and scores).</returns>
    /// <exception cref="InvalidDataException">
    /// The data is not a keyword snapshot, has an unsupported version, is truncated, fails its checksum, or is
    /// internally inconsistent.
    /// </exception>
    public static Bm25Index ReadFrom(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Span<byte> header = stackalloc byte[HeaderSize];
        ReadExactly(stream, header);
        if (BinaryPrimitives.ReadUInt32LittleEndian(header) != SnapshotMagic)
        {
            throw new InvalidDataException("Not a BM25 keyword-index snapshot (bad magic number).");
        }

        var version = BinaryPrimitives.ReadInt32LittleEndian(header[4..]);
        if (version != SnapshotVersion)
        {
            throw new InvalidDataException($"Unsupported BM25 snapshot version {version}; this build reads version {SnapshotVersion}.");
        }

        var length = BinaryPrimitives.ReadInt64LittleEndian(header[8..]);
        if (length < 0 || length > MaxPayloadBytes || (stream.CanSeek && length + TrailerSize > stream.Length - stream.Position))
        {
            throw new InvalidDataException($"BM25 snapshot declares an impossible payload length ({length} bytes); it is damaged or truncated.");
        }

        var body = ReadBody(stream, (int)length);
        Span<byte> trailer = stackalloc byte[TrailerSize];
        ReadExactly(stream, trailer);
        var expected = BinaryPrimitives.ReadUInt32LittleEndian(trailer);
        var actual = Checksum.Finish(Checksum.Update(Checksum.Update(Checksum.Seed, header), body));
        if (expected != actual)
        {
            throw new InvalidDataException($"BM25 snapshot checksum mismatch (stored 0x{expected:X8}, computed 0x{actual:X8}); the data is damaged.");
        }

        try
        {
            using var r = new BinaryReader(new MemoryStream(body, writable: false), Encoding.UTF8);
            var index = ReadPayload(r);
            if (r.BaseStream.Position != r.BaseStream.Length)
            {
                throw new InvalidDataException("BM25 snapshot has trailing bytes after its postings.");
            }

            return index;
        }
        catch (Exception ex) when (ex is EndOfStreamException or DecoderFallbackException or ArgumentException or OverflowException)
        {
            // A checksum collision or a writer bug: still report it as bad data, not as a crash.
            throw new InvalidDataException("BM25 snapshot payload is malformed.", ex);
        }
    }

    private void WritePayload(BinaryWriter w)
    {
        w.Write(_options.K1);
        w.Write(_options.B);

        var analyzer = _analyzer.Options;
        w.Write(analyzer.Stem);
        w.Write(analyzer.RemoveStopWords);
        w.Write(analyzer.MaxTokenLength);
        w.Write(analyzer.StopWords is not null);
        if (analyzer.StopWords is not null)
        {
            w.Write(analyzer.StopWords.Count);
            foreach (var word in analyzer.StopWords)
            {
                w.Write(word);
            }
        }

        w.Write(_idSpace);
        w.Write(_docState.AsSpan(0, _idSpace));
        for (var id = 0; id < _idSpace; id++)
        {
            if (_docState[id] == Live)
            {
                w.Write(_docLength[id]);
            }
        }

        // Only terms with live postings are written; term ids are renumbered on load, which nothing outside sees.
        var liveTerms = 0;
        for (var t = 0; t < _termCount; t++)
        {
            if (_postings[t].CountLive(_docState) > 0)
            {
                liveTerms++;
            }
        }

        w.Write(liveTerms);
        for (var t = 0; t < _termCount; t++)
        {
            ref readonly var list = ref _postings[t];
            var live = list.CountLive(_docState);
            if (live == 0)
            {
                continue;
            }

            w.Write(_terms[t]);
            w.Write(live);
            for (var i = 0; i < list.Count; i++)
            {
                if (_docState[list.Ids[i]] == Live)
                {
                    w.Write(list.Ids[i]);
                    w.Write(list.Tfs[i]);
                }
            }
        }
    }

    private static Bm25Index ReadPayload(BinaryReader r)
    {
        var options = new Bm25Options { K1 = r.ReadSingle(), B = r.ReadSingle() };
        var stem = r.ReadBoolean();
        var removeStopWords = r.ReadBoolean();
        var maxTokenLength = r.ReadInt32();
        List<string>? stopWords = null;
        if (r.ReadBoolean())
        {
            var count = ReadCount(r, minBytesEach: 1);
            stopWords = new List<string>(count);
            for (var i = 0; i < count; i++)
            {
                stopWords.Add(r.ReadString());
            }
        }

        var analyzerOptions = new AnalyzerOptions
        {
            Stem = stem,
            RemoveStopWords = removeStopWords,
            MaxTokenLength = maxTokenLength,
            StopWords = stopWords,
        };

        var idSpace = ReadCount(r, minBytesEach: 1);
        var termCountHint = (int)Math.Min(1 << 20, r.BaseStream.Length / 8);
        Bm25Index index;
        try
        {
            index = new Bm25Index(options, analyzerOptions, termCountHint, idSpace);
        }
        catch (ArgumentOutOfRangeException ex)
        {
            throw new InvalidDataException("BM25 snapshot holds invalid settings.", ex);
        }

        r.BaseStream.ReadExactly(index._docState.AsSpan(0, idSpace));
        for (var id = 0; id < idSpace; id++)
        {
            var state = index._docState[id];
            if (state > Removed)
            {
                throw new InvalidDataException($"BM25 snapshot document {id} has an invalid state {state}.");
            }

            if (state == Live)
            {
                var length = r.ReadInt32();
                if (length < 0)
                {
                    throw new InvalidDataException($"BM25 snapshot document {id} has a negative length.");
                }

                index._docLength[id] = length;
                index._live++;
                index._totalLength += length;
            }
        }

        index._idSpace = idSpace;
        var terms = ReadCount(r, minBytesEach: 5);
        var termSum = new long[idSpace];
        for (var t = 0; t < terms; t++)
        {
            var term = r.ReadString();
            if (term.Length == 0 || index._termIds.ContainsKey(term))
            {
                throw new InvalidDataException($"BM25 snapshot term #{t} is empty or repeated.");
            }

            var count = ReadCount(r, minBytesEach: 6);
            if (count == 0)
            {
                throw new InvalidDataException($"BM25 snapshot term '{term}' has no postings.");
            }

            var ids = new int[count];
            var tfs = new ushort[count];
            for (var i = 0; i < count; i++)
            {
                var id = r.ReadInt32();
                var tf = r.ReadUInt16();
                if ((uint)id >= (uint)idSpace || index._docState[id] != Live || tf == 0)
                {
                    throw new InvalidDataException($"BM25 snapshot term '{term}' has an invalid posting (document {id}, frequency {tf}).");
                }

                ids[i] = id;
                tfs[i] = tf;
                index._docUniqueTerms[id]++;
                termSum[id] += tf;
            }

            var termId = index.InternTerm(term);
            index._postings[termId] = Postings.FromArrays(ids, tfs);
            index._postingCount += count;
        }

        for (var id = 0; id < idSpace; id++)
        {
            // Frequencies saturate at 65,535, so a very repetitive document may sum to less than its length.
            if (index._docState[id] == Live && (termSum[id] > index._docLength[id] || (termSum[id] == 0) != (index._docLength[id] == 0)))
            {
                throw new InvalidDataException($"BM25 snapshot document {id} has postings that do not add up to its length.");
            }
        }

        return index;
    }

    /// <summary>Reads a non-negative count and checks the remaining payload could hold that many items.</summary>
    private static int ReadCount(BinaryReader r, int minBytesEach)
    {
        var count = r.ReadInt32();
        if (count < 0 || (long)count * minBytesEach > r.BaseStream.Length - r.BaseStream.Position)
        {
            throw new InvalidDataException($"BM25 snapshot declares an impossible count ({count}).");
        }

        return count;
    }

    /// <summary>
    /// Reads the payload. A seekable stream's length was checked against the header, so one allocation is safe; from a
    /// forward-only stream the buffer grows with the data, so a damaged length cannot force a huge allocation up front.
    /// </summary>
    private static byte[] ReadBody(Stream stream, int length)
    {
        const int Chunk = 1 << 20;
        if (stream.CanSeek || length <= Chunk)
        {
            var body = new byte[length];
            ReadExactly(stream, body);
            return body;
        }

        var buffer = new byte[Chunk];
        var filled = 0;
        while (filled < length)
        {
            if (filled == buffer.Length)
            {
                Array.Resize(ref buffer, (int)Math.Min(length, buffer.Length * 2L));
            }

            ReadExactly(stream, buffer.AsSpan(filled, Math.Min(Chunk, length - filled)));
            filled += Math.Min(Chunk, length - filled);
        }

        return buffer;
    }

    private static void ReadExactly(Stream stream, Span<byte> buffer)
    {
        try
        {
            stream.ReadExactly(buffer);
        }
        catch (EndOfStreamException ex)
        {
            throw new InvalidDataException("BM25 snapshot is truncated.", ex);
        }
    }

    /// <summary>CRC-32C (Castagnoli); BitOperations uses the SSE4.2 / ARM CRC instructions when present.</summary>
    private static class Checksum
    {
        public const uint Seed = 0xFFFF_FFFF;

        public static uint Update(uint crc, ReadOnlySpan<byte> bytes) => Crc32C.Update(crc, bytes);

        public static uint Finish(uint crc) => ~crc;
    }
}
