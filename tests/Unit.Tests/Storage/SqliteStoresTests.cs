using RagOrleans.Abstractions;
using RagOrleans.Grains.Storage;
using Xunit;

namespace RagOrleans.Unit.Tests.Storage;

public sealed class SqliteStoresTests
{
    private readonly SqliteDatabase _db = new(System.IO.Path.Combine(TestData.NewTempDir("sqlite"), "rag.db"));

    [Fact]
    public async Task Chunk_log_appends_replaces_reads_after_a_watermark_and_compacts()
    {
        var log = new SqliteChunkLog(_db);
        await log.AppendAsync("t/c/0", [Add(1, "d1", 0, [1f, 0f]), Add(2, "d1", 1, [0f, 1f]), Add(3, "d2", 0, [0.5f, 0.5f])], null);
        Assert.Equal(3, await log.MaxSeqAsync("t/c/0"));
        Assert.Equal(0, await log.MaxSeqAsync("t/c/1"));

        // Replacing d1 removes its old rows in the same transaction as the new ones.
        await log.AppendAsync("t/c/0", [Delete(4, "d1"), Add(5, "d1", 0, [0f, 1f])], "d1");
        var all = await ToListAsync(log.ReadAfterAsync("t/c/0", 0));
        Assert.Equal(new long[] { 3, 4, 5 }, all.Select(e => e.Seq).ToArray());
        Assert.Equal(new[] { 0f, 1f }, all[2].Vector);
        Assert.Equal(ChunkOp.DeleteDocument, all[1].Op);
        var after = await ToListAsync(log.ReadAfterAsync("t/c/0", 3));
        Assert.Equal(new long[] { 4, 5 }, after.Select(e => e.Seq).ToArray());

        var rows = await log.GetAsync("t/c/0", [3, 5, 99]);
        Assert.Equal(new long[] { 3, 5 }, rows.Select(r => r.Seq).Order().ToArray());
        Assert.All(rows, r => Assert.Null(r.Vector));
        Assert.Equal("text d2 0", rows.Single(r => r.Seq == 3).Text);

        await log.CompactAsync("t/c/0", 4);
        Assert.Equal(new long[] { 3, 5 }, (await ToListAsync(log.ReadAfterAsync("t/c/0", 0))).Select(e => e.Seq).ToArray());
        await log.DeleteShardAsync("t/c/0");
        Assert.Empty(await ToListAsync(log.ReadAfterAsync("t/c/0", 0)));
    }

    [Fact]
    public async Task Document_store_lists_in_id_order_counts_and_finds_unfinished()
    {
        var store = new SqliteDocumentStore(_db);
        var now = DateTimeOffset.UtcNow;
        DocumentInfo Doc(string id, DocumentStatus status, int chunks) =>
            new(id, "T " + id, status, chunks, null, "text", null, 10, "hash", "{\"a\":1}", now, now, 0);
        await store.UpsertAsync("t", "c", Doc("b", DocumentStatus.Indexed, 3));
        await store.UpsertAsync("t", "c", Doc("a", DocumentStatus.Queued, 0));
        await store.UpsertAsync("t", "c", Doc("c", DocumentStatus.Processing, 0));
        await store.UpsertAsync("t", "other", Doc("z", DocumentStatus.Indexed, 7));

        Assert.Equal(new[] { "a", "b", "c" }, (await store.ListAsync("t", "c", null, 10)).Select(d => d.Id).ToArray());
        Assert.Equal(new[] { "c" }, (await store.ListAsync("t", "c", "b", 10)).Select(d => d.Id).ToArray());
        Assert.Equal((3L, 3L), await store.CountAsync("t", "c"));
        var unfinished = await store.ListUnfinishedAsync(10);
        Assert.Equal(new[] { "a", "c" }, unfinished.Select(u => u.DocumentId).Order().ToArray());

        var read = await store.GetAsync("t", "c", "b");
        Assert.Equal(Doc("b", DocumentStatus.Indexed, 3) with { CreatedAt = read!.CreatedAt, UpdatedAt = read.UpdatedAt }, read);
        Assert.True(await store.DeleteAsync("t", "c", "b"));
        Assert.False(await store.DeleteAsync("t", "c", "b"));
        await store.DeleteCollectionAsync("t", "c");
        Assert.Empty(await store.ListAsync("t", "c", null, 10));
        Assert.Single(await store.ListAsync("t", "other", null, 10));
    }

    [Fact]
    public async Task File_snapshots_keep_only_the_newest_complete_one()
    {
        var store = new FileSnapshotStore(TestData.NewTempDir("snapshots"));
        Assert.Null(await store.OpenLatestAsync("t/c/0"));
        await store.SaveAsync("t/c/0", 5, (s, ct) => s.WriteAsync(new byte[] { 1, 2, 3 }, ct).AsTask());
        await store.SaveAsync("t/c/0", 12, (s, ct) => s.WriteAsync(new byte[] { 4, 5 }, ct).AsTask());
        await Assert.ThrowsAsync<IOException>(() => store.SaveAsync("t/c/0", 20, (s, ct) => throw new IOException("disk full")));
        await using (var latest = await store.OpenLatestAsync("t/c/0"))
        {
            Assert.Equal(12, latest!.Watermark);
            var buffer = new MemoryStream();
            await latest.Content.CopyToAsync(buffer);
            Assert.Equal(new byte[] { 4, 5 }, buffer.ToArray());
        }

        await store.DeleteAsync("t/c/0");
        Assert.Null(await store.OpenLatestAsync("t/c/0"));
        await Assert.ThrowsAsync<ArgumentException>(() => store.OpenLatestAsync("t/../x"));
    }

    private static ChunkLogEntry Add(long seq, string doc, int ordinal, float[] vector) =>
        new(seq, ChunkOp.Add, doc, ordinal, $"text {doc} {ordinal}", vector, 0, 10, "S", null, "Title", null);

    private static ChunkLogEntry Delete(long seq, string doc) => new(seq, ChunkOp.DeleteDocument, doc, 0, null, null, 0, 0, null, null, null, null);

    internal static async Task<List<T>> ToListAsync<T>(IAsyncEnumerable<T> items)
    {
        var list = new List<T>();
        await foreach (var item in items)
        {
            list.Add(item);
        }

        return list;
    }
}
