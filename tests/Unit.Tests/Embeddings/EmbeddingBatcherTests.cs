using RagOrleans.Grains.Embeddings;
using Xunit;

namespace RagOrleans.Unit.Tests.Embeddings;

[Collection(EmbeddingModelCollection.Name)]
public sealed class EmbeddingBatcherTests(EmbeddingModelFixture fixture)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    // Long against a caller's resubmission (microseconds), short against the test timeout.
    private static readonly TimeSpan LongRegroup = TimeSpan.FromSeconds(1);

    // For a pause the test expects to end early, when the awaited callers come: long enough that a loaded CI machine
    // (thread-pool continuations delayed by seconds) cannot make it expire first.
    private static readonly TimeSpan RegroupEndedByArrivals = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Concurrent_callers_each_get_their_own_vector()
    {
        var model = fixture.Model;
        var texts = Enumerable.Range(0, 64)
            .Select(i => i % 3 == 0
                ? $"query number {i}: how do grains handle reentrancy?"
                : string.Join(' ', Enumerable.Repeat($"document {i} discusses silo membership and clustering", 1 + (i % 5))))
            .ToArray();
        var purposes = texts.Select((_, i) => i % 3 == 0 ? EmbeddingPurpose.Query : EmbeddingPurpose.Document).ToArray();
        var counting = new CountingModel(model);
        await using var batcher = new EmbeddingBatcher(counting);

        var results = await Task.WhenAll(texts.Select((t, i) => Task.Run(() => batcher.EmbedAsync(t, purposes[i]).AsTask())))
            .WaitAsync(Timeout);

        for (var i = 0; i < texts.Length; i++)
        {
            var direct = model.Embed([texts[i]], purposes[i])[0];
            Assert.True(OnnxEmbeddingModelTests.Cosine(direct, results[i]) > 0.9999, $"text {i}");
        }

        Assert.True(counting.Calls < texts.Length, $"{counting.Calls} model calls for {texts.Length} texts: nothing was coalesced");
    }

    [Fact]
    public async Task EmbedMany_keeps_the_callers_order()
    {
        await using var batcher = new EmbeddingBatcher(fixture.Model);
        string[] texts = ["alpha", "a considerably longer second text about clustering", "gamma"];

        var vectors = await batcher.EmbedManyAsync(texts, EmbeddingPurpose.Document).WaitAsync(Timeout);

        var direct = fixture.Model.Embed(texts, EmbeddingPurpose.Document);
        for (var i = 0; i < texts.Length; i++)
        {
            Assert.True(OnnxEmbeddingModelTests.Cosine(direct[i], vectors[i]) > 0.9999);
        }
    }

    [Fact]
    public async Task A_cancelled_waiter_is_dropped_before_the_model_runs()
    {
        var model = new GatedModel();
        await using var batcher = new EmbeddingBatcher(model);

        // The first call occupies the worker inside the model, so the next two queue behind it.
        var blocker = batcher.EmbedAsync("blocker", EmbeddingPurpose.Document).AsTask();
        await model.Entered.Task.WaitAsync(Timeout);
        using var cts = new CancellationTokenSource();
        var cancelled = batcher.EmbedAsync("cancelled", EmbeddingPurpose.Document, cts.Token).AsTask();
        var kept = batcher.EmbedAsync("kept", EmbeddingPurpose.Document).AsTask();
        await cts.CancelAsync();
        model.Release.SetResult();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.WaitAsync(Timeout));
        Assert.Equal(GatedModel.VectorFor("kept"), await kept.WaitAsync(Timeout));
        Assert.Equal(GatedModel.VectorFor("blocker"), await blocker.WaitAsync(Timeout));
        Assert.DoesNotContain("cancelled", model.Seen);
    }

    [Fact]
    public async Task Queued_queries_jump_ahead_of_queued_documents()
    {
        var model = new GatedModel();
        await using var batcher = new EmbeddingBatcher(model, new EmbeddingBatcherOptions { MaxTextsPerRound = 1 });

        var blocker = batcher.EmbedAsync("blocker", EmbeddingPurpose.Document).AsTask();
        await model.Entered.Task.WaitAsync(Timeout);
        var document = batcher.EmbedAsync("document", EmbeddingPurpose.Document).AsTask();
        var query = batcher.EmbedAsync("query", EmbeddingPurpose.Query).AsTask();
        model.Release.SetResult();
        await Task.WhenAll(blocker, document, query).WaitAsync(Timeout);

        Assert.Equal(["blocker", "query", "document"], model.Seen);
    }

    [Fact]
    public async Task Repeated_queries_are_served_from_the_cache()
    {
        var model = new CountingModel(fixture.Model);
        await using var batcher = new EmbeddingBatcher(model, new EmbeddingBatcherOptions { QueryCacheCapacity = 2 });

        var first = await batcher.EmbedAsync("what is a grain?", EmbeddingPurpose.Query);
        var second = await batcher.EmbedAsync("what is a grain?", EmbeddingPurpose.Query);
        await batcher.EmbedAsync("what is a grain?", EmbeddingPurpose.Document);

        Assert.Equal(first, second);
        Assert.NotSame(first, second);
        Assert.Equal(2, model.Calls);
    }

    [Fact]
    public async Task Model_failures_reach_the_callers()
    {
        await using var batcher = new EmbeddingBatcher(new FailingModel());

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => batcher.EmbedAsync("x", EmbeddingPurpose.Document).AsTask().WaitAsync(Timeout));
        Assert.Equal("boom", error.Message);
    }

    [Fact]
    public async Task Disposal_fails_queued_work_and_refuses_new_work()
    {
        var model = new GatedModel();
        var batcher = new EmbeddingBatcher(model);
        var blocker = batcher.EmbedAsync("blocker", EmbeddingPurpose.Document).AsTask();
        await model.Entered.Task.WaitAsync(Timeout);
        var queued = batcher.EmbedAsync("queued", EmbeddingPurpose.Document).AsTask();

        var disposing = batcher.DisposeAsync().AsTask();
        model.Release.SetResult();
        await disposing.WaitAsync(Timeout);

        Assert.Equal(GatedModel.VectorFor("blocker"), await blocker);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => queued);
        await Assert.ThrowsAsync<ObjectDisposedException>(() => batcher.EmbedAsync("late", EmbeddingPurpose.Document).AsTask());
    }

    [Fact]
    public async Task A_lone_query_on_an_idle_batcher_runs_on_the_callers_thread()
    {
        var model = new RecordingModel();
        await using var batcher = new EmbeddingBatcher(model);
        Assert.True(SpinWait.SpinUntil(() => batcher.IsIdle, Timeout));

        var pending = batcher.EmbedAsync("lone query", EmbeddingPurpose.Query);

        Assert.True(pending.IsCompletedSuccessfully);
        Assert.Equal(RecordingModel.VectorFor("lone query"), await pending);
        Assert.Equal([Environment.CurrentManagedThreadId], model.Threads);
    }

    [Fact]
    public async Task Inline_queries_can_be_switched_off()
    {
        var model = new RecordingModel();
        await using var batcher = new EmbeddingBatcher(model, new EmbeddingBatcherOptions { RunLoneQueriesInline = false });
        Assert.True(SpinWait.SpinUntil(() => batcher.IsIdle, Timeout));

        await batcher.EmbedAsync("query", EmbeddingPurpose.Query).AsTask().WaitAsync(Timeout);

        Assert.DoesNotContain(Environment.CurrentManagedThreadId, model.Threads);
        Assert.All(model.ThreadNames, name => Assert.StartsWith("embedding-batcher-", name));
    }

    [Fact]
    public async Task Lone_documents_and_query_lists_go_through_the_worker()
    {
        var model = new RecordingModel();
        await using var batcher = new EmbeddingBatcher(model);
        Assert.True(SpinWait.SpinUntil(() => batcher.IsIdle, Timeout));

        await batcher.EmbedAsync("document", EmbeddingPurpose.Document).AsTask().WaitAsync(Timeout);
        Assert.True(SpinWait.SpinUntil(() => batcher.IsIdle, Timeout));
        var vectors = await batcher.EmbedManyAsync(["q1", "q2", "q3"], EmbeddingPurpose.Query).WaitAsync(Timeout);

        Assert.Equal(3, vectors.Length);
        Assert.All(vectors, v => Assert.Equal(RecordingModel.VectorFor("q1"), v));
        Assert.All(model.ThreadNames, name => Assert.StartsWith("embedding-batcher-", name));
    }

    [Fact]
    public async Task Queries_arriving_while_the_model_runs_are_batched_together()
    {
        var model = new GatedModel();
        await using var batcher = new EmbeddingBatcher(model);

        var blocker = batcher.EmbedAsync("blocker", EmbeddingPurpose.Document).AsTask();
        await model.Entered.Task.WaitAsync(Timeout);
        var first = batcher.EmbedAsync("first", EmbeddingPurpose.Query);
        var second = batcher.EmbedAsync("second", EmbeddingPurpose.Query);
        Assert.False(first.IsCompleted);
        Assert.False(second.IsCompleted);
        model.Release.SetResult();

        Assert.Equal(GatedModel.VectorFor("first"), await first.AsTask().WaitAsync(Timeout));
        Assert.Equal(GatedModel.VectorFor("second"), await second.AsTask().WaitAsync(Timeout));
        await blocker.WaitAsync(Timeout);
        Assert.Equal([["blocker"], ["first", "second"]], model.Batches);
    }

    [Fact]
    public async Task Rounds_stop_at_the_character_budget_but_always_take_one_text()
    {
        var model = new GatedModel();
        await using var batcher = new EmbeddingBatcher(model, new EmbeddingBatcherOptions { DocumentWindowCharacters = 8 });

        var blocker = batcher.EmbedAsync("blocker", EmbeddingPurpose.Document).AsTask();
        await model.Entered.Task.WaitAsync(Timeout);
        string[] queued = ["aaaa", "bbbb", "cccc", "a text longer than the budget", "dd"];
        var pending = queued.Select(t => batcher.EmbedAsync(t, EmbeddingPurpose.Document).AsTask()).ToArray();
        model.Release.SetResult();
        await Task.WhenAll(pending.Append(blocker)).WaitAsync(Timeout);

        Assert.Equal([["blocker"], ["aaaa", "bbbb"], ["cccc"], ["a text longer than the budget"], ["dd"]], model.Batches);
    }

    [Fact]
    public async Task A_query_waits_for_one_model_call_of_a_large_document_round_not_for_the_whole_round()
    {
        // Groups of two: the six queued documents are one round the model runs as three calls.
        var model = new SteppedModel(gatedCalls: 4, groupSize: 2);
        await using var batcher = new EmbeddingBatcher(model);
        var blocker = batcher.EmbedAsync("blocker", EmbeddingPurpose.Document).AsTask();
        await model.Entered[0].Task.WaitAsync(Timeout);
        var documents = Enumerable.Range(1, 6).Select(i => batcher.EmbedAsync($"d{i}", EmbeddingPurpose.Document).AsTask()).ToArray();
        model.Release[0].SetResult();

        // The query arrives while the round's first call runs.
        await model.Entered[1].Task.WaitAsync(Timeout);
        var query = batcher.EmbedAsync("q", EmbeddingPurpose.Query).AsTask();
        model.Release[2].SetResult();
        model.Release[1].SetResult();

        // It ran before the round's second call (call 3), and the first call's callers were released before it too.
        await model.Entered[3].Task.WaitAsync(Timeout);
        Assert.True(query.IsCompletedSuccessfully);
        Assert.True(documents[0].IsCompletedSuccessfully && documents[1].IsCompletedSuccessfully);
        Assert.False(documents[2].IsCompleted);
        model.Release[3].SetResult();
        await Task.WhenAll(documents.Append(blocker).Append(query)).WaitAsync(Timeout);

        Assert.Equal([["blocker"], ["d1", "d2"], ["q"], ["d3", "d4"], ["d5", "d6"]], model.Batches);
        Assert.Equal(SteppedModel.VectorFor("q"), await query);
        for (var i = 0; i < documents.Length; i++)
        {
            Assert.Equal(SteppedModel.VectorFor($"d{i + 1}"), await documents[i]);
        }
    }

    [Fact]
    public async Task A_failing_model_call_fails_only_the_texts_that_had_not_run()
    {
        var model = new SteppedModel(gatedCalls: 1, groupSize: 2) { FailingCall = 2 };
        await using var batcher = new EmbeddingBatcher(model);
        var blocker = batcher.EmbedAsync("blocker", EmbeddingPurpose.Document).AsTask();
        await model.Entered[0].Task.WaitAsync(Timeout);
        var documents = Enumerable.Range(1, 4).Select(i => batcher.EmbedAsync($"d{i}", EmbeddingPurpose.Document).AsTask()).ToArray();
        model.Release[0].SetResult();

        Assert.Equal(SteppedModel.VectorFor("d1"), await documents[0].WaitAsync(Timeout));
        Assert.Equal(SteppedModel.VectorFor("d2"), await documents[1].WaitAsync(Timeout));
        foreach (var failed in documents[2..])
        {
            var error = await Assert.ThrowsAsync<InvalidOperationException>(() => failed.WaitAsync(Timeout));
            Assert.Equal("boom", error.Message);
        }

        // The worker survives the failure.
        Assert.Equal(SteppedModel.VectorFor("after"), await batcher.EmbedAsync("after", EmbeddingPurpose.Document).AsTask().WaitAsync(Timeout));
        await blocker;
    }

    [Fact]
    public async Task Closed_loop_callers_regroup_into_full_batches()
    {
        const int Callers = 4;
        const int Iterations = 3;
        var model = new GatedModel();

        // Every pause here ends when the callers it waits for come back, never by running out (the last one ends with
        // the batcher's disposal), so a budget far longer than a loaded machine's thread-pool delays keeps the test
        // from depending on how fast the callers resubmit.
        await using var batcher = new EmbeddingBatcher(model, new EmbeddingBatcherOptions { RegroupWait = RegroupEndedByArrivals, RegroupShare = 1e9 });

        // The first caller's first text holds the model while the others queue; it then loops like them, one text more.
        var first = Loop("first", Iterations + 1);
        await model.Entered.Task.WaitAsync(Timeout);

        // Each loop's first call runs synchronously, so all four are queued behind the first text before the release.
        var loops = Enumerable.Range(0, Callers).Select(c => Loop($"caller {c}", Iterations)).ToArray();
        model.Release.SetResult();
        await Task.WhenAll(loops.Append(first)).WaitAsync(Timeout);

        Assert.Equal([1, Callers + 1, Callers + 1, Callers + 1], model.Batches.Select(b => b.Length));

        async Task Loop(string caller, int iterations)
        {
            for (var i = 0; i < iterations; i++)
            {
                await batcher.EmbedAsync($"{caller} text {i}", EmbeddingPurpose.Document);
            }
        }
    }

    [Fact]
    public async Task A_round_the_model_ran_one_text_per_call_is_not_followed_by_a_regroup_pause()
    {
        // Each text its own model call, as the real model runs long chunks. A pause after such a round would wait (five
        // minutes here) for as many texts as the round and its latecomers held, and they never come.
        var model = new SteppedModel(gatedCalls: 1, groupSize: 1);
        await using var batcher = new EmbeddingBatcher(model, new EmbeddingBatcherOptions { Workers = 1, RegroupWait = TimeSpan.FromMinutes(5), RegroupShare = 1e9 });
        var blocker = batcher.EmbedAsync("blocker", EmbeddingPurpose.Document).AsTask();
        await model.Entered[0].Task.WaitAsync(Timeout);
        var three = batcher.EmbedManyAsync(["a", "b", "c"], EmbeddingPurpose.Document);
        model.Release[0].SetResult();

        // The one-text round regroups as before: it waits for its caller's next text beside the three latecomers.
        await blocker.WaitAsync(Timeout);
        var fourth = batcher.EmbedAsync("d", EmbeddingPurpose.Document).AsTask();
        await Task.WhenAll(three, fourth).WaitAsync(Timeout);

        await batcher.EmbedAsync("follower", EmbeddingPurpose.Document).AsTask().WaitAsync(Timeout);

        Assert.Equal(["blocker", "a", "b", "c", "d", "follower"], model.Batches.Select(b => Assert.Single(b)));
    }

    [Fact]
    public async Task A_caller_that_queues_during_a_round_is_regrouped_with_that_rounds_callers()
    {
        const int Iterations = 3;
        var model = new SteppedModel(gatedCalls: 2);

        // As above, every pause ends by arrivals: the callers' iteration counts are chosen so all of them are in the
        // last round.
        await using var batcher = new EmbeddingBatcher(model, new EmbeddingBatcherOptions { RegroupWait = RegroupEndedByArrivals, RegroupShare = 1e9 });
        var first = Loop("first", Iterations + 1);
        await model.Entered[0].Task.WaitAsync(Timeout);

        // Three callers and the first one's second text run in the second model call; the latecomer arrives while it
        // runs, and joins one round later than the others, so it makes one call fewer.
        var loops = new List<Task> { first, Loop("caller 0", Iterations), Loop("caller 1", Iterations), Loop("caller 2", Iterations) };
        model.Release[0].SetResult();
        await model.Entered[1].Task.WaitAsync(Timeout);
        loops.Add(Loop("latecomer", Iterations - 1));
        model.Release[1].SetResult();
        await Task.WhenAll(loops).WaitAsync(Timeout);

        // Without counting the latecomer, the third call would wait only for the second call's four texts, and it
        // would start with the latecomer and three of the four, leaving the fourth a fragment apart; with it, all five
        // meet in full calls.
        Assert.Equal([1, 4, 5, 5], model.Batches.Select(b => b.Length));

        async Task Loop(string caller, int iterations)
        {
            for (var i = 0; i < iterations; i++)
            {
                await batcher.EmbedAsync($"{caller} text {i}", EmbeddingPurpose.Document);
            }
        }
    }

    [Fact]
    public async Task Queries_that_come_back_after_their_search_work_meet_the_query_that_waited()
    {
        var model = new SteppedModel(gatedCalls: 1);
        await using var batcher = new EmbeddingBatcher(model, new EmbeddingBatcherOptions { QueryRegroupWait = RegroupEndedByArrivals });
        var first = batcher.EmbedManyAsync(["a0", "b0"], EmbeddingPurpose.Query);
        await model.Entered[0].Task.WaitAsync(Timeout);
        var waiting = batcher.EmbedAsync("c0", EmbeddingPurpose.Query).AsTask();
        model.Release[0].SetResult();
        await first.WaitAsync(Timeout);

        // The two users do their search and answer their HTTP request before asking again: far longer than the
        // share-scaled regroup pause of a query round, well within QueryRegroupWait.
        await Task.Delay(50);
        var next = batcher.EmbedManyAsync(["a1", "b1"], EmbeddingPurpose.Query);
        await Task.WhenAll(next, waiting).WaitAsync(Timeout);

        Assert.Equal([["a0", "b0"], ["c0", "a1", "b1"]], model.Batches);
    }

    [Fact]
    public async Task Two_workers_run_two_rounds_at_once()
    {
        var model = new SteppedModel(gatedCalls: 2);
        await using var batcher = new EmbeddingBatcher(model, new EmbeddingBatcherOptions { Workers = 2 });

        // The second document runs while the first model call is still held: one core each.
        var (a, b) = await HoldBothWorkers(model, batcher);
        Assert.False(a.IsCompleted);
        model.Release[1].SetResult();
        Assert.Equal(SteppedModel.VectorFor("document b"), await b.WaitAsync(Timeout));
        Assert.False(a.IsCompleted);

        model.Release[0].SetResult();
        Assert.Equal(SteppedModel.VectorFor("document a"), await a.WaitAsync(Timeout));
    }

    [Fact]
    public async Task A_search_during_a_document_round_runs_at_once_on_the_free_core()
    {
        var model = new SteppedModel(gatedCalls: 1);
        await using var batcher = new EmbeddingBatcher(model, new EmbeddingBatcherOptions { Workers = 2 });
        var document = batcher.EmbedAsync("a long document chunk", EmbeddingPurpose.Document).AsTask();
        await model.Entered[0].Task.WaitAsync(Timeout);
        Assert.True(SpinWait.SpinUntil(() => batcher.IdleWorkers == 1, Timeout));

        // The query neither queues behind the document nor waits for a worker: it runs on the caller's thread.
        var query = batcher.EmbedAsync("fire door review", EmbeddingPurpose.Query);
        Assert.True(query.IsCompletedSuccessfully);
        Assert.False(document.IsCompleted);

        model.Release[0].SetResult();
        await document.WaitAsync(Timeout);
    }

    [Fact]
    public async Task A_worker_whose_peer_is_busy_takes_the_whole_queue()
    {
        var model = new SteppedModel(gatedCalls: 2);
        await using var batcher = new EmbeddingBatcher(model, new EmbeddingBatcherOptions { Workers = 2 });
        var (a, b) = await HoldBothWorkers(model, batcher);
        var queries = batcher.EmbedManyAsync([.. Enumerable.Range(0, 8).Select(i => $"query {i}")], EmbeddingPurpose.Query);

        // Worker b's model call ends while a's is held: no other slot is free, so splitting would only make the second
        // half wait for the first on the same core.
        model.Release[1].SetResult();
        await queries.WaitAsync(Timeout);
        model.Release[0].SetResult();
        await Task.WhenAll(a, b).WaitAsync(Timeout);

        Assert.Equal([1, 1, 8], model.Batches.Select(batch => batch.Length));
    }

    // Two documents, each held inside its model call (calls 0 and 1 of the model) by its own worker.
    private static async Task<(Task<float[]> A, Task<float[]> B)> HoldBothWorkers(SteppedModel model, EmbeddingBatcher batcher)
    {
        var a = batcher.EmbedAsync("document a", EmbeddingPurpose.Document).AsTask();
        await model.Entered[0].Task.WaitAsync(Timeout);
        var b = batcher.EmbedAsync("document b", EmbeddingPurpose.Document).AsTask();
        await model.Entered[1].Task.WaitAsync(Timeout);
        return (a, b);
    }

    [Theory]
    [InlineData(8, 1, 64, 8)]
    [InlineData(8, 2, 64, 4)]
    [InlineData(7, 2, 64, 4)]
    [InlineData(1, 2, 64, 1)]
    [InlineData(0, 2, 64, 1)]
    [InlineData(200, 2, 64, 64)]
    [InlineData(100_000, 2, 65_536, 50_000)]
    public void Each_free_slot_takes_an_even_share_of_the_queue(long queued, int takers, long limit, long share) =>
        Assert.Equal(share, EmbeddingBatcher.ShareOf(queued, takers, limit));

    [Fact]
    public async Task Disposal_does_not_wait_out_a_query_regroup_pause()
    {
        var model = new RecordingModel();
        var batcher = new EmbeddingBatcher(model, new EmbeddingBatcherOptions { QueryRegroupWait = TimeSpan.FromMinutes(5) });
        await batcher.EmbedManyAsync(["a0", "b0"], EmbeddingPurpose.Query).WaitAsync(Timeout);

        // The worker now pauses for a third query that never comes; a silo stopping must not hang on it.
        await batcher.DisposeAsync().AsTask().WaitAsync(Timeout);
    }

    [Fact]
    public async Task A_lone_user_s_queries_still_run_inline_with_a_query_regroup_wait()
    {
        var model = new RecordingModel();
        await using var batcher = new EmbeddingBatcher(model, new EmbeddingBatcherOptions { QueryRegroupWait = LongRegroup });
        for (var i = 0; i < 3; i++)
        {
            Assert.True(SpinWait.SpinUntil(() => batcher.IsIdle, Timeout));
            var pending = batcher.EmbedAsync($"query {i}", EmbeddingPurpose.Query);
            Assert.True(pending.IsCompletedSuccessfully);
        }

        Assert.Equal(Enumerable.Repeat(Environment.CurrentManagedThreadId, 3), model.Threads);
    }

    [Fact]
    public async Task Model_failures_reach_an_inline_query()
    {
        await using var batcher = new EmbeddingBatcher(new FailingModel());
        Assert.True(SpinWait.SpinUntil(() => batcher.IsIdle, Timeout));

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => batcher.EmbedAsync("x", EmbeddingPurpose.Query).AsTask().WaitAsync(Timeout));
        Assert.Equal("boom", error.Message);
    }

    [Fact]
    public async Task A_disposed_batcher_refuses_queries()
    {
        var batcher = new EmbeddingBatcher(new RecordingModel());
        await batcher.DisposeAsync();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => batcher.EmbedAsync("late", EmbeddingPurpose.Query).AsTask());
    }

    [Fact]
    public async Task Workers_run_the_model_at_the_configured_lower_priority()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // thread niceness is a Linux setting; elsewhere the option does nothing
        }

        var model = new NiceRecordingModel(fixture.Model);
        await using (var batcher = new EmbeddingBatcher(model, new EmbeddingBatcherOptions { WorkerNiceness = 7 }))
        {
            // Document texts always go through the workers (queries may run inline on their caller's thread).
            await batcher.EmbedManyAsync(["first document text", "second document text"], EmbeddingPurpose.Document).WaitAsync(Timeout);
            await batcher.EmbedManyAsync(["third document text", "a fourth one"], EmbeddingPurpose.Document).WaitAsync(Timeout);
        }

        Assert.Equal(ThreadNice() + 7, model.Seen.Single());

        // The default leaves the workers at the process's priority.
        var plain = new NiceRecordingModel(fixture.Model);
        await using (var batcher = new EmbeddingBatcher(plain))
        {
            await batcher.EmbedManyAsync(["a document", "another document"], EmbeddingPurpose.Document).WaitAsync(Timeout);
        }

        Assert.Equal(ThreadNice(), plain.Seen.Single());
    }

    // Field 19 of /proc/thread-self/stat: the calling thread's nice value (the command name before it is parenthesized).
    private static int ThreadNice()
    {
        var stat = File.ReadAllText("/proc/thread-self/stat");
        return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[16], System.Globalization.CultureInfo.InvariantCulture);
    }

    private sealed class NiceRecordingModel(IEmbeddingModel inner) : IEmbeddingModel
    {
        private readonly System.Collections.Concurrent.ConcurrentQueue<int> _seen = new();

        public IReadOnlyCollection<int> Seen => _seen.Distinct().ToArray();

        public EmbeddingModelDescriptor Descriptor => inner.Descriptor;

        public ITokenCounter Tokenizer => inner.Tokenizer;

        public float[][] Embed(IReadOnlyList<string> texts, EmbeddingPurpose purpose)
        {
            _seen.Enqueue(ThreadNice());
            return inner.Embed(texts, purpose);
        }
    }

    private sealed class CountingModel(IEmbeddingModel inner) : IEmbeddingModel
    {
        private int _calls;

        public int Calls => Volatile.Read(ref _calls);

        public EmbeddingModelDescriptor Descriptor => inner.Descriptor;

        public ITokenCounter Tokenizer => inner.Tokenizer;

        public float[][] Embed(IReadOnlyList<string> texts, EmbeddingPurpose purpose)
        {
            Interlocked.Increment(ref _calls);
            return inner.Embed(texts, purpose);
        }
    }

    // Blocks inside its first call until released, so tests can queue work deterministically behind it.
    private sealed class GatedModel : IEmbeddingModel
    {
        private readonly Lock _lock = new();

        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public List<string> Seen { get; } = [];

        public List<string[]> Batches { get; } = [];

        public EmbeddingModelDescriptor Descriptor => EmbeddingModelDescriptor.MiniLmL6V2;

        public ITokenCounter Tokenizer => throw new NotSupportedException();

        public static float[] VectorFor(string text) => [text.Length, 1];

        public float[][] Embed(IReadOnlyList<string> texts, EmbeddingPurpose purpose)
        {
            lock (_lock)
            {
                Seen.AddRange(texts);
                Batches.Add([.. texts]);
            }

            Entered.TrySetResult();
            Release.Task.Wait(Timeout);
            return texts.Select(VectorFor).ToArray();
        }
    }

    // Its first calls each block until the test releases them; later calls return at once, and the call numbered
    // FailingCall throws. A round runs as calls of groupSize texts in submission order, like the real model's length
    // groups (by default the whole round is one call).
    private sealed class SteppedModel(int gatedCalls, int groupSize = int.MaxValue) : IEmbeddingModel
    {
        private readonly Lock _lock = new();

        public TaskCompletionSource[] Entered { get; } = NewSources(gatedCalls);

        public TaskCompletionSource[] Release { get; } = NewSources(gatedCalls);

        public List<string[]> Batches { get; } = [];

        public int FailingCall { get; init; } = -1;

        public EmbeddingModelDescriptor Descriptor => EmbeddingModelDescriptor.MiniLmL6V2;

        public ITokenCounter Tokenizer => throw new NotSupportedException();

        public static float[] VectorFor(string text) => [text.Length, text[^1]];

        public float[][] Embed(IReadOnlyList<string> texts, EmbeddingPurpose purpose)
        {
            int call;
            lock (_lock)
            {
                call = Batches.Count;
                Batches.Add([.. texts]);
            }

            if (call < Entered.Length)
            {
                Entered[call].TrySetResult();
                Release[call].Task.Wait(Timeout);
            }

            return call == FailingCall ? throw new InvalidOperationException("boom") : texts.Select(VectorFor).ToArray();
        }

        public void EmbedInGroups(IReadOnlyList<string> texts, EmbeddingPurpose purpose, EmbeddedGroup groupDone)
        {
            var vectors = new float[texts.Count][];
            for (var start = 0; start < texts.Count;)
            {
                var members = Enumerable.Range(start, Math.Min(groupSize, texts.Count - start)).ToArray();
                start += members.Length;
                var group = Embed(members.Select(m => texts[m]).ToArray(), purpose);
                for (var j = 0; j < members.Length; j++)
                {
                    vectors[members[j]] = group[j];
                }

                groupDone(members, vectors);
            }
        }

        private static TaskCompletionSource[] NewSources(int count) =>
            Enumerable.Range(0, count).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
    }

    // Returns at once and records which thread ran each call.
    private sealed class RecordingModel : IEmbeddingModel
    {
        private readonly Lock _lock = new();

        public List<int> Threads { get; } = [];

        public List<string?> ThreadNames { get; } = [];

        public EmbeddingModelDescriptor Descriptor => EmbeddingModelDescriptor.MiniLmL6V2;

        public ITokenCounter Tokenizer => throw new NotSupportedException();

        public static float[] VectorFor(string text) => [text.Length, 1];

        public float[][] Embed(IReadOnlyList<string> texts, EmbeddingPurpose purpose)
        {
            lock (_lock)
            {
                Threads.Add(Environment.CurrentManagedThreadId);
                ThreadNames.Add(Thread.CurrentThread.Name);
            }

            return texts.Select(VectorFor).ToArray();
        }
    }

    private sealed class FailingModel : IEmbeddingModel
    {
        public EmbeddingModelDescriptor Descriptor => EmbeddingModelDescriptor.MiniLmL6V2;

        public ITokenCounter Tokenizer => throw new NotSupportedException();

        public float[][] Embed(IReadOnlyList<string> texts, EmbeddingPurpose purpose) => throw new InvalidOperationException("boom");
    }
}

public sealed class EmbeddingCacheTests
{
    [Fact]
    public void Evicts_the_least_recently_used_entry()
    {
        var cache = new EmbeddingCache(2);
        cache.Add(EmbeddingPurpose.Query, "a", [1]);
        cache.Add(EmbeddingPurpose.Query, "b", [2]);
        Assert.True(cache.TryGet(EmbeddingPurpose.Query, "a", out _));

        cache.Add(EmbeddingPurpose.Query, "c", [3]);

        Assert.Equal(2, cache.Count);
        Assert.True(cache.TryGet(EmbeddingPurpose.Query, "a", out var a));
        Assert.Equal([1f], a);
        Assert.False(cache.TryGet(EmbeddingPurpose.Query, "b", out _));
        Assert.True(cache.TryGet(EmbeddingPurpose.Query, "c", out _));
    }

    [Fact]
    public void Keys_include_the_purpose_and_entries_cannot_be_mutated_from_outside()
    {
        var cache = new EmbeddingCache(4);
        float[] stored = [1, 2];
        cache.Add(EmbeddingPurpose.Query, "t", stored);
        stored[0] = 99;

        Assert.False(cache.TryGet(EmbeddingPurpose.Document, "t", out _));
        Assert.True(cache.TryGet(EmbeddingPurpose.Query, "t", out var hit));
        hit[1] = 99;
        Assert.True(cache.TryGet(EmbeddingPurpose.Query, "t", out var again));
        Assert.Equal([1f, 2f], again);
    }
}
