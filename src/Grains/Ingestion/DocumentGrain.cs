using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Collections;
using RagOrleans.Grains.Embeddings;
using RagOrleans.Grains.Storage;
using RagOrleans.Grains.Telemetry;

namespace RagOrleans.Grains.Ingestion;

/// <summary>
/// One document's ingestion: queued → processing → indexed | failed. The document record in the store is the durable
/// state. Scheduling has one durable mechanism, a reminder the grain holds exactly while the document is unfinished:
/// <list type="bullet">
/// <item><see cref="Start"/> runs the first attempt at once through a grain timer (the caller does not wait), and
/// the attempt registers the reminder before it waits for a slot or does any work;</item>
/// <item>a transient failure (embedder unavailable, storage timeout, a silo lost mid-call) moves the reminder's due time
/// to the backoff (exponential, jittered), and that tick runs the next attempt, until
/// <see cref="RagOptions.IngestionMaxAttempts"/>; then the document is failed with the last reason;</item>
/// <item>between due times it ticks every <see cref="RagOptions.IngestionWatchdogPeriod"/>: a tick that finds no attempt
/// running here (the silo that ran it died, and this is a new activation) starts one;</item>
/// <item>indexed, failed (parse errors fail at once) or deleted: the reminder is removed, so reminders never
/// accumulate with documents.</item>
/// </list>
/// </summary>
[GrainType("document")]
public sealed class DocumentGrain(
    IDocumentStore documents,
    IBlobStore blobs,
    DocumentProcessor processor,
    IngestionThrottle throttle,
    ChunkVectorCache vectorCache,
    IClusterMembershipService membership,
    ILocalSiloDetails localSilo,
    IOptions<RagOptions> options,
    TimeProvider clock,
    RagMetrics metrics,
    ILogger<DocumentGrain> logger) : Grain, IDocumentGrain, IRemindable
{
    /// <summary>Name of the reminder an unfinished document holds.</summary>
    public const string ReminderName = "ingest";

    private const int EmbedBatchSize = 32;
    private const int ProgressStep = 10;
    private string _tenantId = "";
    private string _collection = "";
    private string _documentId = "";
    private IGrainTimer? _timer;
    private IGrainReminder? _reminder;
    private TaskCompletionSource? _completion;
    private Task _running = Task.CompletedTask;
    private long _reservedVectors;
    private bool _writingProgress;

    // The record as this attempt last wrote it: progress writes and the final outcome build on it.
    private DocumentInfo? _current;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var parts = Ids.Split(this.GetPrimaryKeyString(), 3);
        (_tenantId, _collection, _documentId) = (parts[0], parts[1], parts[2]);
        return Task.CompletedTask;
    }

    public Task Start()
    {
        // The attempt registers the reminder first thing, off the caller's path: an upload never waits on the
        // reminder table, and a crash before that instant leaves a queued record that IngestionRecovery finds.
        Schedule(TimeSpan.Zero);
        return Task.CompletedTask;
    }

    public async Task ReceiveReminder(string reminderName, TickStatus status)
    {
        if (reminderName != ReminderName)
        {
            return;
        }

        if (!_running.IsCompleted)
        {
            // An attempt is under way in this activation: the watchdog has nothing to do.
            return;
        }

        var record = await documents.GetAsync(_tenantId, _collection, _documentId);
        if (record is null || record.Status is DocumentStatus.Indexed or DocumentStatus.Failed)
        {
            await ReleaseReminderAsync();
            Complete();
            return;
        }

        logger.LogInformation("Document {DocumentId} of {TenantId}/{Collection}: reminder starts attempt {Attempt} ({Status})",
            _documentId, _tenantId, _collection, record.Attempts + 1, record.Status);
        Schedule(TimeSpan.Zero);
    }

    public async Task WaitForCompletion(TimeSpan timeout)
    {
        // Take the completion before reading the record, so a finish in between is not missed.
        var completion = _completion ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var record = await documents.GetAsync(_tenantId, _collection, _documentId);
        if (record is null || record.Status is DocumentStatus.Indexed or DocumentStatus.Failed)
        {
            return;
        }

        if (_timer is null && (record.Status == DocumentStatus.Processing || !await HasReminderAsync()))
        {
            // A fresh activation of an unfinished document: the one that ran it died with its silo (or the reminder was
            // lost with an embedded process). Resume it now rather than at the next watchdog tick; a document waiting
            // out its backoff is left to its reminder.
            Schedule(TimeSpan.Zero);
        }

        await Task.WhenAny(completion.Task, Task.Delay(timeout));
    }

    public async Task Delete()
    {
        _timer?.Dispose();
        _timer = null;
        await WhenIdle();
        await ReleaseReminderAsync();
        var record = await documents.GetAsync(_tenantId, _collection, _documentId);
        var settings = await Collection.GetSettings();
        await Shard(settings).DeleteDocument(_documentId);
        await blobs.DeleteAsync(RagStorage.DocumentBlobKey(_tenantId, _collection, _documentId));
        await documents.DeleteAsync(_tenantId, _collection, _documentId);
        if (record is not null)
        {
            await Quota.ReleaseDocument(this.GetPrimaryKeyString(), record.SizeBytes, record.Status == DocumentStatus.Indexed ? record.ChunkCount : 0);
        }

        logger.LogInformation("Document {DocumentId} deleted from {TenantId}/{Collection} (was {Status})",
            _documentId, _tenantId, _collection, record?.Status);
        Complete();
        DeactivateOnIdle();
    }

    private void Schedule(TimeSpan due)
    {
        _timer?.Dispose();
        // The timer only moves the attempt off the caller's turn (or, when the reminder service is down, stands in
        // for a retry); the reminder is what survives. Interleaving, so status reads and waits are answered while an
        // attempt runs; attempts themselves are chained so two never overlap.
        _timer = this.RegisterGrainTimer(
            static (self, ct) => self.RunAfterPrevious(ct),
            this,
            new GrainTimerCreationOptions { DueTime = due, Period = Timeout.InfiniteTimeSpan, Interleave = true, KeepAlive = true });
    }

    private Task RunAfterPrevious(CancellationToken cancellationToken)
    {
        var previous = _running;
        _running = Run();
        return _running;

        async Task Run()
        {
            await WhenIdle(previous);
            await RunAttemptAsync(cancellationToken);
        }
    }

    private Task WhenIdle() => WhenIdle(_running);

    private static async Task WhenIdle(Task running)
    {
        try
        {
            await running;
        }
        catch (Exception)
        {
            // The attempt has logged and recorded its own outcome.
        }
    }

    private async Task RunAttemptAsync(CancellationToken cancellationToken)
    {
        var record = await documents.GetAsync(_tenantId, _collection, _documentId, cancellationToken);
        if (record is null || record.Status is DocumentStatus.Indexed or DocumentStatus.Failed)
        {
            await ReleaseReminderAsync();
            Complete();
            return;
        }

        if (_reminder is null)
        {
            // Durable before any wait or work: if this silo dies from here on, the reminder resumes the document elsewhere.
            await HoldReminderAsync(options.Value.IngestionWatchdogPeriod);
        }

        using var slot = await throttle.AcquireAsync(_tenantId, cancellationToken);
        record = await documents.GetAsync(_tenantId, _collection, _documentId, cancellationToken);
        if (record is null || record.Status is DocumentStatus.Indexed or DocumentStatus.Failed)
        {
            await ReleaseReminderAsync();
            Complete();
            return;
        }

        using var activity = RagActivity.Start("rag.ingest", _tenantId, _collection);
        activity?.SetTag("rag.document", _documentId);
        var attempt = record.Attempts + 1;
        // Every attempt starts again from the stored content: each step is recomputed, and indexing replaces.
        record = record with
        {
            Status = DocumentStatus.Processing, Attempts = attempt, Error = null, Step = DocumentStep.Received, ProgressPercent = null,
            UpdatedAt = clock.GetUtcNow(),
        };
        if (!await documents.UpdateAsync(_tenantId, _collection, record, cancellationToken))
        {
            // Deleted since the read above.
            await ReleaseReminderAsync();
            Complete();
            return;
        }

        _current = record;
        var started = clock.GetTimestamp();
        try
        {
            var chunkCount = await IngestAsync(record, cancellationToken);
            record = _current;

            // Conditional on the record still being there: a delete that came while we worked wins.
            if (!await documents.UpdateAsync(_tenantId, _collection,
                    record with
                    {
                        Status = DocumentStatus.Indexed, ChunkCount = chunkCount, Step = DocumentStep.Indexed, ProgressPercent = 100,
                        UpdatedAt = clock.GetUtcNow(),
                    }, cancellationToken))
            {
                // Deleted while we worked: take back what we wrote.
                var settings = await Collection.GetSettings();
                await Shard(settings).DeleteDocument(_documentId);
                await ReleaseReservedVectorsAsync();
                await Quota.EndIngestion(this.GetPrimaryKeyString());
                await ReleaseReminderAsync();
                Complete();
                return;
            }

            _reservedVectors = 0;
            await Quota.EndIngestion(this.GetPrimaryKeyString());
            logger.LogInformation("Document {DocumentId} of {TenantId}/{Collection} indexed: {Chunks} chunks in {ElapsedMs:F0} ms",
                _documentId, _tenantId, _collection, chunkCount, clock.GetElapsedTime(started).TotalMilliseconds);
            metrics.IngestionEnded("indexed");
            await ReleaseReminderAsync();
            Complete();
        }
        catch (RagException ex) when (ex.Kind is not RagErrorKind.Unavailable)
        {
            await ReleaseReservedVectorsAsync();
            // The content itself is the problem: retrying cannot help.
            await FailAsync(_current ?? record, ex.Message, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            await ReleaseReservedVectorsAsync();
            record = _current ?? record;
            if (attempt >= options.Value.IngestionMaxAttempts)
            {
                await FailAsync(record, $"Ingestion failed after {attempt} attempts: {ex.Message}", cancellationToken);
                return;
            }

            var delay = RetryBackoff.Delay(attempt, options.Value.IngestionRetryDelay, options.Value.IngestionMaxRetryDelay, Random.Shared.NextDouble());
            metrics.IngestionEnded("retried");
            activity?.SetStatus(System.Diagnostics.ActivityStatusCode.Error, ex.GetType().Name);
            logger.LogWarning(ex, "Document {DocumentId} of {TenantId}/{Collection}: attempt {Attempt} failed; retrying in {Delay}",
                _documentId, _tenantId, _collection, attempt, delay);
            if (!await documents.UpdateAsync(_tenantId, _collection,
                    record with { Status = DocumentStatus.Queued, Error = $"Attempt {attempt} failed: {ex.Message}", UpdatedAt = clock.GetUtcNow() }, cancellationToken))
            {
                // Deleted meanwhile: nothing to retry.
                await Quota.EndIngestion(this.GetPrimaryKeyString());
                await ReleaseReminderAsync();
                Complete();
                return;
            }

            if (!await HoldReminderAsync(delay))
            {
                Schedule(delay);
            }
        }
    }

    private async Task<int> IngestAsync(DocumentInfo record, CancellationToken cancellationToken)
    {
        var settings = await Collection.GetSettings();
        if (record.SizeBytes > Array.MaxLength)
        {
            // Uploads stream through at any size, but parsers read the whole content: no attempt could succeed.
            throw new RagException(RagErrorKind.Unprocessable,
                $"The document is {record.SizeBytes} bytes; documents are parsed in memory, which allows at most {Array.MaxLength} bytes.");
        }

        var content = await blobs.GetAsync(RagStorage.DocumentBlobKey(_tenantId, _collection, _documentId), cancellationToken)
            ?? throw new RagException(RagErrorKind.Unprocessable, "The uploaded content is missing from storage.");
        var parsed = processor.Parse(content, record.SourceType, record.FileName);
        await ProgressAsync(DocumentStep.Parsed, null, cancellationToken);
        var prepared = processor.Chunk(parsed, record.Title, settings);
        await ProgressAsync(DocumentStep.Chunked, 0, cancellationToken);

        // Reserve the vectors before the expensive part; a refusal fails the document with the quota's message.
        await Quota.ReserveVectors(prepared.Chunks.Count, settings.Model);
        _reservedVectors = prepared.Chunks.Count;
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        float[][] vectors;
        using (RagActivity.Start("rag.ingest.embed"))
        {
            vectors = await EmbedChunksAsync(settings, prepared.Chunks, cancellationToken);
        }

        var chunks = new List<ChunkInput>(prepared.Chunks.Count);
        for (var i = 0; i < prepared.Chunks.Count; i++)
        {
            var c = prepared.Chunks[i];
            chunks.Add(new ChunkInput(c.Ordinal, c.Text, c.Start, c.End, c.Section, c.Page, vectors[i]));
        }

        metrics.IngestionStep("embed", RagMetrics.Since(started));
        await ProgressAsync(DocumentStep.Embedded, 100, cancellationToken);
        started = System.Diagnostics.Stopwatch.GetTimestamp();
        using (RagActivity.Start("rag.ingest.index"))
        {
            await Shard(settings).UpsertDocument(new ChunkDocument(_documentId, record.Title ?? prepared.Title, record.MetadataJson), chunks);
        }

        metrics.IngestionStep("index", RagMetrics.Since(started));
        return chunks.Count;
    }

    /// <summary>
    /// Embeddings of <paramref name="chunks"/>, in order. A chunk whose embedded text (context prefix included) is unchanged
    /// from this document's indexed version reuses its stored vector (durable: the shard keeps them), then this silo's
    /// cache answers repeated text, and only the rest reaches a model: deduplicated, in batches spread over every active
    /// silo's embedder (this silo first), a bounded number in flight per silo.
    /// </summary>
    private async Task<float[][]> EmbedChunksAsync(CollectionSettings settings, IReadOnlyList<PreparedChunk> chunks, CancellationToken cancellationToken)
    {
        var model = settings.Model;
        var vectors = new float[]?[chunks.Count];
        var keys = new UInt128[chunks.Count];
        for (var i = 0; i < chunks.Count; i++)
        {
            keys[i] = ChunkVectorCache.KeyOf(model, chunks[i].EmbeddingText);
        }

        var fromIndex = 0;
        var stored = await Shard(settings).DocumentVectors(_documentId);
        if (stored.Count > 0)
        {
            var byKey = new Dictionary<UInt128, float[]>(stored.Count);
            foreach (var c in stored)
            {
                if (c.Vector.Length == settings.Dimensions)
                {
                    byKey.TryAdd(ChunkVectorCache.KeyOf(model, processor.EmbeddingText(c.Title, c.Section, c.Text)), c.Vector);
                }
            }

            for (var i = 0; i < chunks.Count; i++)
            {
                if (byKey.TryGetValue(keys[i], out var vector))
                {
                    vectors[i] = vector;
                    fromIndex++;
                }
            }
        }

        var fromCache = 0;
        var missing = new List<int>();
        var firstOf = new Dictionary<UInt128, int>();
        for (var i = 0; i < chunks.Count; i++)
        {
            if (vectors[i] is not null)
            {
                continue;
            }

            if (vectorCache.TryGet(keys[i], out var cached))
            {
                vectors[i] = cached;
                fromCache++;
            }
            else if (firstOf.TryAdd(keys[i], i))
            {
                missing.Add(i);
            }
        }

        var batchCount = (missing.Count + EmbedBatchSize - 1) / EmbedBatchSize;
        var silos = EmbedderSilos();
        var embedded = chunks.Count - missing.Count;
        var reported = 0;
        var results = await BatchFanOut.RunAsync(batchCount, silos, Math.Max(1, options.Value.EmbedBatchesInFlightPerSilo), async (silo, b) =>
        {
            var batch = missing.Skip(b * EmbedBatchSize).Take(EmbedBatchSize).ToList();
            var batchVectors = await GrainFactory.Reference<ISiloEmbedderGrain>(silo)
                .Embed(model, batch.ConvertAll(i => chunks[i].EmbeddingText), EmbeddingKind.Document);
            embedded += batch.Count;

            // Large documents report embedding progress in steps of ProgressStep percent: enough to see movement, few
            // enough writes that progress never costs more than the work it reports. Batches end out of order, so
            // only one progress write runs at a time and the others skip theirs.
            var percent = EmbeddingPercent(embedded, chunks.Count);
            if (percent - reported >= ProgressStep && embedded < chunks.Count && !_writingProgress)
            {
                reported = percent;
                _writingProgress = true;
                try
                {
                    await ProgressAsync(DocumentStep.Chunked, percent, cancellationToken);
                }
                finally
                {
                    _writingProgress = false;
                }
            }

            return batchVectors;
        });

        for (var b = 0; b < batchCount; b++)
        {
            var batch = missing.Skip(b * EmbedBatchSize).Take(EmbedBatchSize).ToList();
            for (var j = 0; j < batch.Count; j++)
            {
                vectors[batch[j]] = results[b][j];
                vectorCache.Add(keys[batch[j]], results[b][j]);
            }
        }

        // Repeats of a text within this document take the vector of its first occurrence.
        for (var i = 0; i < chunks.Count; i++)
        {
            vectors[i] ??= vectors[firstOf[keys[i]]];
        }

        metrics.ChunkEmbeddings("indexed", fromIndex);
        metrics.ChunkEmbeddings("cache", chunks.Count - fromIndex - missing.Count);
        metrics.ChunkEmbeddings("model", missing.Count);
        logger.LogInformation(
            "Document {DocumentId} of {TenantId}/{Collection}: {Chunks} chunks, {FromIndex} vectors reused from the indexed version, {FromCache} from the cache, {Repeats} repeats, {Embedded} embedded in {Batches} batches over up to {Silos} silos",
            _documentId, _tenantId, _collection, chunks.Count, fromIndex, fromCache, chunks.Count - fromIndex - fromCache - missing.Count,
            missing.Count, batchCount, Math.Min(silos.Count, batchCount));
        return vectors!;
    }

    /// <summary>Keys of the embedders of the active silos, this silo's first.</summary>
    private List<string> EmbedderSilos()
    {
        var local = localSilo.SiloAddress;
        var silos = new List<string> { local.ToParsableString() };
        foreach (var member in membership.CurrentSnapshot.Members.Values)
        {
            if (member.Status == SiloStatus.Active && !member.SiloAddress.Equals(local))
            {
                silos.Add(member.SiloAddress.ToParsableString());
            }
        }

        return silos;
    }

    /// <summary>Share of chunks embedded, in whole percent, rounded down so 100 means all of them.</summary>
    internal static int EmbeddingPercent(int embedded, int total) => total == 0 ? 100 : (int)(embedded * 100L / total);

    private async Task ProgressAsync(DocumentStep step, int? percent, CancellationToken cancellationToken)
    {
        _current = _current! with { Step = step, ProgressPercent = percent, UpdatedAt = clock.GetUtcNow() };

        // Only the step moves, and only on an existing record: one deleted meanwhile (its collection dropped) stays
        // deleted; the caller notices the deletion after indexing and takes back what it wrote.
        await documents.UpdateProgressAsync(_tenantId, _collection, _documentId, step, percent, _current.UpdatedAt, cancellationToken);
    }

    private async Task FailAsync(DocumentInfo record, string error, CancellationToken cancellationToken)
    {
        metrics.IngestionEnded("failed");
        logger.LogWarning("Document {DocumentId} of {TenantId}/{Collection} failed: {Error}", _documentId, _tenantId, _collection, error);
        // A record deleted meanwhile stays deleted.
        await documents.UpdateAsync(_tenantId, _collection,
            record with { Status = DocumentStatus.Failed, Error = error, ChunkCount = 0, UpdatedAt = clock.GetUtcNow() }, cancellationToken);
        await Quota.EndIngestion(this.GetPrimaryKeyString());
        await ReleaseReminderAsync();
        Complete();
    }

    /// <summary>
    /// Registers (or moves) the document's reminder to tick after <paramref name="due"/>, then every watchdog period.
    /// False when the reminder service refused: the caller then falls back to a timer, which keeps the document
    /// moving while this activation lives.
    /// </summary>
    private async Task<bool> HoldReminderAsync(TimeSpan due)
    {
        try
        {
            _reminder = await this.RegisterOrUpdateReminder(ReminderName, due, options.Value.IngestionWatchdogPeriod);
            return true;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogWarning(ex, "Document {DocumentId} of {TenantId}/{Collection}: could not register its reminder; retrying on a timer",
                _documentId, _tenantId, _collection);
            return false;
        }
    }

    private async Task<bool> HasReminderAsync()
    {
        try
        {
            return await this.GetReminder(ReminderName) is not null;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogWarning(ex, "Document {DocumentId} of {TenantId}/{Collection}: could not read its reminder", _documentId, _tenantId, _collection);
            return false;
        }
    }

    /// <summary>Removes the reminder of a finished document; a failure here only leaves a tick that will remove it again.</summary>
    private async Task ReleaseReminderAsync()
    {
        try
        {
            var reminder = _reminder ?? await this.GetReminder(ReminderName);
            if (reminder is not null)
            {
                await this.UnregisterReminder(reminder);
            }

            _reminder = null;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogWarning(ex, "Document {DocumentId} of {TenantId}/{Collection}: could not remove its reminder; its next tick will",
                _documentId, _tenantId, _collection);
        }
    }

    private async Task ReleaseReservedVectorsAsync()
    {
        if (_reservedVectors > 0)
        {
            var vectors = _reservedVectors;
            _reservedVectors = 0;
            await Quota.ReleaseVectors(vectors);
        }
    }

    private IQuotaGrain Quota => GrainFactory.Reference<IQuotaGrain>(_tenantId);

    private void Complete()
    {
        _completion?.TrySetResult();
        _completion = null;
    }

    private ICollectionGrain Collection => GrainFactory.Reference<ICollectionGrain>(Ids.Key(_tenantId, _collection));

    private IIndexShardGrain Shard(CollectionSettings settings) => GrainFactory.Reference<IIndexShardGrain>(
        Ids.Key(_tenantId, _collection, CollectionGrain.ShardOf(_documentId, settings.ShardCount).ToString(System.Globalization.CultureInfo.InvariantCulture)));
}
