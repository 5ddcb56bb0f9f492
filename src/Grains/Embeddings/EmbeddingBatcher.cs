using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RagOrleans.Grains.Telemetry;

namespace RagOrleans.Grains.Embeddings;

/// <summary>Configuration of <see cref="EmbeddingBatcher"/>, bound from <c>Rag:Embedding:Batcher</c>.</summary>
public sealed record EmbeddingBatcherOptions
{
    /// <summary>The configuration section.</summary>
    public const string Section = "Rag:Embedding:Batcher";

    /// <summary>
    /// Most texts taken into one model call. 64 matches the model's best batch for query-sized texts; long texts are
    /// bounded by <see cref="MaxCharactersPerRound"/> first.
    /// </summary>
    public int MaxTextsPerRound { get; set; } = 64;

    /// <summary>
    /// Most characters of query text taken into one round (a round always takes at least one text). Characters stand
    /// in for tokens because counting them is free on the caller's thread.
    /// </summary>
    public int MaxCharactersPerRound { get; set; } = 8192;

    /// <summary>
    /// Most characters of document text taken into one round (a round always takes at least one text). The model
    /// sorts a round by length and runs it as several calls of similar lengths, with queries that arrive meanwhile
    /// served between those calls, so a query waits at most one call (~0.1 s of 200-token chunks on two cores) however
    /// large the round. A large round pads less and runs full groups: 64 KB (~64 chunks) ingested 1.13x faster than 8 KB.
    /// </summary>
    public int DocumentWindowCharacters { get; set; } = 65536;

    /// <summary>
    /// Upper bound of the pause after a round of several texts during which the worker lets those texts' callers
    /// submit their next ones, so closed-loop callers form one full batch again instead of a fragment plus the rest.
    /// Also bounded by <see cref="RegroupShare"/> of the round's model time; zero disables it.
    /// </summary>
    public TimeSpan RegroupWait { get; set; } = TimeSpan.FromMilliseconds(1);

    /// <summary>
    /// Upper bound of the regroup pause after a round of several queries, not scaled by the round's time. Queries come
    /// back through HTTP and the search itself (a few milliseconds), far longer than document callers take to
    /// resubmit, so the share-scaled pause never catches them and concurrent users' queries stay one or two per model
    /// call. A lone user is unaffected: a round of one query with nothing queued meanwhile does not pause, and its next
    /// query still runs inline. Zero uses <see cref="RegroupWait"/> for queries too.
    /// </summary>
    public TimeSpan QueryRegroupWait { get; set; } = TimeSpan.Zero;

    /// <summary>The regroup pause as a share of the last round's model time, so short rounds pause only briefly.</summary>
    public double RegroupShare { get; set; } = 0.05;

    /// <summary>
    /// Runs a lone query on the caller's thread when the worker is idle and nothing is queued: no queue hop and no
    /// thread switch, which is most of the batcher's cost for one short text. Concurrent queries still batch.
    /// </summary>
    public bool RunLoneQueriesInline { get; set; } = true;

    /// <summary>How many query embeddings to remember (0 disables the cache).</summary>
    public int QueryCacheCapacity { get; set; } = 1024;

    /// <summary>
    /// Worker threads, each running its own rounds through the model at the same time; 0 (the default) takes the
    /// model's <see cref="IEmbeddingModel.ParallelCalls"/> (one per core for the ONNX model).
    /// </summary>
    public int Workers { get; set; }

    /// <summary>
    /// Linux nice increment of the worker threads (0-19; 0, the default, leaves them at the process's priority). Request
    /// threads (uploads, searches, inline queries) then win a core when they and a model call both want it. At 10, uploads
    /// during bulk ingestion were accepted in about half the time with the same ingestion rate, but with many closed-loop
    /// callers the batcher lost 5-20 % of its throughput and ~5 % of its work per CPU-second (bench/README.md, session
    /// 11; likely cause: each woken thread-pool thread now preempts a model call at once), so it is a knob for
    /// ingestion-heavy silos.
    /// </summary>
    public int WorkerNiceness { get; set; }
}

/// <summary>
/// Async front for an <see cref="IEmbeddingModel"/>: texts from concurrent callers are queued and embedded together
/// by dedicated worker threads (as many as the model can run calls at once), so the model sees full, length-sorted
/// batches instead of many single texts. Queries are served before queued document work, also between the model calls
/// of a large document round, and a lone query runs on its caller's thread while a worker is idle.
/// Does not own the model.
/// </summary>
public sealed class EmbeddingBatcher : IDisposable, IAsyncDisposable
{
    private readonly IEmbeddingModel _model;
    private readonly EmbeddingBatcherOptions _options;
    private readonly ILogger _logger;
    private readonly EmbeddingCache? _queryCache;
    private readonly RagMetrics? _metrics;
    // Only the worker reads, but these are the general unbounded kind: their reader supports the TryPeek that Take
    // uses to stop a round before a text that would overflow its character budget.
    private readonly Channel<Request> _queries = Channel.CreateUnbounded<Request>();
    private readonly Channel<Request> _documents = Channel.CreateUnbounded<Request>();
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // One slot per worker, held by whoever runs the model (a worker or an inline query): the model runs at most as many
    // calls at once as it has cores for; more would only slow each other down.
    private readonly SemaphoreSlim _modelSlots;
    private readonly long _regroupWaitTicks;
    private readonly Thread[] _workers;
    private int _disposed;
    private int _idleWorkers;
    private int _runningWorkers;

    // Requests in both channels; our own count because reading a channel's Count takes its lock, and the regroup
    // pause polls it.
    private int _queued;

    // Multi-text submissions still queueing their texts (see AwaitSubmissions).
    private int _submitting;

    // Characters of the queued document texts, for sizing each worker's share; and the lock that makes taking a round
    // atomic across workers.
    private long _queuedDocumentCharacters;
    private readonly Lock _takeGate = new();

    // Set by callers while the worker blocks in AwaitQueries, so it wakes for each arrival instead of polling.
    private readonly ManualResetEventSlim _arrived = new(false, spinCount: 0);
    private readonly long _queryRegroupWaitTicks;
    private int _awaitingQueries;

    /// <summary>Starts the worker thread for <paramref name="model"/>.</summary>
    public EmbeddingBatcher(IEmbeddingModel model, EmbeddingBatcherOptions? options = null, ILogger<EmbeddingBatcher>? logger = null, RagMetrics? metrics = null)
    {
        _metrics = metrics;
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _options = options ?? new EmbeddingBatcherOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaxTextsPerRound, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaxCharactersPerRound, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.DocumentWindowCharacters, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(_options.QueryCacheCapacity);
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.RegroupWait, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfNegative(_options.RegroupShare);
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.QueryRegroupWait, TimeSpan.Zero);
        _regroupWaitTicks = (long)(_options.RegroupWait.TotalSeconds * Stopwatch.Frequency);
        _queryRegroupWaitTicks = (long)(_options.QueryRegroupWait.TotalSeconds * Stopwatch.Frequency);
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _queryCache = _options.QueryCacheCapacity > 0 ? new EmbeddingCache(_options.QueryCacheCapacity) : null;

        ArgumentOutOfRangeException.ThrowIfNegative(_options.Workers);
        ArgumentOutOfRangeException.ThrowIfNegative(_options.WorkerNiceness);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(_options.WorkerNiceness, 19);
        var workers = _options.Workers > 0 ? _options.Workers : Math.Max(1, _model.ParallelCalls);
        _modelSlots = new SemaphoreSlim(workers, workers);

        // Dedicated threads rather than thread-pool loops: model calls block for tens of milliseconds, and parking
        // that on pool threads would starve the rest of the process's async work.
        _runningWorkers = workers;
        _workers = new Thread[workers];
        for (var i = 0; i < workers; i++)
        {
            _workers[i] = new Thread(WorkerLoop) { IsBackground = true, Name = $"embedding-batcher-{i}" };
            _workers[i].Start();
        }
    }

    /// <summary>How many workers run model calls at once.</summary>
    public int Workers => _workers.Length;

    /// <summary>True while every worker waits for work with nothing queued.</summary>
    internal bool IsIdle => Volatile.Read(ref _idleWorkers) == _workers.Length;

    /// <summary>Workers waiting for work.</summary>
    internal int IdleWorkers => Volatile.Read(ref _idleWorkers);

    /// <summary>
    /// Embeds one text; completes when the batch it joined has run. A lone query on an idle batcher runs on the calling
    /// thread and returns a completed task.
    /// </summary>
    public ValueTask<float[]> EmbedAsync(string text, EmbeddingPurpose purpose, CancellationToken cancellationToken = default) =>
        EmbedAsync(text, purpose, allowInline: true, cancellationToken);

    /// <summary>Embeds several texts, returning vectors in the same order.</summary>
    public async Task<float[][]> EmbedManyAsync(IReadOnlyList<string> texts, EmbeddingPurpose purpose, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(texts);

        // Several texts always go through the queue: running the first inline would make the rest wait for it
        // instead of joining one batch with it.
        var allowInline = texts.Count == 1;
        var pending = new Task<float[]>[texts.Count];
        if (!allowInline)
        {
            Interlocked.Increment(ref _submitting);
        }

        try
        {
            for (var i = 0; i < pending.Length; i++)
            {
                pending[i] = EmbedAsync(texts[i], purpose, allowInline, cancellationToken).AsTask();
            }
        }
        finally
        {
            if (!allowInline)
            {
                Interlocked.Decrement(ref _submitting);
            }
        }

        return await Task.WhenAll(pending).ConfigureAwait(false);
    }

    /// <summary>Stops the worker after its current batch; queued work fails with <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        if (BeginStop())
        {
            foreach (var worker in _workers)
            {
                worker.Join();
            }

            WaitForInlineQueries();
        }
    }

    /// <inheritdoc cref="Dispose"/>
    public async ValueTask DisposeAsync()
    {
        BeginStop();
        await _stopped.Task.ConfigureAwait(false);
        WaitForInlineQueries();
    }

    private ValueTask<float[]> EmbedAsync(string text, EmbeddingPurpose purpose, bool allowInline, CancellationToken cancellationToken)
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

        if (allowInline && purpose == EmbeddingPurpose.Query && _options.RunLoneQueriesInline && TryRunInline(text, out var inline))
        {
            return inline;
        }

        return new ValueTask<float[]>(Enqueue(text, purpose, cancellationToken));
    }

    private bool TryRunInline(string text, out ValueTask<float[]> result)
    {
        result = default;

        // Only while a worker sleeps on empty queues: under load, queries must batch (and queued ones go first).
        if (Volatile.Read(ref _idleWorkers) == 0 || Volatile.Read(ref _queued) != 0 || !_modelSlots.Wait(0))
        {
            return false;
        }

        try
        {
            // Checked holding a slot: disposal sets the flag and later takes every slot, so once disposal returns no
            // inline call can still be running on (or start on) a model its owner may then dispose.
            if (Volatile.Read(ref _disposed) != 0)
            {
                result = ValueTask.FromException<float[]>(new ObjectDisposedException(nameof(EmbeddingBatcher)));
                return true;
            }

            var started = Stopwatch.GetTimestamp();
            var vector = _model.Embed([text], EmbeddingPurpose.Query)[0];
            _metrics?.EmbeddingBatch("query", 1, RagMetrics.Since(started));
            _queryCache?.Add(EmbeddingPurpose.Query, text, vector);
            result = ValueTask.FromResult(vector);
        }
#pragma warning disable CA1031 // Returned to the caller as a faulted task, like a failure inside a batch.
        catch (Exception e)
#pragma warning restore CA1031
        {
            _logger.LogError(e, "Embedding a query inline failed");
            result = ValueTask.FromException<float[]>(e);
        }
        finally
        {
            _modelSlots.Release();
        }

        return true;
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

        // A query regroup pause blocks on the event, not on the token: wake it so disposal does not wait it out.
        _arrived.Set();
        return true;
    }

    // Called once the workers have stopped, so only inline queries (a few milliseconds) can still hold slots.
    private void WaitForInlineQueries()
    {
        for (var i = 0; i < _workers.Length; i++)
        {
            _modelSlots.Wait();
        }

        _modelSlots.Release(_workers.Length);
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
        Interlocked.Increment(ref _queued);
        if (purpose == EmbeddingPurpose.Document)
        {
            Interlocked.Add(ref _queuedDocumentCharacters, text.Length);
        }

        if (!channel.Writer.TryWrite(request))
        {
            Interlocked.Decrement(ref _queued);
            if (purpose == EmbeddingPurpose.Document)
            {
                Interlocked.Add(ref _queuedDocumentCharacters, -text.Length);
            }

            request.Registration.Dispose();
            request.TrySetException(new ObjectDisposedException(nameof(EmbeddingBatcher)));
        }
        else if (Volatile.Read(ref _awaitingQueries) > 0)
        {
            _arrived.Set();
        }

        return request.Task;
    }

    private void WorkerLoop()
    {
        if (_options.WorkerNiceness > 0 && !ThreadNiceness.TryLowerCurrentThread(_options.WorkerNiceness))
        {
            _logger.LogWarning("Could not lower the embedding worker thread's priority by {Niceness}", _options.WorkerNiceness);
        }

        var round = new List<Request>(_options.MaxTextsPerRound);

        // Queries served between the model calls of a document round; separate from the round list, which is still
        // being completed while they run.
        var betweenGroups = new List<Request>();
        var regroupTarget = 0;
        long lastRoundTicks = 0;
        var lastPurpose = EmbeddingPurpose.Document;
        try
        {
            while (!_stopping.IsCancellationRequested)
            {
                if (regroupTarget > 1)
                {
                    if (lastPurpose == EmbeddingPurpose.Query && _queryRegroupWaitTicks > 0)
                    {
                        AwaitQueries(regroupTarget);
                    }
                    else
                    {
                        Regroup(regroupTarget, lastRoundTicks);
                    }
                }

                // The slot is taken before the round, so the round's share of the queue (see Take) counts only the
                // slots still free for the other workers, and taken texts never wait for a slot.
                _modelSlots.Wait(_stopping.Token);
                try
                {
                    AwaitSubmissions();

                    // Queries first: they have a user waiting, document ingestion does not.
                    var purpose = EmbeddingPurpose.Query;
                    var cutByBudget = Take(_queries.Reader, round, _options.MaxCharactersPerRound);
                    if (round.Count == 0)
                    {
                        purpose = EmbeddingPurpose.Document;
                        cutByBudget = Take(_documents.Reader, round, _options.DocumentWindowCharacters);
                    }

                    if (round.Count > 0)
                    {
                        var size = round.Count;
                        lastPurpose = purpose;
                        (lastRoundTicks, var arrivedMeanwhile, var calls) = Run(round, purpose, purpose == EmbeddingPurpose.Document ? betweenGroups : null);

                        // The next round can hold this round's callers plus whoever queued while the model ran (closed-
                        // loop callers that just missed this round): waiting only for this round's size would keep the
                        // latecomers a fragment apart forever (56-58 of 64 callers per call). A round cut by its
                        // budget leaves texts queued anyway, so its next round needs no pause. Nor does a round whose
                        // texts the model ran one per call (long chunks): regrouping gains nothing the model would not
                        // split again, and its pause cost 3-8 % of chunk throughput (bench/Embed, session 8).
                        var ranAlone = size > 1 && calls == size;
                        regroupTarget = cutByBudget || ranAlone ? 0 : Math.Min(_options.MaxTextsPerRound, size + arrivedMeanwhile);
                        continue;
                    }
                }
                finally
                {
                    _modelSlots.Release();
                }

                regroupTarget = 0;
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
            if (Interlocked.Decrement(ref _runningWorkers) == 0)
            {
                FailQueued(_queries.Reader);
                FailQueued(_documents.Reader);
                _stopped.TrySetResult();
            }
        }
    }

    /// <summary>
    /// Lets submissions of several texts finish queueing before a round is taken. They queue one text at a time, and a
    /// worker woken by the first would run it as a fragment, its siblings a whole model call later.
    /// </summary>
    private void AwaitSubmissions()
    {
        if (Volatile.Read(ref _submitting) == 0)
        {
            return;
        }

        // Queueing takes microseconds per text; the 5 ms bound only matters if a submitter is preempted, and then the
        // round runs with what is there.
        SpinUntil(() => Volatile.Read(ref _submitting) == 0, Stopwatch.Frequency / 200);
    }

    /// <summary>
    /// After a round of several texts, gives its callers a moment to submit their next texts. Without it the worker
    /// wakes on the first resubmission and runs a fragment of one or two texts while the rest wait a whole model call;
    /// closed-loop callers then alternate between a fragment and the remainder.
    /// </summary>
    private void Regroup(int expected, long roundTicks)
    {
        var budget = Math.Min(_regroupWaitTicks, (long)(roundTicks * _options.RegroupShare));
        if (budget <= 0)
        {
            return;
        }

        SpinUntil(() => Volatile.Read(ref _queued) >= expected, budget);
    }

    /// <summary>
    /// Spins until <paramref name="done"/>, for at most <paramref name="ticks"/> (<see cref="Stopwatch"/> ticks) or until
    /// disposal. With yields, not sleeps: these pauses are shorter than a sleep lasts, and a yield hands the core to the
    /// callers they wait for.
    /// </summary>
    private void SpinUntil(Func<bool> done, long ticks)
    {
        var deadline = Stopwatch.GetTimestamp() + ticks;
        var spinner = default(SpinWait);
        while (!done() && Stopwatch.GetTimestamp() < deadline && !_stopping.IsCancellationRequested)
        {
            spinner.SpinOnce(sleep1Threshold: -1);
        }
    }

    /// <summary>
    /// The query form of <see cref="Regroup"/>: blocks (instead of spinning) for up to
    /// <see cref="EmbeddingBatcherOptions.QueryRegroupWait"/>, because queries take milliseconds to come back and a
    /// spinning worker would take CPU from the very requests it waits for. Ends early once <paramref name="expected"/>
    /// queries are queued, or documents are (they must not wait on a pause meant for queries).
    /// </summary>
    private void AwaitQueries(int expected)
    {
        var deadline = Stopwatch.GetTimestamp() + _queryRegroupWaitTicks;
        Interlocked.Increment(ref _awaitingQueries);
        try
        {
            while (!_stopping.IsCancellationRequested)
            {
                _arrived.Reset();

                // Checked after the reset: a stop or an arrival signalled just before it is seen here, not slept through.
                if (_stopping.IsCancellationRequested || _queries.Reader.Count >= expected || _documents.Reader.Count > 0)
                {
                    return;
                }

                var remaining = deadline - Stopwatch.GetTimestamp();
                if (remaining <= 0 || !_arrived.Wait(TimeSpan.FromSeconds((double)remaining / Stopwatch.Frequency)))
                {
                    return;
                }
            }
        }
        finally
        {
            Interlocked.Decrement(ref _awaitingQueries);
        }
    }

    private bool WaitForWork()
    {
        var queries = _queries.Reader.WaitToReadAsync(_stopping.Token).AsTask();
        var documents = _documents.Reader.WaitToReadAsync(_stopping.Token).AsTask();

        // Blocking is deliberate: this thread exists only to run the model. Both waits end when disposal completes
        // the channels, so no wait is left behind for long.
        Interlocked.Increment(ref _idleWorkers);
        try
        {
            Task.WhenAny(queries, documents).GetAwaiter().GetResult();
        }
        finally
        {
            Interlocked.Decrement(ref _idleWorkers);
        }

        return !_stopping.IsCancellationRequested;
    }

    /// <summary>
    /// One taker's part of <paramref name="queued"/> split evenly over <paramref name="takers"/>, rounded up, at least
    /// one and at most <paramref name="limit"/>.
    /// </summary>
    internal static long ShareOf(long queued, int takers, long limit) =>
        Math.Clamp((queued + takers - 1) / Math.Max(1, takers), 1, limit);

    /// <returns>True when the round stopped at its budget with texts still queued.</returns>
    private bool Take(ChannelReader<Request> reader, List<Request> round, int characterBudget)
    {
        round.Clear();
        var documents = reader == _documents.Reader;

        // One taker at a time: a peeked request must be the one then read, or a worker could drop another's live
        // request as completed, or size its round by one text and take another.
        lock (_takeGate)
        {
            // A round takes its share of what is queued (texts for queries, characters for documents), shared with
            // the model slots still free: a free slot means another worker can run the rest at the same time instead
            // of idling while this one works through all of it. Slots held by running rounds do not count.
            var maxTexts = _options.MaxTextsPerRound;
            var takers = 1 + _modelSlots.CurrentCount;
            if (documents)
            {
                characterBudget = (int)ShareOf(Volatile.Read(ref _queuedDocumentCharacters), takers, characterBudget);
            }
            else
            {
                maxTexts = (int)ShareOf(reader.Count, takers, maxTexts);
            }

            var characters = 0;
            while (reader.TryPeek(out var request))
            {
                if (!request.Task.IsCompleted)
                {
                    if (round.Count > 0 && (round.Count >= maxTexts || characters + request.Text.Length > characterBudget))
                    {
                        return true;
                    }

                    round.Add(request);
                    characters += request.Text.Length;
                }

                reader.TryRead(out _);
                Interlocked.Decrement(ref _queued);
                if (documents)
                {
                    Interlocked.Add(ref _queuedDocumentCharacters, -request.Text.Length);
                }
            }

            return false;
        }
    }

    /// <returns>
    /// How long the model ran for this round (queries served between its calls excluded), in <see cref="Stopwatch"/>
    /// ticks, how many texts were queued when it finished, before this round's last callers were released, and in how
    /// many model calls it ran.
    /// </returns>
    private (long Ticks, int QueuedAfter, int Calls) Run(List<Request> round, EmbeddingPurpose purpose, List<Request>? betweenGroups)
    {
        var texts = new string[round.Count];
        for (var i = 0; i < texts.Length; i++)
        {
            texts[i] = round[i].Text;
        }

        var kind = purpose == EmbeddingPurpose.Query ? "query" : "document";
        var started = Stopwatch.GetTimestamp();
        var groupStarted = started;
        long servingQueries = 0;
        var queuedAfter = 0;
        var calls = 0;
        try
        {
            _model.EmbedInGroups(texts, purpose, (members, vectors) =>
            {
                var ended = Stopwatch.GetTimestamp();
                calls++;
                _metrics?.EmbeddingBatch(kind, members.Length, Stopwatch.GetElapsedTime(groupStarted, ended));
                queuedAfter = Volatile.Read(ref _queued);
                foreach (var m in members)
                {
                    if (purpose == EmbeddingPurpose.Query)
                    {
                        _queryCache?.Add(purpose, texts[m], vectors[m]);
                    }

                    // Released group by group: a caller whose texts all ran need not wait for the rest of the round.
                    round[m].Complete(vectors[m]);
                }

                if (betweenGroups is not null)
                {
                    servingQueries += ServeQueriesBetweenGroups(betweenGroups);
                }

                groupStarted = Stopwatch.GetTimestamp();
            });
        }
#pragma warning disable CA1031 // Any model failure must reach the waiting callers instead of killing the worker.
        catch (Exception e)
#pragma warning restore CA1031
        {
            _logger.LogError(e, "Embedding a batch of {Count} {Purpose} texts failed", round.Count, purpose);

            // Requests of groups that already ran keep their vectors: failing a completed request is a no-op.
            foreach (var request in round)
            {
                request.Fail(e);
            }
        }

        var elapsed = Stopwatch.GetTimestamp() - started - servingQueries;
        round.Clear();
        return (elapsed, queuedAfter, calls);
    }

    /// <summary>Runs the queries queued while a document round's last model call ran, before its next call starts.</summary>
    /// <returns>How long it took, in <see cref="Stopwatch"/> ticks.</returns>
    private long ServeQueriesBetweenGroups(List<Request> betweenGroups)
    {
        if (_queries.Reader.Count == 0)
        {
            return 0;
        }

        var started = Stopwatch.GetTimestamp();
        while (!_stopping.IsCancellationRequested)
        {
            Take(_queries.Reader, betweenGroups, _options.MaxCharactersPerRound);
            if (betweenGroups.Count == 0)
            {
                break;
            }

            Run(betweenGroups, EmbeddingPurpose.Query, betweenGroups: null);
        }

        return Stopwatch.GetTimestamp() - started;
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
