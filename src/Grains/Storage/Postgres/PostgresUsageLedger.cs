using Npgsql;
using NpgsqlTypes;
using RagOrleans.Abstractions;

namespace RagOrleans.Grains.Storage.Postgres;

/// <summary>The ledger in PostgreSQL (table <c>usage_ledger</c>, schema version 2).</summary>
public sealed class PostgresUsageLedger(NpgsqlDataSource dataSource) : IUsageLedger
{
    public async Task AddAsync(IReadOnlyList<LedgerEntry> entries, CancellationToken cancellationToken = default)
    {
        if (entries.Count == 0)
        {
            return;
        }

        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var batch = new NpgsqlBatch(connection);
        foreach (var e in entries)
        {
            var command = new NpgsqlBatchCommand("""
                INSERT INTO usage_ledger (tenant, day, model, kind, user_id, quantity, cost) VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (tenant, day, model, kind, user_id)
                DO UPDATE SET quantity = usage_ledger.quantity + EXCLUDED.quantity, cost = usage_ledger.cost + EXCLUDED.cost
                """);
            command.Parameters.Add(new NpgsqlParameter { Value = e.TenantId });
            command.Parameters.Add(new NpgsqlParameter { Value = e.Day, NpgsqlDbType = NpgsqlDbType.Date });
            command.Parameters.Add(new NpgsqlParameter { Value = e.Model });
            command.Parameters.Add(new NpgsqlParameter { Value = e.Kind });
            command.Parameters.Add(new NpgsqlParameter { Value = e.UserId });
            command.Parameters.Add(new NpgsqlParameter { Value = e.Quantity });
            command.Parameters.Add(new NpgsqlParameter { Value = e.Cost, NpgsqlDbType = NpgsqlDbType.Numeric });
            batch.BatchCommands.Add(command);
        }

        // A batch runs as one implicit transaction.
        await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<LedgerRow>> QueryAsync(string tenantId, DateOnly from, DateOnly to, LedgerGrouping groupBy, CancellationToken cancellationToken = default)
    {
        var group = groupBy switch
        {
            LedgerGrouping.Model => "model",
            LedgerGrouping.User => "user_id",
            _ => "to_char(day, 'YYYY-MM-DD')",
        };
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var command = new NpgsqlCommand($"""
            SELECT {group} AS g, kind, SUM(quantity)::bigint, SUM(cost) FROM usage_ledger
            WHERE tenant = $1 AND day >= $2 AND day <= $3
            GROUP BY g, kind ORDER BY g, kind
            """, connection);
        command.Parameters.Add(new NpgsqlParameter { Value = tenantId });
        command.Parameters.Add(new NpgsqlParameter { Value = from, NpgsqlDbType = NpgsqlDbType.Date });
        command.Parameters.Add(new NpgsqlParameter { Value = to, NpgsqlDbType = NpgsqlDbType.Date });
        var rows = new List<LedgerRow>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            rows.Add(new LedgerRow(reader.GetString(0), reader.GetString(1), reader.GetInt64(2), reader.GetDecimal(3)));
        }

        return rows;
    }
}
