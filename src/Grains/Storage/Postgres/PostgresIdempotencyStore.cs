using Npgsql;

namespace RagOrleans.Grains.Storage.Postgres;

/// <summary>Idempotency keys in PostgreSQL (cluster mode).</summary>
public sealed class PostgresIdempotencyStore(NpgsqlDataSource dataSource) : IIdempotencyStore
{
    /// <inheritdoc />
    public async Task<IdempotencyRecord?> GetAsync(string tenantId, string keyHash, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand("""
            SELECT fingerprint, status_code, location, body, created_at, expires_at FROM idempotency_keys
            WHERE tenant = @t AND key_hash = @k AND expires_at > @now
            """);
        command.Parameters.AddWithValue("t", tenantId);
        command.Parameters.AddWithValue("k", keyHash);
        command.Parameters.AddWithValue("now", now.ToUniversalTime());
        await using var r = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await r.ReadAsync(cancellationToken).ConfigureAwait(false)
            ? new IdempotencyRecord(
                r.GetString(0), r.GetInt32(1), r.IsDBNull(2) ? null : r.GetString(2), r.GetString(3),
                r.GetFieldValue<DateTimeOffset>(4), r.GetFieldValue<DateTimeOffset>(5))
            : null;
    }

    /// <inheritdoc />
    public async Task SaveAsync(string tenantId, string keyHash, IdempotencyRecord record, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand("""
            INSERT INTO idempotency_keys (tenant, key_hash, fingerprint, status_code, location, body, created_at, expires_at)
            VALUES (@t, @k, @f, @s, @l, @b, @c, @e)
            ON CONFLICT (tenant, key_hash) DO UPDATE SET
                fingerprint = EXCLUDED.fingerprint, status_code = EXCLUDED.status_code, location = EXCLUDED.location,
                body = EXCLUDED.body, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
            """);
        var p = command.Parameters;
        p.AddWithValue("t", tenantId);
        p.AddWithValue("k", keyHash);
        p.AddWithValue("f", record.Fingerprint);
        p.AddWithValue("s", record.StatusCode);
        p.AddWithValue("l", (object?)record.Location ?? DBNull.Value);
        p.AddWithValue("b", record.Body);
        p.AddWithValue("c", record.CreatedAt.ToUniversalTime());
        p.AddWithValue("e", record.ExpiresAt.ToUniversalTime());
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<int> PurgeExpiredAsync(DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand("DELETE FROM idempotency_keys WHERE expires_at <= @now");
        command.Parameters.AddWithValue("now", now.ToUniversalTime());
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task DeleteTenantAsync(string tenantId, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand("DELETE FROM idempotency_keys WHERE tenant = @t");
        command.Parameters.AddWithValue("t", tenantId);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
