using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using RagOrleans.Abstractions;

namespace RagOrleans.Grains.Storage.Postgres;

/// <summary>Chat history in PostgreSQL (cluster mode); each turn is one JSON row.</summary>
public sealed class PostgresConversationStore(NpgsqlDataSource dataSource) : IConversationStore
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <inheritdoc />
    public async Task AppendAsync(string tenantId, string userId, string conversationId, string collection, ChatTurn turn, CancellationToken cancellationToken = default)
    {
        // The identity column orders turns, so concurrent appends never race for a sequence number.
        await using var command = dataSource.CreateCommand(
            "INSERT INTO conversation_turns (tenant, user_id, conversation, collection, turn) VALUES (@t, @u, @c, @coll, @turn)");
        command.Parameters.AddWithValue("t", tenantId);
        command.Parameters.AddWithValue("u", userId);
        command.Parameters.AddWithValue("c", conversationId);
        command.Parameters.AddWithValue("coll", collection);
        command.Parameters.AddWithValue("turn", NpgsqlDbType.Jsonb, JsonSerializer.Serialize(turn, Json));
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<ChatTurn>> GetAsync(string tenantId, string userId, string conversationId, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand(
            "SELECT turn::text FROM conversation_turns WHERE tenant = @t AND user_id = @u AND conversation = @c ORDER BY seq");
        command.Parameters.AddWithValue("t", tenantId);
        command.Parameters.AddWithValue("u", userId);
        command.Parameters.AddWithValue("c", conversationId);
        var result = new List<ChatTurn>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            result.Add(JsonSerializer.Deserialize<ChatTurn>(reader.GetString(0), Json)!);
        }

        return result;
    }

    /// <inheritdoc />
    public async Task<ConversationPage> ListAsync(string tenantId, string userId, string? cursor, int limit, CancellationToken cancellationToken = default)
    {
        ConversationCursor.Decode(cursor);
        await using var command = dataSource.CreateCommand("""
            SELECT c.conversation, f.collection, f.turn->>'question', f.turn->>'at', l.turn->>'at', c.n
            FROM (SELECT conversation, COUNT(*) AS n, MIN(seq) AS fs, MAX(seq) AS ls
                  FROM conversation_turns WHERE tenant = @t AND user_id = @u GROUP BY conversation) c
            JOIN conversation_turns f ON f.tenant = @t AND f.user_id = @u AND f.conversation = c.conversation AND f.seq = c.fs
            JOIN conversation_turns l ON l.tenant = @t AND l.user_id = @u AND l.conversation = c.conversation AND l.seq = c.ls
            """);
        command.Parameters.AddWithValue("t", tenantId);
        command.Parameters.AddWithValue("u", userId);
        var all = new List<ConversationSummary>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            all.Add(ConversationCursor.Summary(
                reader.GetString(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2),
                reader.IsDBNull(3) ? null : reader.GetString(3), reader.IsDBNull(4) ? null : reader.GetString(4), reader.GetInt64(5)));
        }

        return ConversationCursor.Page(all, cursor, limit);
    }

    /// <inheritdoc />
    public async Task<int> DeleteAsync(string tenantId, string userId, string conversationId, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand("DELETE FROM conversation_turns WHERE tenant = @t AND user_id = @u AND conversation = @c");
        command.Parameters.AddWithValue("t", tenantId);
        command.Parameters.AddWithValue("u", userId);
        command.Parameters.AddWithValue("c", conversationId);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task DeleteTenantAsync(string tenantId, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand("DELETE FROM conversation_turns WHERE tenant = @t");
        command.Parameters.AddWithValue("t", tenantId);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
