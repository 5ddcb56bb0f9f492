using Npgsql;
using NpgsqlTypes;

namespace RagOrleans.Grains.Storage.Postgres;

/// <summary>Uploaded document content in PostgreSQL (cluster mode), one <c>bytea</c> row per key.</summary>
public sealed class PostgresBlobStore(NpgsqlDataSource dataSource) : IBlobStore
{
    /// <inheritdoc />
    public async Task PutAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand(
            """
            INSERT INTO blobs (key, data) VALUES (@k, @d)
            ON CONFLICT (key) DO UPDATE SET data = EXCLUDED.data, updated_at = now()
            """);
        command.Parameters.AddWithValue("k", key);
        command.Parameters.Add(new NpgsqlParameter<ReadOnlyMemory<byte>>("d", NpgsqlDbType.Bytea) { TypedValue = content });
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<byte[]?> GetAsync(string key, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand("SELECT data FROM blobs WHERE key = @k");
        command.Parameters.AddWithValue("k", key);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? reader.GetFieldValue<byte[]>(0) : null;
    }

    /// <inheritdoc />
    public async Task DeleteAsync(string key, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand("DELETE FROM blobs WHERE key = @k");
        command.Parameters.AddWithValue("k", key);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task DeletePrefixAsync(string prefix, CancellationToken cancellationToken = default)
    {
        // Keys are in the C collation, so "prefix/" .. "prefix0" ('0' follows '/') is exactly the keys under
        // the prefix, as an index range, with no LIKE escaping of '%' or '_' in ids.
        await using var command = dataSource.CreateCommand("DELETE FROM blobs WHERE key >= @from AND key < @to");
        command.Parameters.AddWithValue("from", prefix + "/");
        command.Parameters.AddWithValue("to", prefix + "0");
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
