using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Data.Sqlite;

namespace RagOrleans.Grains.Storage;

/// <summary>The chunk log in the embedded SQLite file.</summary>
public sealed class SqliteChunkLog(SqliteDatabase database) : IChunkLog
{
    public async Task AppendAsync(string shardKey, IReadOnlyList<ChunkLogEntry> entries, string? replacedDocumentId, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        if (replacedDocumentId is not null)
        {
            await using var delete = connection.CreateCommand();
            delete.Transaction = tx;
            delete.CommandText = "DELETE FROM chunk_log WHERE shard = $s AND doc_id = $d AND op = 1";
            delete.Parameters.AddWithValue("$s", shardKey);
            delete.Parameters.AddWithValue("$d", replacedDocumentId);
            await delete.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await using var insert = connection.CreateCommand();
        insert.Transaction = tx;
        insert.CommandText = """
            INSERT INTO chunk_log (shard, seq, op, doc_id, ordinal, text, vector, start_offset, end_offset, section, page, title, metadata)
            VALUES ($shard, $seq, $op, $doc, $ord, $text, $vec, $start, $end, $section, $page, $title, $meta)
            """;
        var pShard = insert.Parameters.Add("$shard", SqliteType.Text);
        var pSeq = insert.Parameters.Add("$seq", SqliteType.Integer);
        var pOp = insert.Parameters.Add("$op", SqliteType.Integer);
        var pDoc = insert.Parameters.Add("$doc", SqliteType.Text);
        var pOrd = insert.Parameters.Add("$ord", SqliteType.Integer);
        var pText = insert.Parameters.Add("$text", SqliteType.Text);
        var pVec = insert.Parameters.Add("$vec", SqliteType.Blob);
        var pStart = insert.Parameters.Add("$start", SqliteType.Integer);
        var pEnd = insert.Parameters.Add("$end", SqliteType.Integer);
        var pSection = insert.Parameters.Add("$section", SqliteType.Text);
        var pPage = insert.Parameters.Add("$page", SqliteType.Integer);
        var pTitle = insert.Parameters.Add("$title", SqliteType.Text);
        var pMeta = insert.Parameters.Add("$meta", SqliteType.Text);
        foreach (var e in entries)
        {
            pShard.Value = shardKey;
            pSeq.Value = e.Seq;
            pOp.Value = (int)e.Op;
            pDoc.Value = e.DocumentId;
            pOrd.Value = e.Ordinal;
            pText.Value = (object?)e.Text ?? DBNull.Value;
            pVec.Value = e.Vector is null ? DBNull.Value : MemoryMarshal.AsBytes(e.Vector.AsSpan()).ToArray();
            pStart.Value = e.Start;
            pEnd.Value = e.End;
            pSection.Value = (object?)e.Section ?? DBNull.Value;
            pPage.Value = e.Page.HasValue ? e.Page.Value : DBNull.Value;
            pTitle.Value = (object?)e.Title ?? DBNull.Value;
            pMeta.Value = (object?)e.MetadataJson ?? DBNull.Value;
            await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async IAsyncEnumerable<ChunkLogEntry> ReadAfterAsync(string shardKey, long afterSeq, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = """
            SELECT seq, op, doc_id, ordinal, text, vector, start_offset, end_offset, section, page, title, metadata
            FROM chunk_log WHERE shard = $s AND seq > $after ORDER BY seq
            """;
        command.Parameters.AddWithValue("$s", shardKey);
        command.Parameters.AddWithValue("$after", afterSeq);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            yield return Read(reader, withVector: true);
        }
    }

    public async Task<IReadOnlyList<ChunkLogEntry>> GetAsync(string shardKey, IReadOnlyList<long> seqs, CancellationToken cancellationToken = default)
    {
        if (seqs.Count == 0)
        {
            return [];
        }

        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        var names = new string[seqs.Count];
        for (var i = 0; i < seqs.Count; i++)
        {
            names[i] = "$q" + i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            command.Parameters.AddWithValue(names[i], seqs[i]);
        }

        command.CommandText = $"""
            SELECT seq, op, doc_id, ordinal, text, NULL, start_offset, end_offset, section, page, title, metadata
            FROM chunk_log WHERE shard = $s AND op = 1 AND seq IN ({string.Join(',', names)})
            """;
        command.Parameters.AddWithValue("$s", shardKey);
        var result = new List<ChunkLogEntry>(seqs.Count);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            result.Add(Read(reader, withVector: false));
        }

        return result;
    }

    public async Task<long> MaxSeqAsync(string shardKey, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT COALESCE(MAX(seq), 0) FROM chunk_log WHERE shard = $s";
        command.Parameters.AddWithValue("$s", shardKey);
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false), System.Globalization.CultureInfo.InvariantCulture);
    }

    public async Task CompactAsync(string shardKey, long watermark, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = "DELETE FROM chunk_log WHERE shard = $s AND op = 2 AND seq <= $w";
        command.Parameters.AddWithValue("$s", shardKey);
        command.Parameters.AddWithValue("$w", watermark);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task DeleteShardAsync(string shardKey, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = "DELETE FROM chunk_log WHERE shard = $s";
        command.Parameters.AddWithValue("$s", shardKey);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static ChunkLogEntry Read(SqliteDataReader r, bool withVector)
    {
        float[]? vector = null;
        if (withVector && !r.IsDBNull(5))
        {
            var bytes = (byte[])r.GetValue(5);
            vector = MemoryMarshal.Cast<byte, float>(bytes).ToArray();
        }

        return new ChunkLogEntry(
            r.GetInt64(0), (ChunkOp)r.GetInt32(1), r.GetString(2), r.GetInt32(3),
            r.IsDBNull(4) ? null : r.GetString(4), vector, r.GetInt32(6), r.GetInt32(7),
            r.IsDBNull(8) ? null : r.GetString(8), r.IsDBNull(9) ? null : r.GetInt32(9),
            r.IsDBNull(10) ? null : r.GetString(10), r.IsDBNull(11) ? null : r.GetString(11));
    }
}
