using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Storage;

namespace RagOrleans.Grains.Backup;

/// <summary>
/// The tenant backup archive (a zip). Entries, all named from validated ids only:
/// <list type="bullet">
/// <item><c>tenant.json</c> (profile, key hashes), <c>quota.json</c> (plan, limits, current-period spending),
/// <c>conversations.jsonl</c> (one conversation per line);</item>
/// <item><c>collections/{name}/collection.json</c> (settings), <c>collections/{name}/documents.jsonl</c> (records),
/// <c>collections/{name}/blobs/{documentId}</c> (original content, checked against the record's SHA-256);</item>
/// <item><c>collections/{name}/shards/{n}/snapshot.bin</c> (the shard's index snapshot, byte for byte) and
/// <c>collections/{name}/shards/{n}/chunks.bin</c> (its chunk log up to the snapshot's watermark);</item>
/// <item><c>manifest.json</c>, written last: format, version, shard watermarks and the size and SHA-256 of every
/// entry except the blobs (whose hashes the document records carry).</item>
/// </list>
/// </summary>
public static class TenantArchive
{
    /// <summary>The manifest's <c>format</c>.</summary>
    public const string Format = "ragorleans-tenant-backup";

    /// <summary>The manifest version this build writes and reads.</summary>
    public const int Version = 1;

    public const string ManifestEntry = "manifest.json";
    public const string TenantEntry = "tenant.json";
    public const string QuotaEntry = "quota.json";
    public const string ConversationsEntry = "conversations.jsonl";

    /// <summary>JSON settings of every JSON entry (camelCase, enums as strings).</summary>
    public static JsonSerializerOptions Json { get; } = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
        MaxDepth = 32,
    };

    public static string CollectionEntry(string collection) => $"collections/{collection}/collection.json";

    public static string DocumentsEntry(string collection) => $"collections/{collection}/documents.jsonl";

    public static string BlobEntry(string collection, string documentId) => $"collections/{collection}/blobs/{documentId}";

    public static string SnapshotEntry(string collection, int shard) =>
        string.Create(CultureInfo.InvariantCulture, $"collections/{collection}/shards/{shard}/snapshot.bin");

    public static string ChunksEntry(string collection, int shard) =>
        string.Create(CultureInfo.InvariantCulture, $"collections/{collection}/shards/{shard}/chunks.bin");

    /// <summary>
    /// Parses an entry name; null for anything this format never writes (absolute paths, '..', backslashes, unknown
    /// files, ids that fail validation), so a hostile name is refused before it is used for anything.
    /// </summary>
    public static ArchiveEntryName? Parse(string name)
    {
        if (name.Length is 0 or > 512)
        {
            return null;
        }

        switch (name)
        {
            case ManifestEntry: return new ArchiveEntryName(ArchiveEntryKind.Manifest, null, null, null);
            case TenantEntry: return new ArchiveEntryName(ArchiveEntryKind.Tenant, null, null, null);
            case QuotaEntry: return new ArchiveEntryName(ArchiveEntryKind.Quota, null, null, null);
            case ConversationsEntry: return new ArchiveEntryName(ArchiveEntryKind.Conversations, null, null, null);
        }

        var parts = name.Split('/');
        if (parts.Length < 3 || parts[0] != "collections" || !Ids.IsValidName(parts[1]))
        {
            return null;
        }

        var collection = parts[1];
        return parts switch
        {
            [_, _, "collection.json"] => new ArchiveEntryName(ArchiveEntryKind.Collection, collection, null, null),
            [_, _, "documents.jsonl"] => new ArchiveEntryName(ArchiveEntryKind.Documents, collection, null, null),
            [_, _, "blobs", var doc] when Ids.IsValidName(doc) => new ArchiveEntryName(ArchiveEntryKind.Blob, collection, doc, null),
            [_, _, "shards", var n, "snapshot.bin"] when ShardNumber(n) is { } shard => new ArchiveEntryName(ArchiveEntryKind.Snapshot, collection, null, shard),
            [_, _, "shards", var n, "chunks.bin"] when ShardNumber(n) is { } shard => new ArchiveEntryName(ArchiveEntryKind.Chunks, collection, null, shard),
            _ => null,
        };
    }

    // Canonical decimal only ("07" or "+7" would name the same shard twice).
    private static int? ShardNumber(string text) =>
        text.Length is > 0 and <= 2 && text.All(char.IsAsciiDigit) && (text.Length == 1 || text[0] != '0')
            ? int.Parse(text, CultureInfo.InvariantCulture)
            : null;
}

/// <summary>What an archive entry is.</summary>
public enum ArchiveEntryKind
{
    Manifest,
    Tenant,
    Quota,
    Conversations,
    Collection,
    Documents,
    Blob,
    Snapshot,
    Chunks,
}

/// <summary>A parsed entry name.</summary>
public sealed record ArchiveEntryName(ArchiveEntryKind Kind, string? Collection, string? DocumentId, int? Shard);

/// <summary>The archive's table of contents, written last.</summary>
public sealed record ArchiveManifest(
    string Format,
    int Version,
    string TenantId,
    DateTimeOffset CreatedAt,
    IReadOnlyList<ArchiveCollection> Collections,
    IReadOnlyList<ArchiveChecksum> Entries,
    int Conversations);

/// <summary>One collection in the manifest.</summary>
public sealed record ArchiveCollection(string Name, long Documents, IReadOnlyList<ArchiveShard> Shards);

/// <summary>One shard: the watermark of its snapshot (0 and no snapshot for a shard that never held anything).</summary>
public sealed record ArchiveShard(int Shard, long Watermark, bool Snapshot, long Chunks);

/// <summary>Size and SHA-256 (lower-case hex) of one entry.</summary>
public sealed record ArchiveChecksum(string Path, long Size, string Sha256);

/// <summary><c>collection.json</c>.</summary>
public sealed record ArchiveCollectionRecord(string Name, DateTimeOffset CreatedAt, CollectionSettings Settings);

/// <summary>One line of <c>conversations.jsonl</c>.</summary>
public sealed record ArchiveConversation(string UserId, string ConversationId, string Collection, IReadOnlyList<ChatTurn> Turns);

/// <summary>
/// Binary encoding of chunk-log entries in <c>chunks.bin</c>: a magic and version, then one record per entry
/// (sequence number, op, document id, ordinal, optional text, optional float32 vector, offsets, optional section,
/// page, title and metadata). Little-endian, strings as length-prefixed UTF-8.
/// </summary>
public static class ChunkRecordCodec
{
    private const uint Magic = 0x4B484352; // "RCHK"
    private const int CodecVersion = 1;

    /// <summary>Largest vector accepted on read: no embedding model of ours comes near it.</summary>
    public const int MaxDimensions = 4096;

    /// <summary>Writes the header.</summary>
    public static void WriteHeader(BinaryWriter writer)
    {
        writer.Write(Magic);
        writer.Write(CodecVersion);
    }

    /// <summary>Writes one entry.</summary>
    public static void Write(BinaryWriter writer, ChunkLogEntry entry)
    {
        writer.Write(entry.Seq);
        writer.Write((byte)entry.Op);
        writer.Write(entry.DocumentId);
        writer.Write(entry.Ordinal);
        WriteOptional(writer, entry.Text);
        if (entry.Vector is null)
        {
            writer.Write(-1);
        }
        else
        {
            writer.Write(entry.Vector.Length);
            writer.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(entry.Vector.AsSpan()));
        }

        writer.Write(entry.Start);
        writer.Write(entry.End);
        WriteOptional(writer, entry.Section);
        writer.Write(entry.Page.HasValue);
        writer.Write(entry.Page ?? 0);
        WriteOptional(writer, entry.Title);
        WriteOptional(writer, entry.MetadataJson);
    }

    /// <summary>Reads and checks the header; InvalidDataException if it is not ours.</summary>
    public static void ReadHeader(BinaryReader reader)
    {
        if (reader.ReadUInt32() != Magic || reader.ReadInt32() != CodecVersion)
        {
            throw new InvalidDataException("A chunks.bin entry is not a chunk log of this format version.");
        }
    }

    /// <summary>
    /// The next entry, or null at the end of the stream (the reader must read a <see cref="PeekableStream"/>, since
    /// entry streams cannot seek); InvalidDataException when malformed.
    /// </summary>
    public static ChunkLogEntry? Read(BinaryReader reader)
    {
        if (reader.BaseStream is not PeekableStream peekable)
        {
            throw new ArgumentException("The reader must read a PeekableStream.", nameof(reader));
        }

        if (peekable.AtEnd)
        {
            return null;
        }

        try
        {
            var seq = reader.ReadInt64();
            var op = (ChunkOp)reader.ReadByte();
            if (op is not (ChunkOp.Add or ChunkOp.DeleteDocument))
            {
                throw new InvalidDataException($"Chunk log entry {seq} has an unknown op {(int)op}.");
            }

            var documentId = reader.ReadString();
            var ordinal = reader.ReadInt32();
            var text = ReadOptional(reader);
            var dims = reader.ReadInt32();
            float[]? vector = null;
            if (dims >= 0)
            {
                if (dims > MaxDimensions)
                {
                    throw new InvalidDataException($"Chunk log entry {seq} declares a {dims}-dimensional vector.");
                }

                vector = new float[dims];
                var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(vector.AsSpan());
                reader.BaseStream.ReadExactly(bytes);
            }
            else if (dims != -1)
            {
                throw new InvalidDataException($"Chunk log entry {seq} declares a negative vector length.");
            }

            var start = reader.ReadInt32();
            var end = reader.ReadInt32();
            var section = ReadOptional(reader);
            var hasPage = reader.ReadBoolean();
            var page = reader.ReadInt32();
            var title = ReadOptional(reader);
            var metadata = ReadOptional(reader);
            return new ChunkLogEntry(seq, op, documentId, ordinal, text, vector, start, end, section, hasPage ? page : null, title, metadata);
        }
        catch (EndOfStreamException ex)
        {
            throw new InvalidDataException("A chunks.bin entry is truncated.", ex);
        }
    }

    private static void WriteOptional(BinaryWriter writer, string? value)
    {
        writer.Write(value is not null);
        writer.Write(value ?? "");
    }

    private static string? ReadOptional(BinaryReader reader)
    {
        var present = reader.ReadBoolean();
        var value = reader.ReadString();
        return present ? value : null;
    }
}

/// <summary>A read-only stream that can tell whether another byte follows (for streams that cannot seek).</summary>
public sealed class PeekableStream(Stream inner) : Stream
{
    private int _peeked = -2;

    /// <summary>True when no byte follows.</summary>
    public bool AtEnd
    {
        get
        {
            if (_peeked == -2)
            {
                _peeked = inner.ReadByte();
            }

            return _peeked < 0;
        }
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (buffer.IsEmpty)
        {
            return 0;
        }

        if (_peeked >= 0)
        {
            buffer[0] = (byte)_peeked;
            _peeked = -2;
            return 1 + Math.Max(0, inner.Read(buffer[1..]));
        }

        if (_peeked == -1)
        {
            return 0;
        }

        return inner.Read(buffer);
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }
}

/// <summary>
/// Reads at most <paramref name="limit"/> bytes from an archive entry, hashing them: a lying size in the zip
/// header (a decompression bomb) fails at the limit instead of filling memory or disk. Unlike the upload path's
/// <see cref="HashingReadStream"/> (413 for an oversized upload), passing the limit means a damaged or hostile
/// archive, so it fails with <see cref="InvalidDataException"/> (400).
/// </summary>
public sealed class BoundedHashingStream(Stream inner, long limit, string entryName) : ReadOnlyStream
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    /// <summary>Bytes read so far.</summary>
    public long BytesRead { get; private set; }

    /// <summary>SHA-256 (lower-case hex) of the bytes read so far; call once, at the end.</summary>
    public string Sha256() => Convert.ToHexStringLower(_hash.GetHashAndReset());

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var n = inner.Read(buffer);
        return Count(buffer[..n]);
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var n = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        return Count(buffer.Span[..n]);
    }

    private int Count(ReadOnlySpan<byte> read)
    {
        BytesRead += read.Length;
        if (BytesRead > limit)
        {
            throw new InvalidDataException($"Archive entry '{entryName}' expands beyond {limit} bytes (its declared size or the configured limit).");
        }

        _hash.AppendData(read);
        return read.Length;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _hash.Dispose();
            inner.Dispose();
        }

        base.Dispose(disposing);
    }
}
