using System.Text;

namespace RagOrleans.Grains.Ingestion;

/// <summary>
/// Byte-to-text decoding for uploads whose encoding is not declared.
/// </summary>
internal static class TextDecoding
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    // Windows-1252 assigns printable characters to 0x80..0x9F where Latin-1 has C1 controls;
    // mapping them by hand avoids registering the global code-pages provider.
    private static readonly char[] Cp1252High =
    [
        '\u20AC', '\u0081', '\u201A', '\u0192', '\u201E', '\u2026', '\u2020', '\u2021',
        '\u02C6', '\u2030', '\u0160', '\u2039', '\u0152', '\u008D', '\u017D', '\u008F',
        '\u0090', '\u2018', '\u2019', '\u201C', '\u201D', '\u2022', '\u2013', '\u2014',
        '\u02DC', '\u2122', '\u0161', '\u203A', '\u0153', '\u009D', '\u017E', '\u0178',
    ];

    /// <summary>The byte-level encoding guessed from a prefix of the content.</summary>
    internal enum Kind
    {
        Utf8,
        Utf16LittleEndian,
        Utf16BigEndian,
    }

    /// <summary>
    /// Guesses the encoding from a BOM, or from the NUL pattern that ASCII-range UTF-16 text leaves.
    /// </summary>
    /// <param name="head">The first bytes of the content (a few KB are plenty).</param>
    /// <param name="bomLength">Length of the byte-order mark to skip.</param>
    internal static Kind Detect(ReadOnlySpan<byte> head, out int bomLength)
    {
        if (head.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]))
        {
            bomLength = 3;
            return Kind.Utf8;
        }

        if (head.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xFE]))
        {
            bomLength = 2;
            return Kind.Utf16LittleEndian;
        }

        if (head.StartsWith((ReadOnlySpan<byte>)[0xFE, 0xFF]))
        {
            bomLength = 2;
            return Kind.Utf16BigEndian;
        }

        bomLength = 0;
        return LooksLikeUtf16(head, out var bigEndian)
            ? bigEndian ? Kind.Utf16BigEndian : Kind.Utf16LittleEndian
            : Kind.Utf8;
    }

    /// <summary>
    /// True when NULs sit almost only on one parity of byte positions, which is what
    /// UTF-16 text in Latin scripts looks like and what binary files rarely look like.
    /// </summary>
    internal static bool LooksLikeUtf16(ReadOnlySpan<byte> head, out bool bigEndian)
    {
        bigEndian = false;
        var sample = head[..(Math.Min(head.Length, 4096) & ~1)];
        if (sample.Length < 4)
        {
            return false;
        }

        int evenNuls = 0, oddNuls = 0;
        for (var i = 0; i < sample.Length; i += 2)
        {
            if (sample[i] == 0)
            {
                evenNuls++;
            }

            if (sample[i + 1] == 0)
            {
                oddNuls++;
            }
        }

        var pairs = sample.Length / 2;
        if (oddNuls >= pairs * 0.3 && evenNuls <= pairs * 0.05)
        {
            return true;
        }

        if (evenNuls >= pairs * 0.3 && oddNuls <= pairs * 0.05)
        {
            bigEndian = true;
            return true;
        }

        return false;
    }

    /// <summary>
    /// Decodes UTF-8 / UTF-16 (with or without BOM); bytes that are not valid UTF-8 are
    /// read as Windows-1252 because legacy Western text is the common cause.
    /// </summary>
    internal static string Decode(ReadOnlySpan<byte> bytes)
    {
        var kind = Detect(bytes, out var bom);
        var body = bytes[bom..];
        switch (kind)
        {
            case Kind.Utf16LittleEndian:
                return Encoding.Unicode.GetString(body[..(body.Length & ~1)]);
            case Kind.Utf16BigEndian:
                return Encoding.BigEndianUnicode.GetString(body[..(body.Length & ~1)]);
        }

        try
        {
            return StrictUtf8.GetString(body);
        }
        catch (DecoderFallbackException)
        {
            return DecodeWindows1252(body);
        }
    }

    /// <summary>Replaces CRLF and lone CR with LF so offsets are stable across platforms.</summary>
    internal static string NormalizeNewLines(string text)
    {
        if (!text.Contains('\r', StringComparison.Ordinal))
        {
            return text;
        }

        var sb = new StringBuilder(text.Length);
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '\r')
            {
                sb.Append('\n');
                if (i + 1 < text.Length && text[i + 1] == '\n')
                {
                    i++;
                }
            }
            else
            {
                sb.Append(c);
            }
        }

        return sb.ToString();
    }

    /// <summary>Reads a stream fully into memory.</summary>
    internal static byte[] ReadAll(Stream content)
    {
        ArgumentNullException.ThrowIfNull(content);
        if (content is MemoryStream ms && ms.TryGetBuffer(out var buffer))
        {
            var rest = buffer.AsSpan((int)ms.Position);
            ms.Position = ms.Length;
            return rest.ToArray();
        }

        using var copy = new MemoryStream();
        content.CopyTo(copy);
        return copy.ToArray();
    }

    private static string DecodeWindows1252(ReadOnlySpan<byte> bytes)
    {
        return string.Create(bytes.Length, bytes.ToArray(), static (span, source) =>
        {
            for (var i = 0; i < source.Length; i++)
            {
                var b = source[i];
                span[i] = b is >= 0x80 and <= 0x9F ? Cp1252High[b - 0x80] : (char)b;
            }
        });
    }
}
