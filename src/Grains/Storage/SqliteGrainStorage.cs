using Microsoft.Data.Sqlite;
using Orleans.Runtime;
using Orleans.Storage;

namespace RagOrleans.Grains.Storage;

/// <summary>
/// Orleans grain storage on the embedded SQLite file, with optimistic concurrency on an ETag and the
/// binary grain-state serializer (chosen from day one: switching serializers orphans stored rows).
/// </summary>
public sealed class SqliteGrainStorage(string name, SqliteDatabase database, IGrainStorageSerializer serializer) : IGrainStorage
{
    public async Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        await using var connection = await database.OpenAsync().ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT etag, data FROM grain_state WHERE grain_id = $g AND state_name = $s";
        command.Parameters.AddWithValue("$g", grainId.ToString());
        command.Parameters.AddWithValue("$s", stateName);
        await using var reader = await command.ExecuteReaderAsync().ConfigureAwait(false);
        if (!await reader.ReadAsync().ConfigureAwait(false))
        {
            grainState.State = Activator.CreateInstance<T>();
            grainState.ETag = null;
            grainState.RecordExists = false;
            return;
        }

        var etag = reader.GetString(0);
        var data = (byte[])reader.GetValue(1);
        grainState.State = serializer.Deserialize<T>(new BinaryData(data));
        grainState.ETag = etag;
        grainState.RecordExists = true;
    }

    public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var data = serializer.Serialize(grainState.State).ToArray();
        var newEtag = Guid.NewGuid().ToString("N");
        await using var connection = await database.OpenAsync().ConfigureAwait(false);
        await using var tx = (SqliteTransaction)await connection.BeginTransactionAsync().ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.Transaction = tx;
        command.Parameters.AddWithValue("$g", grainId.ToString());
        command.Parameters.AddWithValue("$s", stateName);
        command.CommandText = "SELECT etag FROM grain_state WHERE grain_id = $g AND state_name = $s";
        var current = (string?)await command.ExecuteScalarAsync().ConfigureAwait(false);
        if (current != grainState.ETag)
        {
            throw new InconsistentStateException(
                $"Storage '{name}': ETag mismatch writing {stateName} of {grainId}", current ?? "<none>", grainState.ETag ?? "<none>");
        }

        command.CommandText = """
            INSERT INTO grain_state (grain_id, state_name, etag, data) VALUES ($g, $s, $e, $d)
            ON CONFLICT (grain_id, state_name) DO UPDATE SET etag = excluded.etag, data = excluded.data
            """;
        command.Parameters.AddWithValue("$e", newEtag);
        command.Parameters.AddWithValue("$d", data);
        await command.ExecuteNonQueryAsync().ConfigureAwait(false);
        await tx.CommitAsync().ConfigureAwait(false);
        grainState.ETag = newEtag;
        grainState.RecordExists = true;
    }

    public async Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        await using var connection = await database.OpenAsync().ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = "DELETE FROM grain_state WHERE grain_id = $g AND state_name = $s";
        command.Parameters.AddWithValue("$g", grainId.ToString());
        command.Parameters.AddWithValue("$s", stateName);
        await command.ExecuteNonQueryAsync().ConfigureAwait(false);
        grainState.ETag = null;
        grainState.RecordExists = false;
        grainState.State = Activator.CreateInstance<T>();
    }
}
