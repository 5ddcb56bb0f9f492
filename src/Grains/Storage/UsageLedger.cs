using System.Globalization;
using RagOrleans.Abstractions;

namespace RagOrleans.Grains.Storage;

/// <summary>One charge: added to the row of its tenant, UTC day, model, kind and user.</summary>
public sealed record LedgerEntry(string TenantId, DateOnly Day, string Model, string Kind, string UserId, long Quantity, decimal Cost);

/// <summary>
/// The append-only usage ledger: one row per tenant, day, model, kind and user, whose quantity and cost only
/// ever grow. SQLite in embedded mode, PostgreSQL in cluster mode. Rows outlive a deleted tenant (billing).
/// </summary>
public interface IUsageLedger
{
    /// <summary>Adds the entries to their rows, creating rows as needed, in one transaction.</summary>
    Task AddAsync(IReadOnlyList<LedgerEntry> entries, CancellationToken cancellationToken = default);

    /// <summary>Totals between two days (inclusive) grouped by day, model or user, and always by kind.</summary>
    Task<IReadOnlyList<LedgerRow>> QueryAsync(string tenantId, DateOnly from, DateOnly to, LedgerGrouping groupBy, CancellationToken cancellationToken = default);
}

/// <summary>Formats shared by the ledger stores.</summary>
internal static class LedgerFormat
{
    public static string Day(DateOnly day) => day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    public static string GroupColumn(LedgerGrouping groupBy) => groupBy switch
    {
        LedgerGrouping.Model => "model",
        LedgerGrouping.User => "user_id",
        _ => "day",
    };
}

/// <summary>The ledger in the embedded SQLite file; its table is created on first use.</summary>
public sealed class SqliteUsageLedger(SqliteDatabase database) : IUsageLedger
{
    private const string Ddl = """
        CREATE TABLE IF NOT EXISTS usage_ledger (
            tenant   TEXT    NOT NULL,
            day      TEXT    NOT NULL,
            model    TEXT    NOT NULL,
            kind     TEXT    NOT NULL,
            user_id  TEXT    NOT NULL,
            quantity INTEGER NOT NULL,
            cost     REAL    NOT NULL,
            PRIMARY KEY (tenant, day, model, kind, user_id));
        """;

    private readonly SqliteLazyTable _table = new(database, Ddl);

    public async Task AddAsync(IReadOnlyList<LedgerEntry> entries, CancellationToken cancellationToken = default)
    {
        if (entries.Count == 0)
        {
            return;
        }

        await using var connection = await _table.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = (Microsoft.Data.Sqlite.SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        foreach (var e in entries)
        {
            await using var command = connection.CreateCommand();
            command.Transaction = tx;
            command.CommandText = """
                INSERT INTO usage_ledger (tenant, day, model, kind, user_id, quantity, cost) VALUES ($t, $d, $m, $k, $u, $q, $c)
                ON CONFLICT (tenant, day, model, kind, user_id) DO UPDATE SET quantity = quantity + excluded.quantity, cost = cost + excluded.cost
                """;
            command.Parameters.AddWithValue("$t", e.TenantId);
            command.Parameters.AddWithValue("$d", LedgerFormat.Day(e.Day));
            command.Parameters.AddWithValue("$m", e.Model);
            command.Parameters.AddWithValue("$k", e.Kind);
            command.Parameters.AddWithValue("$u", e.UserId);
            command.Parameters.AddWithValue("$q", e.Quantity);
            command.Parameters.AddWithValue("$c", (double)e.Cost);
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<LedgerRow>> QueryAsync(string tenantId, DateOnly from, DateOnly to, LedgerGrouping groupBy, CancellationToken cancellationToken = default)
    {
        var group = LedgerFormat.GroupColumn(groupBy);
        await using var connection = await _table.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = $"""
            SELECT {group}, kind, SUM(quantity), SUM(cost) FROM usage_ledger
            WHERE tenant = $t AND day >= $from AND day <= $to
            GROUP BY {group}, kind ORDER BY {group}, kind
            """;
        command.Parameters.AddWithValue("$t", tenantId);
        command.Parameters.AddWithValue("$from", LedgerFormat.Day(from));
        command.Parameters.AddWithValue("$to", LedgerFormat.Day(to));
        var rows = new List<LedgerRow>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            rows.Add(new LedgerRow(reader.GetString(0), reader.GetString(1), reader.GetInt64(2), Math.Round((decimal)reader.GetDouble(3), 6)));
        }

        return rows;
    }
}
