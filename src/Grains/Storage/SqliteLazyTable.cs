using Microsoft.Data.Sqlite;

namespace RagOrleans.Grains.Storage;

/// <summary>
/// A table of the embedded SQLite file that its store creates with its own idempotent DDL on first use, so a store
/// added after <see cref="SqliteDatabase"/>'s versioned schema needs no migration step of its own.
/// </summary>
internal sealed class SqliteLazyTable(SqliteDatabase database, string ddl)
{
    private readonly SemaphoreSlim _create = new(1, 1);
    private volatile bool _created;

    /// <summary>Opens a connection once the table exists.</summary>
    public async Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken)
    {
        if (!_created)
        {
            await CreateAsync(cancellationToken).ConfigureAwait(false);
        }

        return await database.OpenAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task CreateAsync(CancellationToken cancellationToken)
    {
        await _create.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_created)
            {
                await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
                await using var command = connection.CreateCommand();
                command.CommandText = ddl;
                await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                _created = true;
            }
        }
        finally
        {
            _create.Release();
        }
    }
}
