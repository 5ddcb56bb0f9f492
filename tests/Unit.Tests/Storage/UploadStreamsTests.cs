using System.Security.Cryptography;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Storage;
using Xunit;

namespace RagOrleans.Unit.Tests.Storage;

public sealed class UploadStreamsTests
{
    private readonly FileBlobStore _blobs = new(TestData.NewTempDir("blobs"));

    [Fact]
    public async Task Hashing_stream_counts_and_hashes_what_passes_and_stops_past_the_limit()
    {
        var data = RandomNumberGenerator.GetBytes(100_000);
        using (var hashing = new HashingReadStream(new MemoryStream(data), data.Length, md5: true))
        {
            await hashing.CopyToAsync(Stream.Null);
            Assert.Equal(data.Length, hashing.BytesRead);
            Assert.Equal(SHA256.HashData(data), hashing.Sha256);
#pragma warning disable CA5351 // the test checks the Content-MD5 helper
            Assert.Equal(MD5.HashData(data), hashing.Md5);
#pragma warning restore CA5351
        }

        using var limited = new HashingReadStream(new MemoryStream(data), data.Length - 1);
        var ex = await Assert.ThrowsAsync<RagException>(() => limited.CopyToAsync(Stream.Null));
        Assert.Equal(RagErrorKind.TooLarge, ex.Kind);
    }

    [Fact]
    public async Task Deleting_a_blob_keeps_a_folder_still_in_use_and_prunes_empty_ones_up_to_the_root()
    {
        var root = TestData.NewTempDir("blobs-prune");
        var blobs = new FileBlobStore(root);
        await blobs.PutAsync("t/c/.uploads/a", new byte[] { 1 });
        await blobs.PutAsync("t/c/.uploads/b", new byte[] { 2 });
        await blobs.PutAsync("t/c/doc", new byte[] { 3 });

        await blobs.DeleteAsync("t/c/.uploads/a");
        Assert.Null(await blobs.GetAsync("t/c/.uploads/a"));
        Assert.Equal(new byte[] { 2 }, await blobs.GetAsync("t/c/.uploads/b"));

        // The last blob of .uploads takes the folder with it; c still holds a document, so the walk stops there.
        await blobs.DeleteAsync("t/c/.uploads/b");
        Assert.False(Directory.Exists(Path.Combine(root, "t", "c", ".uploads")));
        Assert.Equal(new byte[] { 3 }, await blobs.GetAsync("t/c/doc"));

        await blobs.DeleteAsync("t/c/doc");
        Assert.Empty(Directory.EnumerateFileSystemEntries(root));
        Assert.True(Directory.Exists(root));

        // A key that was never stored is not an error.
        await blobs.DeleteAsync("t/none/x");
    }

    [Fact]
    public async Task Concurrent_uploads_staged_in_one_folder_survive_each_others_cleanup()
    {
        // Each upload stages its blob in the shared .uploads folder and deletes it afterwards; a delete prunes the
        // folder when it is empty at that instant, which races with another upload creating its file there.
        var payload = RandomNumberGenerator.GetBytes(64);
        await Parallel.ForEachAsync(Enumerable.Range(0, 8), async (worker, ct) =>
        {
            for (var i = 0; i < 300; i++)
            {
                var key = $"t/c/.uploads/s-{worker}-{i}";
                Assert.Equal(payload.Length, await _blobs.PutStreamAsync(key, new MemoryStream(payload), ct));
                await _blobs.PutAsync(key + "-small", payload, ct);
                Assert.True(await _blobs.MoveAsync(key + "-small", $"t/c/docs/d-{worker}-{i}", ct));
                await _blobs.DeleteAsync(key, ct);
                await _blobs.DeleteAsync($"t/c/docs/d-{worker}-{i}", ct);
            }
        });
    }

    [Fact]
    public async Task File_blobs_stream_in_and_out_move_and_never_leave_a_partial_blob()
    {
        var data = RandomNumberGenerator.GetBytes(300_000);
        Assert.Equal(data.Length, await _blobs.PutStreamAsync("t/c/.uploads/u1/p1", new MemoryStream(data)));
        await using (var read = await _blobs.OpenReadAsync("t/c/.uploads/u1/p1"))
        {
            using var copy = new MemoryStream();
            await read!.CopyToAsync(copy);
            Assert.Equal(data, copy.ToArray());
        }

        Assert.True(await _blobs.MoveAsync("t/c/.uploads/u1/p1", "t/c/doc"));
        Assert.Null(await _blobs.OpenReadAsync("t/c/.uploads/u1/p1"));
        Assert.Equal(data, await _blobs.GetAsync("t/c/doc"));
        Assert.False(await _blobs.MoveAsync("t/c/.uploads/u1/p1", "t/c/doc"));

        // A write that fails midway (here: over the limit) leaves the previous blob as it was.
        var failing = new HashingReadStream(new MemoryStream(RandomNumberGenerator.GetBytes(200_000)), 100_000);
        await Assert.ThrowsAsync<RagException>(() => _blobs.PutStreamAsync("t/c/doc", failing));
        Assert.Equal(data, await _blobs.GetAsync("t/c/doc"));
        await _blobs.DeleteAsync("t/never/was");
    }

    [Fact]
    public async Task Concatenated_blobs_read_as_one_stream_in_the_given_order()
    {
        var parts = Enumerable.Range(0, 4).Select(i => RandomNumberGenerator.GetBytes(10_000 + i * 777)).ToList();
        for (var i = 0; i < parts.Count; i++)
        {
            await _blobs.PutAsync($"u/p{i}", parts[i]);
        }

        await using var all = new ConcatenatedBlobStream(_blobs, ["u/p2", "u/p0", "u/p3", "u/p1"]);
        using var copy = new MemoryStream();
        await all.CopyToAsync(copy, 4096);
        Assert.Equal(parts[2].Concat(parts[0]).Concat(parts[3]).Concat(parts[1]).ToArray(), copy.ToArray());

        await using var broken = new ConcatenatedBlobStream(_blobs, ["u/p0", "u/missing"]);
        var ex = await Assert.ThrowsAsync<RagException>(() => broken.CopyToAsync(Stream.Null));
        Assert.Equal(RagErrorKind.Conflict, ex.Kind);
    }
}
