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
    public async Task DeleteTenantAsync(string tenantId, CancellationToken cancellationToken = default)
    {
        await using var command = dataSource.CreateCommand("DELETE FROM conversation_turns WHERE tenant = @t");
        command.Parameters.AddWithValue("t", tenantId);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
