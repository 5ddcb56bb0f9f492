using System.Runtime.CompilerServices;
using Npgsql;
using NpgsqlTypes;

namespace RagOrleans.Grains.Storage.Postgres;

/// <summary>The chunk log in PostgreSQL (cluster mode); appends go through binary COPY.</summary>
public sealed class PostgresChunkLog(NpgsqlDataSource dataSource) : IChunkLog
{
    private const string ReadColumns = "seq, op, doc_id, ordinal, text, vector, start_offset, end_offset, section, page, title, metadata";

    /// <inheritdoc />
    public async Task AppendAsync(string shardKey, IReadOnlyList<ChunkLogEntry> entries, string? replacedDocumentId, CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        if (replacedDocumentId is not null)
        {
            await using var delete = new NpgsqlCommand("DELETE FROM chunk_log WHERE shard = @s AND doc_id = @d AND op = 1", connection, tx);
            delete.Parameters.AddWithValue("s", shardKey);
            delete.Parameters.AddWithValue("d", replacedDocumentId);
            await delete.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        if (entries.Count > 0)
        {
            // COPY joins the connection's open transaction, so the delete and the rows commit together.
            await using var import = await connection.BeginBinaryImportAsync(
                "COPY chunk_log (shard, seq, op, doc_id, ordinal, text, vector, start_offset, end_offset, section, page, title, metadata) FROM STDIN (FORMAT BINARY)",
                cancellationToken).ConfigureAwait(false);
            foreach (var e in entries)
            {
                await import.StartRowAsync(cancellationToken).ConfigureAwait(false);
                await import.WriteAsync(shardKey, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                await import.WriteAsync(e.Seq, NpgsqlDbType.Bigint, cancellationToken).ConfigureAwait(false);
                await import.WriteAsync((short)e.Op, NpgsqlDbType.Smallint, cancellationToken).ConfigureAwait(false);
                await import.WriteAsync(e.DocumentId, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                await import.WriteAsync(e.Ordinal, NpgsqlDbType.Integer, cancellationToken).ConfigureAwait(false);
                await WriteNullableAsync(import, e.Text, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                await WriteNullableAsync(import, e.Vector, NpgsqlDbType.Array | NpgsqlDbType.Real, cancellationToken).ConfigureAwait(false);
                await import.WriteAsync(e.Start, NpgsqlDbType.Integer, cancellationToken).ConfigureAwait(false);
                await import.WriteAsync(e.End, NpgsqlDbType.Integer, cancellationToken).ConfigureAwait(false);
                await WriteNullableAsync(import, e.Section, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                if (e.Page is { } page)
                {
                    await import.WriteAsync(page, NpgsqlDbType.Integer, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    await import.WriteNullAsync(cancellationToken).ConfigureAwait(false);
                }

                await WriteNullableAsync(import, e.Title, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                await WriteNullableAsync(import, e.MetadataJson, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
            }

            await import.CompleteAsync(cancellationToken).ConfigureAwait(false);
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<ChunkLogEntry> ReadAfterAsync(string shardKey, long afterSeq, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand($"SELECT {ReadColumns} FROM chunk_log WHERE shard = @s AND seq > @after ORDER BY seq");
        command.Parameters.AddWithValue("s", shardKey);
        command.Parameters.AddWithValue("after", afterSeq);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            yield return Read(reader, withVector: true);
        }
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<ChunkLogEntry>> GetAsync(string shardKey, IReadOnlyList<long> seqs, CancellationToken cancellationToken = default)
    {
        if (seqs.Count == 0)
        {
            return [];
        }

        await using var command = dataSource.CreateCommand(
            "SELECT seq, op, doc_id, ordinal, text, NULL::real[], start_offset, end_offset, section, page, title, metadata " +
            "FROM chunk_log WHERE shard = @s AND op = 1 AND seq = ANY(@seqs)");
        command.Parameters.AddWithValue("s", shardKey);
        command.Parameters.AddWithValue("seqs", seqs as long[] ?? [.. seqs]);
        var result = new List<ChunkLogEntry>(seqs.Count);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            result.Add(Read(reader, withVector: false));
        }

        return result;
    }

    /// <inheritdoc />
    public async Task<long> MaxSeqAsync(string shardKey, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand("SELECT COALESCE(MAX(seq), 0) FROM chunk_log WHERE shard = @s");
        command.Parameters.AddWithValue("s", shardKey);
        return (long)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    /// <inheritdoc />
    public async Task CompactAsync(string shardKey, long watermark, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand("DELETE FROM chunk_log WHERE shard = @s AND op = 2 AND seq <= @w");
        command.Parameters.AddWithValue("s", shardKey);
        command.Parameters.AddWithValue("w", watermark);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task DeleteShardAsync(string shardKey, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand("DELETE FROM chunk_log WHERE shard = @s");
        command.Parameters.AddWithValue("s", shardKey);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static Task WriteNullableAsync<T>(NpgsqlBinaryImporter import, T? value, NpgsqlDbType type, CancellationToken cancellationToken)
        where T : class =>
        value is null ? import.WriteNullAsync(cancellationToken) : import.WriteAsync(value, type, cancellationToken);

    private static ChunkLogEntry Read(NpgsqlDataReader r, bool withVector) => new(
        r.GetInt64(0),
        (ChunkOp)r.GetInt16(1),
        r.GetString(2),
        r.GetInt32(3),
        r.IsDBNull(4) ? null : r.GetString(4),
        withVector && !r.IsDBNull(5) ? r.GetFieldValue<float[]>(5) : null,
        r.GetInt32(6),
        r.GetInt32(7),
        r.IsDBNull(8) ? null : r.GetString(8),
        r.IsDBNull(9) ? null : r.GetInt32(9),
        r.IsDBNull(10) ? null : r.GetString(10),
        r.IsDBNull(11) ? null : r.GetString(11));
}
