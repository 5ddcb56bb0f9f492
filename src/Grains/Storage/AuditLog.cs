using System.Globalization;
using Microsoft.Data.Sqlite;

namespace RagOrleans.Grains.Storage;

/// <summary>One audited admin or operator action.</summary>
/// <param name="Time">When it was answered (UTC).</param>
/// <param name="TenantId">The tenant acted on, or null for actions outside any tenant.</param>
/// <param name="KeyId">The key that acted (<c>operator</c> for the operator key).</param>
/// <param name="Role">The role of that key.</param>
/// <param name="Action">What was done, e.g. <c>tenant.delete</c>.</param>
/// <param name="Target">The resource it was done to (its API path).</param>
/// <param name="Outcome"><c>succeeded</c>, <c>denied</c> (401/403) or <c>failed</c>.</param>
/// <param name="Status">The HTTP status answered.</param>
/// <param name="RequestId">The request id (X-Request-Id), to find the request's logs and trace.</param>
public sealed record AuditEntry(
    DateTimeOffset Time, string? TenantId, string KeyId, string Role, string Action, string Target, string Outcome, int Status, string RequestId);

/// <summary>A stored audit entry with its position in the log (newest have the highest).</summary>
public sealed record AuditRecord(long Seq, AuditEntry Entry);

/// <summary>Filters of an audit query; entries come newest first, <paramref name="Before"/> pages on.</summary>
public sealed record AuditQuery(string? TenantId, string? Action, DateTimeOffset? From, DateTimeOffset? To, long? Before, int Limit);

/// <summary>
/// The append-only audit log. It outlives what it describes: deleting a tenant keeps the entries about it
/// (ids and paths only, never content), since the deletion itself is one of them.
/// </summary>
public interface IAuditLog
{
    /// <summary>Appends an entry durably.</summary>
    Task AppendAsync(AuditEntry entry, CancellationToken cancellationToken = default);

    /// <summary>Entries matching <paramref name="query"/>, newest first, at most <see cref="AuditQuery.Limit"/>.</summary>
    Task<IReadOnlyList<AuditRecord>> QueryAsync(AuditQuery query, CancellationToken cancellationToken = default);
}

/// <summary>The audit log in the embedded SQLite file (table <c>audit_log</c>, created on first use).</summary>
public sealed class SqliteAuditLog(SqliteDatabase database) : IAuditLog
{
    private const string Ddl = """
        CREATE TABLE IF NOT EXISTS audit_log (
            seq        INTEGER PRIMARY KEY AUTOINCREMENT,
            at         INTEGER NOT NULL,
            tenant     TEXT,
            key_id     TEXT    NOT NULL,
            role       TEXT    NOT NULL,
            action     TEXT    NOT NULL,
            target     TEXT    NOT NULL,
            outcome    TEXT    NOT NULL,
            status     INTEGER NOT NULL,
            request_id TEXT    NOT NULL);
        CREATE INDEX IF NOT EXISTS audit_log_tenant ON audit_log (tenant, seq);
        """;

    private readonly SqliteLazyTable _table = new(database, Ddl);

    public async Task AppendAsync(AuditEntry entry, CancellationToken cancellationToken = default)
    {
        await using var connection = await _table.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = """
            INSERT INTO audit_log (at, tenant, key_id, role, action, target, outcome, status, request_id)
            VALUES ($at, $tenant, $key, $role, $action, $target, $outcome, $status, $request)
            """;
        command.Parameters.AddWithValue("$at", entry.Time.ToUnixTimeMilliseconds());
        command.Parameters.AddWithValue("$tenant", (object?)entry.TenantId ?? DBNull.Value);
        command.Parameters.AddWithValue("$key", entry.KeyId);
        command.Parameters.AddWithValue("$role", entry.Role);
        command.Parameters.AddWithValue("$action", entry.Action);
        command.Parameters.AddWithValue("$target", entry.Target);
        command.Parameters.AddWithValue("$outcome", entry.Outcome);
        command.Parameters.AddWithValue("$status", entry.Status);
        command.Parameters.AddWithValue("$request", entry.RequestId);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<AuditRecord>> QueryAsync(AuditQuery query, CancellationToken cancellationToken = default)
    {
        await using var connection = await _table.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = """
            SELECT seq, at, tenant, key_id, role, action, target, outcome, status, request_id FROM audit_log
            WHERE ($tenant IS NULL OR tenant = $tenant) AND ($action IS NULL OR action = $action)
              AND ($from IS NULL OR at >= $from) AND ($to IS NULL OR at < $to) AND ($before IS NULL OR seq < $before)
            ORDER BY seq DESC LIMIT $limit
            """;
        command.Parameters.AddWithValue("$tenant", (object?)query.TenantId ?? DBNull.Value);
        command.Parameters.AddWithValue("$action", (object?)query.Action ?? DBNull.Value);
        command.Parameters.AddWithValue("$from", (object?)query.From?.ToUnixTimeMilliseconds() ?? DBNull.Value);
        command.Parameters.AddWithValue("$to", (object?)query.To?.ToUnixTimeMilliseconds() ?? DBNull.Value);
        command.Parameters.AddWithValue("$before", (object?)query.Before ?? DBNull.Value);
        command.Parameters.AddWithValue("$limit", query.Limit);
        var records = new List<AuditRecord>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            records.Add(new AuditRecord(reader.GetInt64(0), new AuditEntry(
                DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(1)), reader.IsDBNull(2) ? null : reader.GetString(2),
                reader.GetString(3), reader.GetString(4), reader.GetString(5), reader.GetString(6), reader.GetString(7),
                Convert.ToInt32(reader.GetInt64(8), CultureInfo.InvariantCulture), reader.GetString(9))));
        }

        return records;
    }
}
