using System.Security.Cryptography;
using RagOrleans.Abstractions;

namespace RagOrleans.Grains.Storage;

/// <summary>
/// Reads through another stream, counting and hashing (SHA-256, and MD5 on request) what passes, and fails with
/// <see cref="RagErrorKind.TooLarge"/> as soon as more than <c>maxBytes</c> arrive: an oversized upload is cut off
/// at the limit, not after it was stored whole.
/// </summary>
public sealed class HashingReadStream(Stream inner, long maxBytes, bool md5 = false) : ReadOnlyStream
{
    private readonly IncrementalHash _sha256 = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
#pragma warning disable CA5351 // MD5 only checks a client's Content-MD5 header, as RFC 1864 defines it; it protects nothing.
    private readonly IncrementalHash? _md5 = md5 ? IncrementalHash.CreateHash(HashAlgorithmName.MD5) : null;
#pragma warning restore CA5351
    private byte[]? _sha256Result;
    private byte[]? _md5Result;

    /// <summary>Bytes read so far.</summary>
    public long BytesRead { get; private set; }

    /// <summary>SHA-256 of everything read; call once the stream is drained.</summary>
    public byte[] Sha256 => _sha256Result ??= _sha256.GetHashAndReset();

    /// <summary>MD5 of everything read, when requested.</summary>
    public byte[]? Md5 => _md5 is null ? null : _md5Result ??= _md5.GetHashAndReset();

    public override long Position { get => BytesRead; set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var n = inner.Read(buffer);
        Account(buffer[..n]);
        return n;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var n = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        Account(buffer.Span[..n]);
        return n;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _sha256.Dispose();
            _md5?.Dispose();
        }

        base.Dispose(disposing);
    }

    private void Account(ReadOnlySpan<byte> data)
    {
        BytesRead += data.Length;
        if (BytesRead > maxBytes)
        {
            throw new RagException(RagErrorKind.TooLarge, $"The upload exceeds the {maxBytes}-byte limit.");
        }

        _sha256.AppendData(data);
        _md5?.AppendData(data);
    }
}

/// <summary>Reads blobs one after another as one stream, opening each only when the previous one is drained.</summary>
public sealed class ConcatenatedBlobStream(IBlobStore blobs, IReadOnlyList<string> keys) : ReadOnlyStream
{
    private Stream? _current;
    private int _next;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            if (_current is null)
            {
                if (_next == keys.Count)
                {
                    return 0;
                }

                var key = keys[_next++];
                _current = await blobs.OpenReadAsync(key, cancellationToken).ConfigureAwait(false)
                    ?? throw new RagException(RagErrorKind.Conflict, "A part disappeared while the upload was being assembled (aborted meanwhile?).");
            }

            var n = await _current.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            if (n > 0 || buffer.Length == 0)
            {
                return n;
            }

            await _current.DisposeAsync().ConfigureAwait(false);
            _current = null;
        }
    }

    public override async ValueTask DisposeAsync()
    {
        if (_current is not null)
        {
            await _current.DisposeAsync().ConfigureAwait(false);
            _current = null;
        }

        await base.DisposeAsync().ConfigureAwait(false);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _current?.Dispose();
            _current = null;
        }

        base.Dispose(disposing);
    }
}
