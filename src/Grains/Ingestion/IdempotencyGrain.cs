using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Storage;

namespace RagOrleans.Grains.Ingestion;

/// <summary>
/// One tenant's idempotency key. The stored response is durable (<see cref="IIdempotencyStore"/>); the claim of
/// a request still running lives in memory only, since a lost activation just lets the client's next retry run.
/// </summary>
[GrainType("idempotency")]
public sealed class IdempotencyGrain(
    IIdempotencyStore store,
    IOptions<RagOptions> options,
    TimeProvider clock,
    ILogger<IdempotencyGrain> logger) : Grain, IIdempotencyGrain
{
    // A claim older than this belongs to a request that died without releasing it (its frontend crashed).
    private static readonly TimeSpan ClaimTimeout = TimeSpan.FromMinutes(15);

    private string _tenantId = "";
    private string _keyHash = "";
    private (string Fingerprint, DateTimeOffset Since)? _claim;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var parts = Ids.Split(this.GetPrimaryKeyString(), 2);
        (_tenantId, _keyHash) = (parts[0], parts[1]);
        return Task.CompletedTask;
    }

    public async Task<IdempotentResponse?> Begin(string fingerprint)
    {
        var now = clock.GetUtcNow();
        if (await store.GetAsync(_tenantId, _keyHash, now) is { } stored)
        {
            return stored.Fingerprint == fingerprint
                ? new IdempotentResponse(stored.StatusCode, stored.Location, stored.Body)
                : throw new RagException(RagErrorKind.Unprocessable,
                    "This Idempotency-Key was already used with a different request; use a new key for a new request.");
        }

        if (_claim is { } claim && now - claim.Since < ClaimTimeout)
        {
            throw claim.Fingerprint == fingerprint
                ? RagException.Conflict("A request with this Idempotency-Key is still in progress; retry once it has finished.")
                : new RagException(RagErrorKind.Unprocessable,
                    "This Idempotency-Key is in use by a different request; use a new key for a new request.");
        }

        _claim = (fingerprint, now);
        return null;
    }

    public async Task Complete(string fingerprint, IdempotentResponse response)
    {
        var now = clock.GetUtcNow();
        await store.SaveAsync(_tenantId, _keyHash,
            new IdempotencyRecord(fingerprint, response.StatusCode, response.Location, response.Body, now, now + options.Value.IdempotencyKeyLifetime));
        _claim = null;

        // Expired keys go lazily, in one indexed range delete, riding on the writes that create new ones.
        var purged = await store.PurgeExpiredAsync(now);
        if (purged > 0)
        {
            logger.LogDebug("Purged {Count} expired idempotency keys", purged);
        }
    }

    public Task Release(string fingerprint)
    {
        if (_claim?.Fingerprint == fingerprint)
        {
            _claim = null;
        }

        return Task.CompletedTask;
    }
}
