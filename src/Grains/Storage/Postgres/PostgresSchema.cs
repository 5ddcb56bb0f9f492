using Microsoft.Extensions.Logging;
using Npgsql;

namespace RagOrleans.Grains.Storage.Postgres;

/// <summary>One step of the cluster-mode schema.</summary>
/// <param name="Version">Its number; steps apply in ascending order and each applies once.</param>
/// <param name="Description">What it does, recorded with it.</param>
/// <param name="Apply">Runs the step inside the migration transaction.</param>
public sealed record PostgresMigration(int Version, string Description, Func<NpgsqlConnection, NpgsqlTransaction, CancellationToken, Task> Apply);

/// <summary>
/// Applies the project's own PostgreSQL schema (Orleans' clustering and reminder contract and our
/// storage tables) idempotently. Any process may call it at start-up: every caller takes the same
/// transaction-scoped advisory lock first, so concurrent starts run one after another and the later
/// ones find nothing left to do.
/// </summary>
public sealed class PostgresSchema(NpgsqlDataSource dataSource, ILogger<PostgresSchema> logger)
{
    /// <summary>The newest schema version this build knows.</summary>
    public const int CurrentVersion = 4;

    // Arbitrary but fixed: the key every RagOrleans process locks on while migrating.
    private const long AdvisoryLockKey = 0x5241_474F_524C_0001;

    /// <summary>Every migration step, oldest first.</summary>
    public static IReadOnlyList<PostgresMigration> Migrations { get; } =
    [
        new(1, "Orleans clustering and reminders contract; documents, chunk log, snapshots, blobs, conversations", ApplyV1Async),
        new(2, "Ingestion: document step and progress, status and content-hash indexes, idempotency keys, segmented blobs", ApplyV2Async),
        new(3, "Usage ledger: one row per tenant, day, model, kind and user", ApplyV3Async),
        new(4, "Audit log of admin and operator actions", ApplyV4Async),
    ];

    /// <summary>Applies the missing versions and returns how many it applied (0 when already current).</summary>
    public async Task<int> ApplyAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);

        // Lock before touching the catalog: concurrent CREATE TABLE IF NOT EXISTS can still collide.
        await using (var lockCommand = new NpgsqlCommand("SELECT pg_advisory_xact_lock(@key)", connection, tx))
        {
            lockCommand.Parameters.AddWithValue("key", AdvisoryLockKey);
            await lockCommand.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        await using (var create = new NpgsqlCommand(
            """
            CREATE TABLE IF NOT EXISTS rag_schema_version (
                version     integer     NOT NULL PRIMARY KEY,
                description text        NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now())
            """, connection, tx))
        {
            await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        var applied = new HashSet<int>();
        await using (var read = new NpgsqlCommand("SELECT version FROM rag_schema_version", connection, tx))
        await using (var reader = await read.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                applied.Add(reader.GetInt32(0));
            }
        }

        if (applied.Count > 0 && applied.Max() > CurrentVersion)
        {
            // A newer build migrated this database; an older one must not guess at tables it does not know.
            throw new InvalidOperationException(
                $"The database schema is at version {applied.Max()}, newer than this build's {CurrentVersion}.");
        }

        var count = 0;
        foreach (var migration in Migrations)
        {
            if (applied.Contains(migration.Version))
            {
                continue;
            }

            logger.LogInformation("Applying PostgreSQL schema version {Version}: {Description}", migration.Version, migration.Description);
            await migration.Apply(connection, tx, cancellationToken).ConfigureAwait(false);
            await using var record = new NpgsqlCommand(
                "INSERT INTO rag_schema_version (version, description) VALUES (@v, @d)", connection, tx);
            record.Parameters.AddWithValue("v", migration.Version);
            record.Parameters.AddWithValue("d", migration.Description);
            await record.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            count++;
        }

        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        if (count == 0)
        {
            logger.LogDebug("PostgreSQL schema already at version {Version}", CurrentVersion);
        }

        return count;
    }

    private static async Task ApplyV2Async(NpgsqlConnection connection, NpgsqlTransaction tx, CancellationToken cancellationToken)
    {
        await using var ddl = new NpgsqlCommand(
            """
            ALTER TABLE documents ADD COLUMN step integer NOT NULL DEFAULT 0, ADD COLUMN progress integer;
            -- The dead-letter view (?status=failed) pages in id order within one status.
            CREATE INDEX documents_status ON documents (tenant, collection, status, id);
            -- Uploads without an id are deduplicated by content.
            CREATE INDEX documents_hash ON documents (tenant, collection, content_hash);
            -- First responses of POSTs carrying an Idempotency-Key, per tenant, until they expire.
            CREATE TABLE idempotency_keys (
                tenant      text COLLATE "C" NOT NULL,
                key_hash    text COLLATE "C" NOT NULL,
                fingerprint text        NOT NULL,
                status_code integer     NOT NULL,
                location    text,
                body        text        NOT NULL,
                created_at  timestamptz NOT NULL,
                expires_at  timestamptz NOT NULL,
                PRIMARY KEY (tenant, key_hash)
            );
            CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
            -- Blobs of any size, streamed in 1 MiB rows (see PostgresBlobStore for why not a shared volume).
            CREATE TABLE blob_segments (
                key  text COLLATE "C" NOT NULL,
                seq  integer NOT NULL,
                data bytea   NOT NULL,
                PRIMARY KEY (key, seq)
            );
            -- Uploads are mostly compressed already (PDF, DOCX): do not spend CPU compressing them again.
            ALTER TABLE blob_segments ALTER COLUMN data SET STORAGE EXTERNAL;
            """, connection, tx);
        await ddl.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task ApplyV3Async(NpgsqlConnection connection, NpgsqlTransaction tx, CancellationToken cancellationToken)
    {
        await using var ddl = new NpgsqlCommand(
            """
            CREATE TABLE usage_ledger (
                tenant   text    NOT NULL,
                day      date    NOT NULL,
                model    text    NOT NULL,
                kind     text    NOT NULL,
                user_id  text    NOT NULL,
                quantity bigint  NOT NULL,
                cost     numeric NOT NULL,
                PRIMARY KEY (tenant, day, model, kind, user_id))
            """, connection, tx);
        await ddl.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task ApplyV4Async(NpgsqlConnection connection, NpgsqlTransaction tx, CancellationToken cancellationToken)
    {
        await using var ddl = new NpgsqlCommand(
            """
            CREATE TABLE audit_log (
                seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                at         timestamptz NOT NULL,
                tenant     text COLLATE "C",
                key_id     text        NOT NULL,
                role       text        NOT NULL,
                action     text        NOT NULL,
                target     text        NOT NULL,
                outcome    text        NOT NULL,
                status     integer     NOT NULL,
                request_id text        NOT NULL
            );
            -- The tenant admin's view and the operator's per-tenant filter page newest first within one tenant.
            CREATE INDEX audit_log_tenant ON audit_log (tenant, seq);
            """, connection, tx);
        await ddl.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task ApplyV1Async(NpgsqlConnection connection, NpgsqlTransaction tx, CancellationToken cancellationToken)
    {
        await using (var ddl = new NpgsqlCommand(PostgresSchemaV1.Ddl, connection, tx))
        {
            await ddl.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }

        // Parameters, not literals: the query texts carry quotes and @names that must reach the table verbatim.
        await using var upsert = new NpgsqlCommand(
            """
            INSERT INTO orleansquery (querykey, querytext) VALUES (@key, @text)
            ON CONFLICT (querykey) DO UPDATE SET querytext = EXCLUDED.querytext
            """, connection, tx);
        var key = upsert.Parameters.Add("key", NpgsqlTypes.NpgsqlDbType.Text);
        var text = upsert.Parameters.Add("text", NpgsqlTypes.NpgsqlDbType.Text);
        foreach (var (queryKey, queryText) in PostgresSchemaV1.OrleansQueries)
        {
            key.Value = queryKey;
            text.Value = queryText;
            await upsert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
    }
}
