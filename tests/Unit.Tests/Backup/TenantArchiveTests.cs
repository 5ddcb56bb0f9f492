using System.Security.Cryptography;
using RagOrleans.Grains.Backup;
using RagOrleans.Grains.Storage;
using Xunit;

namespace RagOrleans.Unit.Tests.Backup;

public sealed class TenantArchiveTests
{
    [Theory]
    [InlineData("manifest.json", ArchiveEntryKind.Manifest)]
    [InlineData("tenant.json", ArchiveEntryKind.Tenant)]
    [InlineData("quota.json", ArchiveEntryKind.Quota)]
    [InlineData("conversations.jsonl", ArchiveEntryKind.Conversations)]
    [InlineData("collections/kb/collection.json", ArchiveEntryKind.Collection)]
    [InlineData("collections/kb/documents.jsonl", ArchiveEntryKind.Documents)]
    [InlineData("collections/kb/blobs/doc-1.v2", ArchiveEntryKind.Blob)]
    [InlineData("collections/kb/shards/0/snapshot.bin", ArchiveEntryKind.Snapshot)]
    [InlineData("collections/kb/shards/63/chunks.bin", ArchiveEntryKind.Chunks)]
    public void Names_the_format_writes_parse(string name, ArchiveEntryKind kind) =>
        Assert.Equal(kind, TenantArchive.Parse(name)?.Kind);

    [Theory]
    [InlineData("")]
    [InlineData("../tenant.json")]
    [InlineData("/tenant.json")]
    [InlineData("collections/../tenant.json")]
    [InlineData("collections/kb/blobs/../../../etc/passwd")]
    [InlineData("collections/kb/blobs/..")]
    [InlineData("collections/kb/blobs/.uploads")]
    [InlineData("collections\\kb\\collection.json")]
    [InlineData("collections/kb/blobs/a\\b")]
    [InlineData("collections/kb/blobs/a/b")]
    [InlineData("collections/kb/shards/07/chunks.bin")]
    [InlineData("collections/kb/shards/+7/chunks.bin")]
    [InlineData("collections/kb/shards/100/chunks.bin")]
    [InlineData("collections/kb/shards/1/other.bin")]
    [InlineData("collections/kb/collection.json/")]
    [InlineData("collections//collection.json")]
    [InlineData("Tenant.json")]
    [InlineData("extra.txt")]
    public void Anything_else_is_refused(string name) => Assert.Null(TenantArchive.Parse(name));

    [Fact]
    public void Entry_names_are_built_from_the_parts_they_parse_back_into()
    {
        var blob = TenantArchive.Parse(TenantArchive.BlobEntry("kb", "d1"))!;
        Assert.Equal(("kb", "d1"), (blob.Collection, blob.DocumentId));
        var chunks = TenantArchive.Parse(TenantArchive.ChunksEntry("kb", 12))!;
        Assert.Equal(("kb", 12), (chunks.Collection, chunks.Shard));
    }

    [Fact]
    public void Chunk_records_round_trip_with_every_field()
    {
        ChunkLogEntry[] entries =
        [
            new(1, ChunkOp.Add, "d1", 0, "first chunk", [0.25f, -1f, float.Epsilon], 0, 11, "Intro", 3, "Title", """{"a":1}"""),
            new(2, ChunkOp.Add, "d1", 1, "", [1f, 0f, 0f], 11, 11, null, null, null, null),
            new(3, ChunkOp.DeleteDocument, "d1", 0, null, null, 0, 0, null, null, null, null),
        ];
        var bytes = Encode(entries);

        var read = Decode(bytes);
        Assert.Equal(entries.Length, read.Count);
        for (var i = 0; i < entries.Length; i++)
        {
            Assert.Equal(entries[i] with { Vector = null }, read[i] with { Vector = null });
            Assert.Equal(entries[i].Vector, read[i].Vector);
        }
    }

    [Fact]
    public void Damaged_chunk_records_are_invalid_data()
    {
        var bytes = Encode([new(1, ChunkOp.Add, "d1", 0, "text", [1f, 2f], 0, 4, null, null, null, null)]);
        Assert.Throws<InvalidDataException>(() => Decode(bytes[..^3]));
        Assert.Throws<InvalidDataException>(() => Decode([.. "XXXXYYYY"u8]));

        // A header that declares a huge vector is refused before it is allocated.
        var huge = (byte[])bytes.Clone();
        var dimsOffset = 8 + 8 + 1 + 3 + 4 + 1 + 5;
        BitConverter.TryWriteBytes(huge.AsSpan(dimsOffset), 1 << 30);
        Assert.Throws<InvalidDataException>(() => Decode(huge));

        var badOp = (byte[])bytes.Clone();
        badOp[8 + 8] = 9;
        Assert.Throws<InvalidDataException>(() => Decode(badOp));
    }

    [Fact]
    public void A_bounded_stream_hashes_what_it_reads_and_stops_a_lying_entry_at_its_limit()
    {
        var content = RandomNumberGenerator.GetBytes(10_000);
        using (var exact = new BoundedHashingStream(new MemoryStream(content), content.Length, "blob"))
        {
            exact.CopyTo(Stream.Null);
            Assert.Equal(content.Length, exact.BytesRead);
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(content)), exact.Sha256());
        }

        using var bomb = new BoundedHashingStream(new MemoryStream(content), 4096, "bomb");
        var error = Assert.Throws<InvalidDataException>(() => bomb.CopyTo(Stream.Null));
        Assert.Contains("bomb", error.Message, StringComparison.Ordinal);
    }

    private static byte[] Encode(IEnumerable<ChunkLogEntry> entries)
    {
        using var buffer = new MemoryStream();
        using (var writer = new BinaryWriter(buffer, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            ChunkRecordCodec.WriteHeader(writer);
            foreach (var e in entries)
            {
                ChunkRecordCodec.Write(writer, e);
            }
        }

        return buffer.ToArray();
    }

    private static List<ChunkLogEntry> Decode(byte[] bytes)
    {
        using var peekable = new PeekableStream(new MemoryStream(bytes));
        using var reader = new BinaryReader(peekable);
        var result = new List<ChunkLogEntry>();
        try
        {
            ChunkRecordCodec.ReadHeader(reader);
        }
        catch (EndOfStreamException ex)
        {
            throw new InvalidDataException("short", ex);
        }

        while (ChunkRecordCodec.Read(reader) is { } entry)
        {
            result.Add(entry);
        }

        return result;
    }
}
