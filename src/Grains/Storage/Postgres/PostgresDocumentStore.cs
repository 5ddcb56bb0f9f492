using Npgsql;
using RagOrleans.Abstractions;

namespace RagOrleans.Grains.Storage.Postgres;

/// <summary>The document registry in PostgreSQL (cluster mode).</summary>
public sealed class PostgresDocumentStore(NpgsqlDataSource dataSource) : IDocumentStore
{
    private const string Columns = "id, title, status, chunk_count, error, source_type, file_name, size_bytes, content_hash, metadata, created_at, updated_at, attempts, step, progress";

    /// <inheritdoc />
    public async Task UpsertAsync(string tenantId, string collection, DocumentInfo document, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand($"""
            INSERT INTO documents (tenant, collection, {Columns})
            VALUES (@t, @c, @id, @title, @status, @chunks, @error, @type, @file, @size, @hash, @meta, @created, @updated, @attempts, @step, @progress)
            ON CONFLICT (tenant, collection, id) DO UPDATE SET
                title = EXCLUDED.title, status = EXCLUDED.status, chunk_count = EXCLUDED.chunk_count, error = EXCLUDED.error,
                source_type = EXCLUDED.source_type, file_name = EXCLUDED.file_name, size_bytes = EXCLUDED.size_bytes,
                content_hash = EXCLUDED.content_hash, metadata = EXCLUDED.metadata, created_at = EXCLUDED.created_at,
                updated_at = EXCLUDED.updated_at, attempts = EXCLUDED.attempts,
                step = EXCLUDED.step, progress = EXCLUDED.progress
            """);
        Bind(command, tenantId, collection, document);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<bool> UpdateAsync(string tenantId, string collection, DocumentInfo document, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand("""
            UPDATE documents SET title = @title, status = @status, chunk_count = @chunks, error = @error, source_type = @type,
                file_name = @file, size_bytes = @size, content_hash = @hash, metadata = @meta, created_at = @created,
                updated_at = @updated, attempts = @attempts, step = @step, progress = @progress
            WHERE tenant = @t AND collection = @c AND id = @id
            """);
        Bind(command, tenantId, collection, document);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) > 0;
    }

    /// <inheritdoc />
    public async Task<bool> UpdateProgressAsync(
        string tenantId, string collection, string documentId, DocumentStep step, int? progressPercent, DateTimeOffset updatedAt,
        CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand(
            "UPDATE documents SET step = @step, progress = @progress, updated_at = @updated WHERE tenant = @t AND collection = @c AND id = @id");
        var p = command.Parameters;
        p.AddWithValue("t", tenantId);
        p.AddWithValue("c", collection);
        p.AddWithValue("id", documentId);
        p.AddWithValue("step", (int)step);
        p.Add(new NpgsqlParameter<int?>("progress", NpgsqlTypes.NpgsqlDbType.Integer) { TypedValue = progressPercent });
        p.AddWithValue("updated", updatedAt.ToUniversalTime());
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) > 0;
    }

    private static void Bind(NpgsqlCommand command, string tenantId, string collection, DocumentInfo document)
    {
        var p = command.Parameters;
        p.AddWithValue("t", tenantId);
        p.AddWithValue("c", collection);
        p.AddWithValue("id", document.Id);
        p.AddWithValue("title", (object?)document.Title ?? DBNull.Value);
        p.AddWithValue("status", (int)document.Status);
        p.AddWithValue("chunks", document.ChunkCount);
        p.AddWithValue("error", (object?)document.Error ?? DBNull.Value);
        p.AddWithValue("type", document.SourceType);
        p.AddWithValue("file", (object?)document.FileName ?? DBNull.Value);
        p.AddWithValue("size", document.SizeBytes);
        p.AddWithValue("hash", document.ContentHash);
        p.AddWithValue("meta", (object?)document.MetadataJson ?? DBNull.Value);
        // Npgsql accepts only offset-zero DateTimeOffsets for timestamptz.
        p.AddWithValue("created", document.CreatedAt.ToUniversalTime());
        p.AddWithValue("updated", document.UpdatedAt.ToUniversalTime());
        p.AddWithValue("attempts", document.Attempts);
        p.AddWithValue("step", (int)document.Step);
        p.Add(new NpgsqlParameter<int?>("progress", NpgsqlTypes.NpgsqlDbType.Integer) { TypedValue = document.ProgressPercent });
    }

    /// <inheritdoc />
    public async Task<DocumentInfo?> GetAsync(string tenantId, string collection, string documentId, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand($"SELECT {Columns} FROM documents WHERE tenant = @t AND collection = @c AND id = @id");
        command.Parameters.AddWithValue("t", tenantId);
        command.Parameters.AddWithValue("c", collection);
        command.Parameters.AddWithValue("id", documentId);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? Read(reader) : null;
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<DocumentInfo>> ListAsync(
        string tenantId, string collection, string? afterId, int limit, DocumentStatus? status = null, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand(status is null
            ? $"SELECT {Columns} FROM documents WHERE tenant = @t AND collection = @c AND id > @after ORDER BY id LIMIT @limit"
            : $"SELECT {Columns} FROM documents WHERE tenant = @t AND collection = @c AND status = @status AND id > @after ORDER BY id LIMIT @limit");
        command.Parameters.AddWithValue("status", (int)(status ?? 0));
        command.Parameters.AddWithValue("t", tenantId);
        command.Parameters.AddWithValue("c", collection);
        command.Parameters.AddWithValue("after", afterId ?? "");
        command.Parameters.AddWithValue("limit", limit);
        var result = new List<DocumentInfo>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            result.Add(Read(reader));
        }

        return result;
    }

    /// <inheritdoc />
    public async Task<DocumentInfo?> FindByHashAsync(string tenantId, string collection, string contentHash, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand(
            $"SELECT {Columns} FROM documents WHERE tenant = @t AND collection = @c AND content_hash = @h ORDER BY created_at, id LIMIT 1");
        command.Parameters.AddWithValue("t", tenantId);
        command.Parameters.AddWithValue("c", collection);
        command.Parameters.AddWithValue("h", contentHash);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        return await reader.ReadAsync(cancellationToken).ConfigureAwait(false) ? Read(reader) : null;
    }

    /// <inheritdoc />
    public async Task<bool> DeleteAsync(string tenantId, string collection, string documentId, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand("DELETE FROM documents WHERE tenant = @t AND collection = @c AND id = @id");
        command.Parameters.AddWithValue("t", tenantId);
        command.Parameters.AddWithValue("c", collection);
        command.Parameters.AddWithValue("id", documentId);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) > 0;
    }

    /// <inheritdoc />
    public async Task DeleteCollectionAsync(string tenantId, string collection, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand("DELETE FROM documents WHERE tenant = @t AND collection = @c");
        command.Parameters.AddWithValue("t", tenantId);
        command.Parameters.AddWithValue("c", collection);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<(long Documents, long Chunks)> CountAsync(string tenantId, string collection, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand(
            "SELECT COUNT(*), COALESCE(SUM(chunk_count) FILTER (WHERE status = 2), 0)::bigint FROM documents WHERE tenant = @t AND collection = @c");
        command.Parameters.AddWithValue("t", tenantId);
        command.Parameters.AddWithValue("c", collection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<(string TenantId, string Collection, string DocumentId)>> ListUnfinishedAsync(int limit, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand("SELECT tenant, collection, id FROM documents WHERE status IN (0, 1) LIMIT @limit");
        command.Parameters.AddWithValue("limit", limit);
        var result = new List<(string, string, string)>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            result.Add((reader.GetString(0), reader.GetString(1), reader.GetString(2)));
        }

        return result;
    }

    private static DocumentInfo Read(NpgsqlDataReader r) => new(
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
        r.GetFieldValue<DateTimeOffset>(10),
        r.GetFieldValue<DateTimeOffset>(11),
        r.GetInt32(12),
        (DocumentStep)r.GetInt32(13),
        r.IsDBNull(14) ? null : r.GetInt32(14));
}
