using System.Runtime.InteropServices;
using Npgsql;
using NpgsqlTypes;

namespace RagOrleans.Grains.Storage.Postgres;

/// <summary>
/// Uploaded content in PostgreSQL (cluster mode), as 1 MiB <c>bytea</c> segments (<c>blob_segments</c>).
/// </summary>
/// <remarks>
/// Why segments in PostgreSQL rather than a shared volume: frontends and silos stay stateless pods that need no
/// ReadWriteMany volume (which many Kubernetes clusters lack); blobs share the database's durability, backups and
/// transactions with the document records; and a blob of any size moves through memory one segment at a time,
/// on write (one row per segment in one transaction, so a blob appears whole or not at all) and on read (one
/// row per fetch). Large objects (<c>lo_*</c>) would also stream, but they escape row-level cleanup: a deleted row
/// leaks its object unless every path remembers to unlink it. The price is database size, bounded because parts
/// are removed on complete or abort. Rows of the version-1 <c>blobs</c> table (one <c>bytea</c> per key) are
/// still read, and replaced or removed by any write.
/// </remarks>
public sealed class PostgresBlobStore(NpgsqlDataSource dataSource) : IBlobStore
{
    /// <summary>Bytes per segment row.</summary>
    public const int SegmentBytes = 1 << 20;

    /// <inheritdoc />
    public Task PutAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken = default)
    {
        var stream = MemoryMarshal.TryGetArray(content, out var array)
            ? new MemoryStream(array.Array!, array.Offset, array.Count, writable: false)
            : new MemoryStream(content.ToArray(), writable: false);
        return PutStreamAsync(key, stream, cancellationToken);
    }

    /// <inheritdoc />
    public async Task<long> PutStreamAsync(string key, Stream content, CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await DeleteRowsAsync(connection, tx, key, cancellationToken).ConfigureAwait(false);
        await using var insert = new NpgsqlCommand("INSERT INTO blob_segments (key, seq, data) VALUES (@k, @s, @d)", connection, tx);
        insert.Parameters.AddWithValue("k", key);
        var seq = insert.Parameters.Add("s", NpgsqlDbType.Integer);
        var data = new NpgsqlParameter<ReadOnlyMemory<byte>>("d", NpgsqlDbType.Bytea);
        insert.Parameters.Add(data);
        var buffer = new byte[SegmentBytes];
        long total = 0;
        var index = 0;
        while (true)
        {
            var filled = await content.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
            if (filled == 0 && index > 0)
            {
                break;
            }

            // An empty blob still gets one (empty) segment, so it exists.
            seq.Value = index++;
            data.TypedValue = buffer.AsMemory(0, filled);
            await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            total += filled;
            if (filled < buffer.Length)
            {
                break;
            }
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return total;
    }

    /// <inheritdoc />
    public async Task<byte[]?> GetAsync(string key, CancellationToken cancellationToken = default)
    {
        await using var stream = await OpenReadAsync(key, cancellationToken).ConfigureAwait(false);
        if (stream is null)
        {
            return null;
        }

        using var copy = new MemoryStream();
        await stream.CopyToAsync(copy, cancellationToken).ConfigureAwait(false);
        return copy.ToArray();
    }

    /// <inheritdoc />
    public async Task<Stream?> OpenReadAsync(string key, CancellationToken cancellationToken = default)
    {
        await using (var count = dataSource.CreateCommand("SELECT count(*) FROM blob_segments WHERE key = @k"))
        {
            count.Parameters.AddWithValue("k", key);
            var segments = (long)(await count.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
            if (segments > 0)
            {
                return new SegmentStream(dataSource, key, (int)segments);
            }
        }

        await using var legacy = dataSource.CreateCommand("SELECT data FROM blobs WHERE key = @k");
        legacy.Parameters.AddWithValue("k", key);
        await using var reader = await legacy.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false)
            ? new MemoryStream(reader.GetFieldValue<byte[]>(0), writable: false)
            : null;
    }

    /// <inheritdoc />
    public async Task<bool> MoveAsync(string from, string to, CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using (var exists = new NpgsqlCommand(
            "SELECT EXISTS (SELECT 1 FROM blob_segments WHERE key = @k) OR EXISTS (SELECT 1 FROM blobs WHERE key = @k)", connection, tx))
        {
            exists.Parameters.AddWithValue("k", from);
            if (!(bool)(await exists.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!)
            {
                // Nothing to move: the target stays as it is.
                return false;
            }
        }

        await DeleteRowsAsync(connection, tx, to, cancellationToken).ConfigureAwait(false);
        await using var move = new NpgsqlCommand(
            """
            UPDATE blob_segments SET key = @to WHERE key = @from;
            UPDATE blobs SET key = @to WHERE key = @from;
            """, connection, tx);
        move.Parameters.AddWithValue("from", from);
        move.Parameters.AddWithValue("to", to);
        await move.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        return true;
    }

    /// <inheritdoc />
    public async Task DeleteAsync(string key, CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await DeleteRowsAsync(connection, tx, key, cancellationToken).ConfigureAwait(false);
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task DeletePrefixAsync(string prefix, CancellationToken cancellationToken = default)
    {
        // Keys are in the C collation, so "prefix/" .. "prefix0" ('0' follows '/') is exactly the keys under
        // the prefix, as an index range, with no LIKE escaping of '%' or '_' in ids.
        await using var command = dataSource.CreateCommand(
            """
            DELETE FROM blobs WHERE key >= @from AND key < @to;
            DELETE FROM blob_segments WHERE key >= @from AND key < @to;
            """);
        command.Parameters.AddWithValue("from", prefix + "/");
        command.Parameters.AddWithValue("to", prefix + "0");
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task DeleteRowsAsync(NpgsqlConnection connection, NpgsqlTransaction tx, string key, CancellationToken cancellationToken)
    {
        await using var delete = new NpgsqlCommand("DELETE FROM blobs WHERE key = @k; DELETE FROM blob_segments WHERE key = @k;", connection, tx);
        delete.Parameters.AddWithValue("k", key);
        await delete.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads a segmented blob one segment row at a time.</summary>
    private sealed class SegmentStream(NpgsqlDataSource dataSource, string key, int segments) : ReadOnlyStream
    {
        private byte[] _segment = [];
        private int _offset;
        private int _next;

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            while (_offset == _segment.Length)
            {
                if (_next == segments)
                {
                    return 0;
                }

                await using var command = dataSource.CreateCommand("SELECT data FROM blob_segments WHERE key = @k AND seq = @s");
                command.Parameters.AddWithValue("k", key);
                command.Parameters.AddWithValue("s", _next++);
                _segment = (byte[]?)await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false)
                    ?? throw new IOException($"Blob '{key}' lost segment {_next - 1} while being read.");
                _offset = 0;
            }

            var n = Math.Min(buffer.Length, _segment.Length - _offset);
            _segment.AsMemory(_offset, n).CopyTo(buffer);
            _offset += n;
            return n;
        }

    }
}
