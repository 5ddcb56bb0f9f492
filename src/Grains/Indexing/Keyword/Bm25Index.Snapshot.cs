using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text;

namespace RagOrleans.Grains.Indexing.Keyword;

public sealed partial class Bm25Index
{
    // "BM25" read as a little-endian uint.
    private const uint SnapshotMagic = 0x3532_4D42;

    // Version 2 stores every section as one flat array (term characters, posting counts, ids, frequencies), so a load
    // is a handful of bulk copies instead of a read and two allocations per term; version 1 snapshots still load.
    internal const int SnapshotVersion = 2;
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
    public void WriteTo(Stream stream) => WriteTo(stream, SnapshotVersion);

    /// <summary>Writes the snapshot in an older format too, so tests can prove that format still loads.</summary>
    internal void WriteTo(Stream stream, int version)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentOutOfRangeException.ThrowIfLessThan(version, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(version, SnapshotVersion);
        using var payload = new MemoryStream();
        using (var w = new BinaryWriter(payload, Encoding.UTF8, leaveOpen: true))
        {
            WriteSettings(w);
            if (version == 1)
            {
                WritePayloadV1(w);
            }
            else
            {
                WritePayloadV2(w);
            }
        }

        Span<byte> header = stackalloc byte[HeaderSize];
        BinaryPrimitives.WriteUInt32LittleEndian(header, SnapshotMagic);
        BinaryPrimitives.WriteInt32LittleEndian(header[4..], version);
        BinaryPrimitives.WriteInt64LittleEndian(header[8..], payload.Length);
        var body = payload.GetBuffer().AsSpan(0, (int)payload.Length);
        var crc = Checksum.Finish(Checksum.Update(Checksum.Update(Checksum.Seed, header), body));

        Span<byte> trailer = stackalloc byte[TrailerSize];
        BinaryPrimitives.WriteUInt32LittleEndian(trailer, crc);
        stream.Write(header);
        stream.Write(body);
        stream.Write(trailer);
    }

    /// <summary>Reads a snapshot written by <see cref="WriteTo(Stream)"/> (version 1 or 2).</summary>
    /// <param name="stream">Source, read from its current position and left open.</param>
    /// <returns>An index equal to the one written (same settings, documents, tombstones and scores).</returns>
    /// <exception cref="InvalidDataException">
    /// The data is not a keyword snapshot, has an unsupported version, is truncated, fails its checksum, or is
    /// internally inconsistent.
    /// </exception>
    public static Bm25Index ReadFrom(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var header = new byte[HeaderSize];
        ReadExactly(stream, header);
        if (BinaryPrimitives.ReadUInt32LittleEndian(header) != SnapshotMagic)
        {
            throw new InvalidDataException("Not a BM25 keyword-index snapshot (bad magic number).");
        }

        var version = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(4));
        if (version is not (1 or SnapshotVersion))
        {
            throw new InvalidDataException($"Unsupported BM25 snapshot version {version}; this build reads versions 1 to {SnapshotVersion}.");
        }

        var length = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(8));
        if (length < 0 || length > MaxPayloadBytes || (stream.CanSeek && length + TrailerSize > stream.Length - stream.Position))
        {
            throw new InvalidDataException($"BM25 snapshot declares an impossible payload length ({length} bytes); it is damaged or truncated.");
        }

        if (version == SnapshotVersion)
        {
            // A seekable stream's length was checked against the header, so the sections are read straight into the
            // index's arrays; a forward-only one is buffered first, so a damaged length cannot force a huge allocation.
            var source = stream.CanSeek ? stream : new MemoryStream(ReadBody(stream, (int)length), writable: false);
            var payload = new PayloadReader(source, stream, header, length);
            try
            {
                var index = ReadPayloadV2(payload);
                index.ValidatePostings();
                return index;
            }
            catch (Exception ex) when (ex is EndOfStreamException or DecoderFallbackException or ArgumentException or OverflowException)
            {
                throw new InvalidDataException("BM25 snapshot payload is malformed or truncated.", ex);
            }
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
            var index = ReadPayloadV1(r);
            if (r.BaseStream.Position != r.BaseStream.Length)
            {
                throw new InvalidDataException("BM25 snapshot has trailing bytes after its postings.");
            }

            index.ValidatePostings();
            return index;
        }
        catch (Exception ex) when (ex is EndOfStreamException or DecoderFallbackException or ArgumentException or OverflowException)
        {
            // A checksum collision or a writer bug: still report it as bad data, not as a crash.
            throw new InvalidDataException("BM25 snapshot payload is malformed.", ex);
        }
    }

    private void WriteSettings(BinaryWriter w)
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
    }

    private ReadOnlySpan<char> TermOf(int termId) => _termChars.AsSpan(_termStart[termId], _termStart[termId + 1] - _termStart[termId]);

    private void WritePayloadV1(BinaryWriter w)
    {
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
            if (CountLive(_postings[t]) > 0)
            {
                liveTerms++;
            }
        }

        w.Write(liveTerms);
        for (var t = 0; t < _termCount; t++)
        {
            var live = CountLive(_postings[t]);
            if (live == 0)
            {
                continue;
            }

            w.Write(TermOf(t).ToString());
            w.Write(live);
            var ids = IdsOf(_postings[t]);
            var tfs = TfsOf(_postings[t]);
            for (var i = 0; i < ids.Length; i++)
            {
                if (_docState[ids[i]] == Live)
                {
                    w.Write(ids[i]);
                    w.Write(tfs[i]);
                }
            }
        }
    }

    // Layout after the settings: int idSpace | int terms | int chars | int postings | byte states[idSpace]
    // | int lengths[idSpace] (0 unless live) | int termLength[terms] | char text[chars] (UTF-16) | int count[terms]
    // | int ids[postings] | ushort tfs[postings]. Every size comes first, so a reader can check them against the payload
    // before allocating. Only terms and postings of live documents are written.
    private void WritePayloadV2(BinaryWriter w)
    {
        var liveCounts = new int[_termCount];
        var terms = 0;
        var chars = 0;
        long postings = 0;
        for (var t = 0; t < _termCount; t++)
        {
            liveCounts[t] = _deadPostings == 0 ? _postings[t].Count : CountLive(_postings[t]);
            if (liveCounts[t] > 0)
            {
                terms++;
                chars += TermOf(t).Length;
                postings += liveCounts[t];
            }
        }

        w.Write(_idSpace);
        w.Write(terms);
        w.Write(chars);
        w.Write(checked((int)postings));
        w.Write(_docState.AsSpan(0, _idSpace));
        var lengths = new int[_idSpace];
        for (var id = 0; id < _idSpace; id++)
        {
            lengths[id] = _docState[id] == Live ? _docLength[id] : 0;
        }

        w.Write(MemoryMarshal.AsBytes(lengths.AsSpan()));
        var termLengths = new int[terms];
        var text = new char[chars];
        var counts = new int[terms];
        var ids = new int[postings];
        var tfs = new ushort[postings];
        var term = 0;
        var c = 0;
        var p = 0;
        for (var t = 0; t < _termCount; t++)
        {
            if (liveCounts[t] == 0)
            {
                continue;
            }

            var chars0 = TermOf(t);
            chars0.CopyTo(text.AsSpan(c));
            c += chars0.Length;
            termLengths[term] = chars0.Length;
            counts[term++] = liveCounts[t];
            var sourceIds = IdsOf(_postings[t]);
            var sourceTfs = TfsOf(_postings[t]);
            for (var i = 0; i < sourceIds.Length; i++)
            {
                if (_docState[sourceIds[i]] == Live)
                {
                    ids[p] = sourceIds[i];
                    tfs[p++] = sourceTfs[i];
                }
            }
        }

        w.Write(MemoryMarshal.AsBytes(termLengths.AsSpan()));
        w.Write(MemoryMarshal.AsBytes(text.AsSpan()));
        w.Write(MemoryMarshal.AsBytes(counts.AsSpan()));
        w.Write(MemoryMarshal.AsBytes(ids.AsSpan()));
        w.Write(MemoryMarshal.AsBytes(tfs.AsSpan()));
    }

    private static (Bm25Options Options, AnalyzerOptions Analyzer) ReadSettings(Func<int> readInt, Func<float> readSingle, Func<bool> readBoolean,
        Func<string> readString, Func<int, int> readCount)
    {
        var options = new Bm25Options { K1 = readSingle(), B = readSingle() };
        var stem = readBoolean();
        var removeStopWords = readBoolean();
        var maxTokenLength = readInt();
        List<string>? stopWords = null;
        if (readBoolean())
        {
            var count = readCount(1);
            stopWords = new List<string>(count);
            for (var i = 0; i < count; i++)
            {
                stopWords.Add(readString());
            }
        }

        return (options, new AnalyzerOptions { Stem = stem, RemoveStopWords = removeStopWords, MaxTokenLength = maxTokenLength, StopWords = stopWords });
    }

    private static Bm25Index Create(Bm25Options options, AnalyzerOptions analyzer, int terms, int idSpace, int chars = -1, int postings = -1)
    {
        try
        {
            return new Bm25Index(options, analyzer, terms, idSpace, chars, postings);
        }
        catch (ArgumentOutOfRangeException ex)
        {
            throw new InvalidDataException("BM25 snapshot holds invalid settings.", ex);
        }
    }

    private static Bm25Index ReadPayloadV2(PayloadReader r)
    {
        var (options, analyzer) = ReadSettings(r.ReadInt32, r.ReadSingle, r.ReadBoolean, r.ReadString, r.ReadCount);
        var idSpace = r.ReadCount(5);
        var header = (Terms: r.ReadCount(8), Chars: r.ReadCount(2), Postings: r.ReadCount(6));
        if ((idSpace * 5L) + (header.Terms * 8L) + (header.Chars * 2L) + (header.Postings * 6L) != r.Remaining)
        {
            throw new InvalidDataException("BM25 snapshot sections do not add up to its payload length.");
        }

        var index = Create(options, analyzer, header.Terms, idSpace, header.Chars, header.Postings);
        r.ReadArray(index._docState.AsSpan(0, idSpace));
        r.ReadArray(index._docLength.AsSpan(0, idSpace));
        for (var id = 0; id < idSpace; id++)
        {
            var state = index._docState[id];
            if (state > Removed)
            {
                throw new InvalidDataException($"BM25 snapshot document {id} has an invalid state {state}.");
            }

            var length = index._docLength[id];
            if (state != Live)
            {
                index._docLength[id] = 0;
            }
            else if (length < 0)
            {
                throw new InvalidDataException($"BM25 snapshot document {id} has a negative length.");
            }
            else
            {
                index._live++;
                index._totalLength += length;
            }
        }

        index._idSpace = idSpace;

        // Term lengths land in _termStart[1..] and become offsets in place; counts likewise become slices.
        var starts = index._termStart;
        r.ReadArray(starts.AsSpan(1, header.Terms));
        r.ReadArray(index._termChars.AsSpan(0, header.Chars));
        var counts = new int[header.Terms];
        r.ReadArray(counts.AsSpan());
        r.ReadArray(index._postingIds.AsSpan(0, header.Postings));
        r.ReadArray(index._postingTfs.AsSpan(0, header.Postings));
        r.VerifyChecksum();

        long chars = 0;
        long postings = 0;
        for (var t = 0; t < header.Terms; t++)
        {
            var termLength = starts[t + 1];
            if (termLength <= 0 || counts[t] <= 0 || chars + termLength > header.Chars || postings + counts[t] > header.Postings)
            {
                throw new InvalidDataException($"BM25 snapshot term #{t} is empty, has no postings or overruns its section.");
            }

            starts[t + 1] = (int)(chars += termLength);
            var term = index._termChars.AsSpan(starts[t], termLength);
            var hash = string.GetHashCode(term);
            if (index.FindTerm(term, hash) >= 0)
            {
                throw new InvalidDataException($"BM25 snapshot term '{term}' is repeated.");
            }

            index.AddTerm(term, hash, capacity: 0);
            index._postings[t] = new Postings { Start = (int)postings, Count = counts[t], Capacity = counts[t] };
            postings += counts[t];
        }

        if (chars != header.Chars || postings != header.Postings)
        {
            throw new InvalidDataException("BM25 snapshot term or posting counts do not add up.");
        }

        index._arenaUsed = header.Postings;
        index._postingCount = header.Postings;
        return index;
    }

    private static Bm25Index ReadPayloadV1(BinaryReader r)
    {
        var (options, analyzer) = ReadSettings(r.ReadInt32, r.ReadSingle, r.ReadBoolean, r.ReadString, n => ReadCount(r, n));
        var idSpace = ReadCount(r, minBytesEach: 1);
        var index = Create(options, analyzer, terms: 1024, idSpace);
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
        for (var t = 0; t < terms; t++)
        {
            var term = r.ReadString();
            if (term.Length == 0 || index.FindTerm(term) >= 0)
            {
                throw new InvalidDataException($"BM25 snapshot term #{t} is empty or repeated.");
            }

            var count = ReadCount(r, minBytesEach: 6);
            if (count == 0)
            {
                throw new InvalidDataException($"BM25 snapshot term '{term}' has no postings.");
            }

            var termId = index.AddTerm(term, string.GetHashCode(term.AsSpan()), capacity: 0);
            for (var i = 0; i < count; i++)
            {
                index.Append(termId, r.ReadInt32(), r.ReadUInt16());
            }

            index._postingCount += count;
        }

        // Pack exactly, as a version 2 load would be.
        index.Repack(extra: 0);
        return index;
    }

    /// <summary>Checks every posting names a live document with a positive frequency and that lengths add up.</summary>
    private void ValidatePostings()
    {
        var termSum = new long[_idSpace];
        for (var t = 0; t < _termCount; t++)
        {
            var ids = IdsOf(_postings[t]);
            var tfs = TfsOf(_postings[t]);
            for (var i = 0; i < ids.Length; i++)
            {
                var id = ids[i];
                if ((uint)id >= (uint)_idSpace || _docState[id] != Live || tfs[i] == 0)
                {
                    throw new InvalidDataException($"BM25 snapshot term '{TermOf(t)}' has an invalid posting (document {id}, frequency {tfs[i]}).");
                }

                _docUniqueTerms[id]++;
                termSum[id] += tfs[i];
            }
        }

        for (var id = 0; id < _idSpace; id++)
        {
            // Frequencies saturate at 65,535, so a very repetitive document may sum to less than its length.
            if (_docState[id] == Live && (termSum[id] > _docLength[id] || (termSum[id] == 0) != (_docLength[id] == 0)))
            {
                throw new InvalidDataException($"BM25 snapshot document {id} has postings that do not add up to its length.");
            }
        }
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

    /// <summary>
    /// Reads a version 2 payload from the stream straight into the index's arrays, folding every byte into the CRC and
    /// refusing to read past the declared length.
    /// </summary>
    private sealed class PayloadReader(Stream source, Stream trailerSource, byte[] header, long length)
    {
        private uint _crc = Checksum.Update(Checksum.Seed, header);

        public long Remaining { get; private set; } = length;

        public void ReadArray<T>(Span<T> values)
            where T : unmanaged
        {
            var bytes = MemoryMarshal.AsBytes(values);
            if (bytes.Length > Remaining)
            {
                throw new InvalidDataException("BM25 snapshot section runs past the end of its payload.");
            }

            source.ReadExactly(bytes);
            _crc = Checksum.Update(_crc, bytes);
            Remaining -= bytes.Length;
        }

        public int ReadInt32()
        {
            Span<int> value = stackalloc int[1];
            ReadArray(value);
            return value[0];
        }

        public float ReadSingle()
        {
            Span<float> value = stackalloc float[1];
            ReadArray(value);
            return value[0];
        }

        public bool ReadBoolean()
        {
            Span<byte> value = stackalloc byte[1];
            ReadArray(value);
            return value[0] != 0;
        }

        /// <summary>A string as <see cref="BinaryWriter"/> writes it: 7-bit encoded UTF-8 byte count, then the bytes.</summary>
        public string ReadString()
        {
            var byteCount = 0;
            Span<byte> b = stackalloc byte[1];
            for (var shift = 0; ; shift += 7)
            {
                if (shift > 28)
                {
                    throw new InvalidDataException("BM25 snapshot string length is malformed.");
                }

                ReadArray(b);
                byteCount |= (b[0] & 0x7F) << shift;
                if (b[0] < 0x80)
                {
                    break;
                }
            }

            if (byteCount < 0 || byteCount > Remaining)
            {
                throw new InvalidDataException("BM25 snapshot string runs past the end of its payload.");
            }

            var bytes = new byte[byteCount];
            ReadArray(bytes.AsSpan());
            return Encoding.UTF8.GetString(bytes);
        }

        /// <summary>A non-negative count whose items, at <paramref name="minBytesEach"/> each, fit in what is left.</summary>
        public int ReadCount(int minBytesEach)
        {
            var count = ReadInt32();
            if (count < 0 || (long)count * minBytesEach > Remaining)
            {
                throw new InvalidDataException($"BM25 snapshot declares an impossible count ({count}).");
            }

            return count;
        }

        public void VerifyChecksum()
        {
            if (Remaining != 0)
            {
                throw new InvalidDataException("BM25 snapshot has trailing bytes after its postings.");
            }

            Span<byte> trailer = stackalloc byte[TrailerSize];
            ReadExactly(trailerSource, trailer);
            var expected = BinaryPrimitives.ReadUInt32LittleEndian(trailer);
            var actual = Checksum.Finish(_crc);
            if (expected != actual)
            {
                throw new InvalidDataException($"BM25 snapshot checksum mismatch (stored 0x{expected:X8}, computed 0x{actual:X8}); the data is damaged.");
            }
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
