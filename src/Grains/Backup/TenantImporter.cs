using System.Globalization;
using System.IO.Compression;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Embeddings;
using RagOrleans.Grains.Storage;

namespace RagOrleans.Grains.Backup;

/// <summary>What an import restored.</summary>
public sealed record TenantImportResult(string TenantId, int Collections, long Documents, long Chunks, int Keys, int Conversations);

/// <summary>
/// Restores a <see cref="TenantArchive"/> into a cluster where the tenant does not exist. It reads the archive
/// twice: first it checks everything (entry names, sizes and compression ratios, the manifest's version and
/// checksums, every id, every record, every chunk) without writing anything; then it restores through the grains
/// and stores. The tenant gets its keys only at the very end, so nothing can use it half-restored, and any failure
/// of the second pass deletes whatever it had written.
/// </summary>
public sealed class TenantImporter(
    IGrainFactory grains,
    IDocumentStore documents,
    IBlobStore blobs,
    IChunkLog log,
    ISnapshotStore snapshots,
    IConversationStore conversations,
    IOptions<BackupOptions> options,
    TimeProvider clock,
    ILogger<TenantImporter> logger)
{
    private const long LargeEntryBytes = 1 << 20;
    private const long MaxJsonEntryBytes = 64L << 20;
    private const int ChunkBatch = 256;

    /// <summary>Checks and restores the archive in <paramref name="archive"/> (a seekable stream, e.g. the spooled upload).</summary>
    public async Task<TenantImportResult> ImportAsync(Stream archive, CancellationToken cancellationToken)
    {
        ZipArchive zip;
        try
        {
            zip = await ZipArchive.CreateAsync(archive, ZipArchiveMode.Read, leaveOpen: true, entryNameEncoding: null, cancellationToken);
        }
        catch (InvalidDataException ex)
        {
            throw RagException.Invalid($"The body is not a complete zip archive (truncated or corrupt): {ex.Message}");
        }

        await using (zip.ConfigureAwait(false))
        {
            var started = clock.GetTimestamp();
            var checkedArchive = await ValidateAsync(zip, cancellationToken);
            var result = await RestoreAsync(zip, checkedArchive, cancellationToken);
            logger.LogInformation(
                "Tenant {TenantId} imported: {Collections} collections, {Documents} documents, {Chunks} chunks, {Keys} keys, {Conversations} conversations in {ElapsedMs:F0} ms",
                result.TenantId, result.Collections, result.Documents, result.Chunks, result.Keys, result.Conversations, clock.GetElapsedTime(started).TotalMilliseconds);
            return result;
        }
    }

    private sealed record CheckedCollection(ArchiveCollectionRecord Record, ArchiveCollection Manifest);

    private sealed record CheckedArchive(
        ArchiveManifest Manifest, TenantBackup Tenant, QuotaBackup Quota, IReadOnlyList<CheckedCollection> Collections,
        Dictionary<string, ZipArchiveEntry> Entries, QuotaHoldings Holdings);

    private async Task<CheckedArchive> ValidateAsync(ZipArchive zip, CancellationToken cancellationToken)
    {
        var limits = options.Value;
        var entries = new Dictionary<string, ZipArchiveEntry>(StringComparer.Ordinal);
        long declared = 0;
        foreach (var entry in zip.Entries)
        {
            var name = entry.FullName;
            if (TenantArchive.Parse(name) is null)
            {
                throw RagException.Invalid($"The archive holds an entry that is not part of a tenant backup: '{Printable(name)}' (unexpected name or path).");
            }

            if (!entries.TryAdd(name, entry))
            {
                throw RagException.Invalid($"The archive holds '{name}' twice.");
            }

            if (entry.Length > limits.MaxEntryBytes)
            {
                throw new RagException(RagErrorKind.TooLarge, $"Archive entry '{name}' is {entry.Length} bytes uncompressed; the limit is {limits.MaxEntryBytes} (Rag:Backup:MaxEntryBytes).");
            }

            if (entry.Length > LargeEntryBytes && (entry.CompressedLength == 0 || (double)entry.Length / entry.CompressedLength > limits.MaxCompressionRatio))
            {
                throw RagException.Invalid(
                    $"Archive entry '{name}' expands {entry.Length} bytes from {entry.CompressedLength}: over the compression ratio limit of {limits.MaxCompressionRatio} (Rag:Backup:MaxCompressionRatio).");
            }

            declared += entry.Length;
            if (declared > limits.MaxTotalBytes)
            {
                throw new RagException(RagErrorKind.TooLarge, $"The archive expands beyond {limits.MaxTotalBytes} bytes (Rag:Backup:MaxTotalBytes).");
            }
        }

        var manifestEntry = entries.GetValueOrDefault(TenantArchive.ManifestEntry)
            ?? throw RagException.Invalid("The archive has no manifest.json: it is not a tenant backup, or it was cut off before its end.");
        var manifest = await ReadJsonAsync<ArchiveManifest>(manifestEntry, Math.Min(manifestEntry.Length, MaxJsonEntryBytes), null, cancellationToken);
        if (manifest.Format != TenantArchive.Format)
        {
            throw RagException.Invalid($"manifest.json names format '{Printable(manifest.Format)}', not '{TenantArchive.Format}'.");
        }

        if (manifest.Version != TenantArchive.Version)
        {
            throw RagException.Invalid($"The archive is format version {manifest.Version}; this service reads version {TenantArchive.Version}.");
        }

        var tenantId = Ids.RequireTenantId(manifest.TenantId);
        await RequireAbsentAsync(tenantId);

        // Every entry but the manifest and the blobs has a checksum, and every checksum an entry.
        var checksums = new Dictionary<string, ArchiveChecksum>(StringComparer.Ordinal);
        foreach (var c in manifest.Entries ?? [])
        {
            if (TenantArchive.Parse(c.Path) is not { Kind: not (ArchiveEntryKind.Manifest or ArchiveEntryKind.Blob) } || !checksums.TryAdd(c.Path, c))
            {
                throw RagException.Invalid($"manifest.json lists an invalid or repeated entry '{Printable(c.Path)}'.");
            }

            if (!entries.ContainsKey(c.Path))
            {
                throw RagException.Invalid($"manifest.json lists '{c.Path}', which the archive does not hold.");
            }
        }

        foreach (var name in entries.Keys)
        {
            if (TenantArchive.Parse(name)!.Kind is not (ArchiveEntryKind.Manifest or ArchiveEntryKind.Blob) && !checksums.ContainsKey(name))
            {
                throw RagException.Invalid($"The archive holds '{name}', which manifest.json does not list.");
            }
        }

        var tenant = await ReadJsonAsync<TenantBackup>(Required(entries, TenantArchive.TenantEntry), MaxJsonEntryBytes, checksums, cancellationToken);
        var quota = await ReadJsonAsync<QuotaBackup>(Required(entries, TenantArchive.QuotaEntry), MaxJsonEntryBytes, checksums, cancellationToken);
        ValidateTenant(tenant, tenantId);

        var manifestCollections = manifest.Collections ?? [];
        var names = manifestCollections.Select(c => c.Name).ToList();
        if (names.Any(n => !Ids.IsValidName(n)) || names.Distinct(StringComparer.Ordinal).Count() != names.Count
            || !names.Order(StringComparer.Ordinal).SequenceEqual(tenant.Collections.Order(StringComparer.Ordinal), StringComparer.Ordinal))
        {
            throw RagException.Invalid("manifest.json and tenant.json do not list the same valid, distinct collections.");
        }

        foreach (var name in entries.Keys)
        {
            if (TenantArchive.Parse(name)!.Collection is { } owner && !names.Contains(owner, StringComparer.Ordinal))
            {
                throw RagException.Invalid($"Archive entry '{name}' belongs to no collection of the manifest.");
            }
        }

        var collections = new List<CheckedCollection>(manifestCollections.Count);
        long documentCount = 0, storedBytes = 0, vectors = 0;
        foreach (var manifestCollection in manifestCollections)
        {
            var (record, counts) = await ValidateCollectionAsync(manifestCollection, entries, checksums, cancellationToken);
            collections.Add(new CheckedCollection(record, manifestCollection));
            documentCount += counts.Documents;
            storedBytes += counts.Bytes;
            vectors += counts.Vectors;
        }

        await ValidateConversationsAsync(entries, checksums, names, cancellationToken);
        return new CheckedArchive(manifest, tenant, quota, collections, entries, new QuotaHoldings(collections.Count, documentCount, storedBytes, vectors));
    }

    private async Task<(ArchiveCollectionRecord Record, (long Documents, long Bytes, long Vectors) Counts)> ValidateCollectionAsync(
        ArchiveCollection manifest, Dictionary<string, ZipArchiveEntry> entries, Dictionary<string, ArchiveChecksum> checksums, CancellationToken cancellationToken)
    {
        var name = manifest.Name;
        var record = await ReadJsonAsync<ArchiveCollectionRecord>(Required(entries, TenantArchive.CollectionEntry(name)), MaxJsonEntryBytes, checksums, cancellationToken);
        if (record.Name != name || record.Settings is null)
        {
            throw RagException.Invalid($"collections/{name}/collection.json describes another collection or has no settings.");
        }

        var settings = record.Settings;
        var model = EmbeddingModelCatalog.Find(settings.Model)
            ?? throw RagException.Invalid($"Collection '{name}' uses embedding model '{Printable(settings.Model)}', which this service does not have.");
        if (model.Dimensions != settings.Dimensions || settings.ShardCount is < 1 or > 64)
        {
            throw RagException.Invalid($"Collection '{name}' has inconsistent settings (dimensions {settings.Dimensions}, shards {settings.ShardCount}).");
        }

        settings.Bm25?.Validate();
        VectorQuantizations.Normalize(settings.VectorQuantization);
        var shards = manifest.Shards ?? [];
        if (shards.Count != settings.ShardCount || shards.Select(s => s.Shard).Order().Where((s, i) => s != i).Any())
        {
            throw RagException.Invalid($"manifest.json lists shards of collection '{name}' that do not match its {settings.ShardCount} shards.");
        }

        // Records: valid ids, settled states, and what they hold (the quota is recounted from them, never trusted).
        var indexed = new HashSet<string>(StringComparer.Ordinal);
        var contentOf = new Dictionary<string, (string Hash, long Size)>(StringComparer.Ordinal);
        long count = 0, bytes = 0, vectors = 0;
        var documentsEntry = Required(entries, TenantArchive.DocumentsEntry(name));
        await ReadLinesAsync<DocumentInfo>(documentsEntry, checksums, cancellationToken, document =>
        {
            if (!Ids.IsValidName(document.Id) || contentOf.ContainsKey(document.Id))
            {
                throw RagException.Invalid($"collections/{name}/documents.jsonl has an invalid or repeated document id '{Printable(document.Id)}'.");
            }

            if (document.Status is not (DocumentStatus.Indexed or DocumentStatus.Failed) || document.SizeBytes < 0 || document.ChunkCount < 0
                || document.ContentHash is not { Length: 64 } || !document.ContentHash.All(char.IsAsciiHexDigitLower))
            {
                throw RagException.Invalid($"Document '{document.Id}' of collection '{name}' has an invalid record (status, size, chunk count or content hash).");
            }

            contentOf[document.Id] = (document.ContentHash, document.SizeBytes);
            count++;
            bytes += document.SizeBytes;
            if (document.Status == DocumentStatus.Indexed)
            {
                indexed.Add(document.Id);
                vectors += document.ChunkCount;
            }
        });
        if (count != manifest.Documents)
        {
            throw RagException.Invalid($"Collection '{name}' holds {count} document records; manifest.json says {manifest.Documents}.");
        }

        // Blobs: each one a document's, with that document's size and SHA-256.
        var prefix = $"collections/{name}/blobs/";
        foreach (var (entryName, entry) in entries)
        {
            if (!entryName.StartsWith(prefix, StringComparison.Ordinal))
            {
                continue;
            }

            var documentId = entryName[prefix.Length..];
            if (!contentOf.TryGetValue(documentId, out var content))
            {
                throw RagException.Invalid($"Archive entry '{entryName}' is the content of a document the collection does not list.");
            }

            var hashing = new BoundedHashingStream(await entry.OpenAsync(cancellationToken), Math.Min(content.Size + 1, options.Value.MaxEntryBytes), entryName);
            await using (hashing.ConfigureAwait(false))
            {
                await hashing.CopyToAsync(Stream.Null, cancellationToken);
                if (hashing.BytesRead != content.Size || hashing.Sha256() != content.Hash)
                {
                    throw RagException.Invalid($"Archive entry '{entryName}' does not match its document's size and SHA-256: the archive is damaged or was altered.");
                }
            }
        }

        foreach (var shard in shards)
        {
            var snapshotName = TenantArchive.SnapshotEntry(name, shard.Shard);
            if (shard.Watermark < 0 || shard.Snapshot != entries.ContainsKey(snapshotName) || (shard.Watermark > 0) != shard.Snapshot)
            {
                throw RagException.Invalid($"Shard {shard.Shard} of collection '{name}': its watermark and snapshot do not agree with the archive.");
            }

            if (shard.Snapshot)
            {
                await VerifyAsync(entries[snapshotName], checksums, cancellationToken);
            }

            var chunksName = TenantArchive.ChunksEntry(name, shard.Shard);
            long adds = 0, last = 0;
            await ReadChunksAsync(Required(entries, chunksName), checksums, cancellationToken, entry =>
            {
                if (entry.Seq <= last || entry.Seq > shard.Watermark)
                {
                    throw RagException.Invalid($"{chunksName}: sequence numbers must increase and stay within the watermark {shard.Watermark}.");
                }

                last = entry.Seq;
                if (!Ids.IsValidName(entry.DocumentId))
                {
                    throw RagException.Invalid($"{chunksName}: invalid document id '{Printable(entry.DocumentId)}'.");
                }

                if (entry.Op == ChunkOp.Add)
                {
                    if (!indexed.Contains(entry.DocumentId) || entry.Vector?.Length != settings.Dimensions || entry.Text is null)
                    {
                        throw RagException.Invalid($"{chunksName}: chunk {entry.Seq} belongs to no indexed document or has no {settings.Dimensions}-dimensional vector.");
                    }

                    adds++;
                }
            });
            if (adds != shard.Chunks)
            {
                throw RagException.Invalid($"{chunksName} holds {adds} chunks; manifest.json says {shard.Chunks}.");
            }
        }

        return (record, (count, bytes, vectors));
    }

    private async Task ValidateConversationsAsync(
        Dictionary<string, ZipArchiveEntry> entries, Dictionary<string, ArchiveChecksum> checksums, IReadOnlyList<string> collections, CancellationToken cancellationToken)
    {
        if (!entries.TryGetValue(TenantArchive.ConversationsEntry, out var entry))
        {
            return;
        }

        var seen = new HashSet<(string, string)>();
        await ReadLinesAsync<ArchiveConversation>(entry, checksums, cancellationToken, c =>
        {
            if (!Ids.IsValidName(c.UserId) || !Ids.IsValidName(c.ConversationId) || !collections.Contains(c.Collection, StringComparer.Ordinal)
                || c.Turns is null || !seen.Add((c.UserId, c.ConversationId)))
            {
                throw RagException.Invalid($"conversations.jsonl has an invalid or repeated conversation '{Printable(c.ConversationId)}'.");
            }
        });
    }

    private static void ValidateTenant(TenantBackup tenant, string tenantId)
    {
        if (tenant.Id != tenantId || string.IsNullOrWhiteSpace(tenant.Name) || tenant.Name.Length > 200 || tenant.Keys is null || tenant.Collections is null)
        {
            throw RagException.Invalid("tenant.json does not describe the manifest's tenant (id, name, keys, collections).");
        }

        var ids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var key in tenant.Keys)
        {
            if (!Ids.IsValidName(key.Id) || !Ids.IsValidName(key.UserId) || !Roles.IsTenantRole(key.Role) || key.Salt is not { Length: > 0 and <= 64 }
                || key.Hash is not { Length: 32 } || !ids.Add(key.Id))
            {
                throw RagException.Invalid($"tenant.json has an invalid or repeated key '{Printable(key.Id)}'.");
            }
        }
    }

    private async Task RequireAbsentAsync(string tenantId)
    {
        try
        {
            await grains.Reference<ITenantGrain>(tenantId).Get();
        }
        catch (RagException ex) when (ex.Kind == RagErrorKind.NotFound)
        {
            return;
        }

        throw RagException.Conflict($"Tenant '{tenantId}' already exists; an import restores into a cluster where it does not (delete it first).");
    }

    private async Task<TenantImportResult> RestoreAsync(ZipArchive zip, CheckedArchive archive, CancellationToken cancellationToken)
    {
        var tenantId = archive.Manifest.TenantId;
        var tenant = grains.Reference<ITenantGrain>(tenantId);

        // Conflict here (someone created the tenant since the check) leaves the existing tenant alone.
        await tenant.BeginRestore(archive.Tenant.Name, archive.Tenant.CreatedAt);
        long chunks = 0;
        var conversationCount = 0;
        try
        {
            await grains.Reference<IQuotaGrain>(tenantId).RestoreBackup(archive.Quota, archive.Holdings);
            foreach (var collection in archive.Collections)
            {
                chunks += await RestoreCollectionAsync(tenantId, collection, archive.Entries, cancellationToken);
            }

            conversationCount = await RestoreConversationsAsync(tenantId, archive.Entries, cancellationToken);
            await tenant.CompleteRestore(archive.Tenant.Keys);
        }
        catch (Exception ex)
        {
            logger.LogWarning(ex, "Import of tenant {TenantId} failed; removing what it restored", tenantId);
            await CleanupAsync(tenantId, archive.Collections);
            throw;
        }

        return new TenantImportResult(tenantId, archive.Collections.Count, archive.Holdings.Documents, chunks, archive.Tenant.Keys.Count, conversationCount);
    }

    private async Task<long> RestoreCollectionAsync(string tenantId, CheckedCollection collection, Dictionary<string, ZipArchiveEntry> entries, CancellationToken cancellationToken)
    {
        var name = collection.Record.Name;
        await grains.Reference<ICollectionGrain>(Ids.Key(tenantId, name)).Restore(collection.Record.Settings, collection.Record.CreatedAt);
        await ReadLinesAsync<DocumentInfo>(entries[TenantArchive.DocumentsEntry(name)], null, cancellationToken, async document =>
        {
            var blob = entries.GetValueOrDefault(TenantArchive.BlobEntry(name, document.Id));
            if (blob is not null)
            {
                var content = await blob.OpenAsync(cancellationToken);
                await using (content.ConfigureAwait(false))
                {
                    await blobs.PutStreamAsync(RagStorage.DocumentBlobKey(tenantId, name, document.Id), content, cancellationToken);
                }
            }

            await documents.UpsertAsync(tenantId, name, document, cancellationToken);
        });

        long chunks = 0;
        foreach (var shard in collection.Manifest.Shards)
        {
            var shardKey = Ids.Key(tenantId, name, shard.Shard.ToString(CultureInfo.InvariantCulture));
            var batch = new List<ChunkLogEntry>(ChunkBatch);
            await ReadChunksAsync(entries[TenantArchive.ChunksEntry(name, shard.Shard)], null, cancellationToken, async entry =>
            {
                batch.Add(entry);
                chunks += entry.Op == ChunkOp.Add ? 1 : 0;
                if (batch.Count == ChunkBatch)
                {
                    await log.AppendAsync(shardKey, batch, null, cancellationToken);
                    batch.Clear();
                }
            });
            if (batch.Count > 0)
            {
                await log.AppendAsync(shardKey, batch, null, cancellationToken);
            }

            // The snapshot goes in last: the shard, on its first activation, loads it and has nothing after it to replay.
            if (shard.Snapshot)
            {
                var entry = entries[TenantArchive.SnapshotEntry(name, shard.Shard)];
                await snapshots.SaveAsync(shardKey, shard.Watermark, async (stream, ct) =>
                {
                    var content = await entry.OpenAsync(ct);
                    await using (content.ConfigureAwait(false))
                    {
                        await content.CopyToAsync(stream, 1 << 16, ct);
                    }
                }, cancellationToken);
            }
        }

        return chunks;
    }

    private async Task<int> RestoreConversationsAsync(string tenantId, Dictionary<string, ZipArchiveEntry> entries, CancellationToken cancellationToken)
    {
        if (!entries.TryGetValue(TenantArchive.ConversationsEntry, out var entry))
        {
            return 0;
        }

        var count = 0;
        await ReadLinesAsync<ArchiveConversation>(entry, null, cancellationToken, async c =>
        {
            foreach (var turn in c.Turns)
            {
                await conversations.AppendAsync(tenantId, c.UserId, c.ConversationId, c.Collection, turn, cancellationToken);
            }

            count++;
        });
        return count;
    }

    /// <summary>Removes everything a failed restore wrote; best effort, each step on its own.</summary>
    private async Task CleanupAsync(string tenantId, IReadOnlyList<CheckedCollection> collections)
    {
        foreach (var collection in collections)
        {
            var name = collection.Record.Name;
            await BestEffort(async () =>
            {
                try
                {
                    await grains.Reference<ICollectionGrain>(Ids.Key(tenantId, name)).Delete();
                }
                catch (RagException ex) when (ex.Kind == RagErrorKind.NotFound)
                {
                    // Never restored, or restored only in part: the stores are cleaned below.
                }
            });

            // The collection grain may not have got as far as knowing its data: clean the stores by key as well.
            await BestEffort(() => documents.DeleteCollectionAsync(tenantId, name));
            await BestEffort(() => blobs.DeletePrefixAsync(RagStorage.CollectionBlobPrefix(tenantId, name)));
            for (var shard = 0; shard < collection.Record.Settings.ShardCount; shard++)
            {
                var shardKey = Ids.Key(tenantId, name, shard.ToString(CultureInfo.InvariantCulture));
                await BestEffort(() => log.DeleteShardAsync(shardKey));
                await BestEffort(() => snapshots.DeleteAsync(shardKey));
            }

            await BestEffort(() => grains.Reference<ITenantGrain>(tenantId).RemoveCollection(name));
        }

        await BestEffort(() => conversations.DeleteTenantAsync(tenantId));
        await BestEffort(() => grains.Reference<ITenantGrain>(tenantId).Delete());
        await BestEffort(() => grains.Reference<IQuotaGrain>(tenantId).Clear());

        async Task BestEffort(Func<Task> step)
        {
            try
            {
                await step();
            }
#pragma warning disable CA1031 // Cleanup keeps going: the original failure is what the caller sees.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                logger.LogError(ex, "Cleanup after the failed import of tenant {TenantId} left something behind", tenantId);
            }
        }
    }

    private static ZipArchiveEntry Required(Dictionary<string, ZipArchiveEntry> entries, string name) =>
        entries.GetValueOrDefault(name) ?? throw RagException.Invalid($"The archive has no '{name}'.");

    private async Task VerifyAsync(ZipArchiveEntry entry, Dictionary<string, ArchiveChecksum> checksums, CancellationToken cancellationToken)
    {
        var stream = await OpenCheckedAsync(entry, checksums, long.MaxValue, cancellationToken);
        await using (stream.ConfigureAwait(false))
        {
            await stream.CopyToAsync(Stream.Null, cancellationToken);
            Check(stream, entry, checksums);
        }
    }

    private async Task<T> ReadJsonAsync<T>(ZipArchiveEntry entry, long limit, Dictionary<string, ArchiveChecksum>? checksums, CancellationToken cancellationToken)
    {
        var stream = await OpenCheckedAsync(entry, checksums, limit, cancellationToken);
        await using (stream.ConfigureAwait(false))
        {
            T? value;
            try
            {
                value = await JsonSerializer.DeserializeAsync<T>(stream, TenantArchive.Json, cancellationToken);
            }
            catch (JsonException ex)
            {
                throw RagException.Invalid($"Archive entry '{entry.FullName}' is not valid: {ex.Message}");
            }

            await stream.CopyToAsync(Stream.Null, cancellationToken);
            Check(stream, entry, checksums);
            return value ?? throw RagException.Invalid($"Archive entry '{entry.FullName}' is empty.");
        }
    }

    private async Task ReadLinesAsync<T>(ZipArchiveEntry entry, Dictionary<string, ArchiveChecksum>? checksums, CancellationToken cancellationToken, Action<T> each) =>
        await ReadLinesAsync<T>(entry, checksums, cancellationToken, item =>
        {
            each(item);
            return Task.CompletedTask;
        });

    private async Task ReadLinesAsync<T>(ZipArchiveEntry entry, Dictionary<string, ArchiveChecksum>? checksums, CancellationToken cancellationToken, Func<T, Task> each)
    {
        var stream = await OpenCheckedAsync(entry, checksums, long.MaxValue, cancellationToken);
        await using (stream.ConfigureAwait(false))
        {
            using var reader = new StreamReader(stream, System.Text.Encoding.UTF8, detectEncodingFromByteOrderMarks: false, bufferSize: 1 << 16, leaveOpen: true);
            var number = 0;
            while (await reader.ReadLineAsync(cancellationToken) is { } line)
            {
                number++;
                if (line.Length == 0)
                {
                    continue;
                }

                T? item;
                try
                {
                    item = JsonSerializer.Deserialize<T>(line, TenantArchive.Json);
                }
                catch (JsonException ex)
                {
                    throw RagException.Invalid($"Archive entry '{entry.FullName}', line {number}, is not valid: {ex.Message}");
                }

                await each(item ?? throw RagException.Invalid($"Archive entry '{entry.FullName}', line {number}, is null."));
            }

            Check(stream, entry, checksums);
        }
    }

    private async Task ReadChunksAsync(ZipArchiveEntry entry, Dictionary<string, ArchiveChecksum>? checksums, CancellationToken cancellationToken, Action<ChunkLogEntry> each) =>
        await ReadChunksAsync(entry, checksums, cancellationToken, item =>
        {
            each(item);
            return Task.CompletedTask;
        });

    private async Task ReadChunksAsync(ZipArchiveEntry entry, Dictionary<string, ArchiveChecksum>? checksums, CancellationToken cancellationToken, Func<ChunkLogEntry, Task> each)
    {
        var stream = await OpenCheckedAsync(entry, checksums, long.MaxValue, cancellationToken);
        await using (stream.ConfigureAwait(false))
        {
            // The entry comes from the spooled file: reading it synchronously blocks on local disk only.
            using var peekable = new PeekableStream(new BufferedStream(stream, 1 << 16));
            using var reader = new BinaryReader(peekable, System.Text.Encoding.UTF8, leaveOpen: true);
            try
            {
                ChunkRecordCodec.ReadHeader(reader);
            }
            catch (EndOfStreamException ex)
            {
                throw new InvalidDataException($"Archive entry '{entry.FullName}' is truncated.", ex);
            }

            while (ChunkRecordCodec.Read(reader) is { } item)
            {
                await each(item);
            }

            Check(stream, entry, checksums);
        }
    }

    private async Task<BoundedHashingStream> OpenCheckedAsync(ZipArchiveEntry entry, Dictionary<string, ArchiveChecksum>? checksums, long limit, CancellationToken cancellationToken)
    {
        var expected = checksums?.GetValueOrDefault(entry.FullName);
        var bound = Math.Min(Math.Min(limit, options.Value.MaxEntryBytes), expected?.Size ?? long.MaxValue);
        return new BoundedHashingStream(await entry.OpenAsync(cancellationToken), Math.Max(0, bound), entry.FullName);
    }

    private static void Check(BoundedHashingStream stream, ZipArchiveEntry entry, Dictionary<string, ArchiveChecksum>? checksums)
    {
        if (checksums is null || !checksums.TryGetValue(entry.FullName, out var expected))
        {
            return;
        }

        if (stream.BytesRead != expected.Size || stream.Sha256() != expected.Sha256)
        {
            throw RagException.Invalid($"Archive entry '{entry.FullName}' does not match its checksum in manifest.json: the archive is damaged or was altered.");
        }
    }

    private static string Printable(string? value)
    {
        if (value is null)
        {
            return "";
        }

        var clean = new string(value.Take(100).Select(c => char.IsControl(c) ? '?' : c).ToArray());
        return value.Length > 100 ? clean + "…" : clean;
    }
}
