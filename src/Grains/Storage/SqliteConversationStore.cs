using System.Text.Json;
using RagOrleans.Abstractions;

namespace RagOrleans.Grains.Storage;

/// <summary>Chat history in the embedded SQLite file; each turn is one JSON row.</summary>
public sealed class SqliteConversationStore(SqliteDatabase database) : IConversationStore
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public async Task AppendAsync(string tenantId, string userId, string conversationId, string collection, ChatTurn turn, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = """
            INSERT INTO conversation_turns (tenant, user_id, conversation, seq, collection, turn)
            VALUES ($t, $u, $c, (SELECT COALESCE(MAX(seq), 0) + 1 FROM conversation_turns WHERE tenant = $t AND user_id = $u AND conversation = $c), $coll, $turn)
            """;
        command.Parameters.AddWithValue("$t", tenantId);
        command.Parameters.AddWithValue("$u", userId);
        command.Parameters.AddWithValue("$c", conversationId);
        command.Parameters.AddWithValue("$coll", collection);
        command.Parameters.AddWithValue("$turn", JsonSerializer.Serialize(turn, Json));
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<ChatTurn>> GetAsync(string tenantId, string userId, string conversationId, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT turn FROM conversation_turns WHERE tenant = $t AND user_id = $u AND conversation = $c ORDER BY seq";
        command.Parameters.AddWithValue("$t", tenantId);
        command.Parameters.AddWithValue("$u", userId);
        command.Parameters.AddWithValue("$c", conversationId);
        var result = new List<ChatTurn>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            result.Add(JsonSerializer.Deserialize<ChatTurn>(reader.GetString(0), Json)!);
        }

        return result;
    }

    public async Task DeleteTenantAsync(string tenantId, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = "DELETE FROM conversation_turns WHERE tenant = $t";
        command.Parameters.AddWithValue("$t", tenantId);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
