namespace RagOrleans.Grains.Storage;

/// <summary>Idempotency keys in the embedded SQLite file; times are Unix milliseconds.</summary>
public sealed class SqliteIdempotencyStore(SqliteDatabase database) : IIdempotencyStore
{
    public async Task<IdempotencyRecord?> GetAsync(string tenantId, string keyHash, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = """
            SELECT fingerprint, status_code, location, body, created_at, expires_at FROM idempotency_keys
            WHERE tenant = $t AND key_hash = $k AND expires_at > $now
            """;
        command.Parameters.AddWithValue("$t", tenantId);
        command.Parameters.AddWithValue("$k", keyHash);
        command.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
        await using var r = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await r.ReadAsync(cancellationToken).ConfigureAwait(false)
            ? new IdempotencyRecord(
                r.GetString(0), r.GetInt32(1), r.IsDBNull(2) ? null : r.GetString(2), r.GetString(3),
                DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(4)), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(5)))
            : null;
    }

    public async Task SaveAsync(string tenantId, string keyHash, IdempotencyRecord record, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = """
            INSERT OR REPLACE INTO idempotency_keys (tenant, key_hash, fingerprint, status_code, location, body, created_at, expires_at)
            VALUES ($t, $k, $f, $s, $l, $b, $c, $e)
            """;
        command.Parameters.AddWithValue("$t", tenantId);
        command.Parameters.AddWithValue("$k", keyHash);
        command.Parameters.AddWithValue("$f", record.Fingerprint);
        command.Parameters.AddWithValue("$s", record.StatusCode);
        command.Parameters.AddWithValue("$l", (object?)record.Location ?? DBNull.Value);
        command.Parameters.AddWithValue("$b", record.Body);
        command.Parameters.AddWithValue("$c", record.CreatedAt.ToUnixTimeMilliseconds());
        command.Parameters.AddWithValue("$e", record.ExpiresAt.ToUnixTimeMilliseconds());
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<int> PurgeExpiredAsync(DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = "DELETE FROM idempotency_keys WHERE expires_at <= $now";
        command.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task DeleteTenantAsync(string tenantId, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = "DELETE FROM idempotency_keys WHERE tenant = $t";
        command.Parameters.AddWithValue("$t", tenantId);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
