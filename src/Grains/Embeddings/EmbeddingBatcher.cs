using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RagOrleans.Grains.Telemetry;

namespace RagOrleans.Grains.Embeddings;

/// <summary>Configuration of <see cref="EmbeddingBatcher"/>.</summary>
public sealed record EmbeddingBatcherOptions
{
    /// <summary>
    /// Most texts taken into one model call. Bounds how long a newly arrived query waits behind document work:
    /// 32 ~200-token chunks take about a second on two cores.
    /// </summary>
    public int MaxTextsPerRound { get; init; } = 32;

    /// <summary>How many query embeddings to remember (0 disables the cache).</summary>
    public int QueryCacheCapacity { get; init; } = 1024;
}

/// <summary>
/// Async front for an <see cref="IEmbeddingModel"/>: texts from concurrent callers are queued and embedded together
/// by one dedicated worker thread, so the model sees full, length-sorted batches instead of many single texts.
/// Queries are served before queued document work. Does not own the model.
/// </summary>
public sealed class EmbeddingBatcher : IDisposable, IAsyncDisposable
{
    private readonly IEmbeddingModel _model;
    private readonly EmbeddingBatcherOptions _options;
    private readonly ILogger _logger;
    private readonly EmbeddingCache? _queryCache;
    private readonly RagMetrics? _metrics;
    private readonly Channel<Request> _queries = Channel.CreateUnbounded<Request>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Channel<Request> _documents = Channel.CreateUnbounded<Request>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Thread _worker;
    private int _disposed;

    /// <summary>Starts the worker thread for <paramref name="model"/>.</summary>
    public EmbeddingBatcher(IEmbeddingModel model, EmbeddingBatcherOptions? options = null, ILogger<EmbeddingBatcher>? logger = null, RagMetrics? metrics = null)
    {
        _metrics = metrics;
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _options = options ?? new EmbeddingBatcherOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaxTextsPerRound, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(_options.QueryCacheCapacity);
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _queryCache = _options.QueryCacheCapacity > 0 ? new EmbeddingCache(_options.QueryCacheCapacity) : null;

        // A dedicated thread rather than a thread-pool loop: model calls block for tens of milliseconds on both
        // cores, and parking that on pool threads would starve the rest of the process's async work.
        _worker = new Thread(WorkerLoop) { IsBackground = true, Name = "embedding-batcher" };
        _worker.Start();
    }

    /// <summary>Embeds one text; completes when the batch it joined has run.</summary>
    public ValueTask<float[]> EmbedAsync(string text, EmbeddingPurpose purpose, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<float[]>(cancellationToken);
        }

        if (purpose == EmbeddingPurpose.Query && _queryCache is not null && _queryCache.TryGet(purpose, text, out var cached))
        {
            return ValueTask.FromResult(cached);
        }

        return new ValueTask<float[]>(Enqueue(text, purpose, cancellationToken));
    }

    /// <summary>Embeds several texts, returning vectors in the same order.</summary>
    public async Task<float[][]> EmbedManyAsync(IReadOnlyList<string> texts, EmbeddingPurpose purpose, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var pending = new Task<float[]>[texts.Count];
        for (var i = 0; i < pending.Length; i++)
        {
            pending[i] = EmbedAsync(texts[i], purpose, cancellationToken).AsTask();
        }

        return await Task.WhenAll(pending).ConfigureAwait(false);
    }

    /// <summary>Stops the worker after its current batch; queued work fails with <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        if (BeginStop())
        {
            _worker.Join();
        }
    }

    /// <inheritdoc cref="Dispose"/>
    public async ValueTask DisposeAsync()
    {
        BeginStop();
        await _stopped.Task.ConfigureAwait(false);
    }

    private bool BeginStop()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return false;
        }

        _queries.Writer.TryComplete();
        _documents.Writer.TryComplete();
        _stopping.Cancel();
        return true;
    }

    private Task<float[]> Enqueue(string text, EmbeddingPurpose purpose, CancellationToken cancellationToken)
    {
        var request = new Request(text);
        if (cancellationToken.CanBeCanceled)
        {
            // The worker skips requests that are already completed, so cancelling drops the work, not just the wait.
            request.Registration = cancellationToken.Register(
                static state =>
                {
                    var (r, token) = ((Request, CancellationToken))state!;
                    r.TrySetCanceled(token);
                },
                (request, cancellationToken));
        }

        var channel = purpose == EmbeddingPurpose.Query ? _queries : _documents;
        if (!channel.Writer.TryWrite(request))
        {
            request.Registration.Dispose();
            request.TrySetException(new ObjectDisposedException(nameof(EmbeddingBatcher)));
        }

        return request.Task;
    }

    private void WorkerLoop()
    {
        var round = new List<Request>(_options.MaxTextsPerRound);
        try
        {
            while (!_stopping.IsCancellationRequested)
            {
                // Queries first: they have a user waiting, document ingestion does not.
                Take(_queries.Reader, round);
                if (round.Count > 0)
                {
                    Run(round, EmbeddingPurpose.Query);
                    continue;
                }

                Take(_documents.Reader, round);
                if (round.Count > 0)
                {
                    Run(round, EmbeddingPurpose.Document);
                    continue;
                }

                if (!WaitForWork())
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            // Disposal.
        }
        finally
        {
            FailQueued(_queries.Reader);
            FailQueued(_documents.Reader);
            _stopped.TrySetResult();
        }
    }

    private bool WaitForWork()
    {
        var queries = _queries.Reader.WaitToReadAsync(_stopping.Token).AsTask();
        var documents = _documents.Reader.WaitToReadAsync(_stopping.Token).AsTask();

        // Blocking is deliberate: this thread exists only to run the model. Both waits end when disposal completes
        // the channels, so no wait is left behind for long.
        Task.WhenAny(queries, documents).GetAwaiter().GetResult();
        return !_stopping.IsCancellationRequested;
    }

    private void Take(ChannelReader<Request> reader, List<Request> round)
    {
        round.Clear();
        while (round.Count < _options.MaxTextsPerRound && reader.TryRead(out var request))
        {
            if (!request.Task.IsCompleted)
            {
                round.Add(request);
            }
        }
    }

    private void Run(List<Request> round, EmbeddingPurpose purpose)
    {
        var texts = new string[round.Count];
        for (var i = 0; i < texts.Length; i++)
        {
            texts[i] = round[i].Text;
        }

        try
        {
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            var vectors = _model.Embed(texts, purpose);
            _metrics?.EmbeddingBatch(purpose == EmbeddingPurpose.Query ? "query" : "document", texts.Length, RagMetrics.Since(started));
            for (var i = 0; i < round.Count; i++)
            {
                if (purpose == EmbeddingPurpose.Query)
                {
                    _queryCache?.Add(purpose, texts[i], vectors[i]);
                }

                round[i].Complete(vectors[i]);
            }
        }
#pragma warning disable CA1031 // Any model failure must reach the waiting callers instead of killing the worker.
        catch (Exception e)
#pragma warning restore CA1031
        {
            _logger.LogError(e, "Embedding a batch of {Count} {Purpose} texts failed", round.Count, purpose);
            foreach (var request in round)
            {
                request.Fail(e);
            }
        }

        round.Clear();
    }

    private static void FailQueued(ChannelReader<Request> reader)
    {
        while (reader.TryRead(out var request))
        {
            request.Fail(new ObjectDisposedException(nameof(EmbeddingBatcher)));
        }
    }

    // Continuations run asynchronously so callers' code never executes on the worker thread.
    private sealed class Request(string text)
        : TaskCompletionSource<float[]>(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        public string Text { get; } = text;

        public CancellationTokenRegistration Registration { get; set; }

        public void Complete(float[] vector)
        {
            Registration.Dispose();
            TrySetResult(vector);
        }

        public void Fail(Exception exception)
        {
            Registration.Dispose();
            TrySetException(exception);
        }
    }
}
