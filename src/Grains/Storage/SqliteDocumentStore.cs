using Microsoft.Data.Sqlite;
using RagOrleans.Abstractions;

namespace RagOrleans.Grains.Storage;

/// <summary>The document registry in the embedded SQLite file.</summary>
public sealed class SqliteDocumentStore(SqliteDatabase database) : IDocumentStore
{
    private const string Columns = "id, title, status, chunk_count, error, source_type, file_name, size_bytes, content_hash, metadata, created_at, updated_at, attempts, step, progress";

    public async Task UpsertAsync(string tenantId, string collection, DocumentInfo d, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = $"""
            INSERT OR REPLACE INTO documents (tenant, collection, {Columns})
            VALUES ($t, $c, $id, $title, $status, $chunks, $error, $type, $file, $size, $hash, $meta, $created, $updated, $attempts, $step, $progress)
            """;
        Bind(command, tenantId, collection, d);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<bool> UpdateAsync(string tenantId, string collection, DocumentInfo d, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = """
            UPDATE documents SET title = $title, status = $status, chunk_count = $chunks, error = $error, source_type = $type,
                file_name = $file, size_bytes = $size, content_hash = $hash, metadata = $meta, created_at = $created,
                updated_at = $updated, attempts = $attempts, step = $step, progress = $progress
            WHERE tenant = $t AND collection = $c AND id = $id
            """;
        Bind(command, tenantId, collection, d);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) > 0;
    }

    public async Task<bool> UpdateProgressAsync(
        string tenantId, string collection, string documentId, DocumentStep step, int? progressPercent, DateTimeOffset updatedAt,
        CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = KeyedCommand(connection,
            "UPDATE documents SET step = $step, progress = $progress, updated_at = $updated WHERE tenant = $t AND collection = $c AND id = $id",
            tenantId, collection, documentId);
        command.Parameters.AddWithValue("$step", (int)step);
        command.Parameters.AddWithValue("$progress", (object?)progressPercent ?? DBNull.Value);
        command.Parameters.AddWithValue("$updated", updatedAt.ToUnixTimeMilliseconds());
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) > 0;
    }

    /// <summary>A command on one document's row: $t, $c and $id bound.</summary>
    private static SqliteCommand KeyedCommand(SqliteConnection connection, string sql, string tenantId, string collection, string documentId)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Parameters.AddWithValue("$t", tenantId);
        command.Parameters.AddWithValue("$c", collection);
        command.Parameters.AddWithValue("$id", documentId);
        return command;
    }

    private static void Bind(SqliteCommand command, string tenantId, string collection, DocumentInfo d)
    {
        command.Parameters.AddWithValue("$t", tenantId);
        command.Parameters.AddWithValue("$c", collection);
        command.Parameters.AddWithValue("$id", d.Id);
        command.Parameters.AddWithValue("$title", (object?)d.Title ?? DBNull.Value);
        command.Parameters.AddWithValue("$status", (int)d.Status);
        command.Parameters.AddWithValue("$chunks", d.ChunkCount);
        command.Parameters.AddWithValue("$error", (object?)d.Error ?? DBNull.Value);
        command.Parameters.AddWithValue("$type", d.SourceType);
        command.Parameters.AddWithValue("$file", (object?)d.FileName ?? DBNull.Value);
        command.Parameters.AddWithValue("$size", d.SizeBytes);
        command.Parameters.AddWithValue("$hash", d.ContentHash);
        command.Parameters.AddWithValue("$meta", (object?)d.MetadataJson ?? DBNull.Value);
        command.Parameters.AddWithValue("$created", d.CreatedAt.ToUnixTimeMilliseconds());
        command.Parameters.AddWithValue("$updated", d.UpdatedAt.ToUnixTimeMilliseconds());
        command.Parameters.AddWithValue("$attempts", d.Attempts);
        command.Parameters.AddWithValue("$step", (int)d.Step);
        command.Parameters.AddWithValue("$progress", (object?)d.ProgressPercent ?? DBNull.Value);
    }

    public async Task<DocumentInfo?> GetAsync(string tenantId, string collection, string documentId, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = KeyedCommand(connection, $"SELECT {Columns} FROM documents WHERE tenant = $t AND collection = $c AND id = $id",
            tenantId, collection, documentId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? Read(reader) : null;
    }

    public async Task<IReadOnlyList<DocumentInfo>> ListAsync(
        string tenantId, string collection, string? afterId, int limit, DocumentStatus? status = null, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = status is null
            ? $"SELECT {Columns} FROM documents WHERE tenant = $t AND collection = $c AND id > $after ORDER BY id LIMIT $limit"
            : $"SELECT {Columns} FROM documents WHERE tenant = $t AND collection = $c AND status = $status AND id > $after ORDER BY id LIMIT $limit";
        command.Parameters.AddWithValue("$status", (int)(status ?? 0));
        command.Parameters.AddWithValue("$t", tenantId);
        command.Parameters.AddWithValue("$c", collection);
        command.Parameters.AddWithValue("$after", afterId ?? "");
        command.Parameters.AddWithValue("$limit", limit);
        var result = new List<DocumentInfo>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            result.Add(Read(reader));
        }

        return result;
    }

    public async Task<DocumentInfo?> FindByHashAsync(string tenantId, string collection, string contentHash, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT {Columns} FROM documents WHERE tenant = $t AND collection = $c AND content_hash = $h ORDER BY created_at, id LIMIT 1";
        command.Parameters.AddWithValue("$t", tenantId);
        command.Parameters.AddWithValue("$c", collection);
        command.Parameters.AddWithValue("$h", contentHash);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? Read(reader) : null;
    }

    public async Task<bool> DeleteAsync(string tenantId, string collection, string documentId, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = KeyedCommand(connection, "DELETE FROM documents WHERE tenant = $t AND collection = $c AND id = $id",
            tenantId, collection, documentId);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) > 0;
    }

    public async Task DeleteCollectionAsync(string tenantId, string collection, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = "DELETE FROM documents WHERE tenant = $t AND collection = $c";
        command.Parameters.AddWithValue("$t", tenantId);
        command.Parameters.AddWithValue("$c", collection);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<(long Documents, long Chunks)> CountAsync(string tenantId, string collection, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT COUNT(*), COALESCE(SUM(CASE WHEN status = 2 THEN chunk_count ELSE 0 END), 0) FROM documents WHERE tenant = $t AND collection = $c";
        command.Parameters.AddWithValue("$t", tenantId);
        command.Parameters.AddWithValue("$c", collection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    public async Task<IReadOnlyList<(string TenantId, string Collection, string DocumentId)>> ListUnfinishedAsync(int limit, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT tenant, collection, id FROM documents WHERE status IN (0, 1) LIMIT $limit";
        command.Parameters.AddWithValue("$limit", limit);
        var result = new List<(string, string, string)>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            result.Add((reader.GetString(0), reader.GetString(1), reader.GetString(2)));
        }

        return result;
    }

    private static DocumentInfo Read(SqliteDataReader r) => new(
        r.GetString(0),
        r.IsDBNull(1) ? null : r.GetString(1),
        (DocumentStatus)r.GetInt32(2),
        r.GetInt32(3),
        r.IsDBNull(4) ? null : r.GetString(4),
        r.GetString(5),
        r.IsDBNull(6) ? null : r.GetString(6),
        r.GetInt64(7),
        r.GetString(8),
        r.IsDBNull(9) ? null : r.GetString(9),
        DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(10)),
        DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(11)),
        r.GetInt32(12),
        (DocumentStep)r.GetInt32(13),
        r.IsDBNull(14) ? null : r.GetInt32(14));
}
