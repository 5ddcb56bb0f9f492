using System.Data;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using NpgsqlTypes;

namespace RagOrleans.Grains.Storage.Postgres;

/// <summary>Settings of <see cref="PostgresSnapshotStore"/>.</summary>
/// <param name="SegmentBytes">Size of one <c>bytea</c> segment; memory use per save is one segment.</param>
public sealed record PostgresSnapshotOptions(int SegmentBytes = PostgresSnapshotOptions.DefaultSegmentBytes)
{
    /// <summary>4 MiB: large enough that per-row overhead is noise, small enough to keep memory flat.</summary>
    public const int DefaultSegmentBytes = 4 << 20;
}

/// <summary>
/// Index snapshots in PostgreSQL as bounded-size <c>bytea</c> segments under a per-shard manifest.
/// </summary>
/// <remarks>
/// A save streams the writer's output into segments of a fresh version (from a sequence) and, in the
/// same transaction, points the shard's manifest at that version, so the manifest can only ever name
/// segments that are committed: a writer that fails or a process that dies mid-save rolls everything
/// back and the previous snapshot stays current. The switch is guarded by (watermark, version), so a
/// stale writer cannot replace a newer snapshot. Superseded versions are deleted after the commit.
/// Reads run in one REPEATABLE READ transaction, so a concurrent save deleting the old version does
/// not pull segments out from under a reader.
/// </remarks>
public sealed class PostgresSnapshotStore(NpgsqlDataSource dataSource, PostgresSnapshotOptions? options = null, ILogger<PostgresSnapshotStore>? logger = null)
    : ISnapshotStore
{
    private readonly int _segmentBytes = options?.SegmentBytes is > 0 and var size ? size : PostgresSnapshotOptions.DefaultSegmentBytes;
    private readonly ILogger _logger = logger ?? NullLogger<PostgresSnapshotStore>.Instance;

    /// <inheritdoc />
    public async Task SaveAsync(string shardKey, long watermark, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken = default)
    {
        long current;
        long version;
        await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false))
        await using (var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false))
        {
            await using (var next = new NpgsqlCommand("SELECT nextval('snapshot_version_seq')", connection, tx))
            {
                version = (long)(await next.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
            }

            long bytes;
            int segments;
            byte[] sha256;
            var sink = new SegmentWriteStream(connection, tx, shardKey, version, _segmentBytes);
            try
            {
                await write(sink, cancellationToken).ConfigureAwait(false);
                await sink.CompleteAsync(cancellationToken).ConfigureAwait(false);
                (bytes, segments, sha256) = (sink.TotalBytes, sink.Segments, sink.Hash);
            }
            finally
            {
                await sink.ReleaseAsync().ConfigureAwait(false);
            }

            await using (var manifest = new NpgsqlCommand(
                """
                WITH switched AS (
                    INSERT INTO snapshot_manifest AS m (shard, version, watermark, segments, bytes, sha256)
                    VALUES (@s, @v, @w, @n, @b, @h)
                    ON CONFLICT (shard) DO UPDATE
                    SET version = EXCLUDED.version, watermark = EXCLUDED.watermark, segments = EXCLUDED.segments,
                        bytes = EXCLUDED.bytes, sha256 = EXCLUDED.sha256, created_at = now()
                    WHERE (m.watermark, m.version) < (EXCLUDED.watermark, EXCLUDED.version)
                    RETURNING m.version)
                SELECT COALESCE((SELECT version FROM switched), (SELECT version FROM snapshot_manifest WHERE shard = @s))
                """, connection, tx))
            {
                manifest.Parameters.AddWithValue("s", shardKey);
                manifest.Parameters.AddWithValue("v", version);
                manifest.Parameters.AddWithValue("w", watermark);
                manifest.Parameters.AddWithValue("n", segments);
                manifest.Parameters.AddWithValue("b", bytes);
                manifest.Parameters.AddWithValue("h", sha256);
                current = (long)(await manifest.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
            }

            await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
            if (current != version)
            {
                _logger.LogWarning(
                    "Snapshot of {Shard} at watermark {Watermark} lost to newer version {Current}; discarding version {Version}",
                    shardKey, watermark, current, version);
            }
        }

        // After the commit: everything at or below our version except the current one is superseded. Versions
        // above ours belong to writers still in flight and are theirs to clean up.
        await using var cleanup = dataSource.CreateCommand("DELETE FROM snapshot_segments WHERE shard = @s AND version <= @v AND version <> @current");
        cleanup.Parameters.AddWithValue("s", shardKey);
        cleanup.Parameters.AddWithValue("v", version);
        cleanup.Parameters.AddWithValue("current", current);
        await cleanup.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<SnapshotHandle?> OpenLatestAsync(string shardKey, CancellationToken cancellationToken = default)
    {
        var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        NpgsqlTransaction? tx = null;
        NpgsqlCommand? command = null;
        NpgsqlDataReader? reader = null;
        try
        {
            tx = await connection.BeginTransactionAsync(IsolationLevel.RepeatableRead, cancellationToken).ConfigureAwait(false);
            long version, watermark, bytes;
            int segments;
            byte[] sha256;
            await using (var manifest = new NpgsqlCommand(
                "SELECT version, watermark, segments, bytes, sha256 FROM snapshot_manifest WHERE shard = @s", connection, tx))
            {
                manifest.Parameters.AddWithValue("s", shardKey);
                await using var row = await manifest.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                if (!await row.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    await DisposeAllAsync(null, null, tx, connection).ConfigureAwait(false);
                    return null;
                }

                (version, watermark, segments, bytes, sha256) =
                    (row.GetInt64(0), row.GetInt64(1), row.GetInt32(2), row.GetInt64(3), row.GetFieldValue<byte[]>(4));
            }

            command = new NpgsqlCommand("SELECT data FROM snapshot_segments WHERE shard = @s AND version = @v ORDER BY seq", connection, tx);
            command.Parameters.AddWithValue("s", shardKey);
            command.Parameters.AddWithValue("v", version);
            // SequentialAccess: each segment is streamed off the wire instead of buffered whole.
            reader = await command.ExecuteReaderAsync(CommandBehavior.SequentialAccess, cancellationToken).ConfigureAwait(false);
            var stream = new SegmentReadStream(connection, tx, command, reader, shardKey, segments, bytes, sha256);
            return new SnapshotHandle(watermark, stream);
        }
        catch
        {
            await DisposeAllAsync(reader, command, tx, connection).ConfigureAwait(false);
            throw;
        }
    }

    /// <inheritdoc />
    public async Task DeleteAsync(string shardKey, CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using (var command = new NpgsqlCommand("DELETE FROM snapshot_manifest WHERE shard = @s", connection, tx))
        {
            command.Parameters.AddWithValue("s", shardKey);
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await using (var command = new NpgsqlCommand("DELETE FROM snapshot_segments WHERE shard = @s", connection, tx))
        {
            command.Parameters.AddWithValue("s", shardKey);
            await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async ValueTask DisposeAllAsync(NpgsqlDataReader? reader, NpgsqlCommand? command, NpgsqlTransaction? tx, NpgsqlConnection connection)
    {
        if (reader is not null)
        {
            await reader.DisposeAsync().ConfigureAwait(false);
        }

        if (command is not null)
        {
            await command.DisposeAsync().ConfigureAwait(false);
        }

        if (tx is not null)
        {
            await tx.DisposeAsync().ConfigureAwait(false);
        }

        await connection.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Cuts what the snapshot writer produces into segment rows of the open transaction. Writers often
    /// dispose the stream they were given (a BinaryWriter without leaveOpen) while the store still needs
    /// the buffered tail, so disposing it does nothing; the store releases it with <see cref="ReleaseAsync"/>.
    /// </summary>
    private sealed class SegmentWriteStream : Stream
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private readonly NpgsqlCommand _insert;
        private readonly NpgsqlParameter<int> _seq;
        private readonly NpgsqlParameter<ReadOnlyMemory<byte>> _data;
        private readonly byte[] _buffer;
        private int _filled;
        private bool _completed;

        public SegmentWriteStream(NpgsqlConnection connection, NpgsqlTransaction tx, string shard, long version, int segmentBytes)
        {
            _buffer = new byte[segmentBytes];
            _insert = new NpgsqlCommand("INSERT INTO snapshot_segments (shard, version, seq, data) VALUES (@s, @v, @q, @d)", connection, tx);
            _insert.Parameters.AddWithValue("s", shard);
            _insert.Parameters.AddWithValue("v", version);
            _seq = new NpgsqlParameter<int>("q", NpgsqlDbType.Integer);
            _data = new NpgsqlParameter<ReadOnlyMemory<byte>>("d", NpgsqlDbType.Bytea);
            _insert.Parameters.Add(_seq);
            _insert.Parameters.Add(_data);
        }

        public long TotalBytes { get; private set; }

        public int Segments { get; private set; }

        public byte[] Hash { get; private set; } = [];

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => !_completed;

        public override long Length => TotalBytes;

        public override long Position
        {
            get => TotalBytes;
            set => throw new NotSupportedException();
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            EnsureWritable();
            while (!buffer.IsEmpty)
            {
                var n = Append(buffer);
                buffer = buffer[n..];
                if (_filled == _buffer.Length)
                {
                    PrepareSegment();
                    _insert.ExecuteNonQuery();
                    _filled = 0;
                }
            }
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            EnsureWritable();
            while (!buffer.IsEmpty)
            {
                var n = Append(buffer.Span);
                buffer = buffer[n..];
                if (_filled == _buffer.Length)
                {
                    PrepareSegment();
                    await _insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                    _filled = 0;
                }
            }
        }

        // Flushing mid-stream would only produce short segments; segments go out when full or at the end.
        public override void Flush()
        {
        }

        public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        /// <summary>Writes the last partial segment and seals the stream.</summary>
        public async Task CompleteAsync(CancellationToken cancellationToken)
        {
            EnsureWritable();
            if (_filled > 0)
            {
                PrepareSegment();
                await _insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                _filled = 0;
            }

            Hash = _hash.GetHashAndReset();
            _completed = true;
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        /// <summary>Frees the command and hash; the store calls it, never the writer.</summary>
        public async ValueTask ReleaseAsync()
        {
            await _insert.DisposeAsync().ConfigureAwait(false);
            _hash.Dispose();
            await base.DisposeAsync().ConfigureAwait(false);
        }

        private int Append(ReadOnlySpan<byte> source)
        {
            var n = Math.Min(source.Length, _buffer.Length - _filled);
            source[..n].CopyTo(_buffer.AsSpan(_filled));
            _hash.AppendData(source[..n]);
            _filled += n;
            TotalBytes += n;
            return n;
        }

        private void PrepareSegment()
        {
            _seq.TypedValue = Segments++;
            _data.TypedValue = _buffer.AsMemory(0, _filled);
        }

        private void EnsureWritable()
        {
            if (_completed)
            {
                throw new InvalidOperationException("The snapshot stream is already complete.");
            }
        }
    }

    /// <summary>Reads a snapshot's segments in order off one open reader and checks size and hash at the end.</summary>
    private sealed class SegmentReadStream(
        NpgsqlConnection connection,
        NpgsqlTransaction tx,
        NpgsqlCommand command,
        NpgsqlDataReader reader,
        string shard,
        int expectedSegments,
        long expectedBytes,
        byte[] expectedSha256) : Stream
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        private Stream? _segment;
        private int _segments;
        private long _position;
        private bool _finished;
        private bool _disposed;

        public override bool CanRead => !_disposed;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => expectedBytes;

        public override long Position
        {
            get => _position;
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            while (!_finished && !buffer.IsEmpty)
            {
                if (_segment is null)
                {
                    if (!reader.Read())
                    {
                        Finish();
                        break;
                    }

                    _segment = reader.GetStream(0);
                    _segments++;
                }

                var n = _segment.Read(buffer);
                if (n > 0)
                {
                    return Consumed(buffer[..n]);
                }

                _segment.Dispose();
                _segment = null;
            }

            return 0;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            while (!_finished && !buffer.IsEmpty)
            {
                if (_segment is null)
                {
                    if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        Finish();
                        break;
                    }

                    _segment = await reader.GetStreamAsync(0, cancellationToken).ConfigureAwait(false);
                    _segments++;
                }

                var n = await _segment.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
                if (n > 0)
                {
                    return Consumed(buffer.Span[..n]);
                }

                await _segment.DisposeAsync().ConfigureAwait(false);
                _segment = null;
            }

            return 0;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override async ValueTask DisposeAsync()
        {
            if (!_disposed)
            {
                _disposed = true;
                if (_segment is not null)
                {
                    await _segment.DisposeAsync().ConfigureAwait(false);
                }

                _hash.Dispose();
                await DisposeAllAsync(reader, command, tx, connection).ConfigureAwait(false);
            }

            GC.SuppressFinalize(this);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing && !_disposed)
            {
                _disposed = true;
                _segment?.Dispose();
                _hash.Dispose();
                reader.Dispose();
                command.Dispose();
                tx.Dispose();
                connection.Dispose();
            }

            base.Dispose(disposing);
        }

        private int Consumed(ReadOnlySpan<byte> data)
        {
            _hash.AppendData(data);
            _position += data.Length;
            return data.Length;
        }

        private void Finish()
        {
            _finished = true;
            var sha = _hash.GetHashAndReset();
            if (_segments != expectedSegments || _position != expectedBytes || !sha.AsSpan().SequenceEqual(expectedSha256))
            {
                throw new InvalidDataException(
                    $"Snapshot of '{shard}' is damaged: read {_segments} segments and {_position} bytes, " +
                    $"expected {expectedSegments} and {expectedBytes}, or its SHA-256 differs.");
            }
        }
    }
}
