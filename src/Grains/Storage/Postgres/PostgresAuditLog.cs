using Npgsql;
using NpgsqlTypes;

namespace RagOrleans.Grains.Storage.Postgres;

/// <summary>The audit log in PostgreSQL (table <c>audit_log</c>, schema version 4), shared by every frontend.</summary>
public sealed class PostgresAuditLog(NpgsqlDataSource dataSource) : IAuditLog
{
    public async Task AppendAsync(AuditEntry entry, CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("""
            INSERT INTO audit_log (at, tenant, key_id, role, action, target, outcome, status, request_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = entry.Time.ToUniversalTime(), NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)entry.TenantId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = entry.KeyId });
        command.Parameters.Add(new NpgsqlParameter { Value = entry.Role });
        command.Parameters.Add(new NpgsqlParameter { Value = entry.Action });
        command.Parameters.Add(new NpgsqlParameter { Value = entry.Target });
        command.Parameters.Add(new NpgsqlParameter { Value = entry.Outcome });
        command.Parameters.Add(new NpgsqlParameter { Value = entry.Status });
        command.Parameters.Add(new NpgsqlParameter { Value = entry.RequestId });
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<AuditRecord>> QueryAsync(AuditQuery query, CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand("""
            SELECT seq, at, tenant, key_id, role, action, target, outcome, status, request_id FROM audit_log
            WHERE ($1::text IS NULL OR tenant = $1) AND ($2::text IS NULL OR action = $2)
              AND ($3::timestamptz IS NULL OR at >= $3) AND ($4::timestamptz IS NULL OR at < $4) AND ($5::bigint IS NULL OR seq < $5)
            ORDER BY seq DESC LIMIT $6
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)query.TenantId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)query.Action ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)query.From?.ToUniversalTime() ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)query.To?.ToUniversalTime() ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)query.Before ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint });
        command.Parameters.Add(new NpgsqlParameter { Value = query.Limit });
        var records = new List<AuditRecord>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            records.Add(new AuditRecord(reader.GetInt64(0), new AuditEntry(
                reader.GetFieldValue<DateTimeOffset>(1), reader.IsDBNull(2) ? null : reader.GetString(2), reader.GetString(3),
                reader.GetString(4), reader.GetString(5), reader.GetString(6), reader.GetString(7), reader.GetInt32(8), reader.GetString(9))));
        }

        return records;
    }
}
