using System.Security.Cryptography;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Storage;
using RagOrleans.Grains.Storage.Postgres;
using Xunit;

namespace RagOrleans.Integration.Tests;

/// <summary>The cluster-mode stores behind the dead-letter view, dedupe, idempotency keys and streamed uploads.</summary>
[Collection(PostgresCollection.Name)]
public sealed class IngestionStoreTests(PostgresFixture pg)
{
    [Fact]
    public async Task Documents_filter_by_status_find_by_hash_and_keep_step_and_progress()
    {
        var store = new PostgresDocumentStore(pg.DataSource);
        var t = "t" + Guid.NewGuid().ToString("N")[..8];
        var t0 = DateTimeOffset.FromUnixTimeSeconds(1_700_000_000);
        DocumentInfo Doc(string id, DocumentStatus status, string hash, int minutes) =>
            new(id, null, status, 0, null, "text", null, 10, hash, null, t0.AddMinutes(minutes), t0, 0);
        await store.UpsertAsync(t, "c", Doc("a", DocumentStatus.Failed, "h1", 3));
        await store.UpsertAsync(t, "c", Doc("b", DocumentStatus.Indexed, "h2", 2) with { Step = DocumentStep.Indexed, ProgressPercent = 100 });
        await store.UpsertAsync(t, "c", Doc("c", DocumentStatus.Failed, "h2", 1) with { Step = DocumentStep.Chunked, ProgressPercent = 40 });
        await store.UpsertAsync(t, "c", Doc("d", DocumentStatus.Failed, "h3", 0));

        Assert.Equal(["a", "c"], (await store.ListAsync(t, "c", null, 2, DocumentStatus.Failed)).Select(d => d.Id));
        Assert.Equal(["d"], (await store.ListAsync(t, "c", "c", 2, DocumentStatus.Failed)).Select(d => d.Id));
        Assert.Equal(["b"], (await store.ListAsync(t, "c", null, 10, DocumentStatus.Indexed)).Select(d => d.Id));
        Assert.Equal("c", (await store.FindByHashAsync(t, "c", "h2"))!.Id);
        Assert.Null(await store.FindByHashAsync(t, "c", "h9"));
        var c = (await store.GetAsync(t, "c", "c"))!;
        Assert.Equal((DocumentStep.Chunked, (int?)40), (c.Step, c.ProgressPercent));
        Assert.Null((await store.GetAsync(t, "c", "a"))!.ProgressPercent);
    }

    [Fact]
    public async Task Updates_change_only_an_existing_record_and_never_bring_back_a_deleted_one()
    {
        var store = new PostgresDocumentStore(pg.DataSource);
        var t = "t" + Guid.NewGuid().ToString("N")[..8];
        var t0 = DateTimeOffset.FromUnixTimeSeconds(1_700_000_000);
        var doc = new DocumentInfo("d", "Title", DocumentStatus.Processing, 0, null, "text", "d.txt", 10, "h", "{\"k\":1}", t0, t0, 1);
        await store.UpsertAsync(t, "c", doc);

        Assert.True(await store.UpdateProgressAsync(t, "c", "d", DocumentStep.Chunked, 40, t0.AddSeconds(1)));
        Assert.Equal(doc with { Step = DocumentStep.Chunked, ProgressPercent = 40, UpdatedAt = t0.AddSeconds(1) }, await store.GetAsync(t, "c", "d"));

        var indexed = doc with { Status = DocumentStatus.Indexed, ChunkCount = 3, Step = DocumentStep.Indexed, ProgressPercent = 100, UpdatedAt = t0.AddSeconds(2) };
        Assert.True(await store.UpdateAsync(t, "c", indexed));
        Assert.Equal(indexed, await store.GetAsync(t, "c", "d"));

        Assert.True(await store.DeleteAsync(t, "c", "d"));
        Assert.False(await store.UpdateProgressAsync(t, "c", "d", DocumentStep.Embedded, 100, t0.AddSeconds(3)));
        Assert.False(await store.UpdateAsync(t, "c", indexed));
        Assert.Null(await store.GetAsync(t, "c", "d"));
    }

    [Fact]
    public async Task Idempotency_keys_expire_are_purged_and_go_with_their_tenant()
    {
        var store = new PostgresIdempotencyStore(pg.DataSource);
        var t = "t" + Guid.NewGuid().ToString("N")[..8];
        var now = DateTimeOffset.FromUnixTimeSeconds(1_700_000_000);
        var record = new IdempotencyRecord("fp", 202, "/v1/x", "{\"id\":\"x\"}", now, now.AddHours(24));
        await store.SaveAsync(t, "k1", record);
        await store.SaveAsync(t, "k2", record with { ExpiresAt = now.AddMinutes(1) });
        Assert.Equal(record, await store.GetAsync(t, "k1", now));
        Assert.Null(await store.GetAsync(t, "k2", now.AddMinutes(1)));
        Assert.True(await store.PurgeExpiredAsync(now.AddHours(1)) >= 1);
        Assert.Null(await store.GetAsync(t, "k2", now));
        await store.DeleteTenantAsync(t);
        Assert.Null(await store.GetAsync(t, "k1", now));
    }

    [Fact]
    public async Task Blobs_stream_in_segments_move_and_read_back_and_concatenate()
    {
        var store = new PostgresBlobStore(pg.DataSource);
        var t = "t" + Guid.NewGuid().ToString("N")[..8];
        var data = RandomNumberGenerator.GetBytes(PostgresBlobStore.SegmentBytes * 2 + 12345);
        Assert.Equal(data.Length, await store.PutStreamAsync($"{t}/c/.uploads/u/p1", new MemoryStream(data)));
        var exact = RandomNumberGenerator.GetBytes(PostgresBlobStore.SegmentBytes);
        Assert.Equal(exact.Length, await store.PutStreamAsync($"{t}/c/.uploads/u/p2", new MemoryStream(exact)));

        await using (var joined = new ConcatenatedBlobStream(store, [$"{t}/c/.uploads/u/p2", $"{t}/c/.uploads/u/p1"]))
        {
            Assert.Equal(data.Length + exact.Length, await store.PutStreamAsync($"{t}/c/.uploads/u/content", joined));
        }

        Assert.True(await store.MoveAsync($"{t}/c/.uploads/u/content", $"{t}/c/doc"));
        Assert.False(await store.MoveAsync($"{t}/c/.uploads/u/content", $"{t}/c/doc"));
        Assert.Equal(exact.Concat(data).ToArray(), await store.GetAsync($"{t}/c/doc"));

        // A failed streaming write leaves the previous blob whole.
        var failing = new HashingReadStream(new MemoryStream(RandomNumberGenerator.GetBytes(3 << 20)), 2 << 20);
        await Assert.ThrowsAsync<RagException>(() => store.PutStreamAsync($"{t}/c/doc", failing));
        Assert.Equal(exact.Concat(data).ToArray(), await store.GetAsync($"{t}/c/doc"));

        await store.DeletePrefixAsync($"{t}/c/.uploads/u");
        Assert.Null(await store.OpenReadAsync($"{t}/c/.uploads/u/p1"));
        Assert.NotNull(await store.OpenReadAsync($"{t}/c/doc"));
        await store.DeletePrefixAsync(t);
        Assert.Null(await store.GetAsync($"{t}/c/doc"));
    }
}
