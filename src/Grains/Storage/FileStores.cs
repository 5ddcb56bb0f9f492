using System.Globalization;

namespace RagOrleans.Grains.Storage;

/// <summary>Maps validated composite keys (a/b/c) to folders; ids never contain separators or '..'.</summary>
internal static class KeyPaths
{
    public static string Combine(string root, string key)
    {
        var parts = key.Split('/');
        foreach (var part in parts)
        {
            if (part.Length == 0 || part == "." || part == ".." || part.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0)
            {
                throw new ArgumentException($"Unsafe storage key '{key}'.", nameof(key));
            }
        }

        return Path.Combine([root, .. parts]);
    }

    /// <summary>
    /// Removes the folders between <paramref name="path"/> (included) and <paramref name="root"/> (excluded) that are
    /// empty, so a deleted tenant or collection leaves not even its name behind as a folder.
    /// </summary>
    public static void PruneEmptyFolders(string root, string path)
    {
        var stop = Path.GetFullPath(root).TrimEnd(Path.DirectorySeparatorChar);
        for (var dir = Path.GetFullPath(path).TrimEnd(Path.DirectorySeparatorChar); dir.Length > stop.Length && dir.StartsWith(stop, StringComparison.Ordinal); dir = Path.GetDirectoryName(dir)!)
        {
            try
            {
                if (Directory.Exists(dir))
                {
                    // A folder in use (not empty) stops the walk. Looked at first rather than learnt from the delete's
                    // IOException: the upload staging folder is usually shared with other uploads, and an exception per
                    // upload cost more than the listing.
                    if (Directory.EnumerateFileSystemEntries(dir).Any())
                    {
                        return;
                    }

                    // Not recursive: a file that arrived since the look above makes this throw, and the walk stops.
                    Directory.Delete(dir, recursive: false);
                }
            }
            catch (IOException)
            {
                return;
            }
        }
    }

    /// <summary>Writes through a temporary file, flushes it to disk and renames it into place.</summary>
    public static async Task WriteAtomicAsync(string path, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken)
    {
        var temp = path + ".tmp-" + Guid.NewGuid().ToString("N");
        try
        {
            await using (var stream = Create(path, temp))
            {
                await write(stream, cancellationToken).ConfigureAwait(false);
                await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            try
            {
                File.Delete(temp);
            }
            catch (DirectoryNotFoundException)
            {
                // The temporary file was never created: its folder is gone.
            }

            throw;
        }
    }

    private static FileStream Create(string path, string temp)
    {
        // A concurrent delete may prune the folder (or a parent) between its creation and the file's: create it
        // again. Depending on the instant the runtime reports that as DirectoryNotFoundException, FileNotFoundException
        // (the folder was recreated by the time it looked) or an IOException that the folder "already exists" (it was
        // pruned between mkdir's EEXIST and the check); all seen with parallel uploads staging in one folder.
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                // Inside the retry: a prune can also remove a parent between the folders that this creates.
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                return new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous);
            }
            catch (IOException) when (attempt < 10)
            {
            }
        }
    }
}

/// <summary>Uploaded content as files under the data folder.</summary>
public sealed class FileBlobStore(string root) : IBlobStore
{
    public Task PutAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken = default) =>
        KeyPaths.WriteAtomicAsync(KeyPaths.Combine(root, key) + ".blob", (s, ct) => s.WriteAsync(content, ct).AsTask(), cancellationToken);

    public async Task<byte[]?> GetAsync(string key, CancellationToken cancellationToken = default)
    {
        var path = KeyPaths.Combine(root, key) + ".blob";
        return File.Exists(path) ? await File.ReadAllBytesAsync(path, cancellationToken).ConfigureAwait(false) : null;
    }

    public async Task<long> PutStreamAsync(string key, Stream content, CancellationToken cancellationToken = default)
    {
        long length = 0;
        await KeyPaths.WriteAtomicAsync(KeyPaths.Combine(root, key) + ".blob", async (s, ct) =>
        {
            await content.CopyToAsync(s, 1 << 16, ct).ConfigureAwait(false);
            length = s.Length;
        }, cancellationToken).ConfigureAwait(false);
        return length;
    }

    public Task<Stream?> OpenReadAsync(string key, CancellationToken cancellationToken = default)
    {
        var path = KeyPaths.Combine(root, key) + ".blob";
        try
        {
            return Task.FromResult<Stream?>(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16, FileOptions.Asynchronous | FileOptions.SequentialScan));
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return Task.FromResult<Stream?>(null);
        }
    }

    public Task<bool> MoveAsync(string from, string to, CancellationToken cancellationToken = default)
    {
        var source = KeyPaths.Combine(root, from) + ".blob";
        var target = KeyPaths.Combine(root, to) + ".blob";
        if (!File.Exists(source))
        {
            return Task.FromResult(false);
        }

        // A concurrent delete may prune the (empty) target folder before the move lands: create it again.
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.Move(source, target, overwrite: true);
                return Task.FromResult(true);
            }
            catch (IOException) when (attempt < 10 && File.Exists(source))
            {
                // The same races as KeyPaths.Create.
            }
        }
    }

    public Task DeleteAsync(string key, CancellationToken cancellationToken = default)
    {
        try
        {
            var path = KeyPaths.Combine(root, key) + ".blob";
            File.Delete(path);
            KeyPaths.PruneEmptyFolders(root, Path.GetDirectoryName(path)!);
        }
        catch (DirectoryNotFoundException)
        {
            // Nothing was ever stored under the key's folder.
        }

        return Task.CompletedTask;
    }

    public Task DeletePrefixAsync(string prefix, CancellationToken cancellationToken = default)
    {
        var path = KeyPaths.Combine(root, prefix);
        if (Directory.Exists(path))
        {
            Directory.Delete(path, recursive: true);
        }

        KeyPaths.PruneEmptyFolders(root, Path.GetDirectoryName(path)!);

        return Task.CompletedTask;
    }
}

/// <summary>
/// Snapshots as files named by watermark under the data folder. A snapshot becomes visible by an atomic
/// rename after it is flushed, so a crash mid-write leaves the previous one in place.
/// </summary>
public sealed class FileSnapshotStore(string root) : ISnapshotStore
{
    private const string Extension = ".snap";

    public async Task SaveAsync(string shardKey, long watermark, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken = default)
    {
        var folder = KeyPaths.Combine(root, shardKey);
        var path = Path.Combine(folder, watermark.ToString("D19", CultureInfo.InvariantCulture) + Extension);
        await KeyPaths.WriteAtomicAsync(path, write, cancellationToken).ConfigureAwait(false);
        foreach (var old in Directory.EnumerateFiles(folder, "*" + Extension))
        {
            if (string.CompareOrdinal(Path.GetFileName(old), Path.GetFileName(path)) < 0)
            {
                File.Delete(old);
            }
        }
    }

    public Task<SnapshotHandle?> OpenLatestAsync(string shardKey, CancellationToken cancellationToken = default)
    {
        var folder = KeyPaths.Combine(root, shardKey);
        if (!Directory.Exists(folder))
        {
            return Task.FromResult<SnapshotHandle?>(null);
        }

        var latest = Directory.EnumerateFiles(folder, "*" + Extension).Max(StringComparer.Ordinal);
        if (latest is null)
        {
            return Task.FromResult<SnapshotHandle?>(null);
        }

        var watermark = long.Parse(Path.GetFileNameWithoutExtension(latest), CultureInfo.InvariantCulture);
        Stream stream = new FileStream(latest, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        return Task.FromResult<SnapshotHandle?>(new SnapshotHandle(watermark, stream));
    }

    public Task DeleteAsync(string shardKey, CancellationToken cancellationToken = default)
    {
        var folder = KeyPaths.Combine(root, shardKey);
        if (Directory.Exists(folder))
        {
            Directory.Delete(folder, recursive: true);
        }

        KeyPaths.PruneEmptyFolders(root, Path.GetDirectoryName(folder)!);

        return Task.CompletedTask;
    }
}
