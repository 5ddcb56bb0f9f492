namespace RagOrleans.Grains.Storage.Postgres;

/// <summary>
/// Version 1 of the cluster-mode schema: Orleans' ADO.NET clustering and reminder contract (the
/// <c>OrleansQuery</c> table, its query rows and the tables they touch) plus our own storage tables.
/// </summary>
/// <remarks>
/// The query rows meet the contract of the Orleans 10.4.2 AdoNet providers: Orleans reads
/// <c>SELECT QueryKey, QueryText FROM OrleansQuery</c>, binds parameters named after its columns
/// (<c>@DeploymentId</c>, <c>@Address</c>, <c>@Port</c>, <c>@Generation</c>, ...), and reads result
/// columns by name. Every <see cref="DateTime"/> it binds is UTC with <c>DbType.DateTime</c>, which
/// Npgsql sends as <c>timestamptz</c>, so every Orleans timestamp column is <c>timestamptz</c>.
/// Version checks are single statements with data-modifying CTEs: the row lock on the version row
/// serializes writers, and READ COMMITTED re-checks the version after the lock, so no plpgsql is needed.
/// </remarks>
internal static class PostgresSchemaV1
{
    /// <summary>
    /// Tables and indexes. The Orleans tables use IF NOT EXISTS and only the columns Orleans' own scripts
    /// also have, so a database where someone ran those scripts by hand still migrates and works.
    /// </summary>
    public const string Ddl = """
        CREATE TABLE IF NOT EXISTS orleansquery (
            querykey  text NOT NULL PRIMARY KEY,
            querytext text NOT NULL
        );

        CREATE TABLE IF NOT EXISTS orleansmembershipversiontable (
            deploymentid text    NOT NULL PRIMARY KEY,
            version      integer NOT NULL DEFAULT 0
        );

        CREATE TABLE IF NOT EXISTS orleansmembershiptable (
            deploymentid text        NOT NULL REFERENCES orleansmembershipversiontable (deploymentid),
            address      text        NOT NULL,
            port         integer     NOT NULL,
            generation   integer     NOT NULL,
            siloname     text        NOT NULL,
            hostname     text        NOT NULL,
            status       integer     NOT NULL,
            proxyport    integer,
            suspecttimes text,
            starttime    timestamptz NOT NULL,
            iamalivetime timestamptz NOT NULL,
            PRIMARY KEY (deploymentid, address, port, generation)
        );

        CREATE TABLE IF NOT EXISTS orleansreminderstable (
            serviceid    text        NOT NULL,
            grainid      text        NOT NULL,
            remindername text        NOT NULL,
            starttime    timestamptz NOT NULL,
            period       bigint      NOT NULL,
            grainhash    integer     NOT NULL,
            version      integer     NOT NULL,
            PRIMARY KEY (serviceid, grainid, remindername)
        );
        -- Range reads (ReadRangeRows1/2) scan one service by hash.
        CREATE INDEX IF NOT EXISTS orleansreminderstable_hash ON orleansreminderstable (serviceid, grainhash);

        -- Keys use the C collation so ordering and prefix ranges are byte order, as in the SQLite store.
        CREATE TABLE documents (
            tenant       text COLLATE "C" NOT NULL,
            collection   text COLLATE "C" NOT NULL,
            id           text COLLATE "C" NOT NULL,
            title        text,
            status       integer     NOT NULL,
            chunk_count  integer     NOT NULL,
            error        text,
            source_type  text        NOT NULL,
            file_name    text,
            size_bytes   bigint      NOT NULL,
            content_hash text        NOT NULL,
            metadata     text,
            created_at   timestamptz NOT NULL,
            updated_at   timestamptz NOT NULL,
            attempts     integer     NOT NULL,
            PRIMARY KEY (tenant, collection, id)
        );
        CREATE INDEX documents_unfinished ON documents (status) WHERE status IN (0, 1);

        CREATE TABLE chunk_log (
            shard        text COLLATE "C" NOT NULL,
            seq          bigint   NOT NULL,
            op           smallint NOT NULL,
            doc_id       text COLLATE "C" NOT NULL,
            ordinal      integer  NOT NULL,
            text         text,
            vector       real[],
            start_offset integer  NOT NULL,
            end_offset   integer  NOT NULL,
            section      text,
            page         integer,
            title        text,
            metadata     text,
            PRIMARY KEY (shard, seq)
        );
        CREATE INDEX chunk_log_doc ON chunk_log (shard, doc_id);

        -- Versions come from one sequence so two writers of a shard (a brief overlap after a failover)
        -- never share a version and the newest allocation wins the manifest.
        CREATE SEQUENCE snapshot_version_seq;

        CREATE TABLE snapshot_segments (
            shard   text COLLATE "C" NOT NULL,
            version bigint  NOT NULL,
            seq     integer NOT NULL,
            data    bytea   NOT NULL,
            PRIMARY KEY (shard, version, seq)
        );
        -- Segments are already compressed or dense floats: skip TOAST compression, keep out-of-line storage.
        ALTER TABLE snapshot_segments ALTER COLUMN data SET STORAGE EXTERNAL;

        CREATE TABLE snapshot_manifest (
            shard      text COLLATE "C" NOT NULL PRIMARY KEY,
            version    bigint      NOT NULL,
            watermark  bigint      NOT NULL,
            segments   integer     NOT NULL,
            bytes      bigint      NOT NULL,
            sha256     bytea       NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE blobs (
            key        text COLLATE "C" NOT NULL PRIMARY KEY,
            data       bytea       NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE conversation_turns (
            tenant       text COLLATE "C" NOT NULL,
            user_id      text COLLATE "C" NOT NULL,
            conversation text COLLATE "C" NOT NULL,
            seq          bigint GENERATED ALWAYS AS IDENTITY,
            collection   text  NOT NULL,
            turn         jsonb NOT NULL,
            PRIMARY KEY (tenant, user_id, conversation, seq)
        );
        """;

    /// <summary>The membership key columns Orleans binds for one silo.</summary>
    private const string SiloKey = "deploymentid = @DeploymentId AND address = @Address AND port = @Port AND generation = @Generation";

    /// <summary>Result columns of a membership read, aliased to the names Orleans reads.</summary>
    private const string MemberColumns = """
        v.version AS "Version", m.address AS "Address", m.port AS "Port", m.generation AS "Generation",
        m.siloname AS "SiloName", m.hostname AS "HostName", m.status AS "Status", m.proxyport AS "ProxyPort",
        m.suspecttimes AS "SuspectTimes", m.starttime AS "StartTime", m.iamalivetime AS "IAmAliveTime"
        """;

    private const string ReminderColumns = """
        grainid AS "GrainId", remindername AS "ReminderName", starttime AS "StartTime", period AS "Period", version AS "Version"
        """;

    /// <summary>The OrleansQuery rows, key to SQL text.</summary>
    public static IReadOnlyDictionary<string, string> OrleansQueries { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        // Clustering. Membership reads are the version row LEFT JOIN members: Orleans takes the table
        // version from the first row and treats a row without StartTime as "no member".
        ["UpdateIAmAlivetimeKey"] = $"""
            UPDATE orleansmembershiptable SET iamalivetime = @IAmAliveTime WHERE {SiloKey}
            """,
        ["InsertMembershipVersionKey"] = """
            WITH added AS (
                INSERT INTO orleansmembershipversiontable (deploymentid) VALUES (@DeploymentId)
                ON CONFLICT (deploymentid) DO NOTHING
                RETURNING 1)
            SELECT EXISTS (SELECT 1 FROM added)
            """,
        // @Version is the table version Orleans read; the row is added only if it is still current and
        // the silo is not already there, and the version moves on in the same statement.
        ["InsertMembershipKey"] = $"""
            WITH bumped AS (
                UPDATE orleansmembershipversiontable SET version = version + 1
                WHERE deploymentid = @DeploymentId AND version = @Version
                  AND NOT EXISTS (SELECT 1 FROM orleansmembershiptable WHERE {SiloKey})
                RETURNING 1),
            added AS (
                INSERT INTO orleansmembershiptable
                    (deploymentid, address, port, generation, siloname, hostname, status, proxyport, starttime, iamalivetime)
                SELECT @DeploymentId, @Address, @Port, @Generation, @SiloName, @HostName, @Status, @ProxyPort, @StartTime, @IAmAliveTime
                FROM bumped
                RETURNING 1)
            SELECT EXISTS (SELECT 1 FROM added)
            """,
        ["UpdateMembershipKey"] = $"""
            WITH bumped AS (
                UPDATE orleansmembershipversiontable SET version = version + 1
                WHERE deploymentid = @DeploymentId AND version = @Version
                  AND EXISTS (SELECT 1 FROM orleansmembershiptable WHERE {SiloKey})
                RETURNING 1),
            changed AS (
                UPDATE orleansmembershiptable
                SET status = @Status, suspecttimes = @SuspectTimes, iamalivetime = @IAmAliveTime
                WHERE {SiloKey} AND EXISTS (SELECT 1 FROM bumped)
                RETURNING 1)
            SELECT EXISTS (SELECT 1 FROM changed)
            """,
        ["MembershipReadRowKey"] = $"""
            SELECT {MemberColumns}
            FROM orleansmembershipversiontable v
            LEFT JOIN orleansmembershiptable m
              ON m.deploymentid = v.deploymentid AND m.address = @Address AND m.port = @Port AND m.generation = @Generation
            WHERE v.deploymentid = @DeploymentId
            """,
        ["MembershipReadAllKey"] = $"""
            SELECT {MemberColumns}
            FROM orleansmembershipversiontable v
            LEFT JOIN orleansmembershiptable m ON m.deploymentid = v.deploymentid
            WHERE v.deploymentid = @DeploymentId
            """,
        ["DeleteMembershipTableEntriesKey"] = """
            WITH members AS (DELETE FROM orleansmembershiptable WHERE deploymentid = @DeploymentId)
            DELETE FROM orleansmembershipversiontable WHERE deploymentid = @DeploymentId
            """,
        ["GatewaysQueryKey"] = """
            SELECT address AS "Address", proxyport AS "ProxyPort", generation AS "Generation"
            FROM orleansmembershiptable
            WHERE deploymentid = @DeploymentId AND status = @Status AND proxyport > 0
            """,
        // Required key: Orleans falls back to it when CleanupDefunctSiloEntryKey is absent; @IAmAliveTime is the cutoff.
        ["CleanupDefunctSiloEntriesKey"] = """
            DELETE FROM orleansmembershiptable
            WHERE deploymentid = @DeploymentId AND status = 6 AND iamalivetime < @IAmAliveTime AND starttime < @IAmAliveTime
            """,
        // Optional key, preferred by 10.4.2 when present: Orleans decides eligibility in .NET from a read and
        // deletes one row only if it is still Dead with the start and heartbeat times it saw.
        ["CleanupDefunctSiloEntryKey"] = $"""
            DELETE FROM orleansmembershiptable
            WHERE {SiloKey} AND status = 6 AND starttime = @StartTime AND iamalivetime = @IAmAliveTime
            """,

        // Reminders. GrainHash, BeginHash and EndHash arrive as signed ints; Orleans picks Rows1 when the
        // range (Begin, End] does not wrap in signed order and Rows2 when it does.
        ["UpsertReminderRowKey"] = """
            INSERT INTO orleansreminderstable AS r (serviceid, grainid, remindername, starttime, period, grainhash, version)
            VALUES (@ServiceId, @GrainId, @ReminderName, @StartTime, @Period, @GrainHash, 0)
            ON CONFLICT (serviceid, grainid, remindername) DO UPDATE
            SET starttime = EXCLUDED.starttime, period = EXCLUDED.period, grainhash = EXCLUDED.grainhash, version = r.version + 1
            RETURNING r.version AS "Version"
            """,
        ["ReadReminderRowsKey"] = $"""
            SELECT {ReminderColumns} FROM orleansreminderstable
            WHERE serviceid = @ServiceId AND grainid = @GrainId
            """,
        ["ReadReminderRowKey"] = $"""
            SELECT {ReminderColumns} FROM orleansreminderstable
            WHERE serviceid = @ServiceId AND grainid = @GrainId AND remindername = @ReminderName
            """,
        ["ReadRangeRows1Key"] = $"""
            SELECT {ReminderColumns} FROM orleansreminderstable
            WHERE serviceid = @ServiceId AND grainhash > @BeginHash AND grainhash <= @EndHash
            """,
        ["ReadRangeRows2Key"] = $"""
            SELECT {ReminderColumns} FROM orleansreminderstable
            WHERE serviceid = @ServiceId AND (grainhash > @BeginHash OR grainhash <= @EndHash)
            """,
        ["DeleteReminderRowKey"] = """
            WITH gone AS (
                DELETE FROM orleansreminderstable
                WHERE serviceid = @ServiceId AND grainid = @GrainId AND remindername = @ReminderName AND version = @Version
                RETURNING 1)
            SELECT EXISTS (SELECT 1 FROM gone)
            """,
        ["DeleteReminderRowsKey"] = """
            DELETE FROM orleansreminderstable WHERE serviceid = @ServiceId
            """,
    };
}
