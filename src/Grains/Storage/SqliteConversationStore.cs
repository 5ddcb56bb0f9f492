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

    public async Task<ConversationPage> ListAsync(string tenantId, string userId, string? cursor, int limit, CancellationToken cancellationToken = default)
    {
        ConversationCursor.Decode(cursor);
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = """
            SELECT c.conversation, f.collection, json_extract(f.turn, '$.question'), json_extract(f.turn, '$.at'), json_extract(l.turn, '$.at'), c.n
            FROM (SELECT conversation, COUNT(*) AS n, MIN(seq) AS fs, MAX(seq) AS ls
                  FROM conversation_turns WHERE tenant = $t AND user_id = $u GROUP BY conversation) c
            JOIN conversation_turns f ON f.tenant = $t AND f.user_id = $u AND f.conversation = c.conversation AND f.seq = c.fs
            JOIN conversation_turns l ON l.tenant = $t AND l.user_id = $u AND l.conversation = c.conversation AND l.seq = c.ls
            """;
        command.Parameters.AddWithValue("$t", tenantId);
        command.Parameters.AddWithValue("$u", userId);
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

    public async Task<int> DeleteAsync(string tenantId, string userId, string conversationId, CancellationToken cancellationToken = default)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = "DELETE FROM conversation_turns WHERE tenant = $t AND user_id = $u AND conversation = $c";
        command.Parameters.AddWithValue("$t", tenantId);
        command.Parameters.AddWithValue("$u", userId);
        command.Parameters.AddWithValue("$c", conversationId);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
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
