using Microsoft.Extensions.Options;
using RagOrleans.Grains;
using RagOrleans.Grains.Ingestion;
using Xunit;

namespace RagOrleans.Unit.Tests.Ingestion;

public sealed class IngestionThrottleTests
{
    private static IngestionThrottle Throttle(int slots) => new(Options.Create(new RagOptions { MaxConcurrentIngestions = slots }));

    [Fact]
    public async Task A_small_tenant_is_served_next_even_behind_a_large_backlog()
    {
        using var throttle = Throttle(1);
        var holder = await throttle.AcquireAsync("big", CancellationToken.None);
        var backlog = Enumerable.Range(0, 500).Select(_ => throttle.AcquireAsync("big", CancellationToken.None)).ToList();
        var small = throttle.AcquireAsync("small", CancellationToken.None);
        Assert.Equal(501, throttle.Waiting);

        // The slot goes round-robin: big's oldest waiter, then small, then big again.
        holder.Dispose();
        var first = await backlog[0];
        Assert.False(small.IsCompleted);
        first.Dispose();
        (await small.WaitAsync(TimeSpan.FromSeconds(5))).Dispose();

        // The slot is handed over at once, but AcquireAsync's own task completes in a continuation on the thread
        // pool (the waiter runs its continuations asynchronously), so wait for it rather than test it at once.
        await backlog[1].WaitAsync(TimeSpan.FromSeconds(5));
        Assert.All(backlog.Skip(2), t => Assert.False(t.IsCompleted));
        Assert.Equal(1, throttle.Running);
        Assert.Equal(498, throttle.Waiting);
    }

    [Fact]
    public async Task Within_a_tenant_documents_keep_their_arrival_order_and_slots_are_bounded()
    {
        using var throttle = Throttle(2);
        var a = await throttle.AcquireAsync("t", CancellationToken.None);
        var b = await throttle.AcquireAsync("t", CancellationToken.None);
        var waiting = Enumerable.Range(0, 5).Select(_ => throttle.AcquireAsync("t", CancellationToken.None)).ToList();
        Assert.Equal(2, throttle.Running);
        Assert.All(waiting, w => Assert.False(w.IsCompleted));

        a.Dispose();
        a.Dispose(); // a second release of the same slot is ignored
        var next = await waiting[0];
        Assert.All(waiting.Skip(1), w => Assert.False(w.IsCompleted));
        Assert.Equal(2, throttle.Running);

        b.Dispose();
        next.Dispose();
        foreach (var w in waiting.Skip(1))
        {
            (await w).Dispose();
        }

        Assert.Equal(0, throttle.Running);
        Assert.Equal(0, throttle.Waiting);
        (await throttle.AcquireAsync("other", CancellationToken.None)).Dispose();
    }

    [Fact]
    public async Task A_cancelled_waiter_gives_its_turn_to_the_next()
    {
        using var throttle = Throttle(1);
        var holder = await throttle.AcquireAsync("a", CancellationToken.None);
        using var cancel = new CancellationTokenSource();
        var cancelled = throttle.AcquireAsync("b", cancel.Token);
        var next = throttle.AcquireAsync("c", CancellationToken.None);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        Assert.Equal(1, throttle.Waiting);

        holder.Dispose();
        (await next.WaitAsync(TimeSpan.FromSeconds(5))).Dispose();
        Assert.Equal(0, throttle.Waiting);
        Assert.Equal(0, throttle.Running);
    }
}
