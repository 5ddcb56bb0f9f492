using System.Collections.Concurrent;
using RagOrleans.Abstractions;

namespace RagOrleans.Grains.Quotas;

/// <summary>The outcome of one request's rate check, with what the <c>RateLimit-*</c> headers report.</summary>
/// <param name="Allowed">Whether the request may proceed.</param>
/// <param name="Quota">The binding quota (<c>requestsPerMinute</c> or <c>userRequestsPerMinute</c>), null when unlimited.</param>
/// <param name="Limit">That quota's limit per minute.</param>
/// <param name="Remaining">Requests left in the window, as far as this frontend knows (its own tokens plus the grain's unleased ones at the last lease).</param>
/// <param name="ResetSeconds">Seconds until the window ends.</param>
public sealed record RateDecision(bool Allowed, string? Quota, long? Limit, long Remaining, int ResetSeconds);

/// <summary>
/// A frontend's share of each tenant's and user's request budget. Tokens are leased from the tenant's
/// <see cref="IQuotaGrain"/> in batches (a fraction of the minute's limit) and spent locally, so the grain sees
/// one call per batch instead of one per request. The grain never grants more than the limit in a window,
/// so any number of frontends together admit at most the limit; tokens one frontend leased and did not spend
/// are lost to the others for that window (at most one batch per frontend). Admitted requests are reported with
/// the user's next lease, so the ledger's request counts trail by at most a minute of a user's activity.
/// </summary>
public sealed class RateLeaseLimiter
{
    private const int SweepThreshold = 10_000;
    private readonly Func<string, RateLeaseRequest, Task<RateLease>> _lease;
    private readonly TimeProvider _clock;
    private readonly ConcurrentDictionary<string, Bucket> _tenants = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(string Tenant, string User), Bucket> _users = new();
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _refills = new(StringComparer.Ordinal);
    private DateTimeOffset _lastSweep;

    /// <summary>A limiter leasing through <paramref name="lease"/> (tenant id, request) — the quota grain in production.</summary>
    public RateLeaseLimiter(Func<string, RateLeaseRequest, Task<RateLease>> lease, TimeProvider clock)
    {
        _lease = lease;
        _clock = clock;
    }

    /// <summary>A limiter leasing from each tenant's quota grain.</summary>
    public RateLeaseLimiter(IGrainFactory grains, TimeProvider clock)
        : this((tenant, request) => grains.Reference<IQuotaGrain>(tenant).Lease(request), clock)
    {
    }

    /// <summary>Takes one request token of the tenant and one of the user, leasing more when this frontend has none.</summary>
    public async ValueTask<RateDecision> AcquireAsync(string tenantId, string userId, CancellationToken cancellationToken = default)
    {
        var tenant = _tenants.GetOrAdd(tenantId, static _ => new Bucket());
        var user = _users.GetOrAdd((tenantId, userId), static _ => new Bucket());
        // Every pass either takes a token, refuses, or leases (which grants at least one token or marks the
        // bucket exhausted), so the loop ends within a window; racing requests may simply need another pass.
        while (true)
        {
            var now = _clock.GetUtcNow();
            if (TryTake(tenant, user, now, out var decision))
            {
                return decision;
            }

            var refill = _refills.GetOrAdd(tenantId, static _ => new SemaphoreSlim(1, 1));
            await refill.WaitAsync(cancellationToken);
            try
            {
                now = _clock.GetUtcNow();
                bool needTenant, needUser;
                long served = 0;
                lock (tenant)
                {
                    lock (user)
                    {
                        // Another request may have refilled while we waited.
                        needTenant = !tenant.Ready(now) && !tenant.Exhausted(now);
                        needUser = !user.Ready(now) && !user.Exhausted(now);
                        if (needTenant || needUser)
                        {
                            served = user.TakeServed();
                        }
                    }
                }

                if (needTenant || needUser)
                {
                    RateLease lease;
                    try
                    {
                        lease = await _lease(tenantId, new RateLeaseRequest(userId, needTenant, needUser, served));
                    }
                    catch
                    {
                        lock (user)
                        {
                            user.ReturnServed(served);
                        }

                        throw;
                    }

                    lock (tenant)
                    {
                        lock (user)
                        {
                            if (needTenant)
                            {
                                tenant.Apply(lease.WindowEnd, lease.TenantLimit, lease.TenantGranted, lease.TenantRemaining);
                            }

                            if (needUser)
                            {
                                user.Apply(lease.WindowEnd, lease.UserLimit, lease.UserGranted, lease.UserRemaining);
                            }
                        }
                    }
                }
            }
            finally
            {
                refill.Release();
            }
        }
    }

    private bool TryTake(Bucket tenant, Bucket user, DateTimeOffset now, out RateDecision decision)
    {
        lock (tenant)
        {
            lock (user)
            {
                if (tenant.Ready(now) && user.Ready(now))
                {
                    tenant.Take();
                    user.Take();
                    decision = Describe(tenant, user, now, allowed: true);
                    return true;
                }

                if (tenant.Exhausted(now) || user.Exhausted(now))
                {
                    // The grain has nothing left this window: refuse without asking it again.
                    var binding = tenant.Exhausted(now) ? tenant : user;
                    var quota = ReferenceEquals(binding, tenant) ? QuotaNames.RequestsPerMinute : QuotaNames.UserRequestsPerMinute;
                    decision = new RateDecision(false, quota, binding.Limit, 0, binding.ResetSeconds(now));
                    return true;
                }
            }
        }

        if (_users.Count > SweepThreshold && now - _lastSweep > TimeSpan.FromMinutes(1))
        {
            _lastSweep = now;
            Sweep();
        }

        decision = null!;
        return false;
    }

    private static RateDecision Describe(Bucket tenant, Bucket user, DateTimeOffset now, bool allowed)
    {
        Bucket? binding = null;
        if (!tenant.Unlimited)
        {
            binding = tenant;
        }

        if (!user.Unlimited && (binding is null || user.Remaining < binding.Remaining))
        {
            binding = user;
        }

        if (binding is null)
        {
            return new RateDecision(allowed, null, null, 0, tenant.ResetSeconds(now));
        }

        var quota = ReferenceEquals(binding, tenant) ? QuotaNames.RequestsPerMinute : QuotaNames.UserRequestsPerMinute;
        return new RateDecision(allowed, quota, binding.Limit, binding.Remaining, binding.ResetSeconds(now));
    }

    private void Sweep()
    {
        var cutoff = _clock.GetUtcNow() - TimeSpan.FromMinutes(1);
        foreach (var (key, bucket) in _users)
        {
            if (bucket.WindowEnd < cutoff)
            {
                _users.TryRemove(key, out _);
            }
        }
    }

    private sealed class Bucket
    {
        public DateTimeOffset WindowEnd { get; private set; }
        public bool Unlimited { get; private set; }
        public long? Limit { get; private set; }
        public long Remaining => _tokens + _grainRemaining;
        private long _tokens;
        private long _grainRemaining;
        private long _served;

        public bool Ready(DateTimeOffset now) => now < WindowEnd && (Unlimited || _tokens > 0);

        public bool Exhausted(DateTimeOffset now) => now < WindowEnd && !Unlimited && _tokens == 0 && _grainRemaining == 0;

        /// <summary>Requests admitted and not yet reported to the ledger; reported with the next lease.</summary>
        public long TakeServed()
        {
            var served = _served;
            _served = 0;
            return served;
        }

        public void ReturnServed(long served) => _served += served;

        public void Take()
        {
            _served++;
            if (!Unlimited)
            {
                _tokens--;
            }
        }

        public int ResetSeconds(DateTimeOffset now) => Math.Max(1, (int)Math.Ceiling((WindowEnd - now).TotalSeconds));

        public void Apply(DateTimeOffset windowEnd, long? limit, long granted, long grainRemaining)
        {
            if (windowEnd != WindowEnd)
            {
                // Tokens belong to their window; a new window starts from what was just granted.
                _tokens = 0;
                WindowEnd = windowEnd;
            }

            Unlimited = limit is null;
            Limit = limit;
            _tokens += granted;
            _grainRemaining = grainRemaining;
        }
    }
}
