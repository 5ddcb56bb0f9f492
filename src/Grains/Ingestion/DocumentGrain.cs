using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Collections;
using RagOrleans.Grains.Storage;
using RagOrleans.Grains.Telemetry;

namespace RagOrleans.Grains.Ingestion;

/// <summary>
/// One document's ingestion: queued → processing → indexed | failed. The document record in the store is
/// the durable state; a timer drives each attempt so callers never wait on the pipeline, and transient
/// failures retry with exponential backoff until <see cref="RagOptions.IngestionMaxAttempts"/>.
/// </summary>
[GrainType("document")]
public sealed class DocumentGrain(
    IDocumentStore documents,
    IBlobStore blobs,
    DocumentProcessor processor,
    IngestionThrottle throttle,
    IOptions<RagOptions> options,
    TimeProvider clock,
    RagMetrics metrics,
    ILogger<DocumentGrain> logger) : Grain, IDocumentGrain
{
    private const int EmbedBatchSize = 32;
    private const int ProgressStep = 10;
    private string _tenantId = "";
    private string _collection = "";
    private string _documentId = "";
    private IGrainTimer? _timer;
    private TaskCompletionSource? _completion;
    private Task _running = Task.CompletedTask;
    private long _reservedVectors;

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
        Schedule(TimeSpan.Zero);
        return Task.CompletedTask;
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

        if (_timer is null)
        {
            // A fresh activation of an unfinished document: the one that ran it died with its silo. Resume it.
            Schedule(TimeSpan.Zero);
        }

        await Task.WhenAny(completion.Task, Task.Delay(timeout));
    }

    public async Task Delete()
    {
        _timer?.Dispose();
        _timer = null;
        await WhenIdle();
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
        // Interleaving, so status reads and waits are answered while an attempt runs; attempts themselves
        // are chained so two never overlap.
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
            Complete();
            return;
        }

        using var slot = await throttle.AcquireAsync(_tenantId, cancellationToken);
        record = await documents.GetAsync(_tenantId, _collection, _documentId, cancellationToken);
        if (record is null || record.Status is DocumentStatus.Indexed or DocumentStatus.Failed)
        {
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
        await documents.UpsertAsync(_tenantId, _collection, record, cancellationToken);
        _current = record;
        var started = clock.GetTimestamp();
        try
        {
            var chunkCount = await IngestAsync(record, cancellationToken);
            record = _current;
            if (await documents.GetAsync(_tenantId, _collection, _documentId, cancellationToken) is null)
            {
                // Deleted while we worked: take back what we wrote.
                var settings = await Collection.GetSettings();
                await Shard(settings).DeleteDocument(_documentId);
                await ReleaseReservedVectorsAsync();
                await Quota.EndIngestion(this.GetPrimaryKeyString());
                Complete();
                return;
            }

            await documents.UpsertAsync(_tenantId, _collection,
                record with
                {
                    Status = DocumentStatus.Indexed, ChunkCount = chunkCount, Step = DocumentStep.Indexed, ProgressPercent = 100,
                    UpdatedAt = clock.GetUtcNow(),
                }, cancellationToken);
            _reservedVectors = 0;
            await Quota.EndIngestion(this.GetPrimaryKeyString());
            logger.LogInformation("Document {DocumentId} of {TenantId}/{Collection} indexed: {Chunks} chunks in {ElapsedMs:F0} ms",
                _documentId, _tenantId, _collection, chunkCount, clock.GetElapsedTime(started).TotalMilliseconds);
            metrics.IngestionEnded("indexed");
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

            var delay = options.Value.IngestionRetryDelay * Math.Pow(2, attempt - 1);
            metrics.IngestionEnded("retried");
            activity?.SetStatus(System.Diagnostics.ActivityStatusCode.Error, ex.GetType().Name);
            logger.LogWarning(ex, "Document {DocumentId} of {TenantId}/{Collection}: attempt {Attempt} failed; retrying in {Delay}",
                _documentId, _tenantId, _collection, attempt, delay);
            await documents.UpsertAsync(_tenantId, _collection,
                record with { Status = DocumentStatus.Queued, Error = $"Attempt {attempt} failed: {ex.Message}", UpdatedAt = clock.GetUtcNow() }, cancellationToken);
            Schedule(delay);
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
        var embedder = GrainFactory.GetGrain<IEmbedderGrain>(0);
        var chunks = new List<ChunkInput>(prepared.Chunks.Count);
        var reported = 0;
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        using (RagActivity.Start("rag.ingest.embed"))
        {
            for (var offset = 0; offset < prepared.Chunks.Count; offset += EmbedBatchSize)
            {
                var batch = prepared.Chunks.Skip(offset).Take(EmbedBatchSize).ToList();
                var vectors = await embedder.Embed(settings.Model, batch.ConvertAll(c => c.EmbeddingText), EmbeddingKind.Document);
                for (var i = 0; i < batch.Count; i++)
                {
                    var c = batch[i];
                    chunks.Add(new ChunkInput(c.Ordinal, c.Text, c.Start, c.End, c.Section, c.Page, vectors[i]));
                }

                // Large documents report embedding progress in steps of ProgressStep percent: enough to see movement,
                // few enough writes that progress never costs more than the work it reports.
                var percent = EmbeddingPercent(chunks.Count, prepared.Chunks.Count);
                if (percent - reported >= ProgressStep && chunks.Count < prepared.Chunks.Count)
                {
                    reported = percent;
                    await ProgressAsync(DocumentStep.Chunked, percent, cancellationToken);
                }
            }
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

    /// <summary>Share of chunks embedded, in whole percent, rounded down so 100 means all of them.</summary>
    internal static int EmbeddingPercent(int embedded, int total) => total == 0 ? 100 : (int)(embedded * 100L / total);

    private async Task ProgressAsync(DocumentStep step, int? percent, CancellationToken cancellationToken)
    {
        _current = _current! with { Step = step, ProgressPercent = percent, UpdatedAt = clock.GetUtcNow() };

        // An upsert would bring back a record deleted meanwhile (its collection dropped); the caller notices the
        // deletion after indexing and takes back what it wrote.
        if (await documents.GetAsync(_tenantId, _collection, _documentId, cancellationToken) is not null)
        {
            await documents.UpsertAsync(_tenantId, _collection, _current, cancellationToken);
        }
    }

    private async Task FailAsync(DocumentInfo record, string error, CancellationToken cancellationToken)
    {
        metrics.IngestionEnded("failed");
        logger.LogWarning("Document {DocumentId} of {TenantId}/{Collection} failed: {Error}", _documentId, _tenantId, _collection, error);
        await documents.UpsertAsync(_tenantId, _collection,
            record with { Status = DocumentStatus.Failed, Error = error, ChunkCount = 0, UpdatedAt = clock.GetUtcNow() }, cancellationToken);
        await Quota.EndIngestion(this.GetPrimaryKeyString());
        Complete();
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

    private IQuotaGrain Quota => GrainFactory.GetGrain<IQuotaGrain>(_tenantId);

    private void Complete()
    {
        _completion?.TrySetResult();
        _completion = null;
    }

    private ICollectionGrain Collection => GrainFactory.GetGrain<ICollectionGrain>(Ids.Key(_tenantId, _collection));

    private IIndexShardGrain Shard(CollectionSettings settings) => GrainFactory.GetGrain<IIndexShardGrain>(
        Ids.Key(_tenantId, _collection, CollectionGrain.ShardOf(_documentId, settings.ShardCount).ToString(System.Globalization.CultureInfo.InvariantCulture)));
}
