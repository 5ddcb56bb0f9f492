using System.Globalization;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Storage;

namespace RagOrleans.Grains.Backup;

/// <summary>What <see cref="TenantExporter.PrepareAsync"/> settled before the first byte is sent.</summary>
public sealed record TenantExportPlan(TenantBackup Tenant, QuotaBackup Quota, IReadOnlyList<CollectionExportPlan> Collections);

/// <summary>One collection to export, with the watermark each shard's fresh snapshot was taken at.</summary>
public sealed record CollectionExportPlan(CollectionInfo Info, IReadOnlyList<long> ShardWatermarks);

/// <summary>
/// Streams one tenant into a <see cref="TenantArchive"/>. Everything is read through the grains (tenant, quota,
/// collection settings, shard snapshots on demand) and the stores (document records, blobs, chunk log, snapshots,
/// conversations), entry by entry, in bounded buffers: memory does not grow with the tenant.
/// </summary>
/// <remarks>
/// Search identity: each shard is made to snapshot itself first, and the archive carries that snapshot byte for byte
/// plus the chunk log up to its watermark. The restored shard loads the same snapshot and has nothing to replay, so
/// its HNSW graph (levels, links, tombstones), BM25 statistics and id maps are the source's, and every search ranks
/// and scores exactly as before. Rebuilding from vectors would re-draw the HNSW levels and lose the graph's history.
/// Consistency: the export is refused (409) while any document is queued or processing; a write that lands while the
/// archive streams (a shard's watermark moves, or a record turns unfinished) aborts the response, which leaves a zip
/// without its central directory and manifest that an import refuses.
/// </remarks>
public sealed class TenantExporter(
    IGrainFactory grains,
    IDocumentStore documents,
    IBlobStore blobs,
    IChunkLog log,
    ISnapshotStore snapshots,
    IConversationStore conversations,
    TimeProvider clock,
    ILogger<TenantExporter> logger)
{
    private const int PageSize = 500;
    private const int FlushBytes = 1 << 18;

    /// <summary>
    /// Checks the tenant can be exported now (NotFound, or Conflict while documents are being ingested) and snapshots
    /// every shard, so the archive can carry snapshots that cover the whole chunk log.
    /// </summary>
    public async Task<TenantExportPlan> PrepareAsync(string tenantId, CancellationToken cancellationToken)
    {
        var tenant = await grains.Reference<ITenantGrain>(tenantId).ExportBackup();
        var quota = await grains.Reference<IQuotaGrain>(tenantId).ExportBackup();
        var collections = new List<CollectionExportPlan>(tenant.Collections.Count);
        foreach (var name in tenant.Collections)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var collection = grains.Reference<ICollectionGrain>(Ids.Key(tenantId, name));
            var info = await collection.Get();
            await RequireSettledAsync(tenantId, name, cancellationToken);
            var watermarks = new long[info.Settings.ShardCount];
            for (var shard = 0; shard < watermarks.Length; shard++)
            {
                var grain = Shard(tenantId, name, shard);
                await grain.Snapshot();
                var stats = await grain.GetStats();
                if (stats.SnapshotWatermark != stats.Watermark)
                {
                    throw RagException.Conflict($"Collection '{name}' is being written to; retry the export.");
                }

                watermarks[shard] = stats.Watermark;
            }

            collections.Add(new CollectionExportPlan(info, watermarks));
        }

        return new TenantExportPlan(tenant, quota, collections);
    }

    /// <summary>Writes the archive to <paramref name="output"/> (which need not seek); throws, leaving it incomplete, if the tenant changed meanwhile.</summary>
    public async Task WriteAsync(TenantExportPlan plan, Stream output, CancellationToken cancellationToken)
    {
        var tenantId = plan.Tenant.Id;
        var started = clock.GetTimestamp();
        // The zip writer still flushes an entry's last deflate block and data descriptor synchronously when the entry
        // closes; the output may be an HTTP response that forbids synchronous writes, so those few bytes wait in memory
        // for the next asynchronous write.
        var target = new AsyncOnlyOutput(output);
        await using var targetScope = target.ConfigureAwait(false);
        var zip = await ZipArchive.CreateAsync(target, ZipArchiveMode.Create, leaveOpen: true, entryNameEncoding: null, cancellationToken);
        await using (zip.ConfigureAwait(false))
        {
            var writer = new EntryWriter(zip);
            await writer.JsonAsync(TenantArchive.TenantEntry, plan.Tenant, cancellationToken);
            await writer.JsonAsync(TenantArchive.QuotaEntry, plan.Quota, cancellationToken);
            var manifestCollections = new List<ArchiveCollection>(plan.Collections.Count);
            long documentTotal = 0, chunkTotal = 0;
            foreach (var collection in plan.Collections)
            {
                var exported = await WriteCollectionAsync(writer, tenantId, collection, cancellationToken);
                manifestCollections.Add(exported);
                documentTotal += exported.Documents;
                chunkTotal += exported.Shards.Sum(s => s.Chunks);
            }

            var conversationCount = await WriteConversationsAsync(writer, plan.Tenant, cancellationToken);
            var manifest = new ArchiveManifest(TenantArchive.Format, TenantArchive.Version, tenantId, clock.GetUtcNow(),
                manifestCollections, writer.Checksums, conversationCount);
            await writer.JsonAsync(TenantArchive.ManifestEntry, manifest, cancellationToken, checksum: false);
            await zip.DisposeAsync();
            await target.FlushAsync(cancellationToken);
            logger.LogInformation(
                "Tenant {TenantId} exported: {Collections} collections, {Documents} documents, {Chunks} chunks, {Conversations} conversations in {ElapsedMs:F0} ms",
                tenantId, manifestCollections.Count, documentTotal, chunkTotal, conversationCount, clock.GetElapsedTime(started).TotalMilliseconds);
        }
    }

    private async Task<ArchiveCollection> WriteCollectionAsync(EntryWriter writer, string tenantId, CollectionExportPlan plan, CancellationToken cancellationToken)
    {
        var name = plan.Info.Name;
        await writer.JsonAsync(TenantArchive.CollectionEntry(name), new ArchiveCollectionRecord(name, plan.Info.CreatedAt, plan.Info.Settings), cancellationToken);

        // Records first (one page at a time), then each record's blob.
        long count = 0;
        await writer.WriteAsync(TenantArchive.DocumentsEntry(name), async (stream, ct) =>
        {
            var buffer = new MemoryStream();
            await foreach (var record in AllDocumentsAsync(tenantId, name, ct))
            {
                if (record.Status is not (DocumentStatus.Indexed or DocumentStatus.Failed))
                {
                    throw new InvalidOperationException($"Document '{record.Id}' of {tenantId}/{name} started ingesting during the export; the archive is incomplete.");
                }

                JsonSerializer.Serialize(buffer, record, TenantArchive.Json);
                buffer.WriteByte((byte)'\n');
                count++;
                await FlushIfFullAsync(buffer, stream, ct);
            }

            await FlushAsync(buffer, stream, ct);
        }, cancellationToken);

        await foreach (var record in AllDocumentsAsync(tenantId, name, cancellationToken))
        {
            // A document that turned unfinished since its record was written (replaced, retried) would not match it.
            if (record.Status is not (DocumentStatus.Indexed or DocumentStatus.Failed))
            {
                throw new InvalidOperationException($"Document '{record.Id}' of {tenantId}/{name} started ingesting during the export; the archive is incomplete.");
            }

            var content = await blobs.OpenReadAsync(RagStorage.DocumentBlobKey(tenantId, name, record.Id), cancellationToken);
            if (content is null)
            {
                continue;
            }

            await using (content.ConfigureAwait(false))
            {
                await writer.WriteAsync(TenantArchive.BlobEntry(name, record.Id), (stream, ct) => content.CopyToAsync(stream, 1 << 16, ct), cancellationToken, checksum: false);
            }
        }

        var shards = new List<ArchiveShard>(plan.ShardWatermarks.Count);
        for (var shard = 0; shard < plan.ShardWatermarks.Count; shard++)
        {
            shards.Add(await WriteShardAsync(writer, tenantId, name, shard, plan.ShardWatermarks[shard], cancellationToken));
        }

        // The cut is consistent only if nothing reached the shards while they streamed.
        for (var shard = 0; shard < plan.ShardWatermarks.Count; shard++)
        {
            var stats = await Shard(tenantId, name, shard).GetStats();
            if (stats.Watermark != plan.ShardWatermarks[shard])
            {
                throw new InvalidOperationException($"Shard {shard} of {tenantId}/{name} was written during the export; the archive is incomplete.");
            }
        }

        return new ArchiveCollection(name, count, shards);
    }

    private async Task<ArchiveShard> WriteShardAsync(EntryWriter writer, string tenantId, string collection, int shard, long watermark, CancellationToken cancellationToken)
    {
        var shardKey = Ids.Key(tenantId, collection, shard.ToString(CultureInfo.InvariantCulture));
        var hasSnapshot = false;
        if (watermark > 0)
        {
            var snapshot = await snapshots.OpenLatestAsync(shardKey, cancellationToken)
                ?? throw new InvalidOperationException($"Shard {shardKey} has no snapshot at {watermark}; the archive is incomplete.");
            await using (snapshot.ConfigureAwait(false))
            {
                if (snapshot.Watermark != watermark)
                {
                    throw new InvalidOperationException($"Shard {shardKey} moved from {watermark} to {snapshot.Watermark} during the export; the archive is incomplete.");
                }

                await writer.WriteAsync(TenantArchive.SnapshotEntry(collection, shard), (stream, ct) => snapshot.Content.CopyToAsync(stream, 1 << 16, ct), cancellationToken);
                hasSnapshot = true;
            }
        }

        long chunks = 0;
        await writer.WriteAsync(TenantArchive.ChunksEntry(collection, shard), async (stream, ct) =>
        {
            var buffer = new MemoryStream();
            using var binary = new BinaryWriter(buffer, System.Text.Encoding.UTF8, leaveOpen: true);
            ChunkRecordCodec.WriteHeader(binary);
            if (watermark > 0)
            {
                await foreach (var entry in log.ReadAfterAsync(shardKey, 0, ct))
                {
                    if (entry.Seq > watermark)
                    {
                        break;
                    }

                    ChunkRecordCodec.Write(binary, entry);
                    chunks += entry.Op == ChunkOp.Add ? 1 : 0;
                    binary.Flush();
                    await FlushIfFullAsync(buffer, stream, ct);
                }
            }

            binary.Flush();
            await FlushAsync(buffer, stream, ct);
        }, cancellationToken);
        return new ArchiveShard(shard, watermark, hasSnapshot, chunks);
    }

    /// <summary>
    /// Conversations are found through the users of the tenant's keys (the store is keyed by user): those of a user
    /// whose every key was revoked are not exported.
    /// </summary>
    private async Task<int> WriteConversationsAsync(EntryWriter writer, TenantBackup tenant, CancellationToken cancellationToken)
    {
        var count = 0;
        var users = tenant.Keys.Select(k => k.UserId).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        await writer.WriteAsync(TenantArchive.ConversationsEntry, async (stream, ct) =>
        {
            var buffer = new MemoryStream();
            foreach (var user in users)
            {
                string? cursor = null;
                do
                {
                    var page = await conversations.ListAsync(tenant.Id, user, cursor, 100, ct);
                    foreach (var summary in page.Conversations)
                    {
                        var turns = await conversations.GetAsync(tenant.Id, user, summary.Id, ct);
                        JsonSerializer.Serialize(buffer, new ArchiveConversation(user, summary.Id, summary.Collection, turns), TenantArchive.Json);
                        buffer.WriteByte((byte)'\n');
                        count++;
                        await FlushIfFullAsync(buffer, stream, ct);
                    }

                    cursor = page.NextCursor;
                }
                while (cursor is not null);
            }

            await FlushAsync(buffer, stream, ct);
        }, cancellationToken);
        return count;
    }

    private async Task RequireSettledAsync(string tenantId, string collection, CancellationToken cancellationToken)
    {
        foreach (var status in (DocumentStatus[])[DocumentStatus.Queued, DocumentStatus.Processing])
        {
            var pending = await documents.ListAsync(tenantId, collection, null, 1, status, cancellationToken);
            if (pending.Count > 0)
            {
                throw RagException.Conflict(
                    $"Collection '{collection}' has documents still being ingested (e.g. '{pending[0].Id}' is {status.ToString().ToLowerInvariant()}); " +
                    "export once every document is indexed or failed.");
            }
        }
    }

    private async IAsyncEnumerable<DocumentInfo> AllDocumentsAsync(string tenantId, string collection, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        string? after = null;
        while (true)
        {
            var page = await documents.ListAsync(tenantId, collection, after, PageSize, null, cancellationToken);
            foreach (var record in page)
            {
                yield return record;
            }

            if (page.Count < PageSize)
            {
                yield break;
            }

            after = page[^1].Id;
        }
    }

    private IIndexShardGrain Shard(string tenantId, string collection, int shard) =>
        grains.Reference<IIndexShardGrain>(Ids.Key(tenantId, collection, shard.ToString(CultureInfo.InvariantCulture)));

    private static Task FlushIfFullAsync(MemoryStream buffer, Stream stream, CancellationToken cancellationToken) =>
        buffer.Length >= FlushBytes ? FlushAsync(buffer, stream, cancellationToken) : Task.CompletedTask;

    private static async Task FlushAsync(MemoryStream buffer, Stream stream, CancellationToken cancellationToken)
    {
        if (buffer.Length > 0)
        {
            await stream.WriteAsync(buffer.GetBuffer().AsMemory(0, (int)buffer.Length), cancellationToken);
            buffer.SetLength(0);
        }
    }

    /// <summary>Creates entries one at a time, measuring the size and SHA-256 of each as it is written.</summary>
    private sealed class EntryWriter(ZipArchive zip)
    {
        public List<ArchiveChecksum> Checksums { get; } = [];

        public Task JsonAsync<T>(string path, T value, CancellationToken cancellationToken, bool checksum = true) =>
            WriteAsync(path, (stream, ct) => stream.WriteAsync(JsonSerializer.SerializeToUtf8Bytes(value, TenantArchive.Json), ct).AsTask(), cancellationToken, checksum);

        public async Task WriteAsync(string path, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken, bool checksum = true)
        {
            var entry = zip.CreateEntry(path, CompressionLevel.Fastest);
            var stream = await entry.OpenAsync(cancellationToken);
            await using (stream.ConfigureAwait(false))
            {
                using var hashing = new HashingWriteStream(stream);
                await write(hashing, cancellationToken);
                await hashing.FlushAsync(cancellationToken);
                if (checksum)
                {
                    Checksums.Add(new ArchiveChecksum(path, hashing.Length, hashing.Sha256()));
                }
            }
        }
    }

    /// <summary>
    /// Passes asynchronous writes through; keeps synchronous ones in memory until the next asynchronous write or flush,
    /// so the wrapped stream only ever sees asynchronous writes.
    /// </summary>
    private sealed class AsyncOnlyOutput(Stream inner) : Stream
    {
        private readonly MemoryStream _pending = new();

        public override void Write(byte[] buffer, int offset, int count) => _pending.Write(buffer, offset, count);

        public override void Write(ReadOnlySpan<byte> buffer) => _pending.Write(buffer);

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await DrainAsync(cancellationToken).ConfigureAwait(false);
            await inner.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override async Task FlushAsync(CancellationToken cancellationToken)
        {
            await DrainAsync(cancellationToken).ConfigureAwait(false);
            await inner.FlushAsync(cancellationToken).ConfigureAwait(false);
        }

        public override void Flush()
        {
        }

        private async Task DrainAsync(CancellationToken cancellationToken)
        {
            if (_pending.Length > 0)
            {
                await inner.WriteAsync(_pending.GetBuffer().AsMemory(0, (int)_pending.Length), cancellationToken).ConfigureAwait(false);
                _pending.SetLength(0);
            }
        }

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        public override async ValueTask DisposeAsync()
        {
            _pending.Dispose();
            await base.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Forwards writes (asynchronous only: the target may be an HTTP response) while hashing them.</summary>
    private sealed class HashingWriteStream(Stream inner) : Stream
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private long _length;

        public string Sha256() => Convert.ToHexStringLower(_hash.GetHashAndReset());

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            _hash.AppendData(buffer.Span);
            _length += buffer.Length;
            await inner.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("Write asynchronously.");

        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

        public override void Flush()
        {
        }

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => _length;
        public override long Position { get => _length; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _hash.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
