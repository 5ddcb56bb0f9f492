using RagOrleans.Grains.Storage;
using RagOrleans.Grains.Storage.Postgres;
using Xunit;

namespace RagOrleans.Integration.Tests;

/// <summary>The cluster-mode audit log (PostgreSQL, schema version 4): durable, filtered and paged newest first.</summary>
[Collection(PostgresCollection.Name)]
public sealed class AuditLogTests(PostgresFixture pg)
{
    [Fact]
    public async Task Entries_are_stored_filtered_by_tenant_action_and_time_and_paged_newest_first()
    {
        var log = new PostgresAuditLog(pg.DataSource);
        var t0 = new DateTimeOffset(2026, 11, 30, 8, 0, 0, TimeSpan.Zero);
        await log.AppendAsync(new AuditEntry(t0, "acme", "operator", "operator", "tenant.create", "/v1/tenants/acme", "succeeded", 201, "r1"));
        await log.AppendAsync(new AuditEntry(t0.AddMinutes(1), "acme", "k-admin", "admin", "collection.delete", "/v1/collections/kb", "succeeded", 204, "r2"));
        await log.AppendAsync(new AuditEntry(t0.AddMinutes(2), "acme", "k-user", "user", "collection.delete", "/v1/collections/kb", "denied", 403, "r3"));
        await log.AppendAsync(new AuditEntry(t0.AddMinutes(3), "other", "k-other", "admin", "key.create", "/v1/keys/k9", "succeeded", 201, "r4"));
        await log.AppendAsync(new AuditEntry(t0.AddMinutes(4), null, "operator", "operator", "tenant.delete", "/v1/tenants/bad..id", "failed", 400, "r5"));

        var acme = await log.QueryAsync(new AuditQuery("acme", null, null, null, null, 100));
        Assert.Equal(["r3", "r2", "r1"], acme.Select(r => r.Entry.RequestId));
        Assert.Equal(new AuditEntry(t0.AddMinutes(2), "acme", "k-user", "user", "collection.delete", "/v1/collections/kb", "denied", 403, "r3"), acme[0].Entry);

        var deletes = await log.QueryAsync(new AuditQuery(null, "collection.delete", t0.AddMinutes(2), t0.AddMinutes(3), null, 100));
        Assert.Equal("r3", Assert.Single(deletes).Entry.RequestId);

        // Paging: the cursor is the last seq seen; pages never overlap and end empty.
        var first = await log.QueryAsync(new AuditQuery(null, null, null, null, null, 2));
        var second = await log.QueryAsync(new AuditQuery(null, null, null, null, first[^1].Seq, 2));
        var third = await log.QueryAsync(new AuditQuery(null, null, null, null, second[^1].Seq, 2));
        Assert.Equal(["r5", "r4", "r3", "r2", "r1"], first.Concat(second).Concat(third).Select(r => r.Entry.RequestId));
        Assert.Null(first[0].Entry.TenantId);
        Assert.Empty(await log.QueryAsync(new AuditQuery(null, null, null, null, third[^1].Seq, 2)));
    }
}
