using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Backup;
using RagOrleans.Grains.Embeddings;
using RagOrleans.Grains.Indexing;
using RagOrleans.Grains.Ingestion;
using RagOrleans.Grains.Quotas;
using RagOrleans.Grains.Storage;
using RagOrleans.Grains.Tenancy;

namespace RagOrleans.Bench.Load;

/// <summary>One chunk to load: its text and that text's embedding (a row of bench/Ann's real-embedding cache).</summary>
internal readonly record struct ScaleChunk(string Text, float[] Vector);

/// <summary>What <see cref="ScaleArchive.Write"/> produced.</summary>
internal sealed record BuiltArchive(string Path, long Bytes, int Documents, int Chunks, IReadOnlyList<ScaleSample> Samples);

/// <summary>A chunk whose own text must find it again once the tenant is restored (the searchable check).</summary>
internal sealed record ScaleSample(int Tenant, string DocumentId, string ChunkId, string Text);

/// <summary>
/// The bulk loader: writes a complete, valid tenant backup archive (<see cref="TenantArchive"/>, version 1) for
/// chunks whose vectors already exist, using the service's own classes, so <c>POST /v1/tenants/import</c> restores
/// it through the normal checks (manifest checksums, ids, records, chunk log against the records) without the
/// hour of embedding that ingesting 100,000 chunks through the API costs on two cores. The shard snapshot is the
/// one the service itself would write: <see cref="ShardIndex"/> (HNSW M 16 / efConstruction 200 and BM25) built by
/// applying the same chunk-log entries the archive carries, in the same order.
/// </summary>
/// <remarks>
/// A document is <see cref="ChunksPerDocument"/> consecutive chunks; its content (the blob) is their texts joined by
/// blank lines, and each chunk's offsets point into it, as the text chunker's would. Titles and sections are empty,
/// so a stored vector is the embedding of exactly the chunk's text (the service embeds title, section and text).
/// </remarks>
internal static class ScaleArchive
{
    public const string Collection = "kb";
    public const int ChunksPerDocument = 10;
    private const string Separator = "\n\n";

    public static BuiltArchive Write(
        string path, string tenantId, int tenantIndex, NewApiKey key, IReadOnlyList<ScaleChunk> chunks, int samples, DateTimeOffset now)
    {
        var model = EmbeddingModelCatalog.Default;
        var dims = chunks[0].Vector.Length;
        if (dims != model.Dimensions)
        {
            throw new InvalidOperationException($"The vectors have {dims} dimensions; the service's default model {model.Name} has {model.Dimensions}.");
        }

        var checksums = new List<ArchiveChecksum>();
        var documents = new MemoryStream();
        var chunkLog = new MemoryStream();
        using var logWriter = new BinaryWriter(chunkLog, Encoding.UTF8, leaveOpen: true);
        ChunkRecordCodec.WriteHeader(logWriter);
        using var index = new ShardIndex(new HnswOptions());
        var picked = new List<ScaleSample>();
        var sampleEvery = Math.Max(1, chunks.Count / Math.Max(1, samples));
        var wantSample = false;
        long seq = 0;
        var documentCount = 0;
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
        using (var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true))
        {
            for (var first = 0; first < chunks.Count; first += ChunksPerDocument)
            {
                var count = Math.Min(ChunksPerDocument, chunks.Count - first);
                var documentId = $"doc-{tenantIndex:D4}-{first:D6}";
                var content = new StringBuilder();
                for (var ordinal = 0; ordinal < count; ordinal++)
                {
                    var chunk = chunks[first + ordinal];
                    if (ordinal > 0)
                    {
                        content.Append(Separator);
                    }

                    var start = content.Length;
                    content.Append(chunk.Text);
                    var entry = new ChunkLogEntry(++seq, ChunkOp.Add, documentId, ordinal, chunk.Text, chunk.Vector, start, content.Length, null, null, null, null);
                    index.Apply(entry);
                    ChunkRecordCodec.Write(logWriter, entry);
                    // Spread over the tenant; a chunk too short to be specific or too long for a query passes its turn on.
                    wantSample |= (first + ordinal) % sampleEvery == 0;
                    if (wantSample && picked.Count < samples && chunk.Text.Length is >= 40 and <= 400)
                    {
                        picked.Add(new ScaleSample(tenantIndex, documentId, IndexShardGrain.ChunkId(documentId, ordinal), chunk.Text));
                        wantSample = false;
                    }
                }

                var blob = Encoding.UTF8.GetBytes(content.ToString());
                var record = new DocumentInfo(documentId, null, DocumentStatus.Indexed, count, null, DocumentTypes.Text, null, blob.Length,
                    Convert.ToHexStringLower(SHA256.HashData(blob)), null, now, now, 1, DocumentStep.Indexed, 100);
                JsonSerializer.Serialize(documents, record, TenantArchive.Json);
                documents.WriteByte((byte)'\n');
                Entry(zip, TenantArchive.BlobEntry(Collection, documentId), blob, checksums: null);
                documentCount++;
            }

            logWriter.Flush();
            var settings = new CollectionSettings(model.Name, model.Dimensions, 1, 200, 32, Bm25Settings.Default);
            var tenant = new TenantBackup(tenantId, tenantId, now, [new TenantKeyBackup(key.KeyId, Roles.Admin, "admin", key.Salt, key.Hash, now)], [Collection]);
            var quota = new QuotaBackup(null, new Dictionary<string, decimal?>(), [], DateOnly.FromDateTime(now.UtcDateTime), 0,
                new Dictionary<string, long>(), LimitsResolver.Month(now), 0);
            var snapshot = new MemoryStream();
            index.WriteTo(snapshot);

            Entry(zip, TenantArchive.TenantEntry, JsonSerializer.SerializeToUtf8Bytes(tenant, TenantArchive.Json), checksums);
            Entry(zip, TenantArchive.QuotaEntry, JsonSerializer.SerializeToUtf8Bytes(quota, TenantArchive.Json), checksums);
            Entry(zip, TenantArchive.CollectionEntry(Collection),
                JsonSerializer.SerializeToUtf8Bytes(new ArchiveCollectionRecord(Collection, now, settings), TenantArchive.Json), checksums);
            Entry(zip, TenantArchive.DocumentsEntry(Collection), documents.ToArray(), checksums);
            Entry(zip, TenantArchive.SnapshotEntry(Collection, 0), snapshot.ToArray(), checksums);
            Entry(zip, TenantArchive.ChunksEntry(Collection, 0), chunkLog.ToArray(), checksums);
            var manifest = new ArchiveManifest(TenantArchive.Format, TenantArchive.Version, tenantId, now,
                [new ArchiveCollection(Collection, documentCount, [new ArchiveShard(0, seq, true, seq)])], checksums, 0);
            Entry(zip, TenantArchive.ManifestEntry, JsonSerializer.SerializeToUtf8Bytes(manifest, TenantArchive.Json), checksums: null);
        }

        return new BuiltArchive(path, stream.Length, documentCount, chunks.Count, picked);
    }

    private static void Entry(ZipArchive zip, string name, byte[] bytes, List<ArchiveChecksum>? checksums)
    {
        var entry = zip.CreateEntry(name, CompressionLevel.Fastest);
        using (var s = entry.Open())
        {
            s.Write(bytes);
        }

        checksums?.Add(new ArchiveChecksum(name, bytes.Length, Convert.ToHexStringLower(SHA256.HashData(bytes))));
    }
}
