using RagOrleans.Frontend.Infrastructure;
using Xunit;

namespace RagOrleans.Ops.Tests;

/// <summary>The brute-force guard's counting, on a clock the test moves by hand.</summary>
public sealed class AuthFailureGuardTests
{
    private static readonly TimeSpan Window = TimeSpan.FromMinutes(5);

    [Fact]
    public void A_subject_is_blocked_at_the_limit_and_released_as_its_failures_age_out()
    {
        var clock = new HandClock();
        var guard = new AuthFailureGuard(clock, 1000);
        for (var i = 0; i < 4; i++)
        {
            Assert.False(guard.IsBlocked("ip:1", 5, Window, out _));
            guard.RecordFailure("ip:1", 5, Window);
            clock.Advance(TimeSpan.FromSeconds(10));
        }

        guard.RecordFailure("ip:1", 5, Window);
        Assert.True(guard.IsBlocked("ip:1", 5, Window, out var retryAfter));

        // The first failure was 40 s before the fifth: it ages out 5 min after it happened.
        Assert.Equal(Window - TimeSpan.FromSeconds(40), retryAfter);
        Assert.False(guard.IsBlocked("ip:2", 5, Window, out _));

        clock.Advance(retryAfter);
        Assert.False(guard.IsBlocked("ip:1", 5, Window, out _));
        guard.RecordFailure("ip:1", 5, Window);
        Assert.True(guard.IsBlocked("ip:1", 5, Window, out _));
    }

    [Fact]
    public void Memory_stays_bounded_under_failures_from_many_subjects()
    {
        var clock = new HandClock();
        var guard = new AuthFailureGuard(clock, 1000);
        for (var i = 0; i < 50_000; i++)
        {
            guard.RecordFailure("ip:" + i, 20, Window);
            guard.RecordFailure("ip:same", 20, Window);
            clock.Advance(TimeSpan.FromMilliseconds(1));
        }

        Assert.InRange(guard.TrackedSubjects, 1, 1000);

        // The busiest attacker is the most recent failure every time: it is never the one forgotten.
        Assert.True(guard.IsBlocked("ip:same", 20, Window, out _));
    }

    private sealed class HandClock : TimeProvider
    {
        private DateTimeOffset _now = new(2026, 11, 30, 8, 0, 0, TimeSpan.Zero);

        public override DateTimeOffset GetUtcNow() => _now;

        public void Advance(TimeSpan by) => _now += by;
    }
}
