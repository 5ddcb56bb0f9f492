using System.Buffers;
using System.IO.Compression;
using System.Net.Sockets;
using System.Text;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>One raw HTTP/1.1 exchange's outcome; <see cref="Status"/> is 0 when no response came.</summary>
internal sealed record RawResponse(int Status, string Head, string Body, string? Error);

/// <summary>
/// A deliberately dumb HTTP/1.1 client over a socket: it sends request lines and bodies byte for byte (raw
/// <c>..</c> segments, bytes that are not UTF-8, lying or missing lengths), which HttpClient would normalise
/// or refuse, and reads the answer until the server closes the connection.
/// </summary>
internal static class RawHttp
{
    public static async Task<RawResponse> SendAsync(
        int port, string method, byte[] target, IReadOnlyList<(string Name, string Value)> headers, Func<Stream, CancellationToken, Task>? writeBody,
        TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        using var client = new TcpClient { NoDelay = true };
        try
        {
            await client.ConnectAsync(System.Net.IPAddress.Loopback, port, cts.Token);
            var stream = client.GetStream();
            using var head = new MemoryStream();
            head.Write(Encoding.ASCII.GetBytes(method + " "));
            head.Write(target);
            head.Write(" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"u8);
            foreach (var (name, value) in headers)
            {
                head.Write(Encoding.UTF8.GetBytes($"{name}: {value}\r\n"));
            }

            head.Write("\r\n"u8);
            await stream.WriteAsync(head.ToArray(), cts.Token);

            // The server may answer (413, 400) and close before the whole body is sent: read while writing.
            var read = ReadAllAsync(stream, cts.Token);
            string? writeError = null;
            if (writeBody is not null)
            {
                try
                {
                    await writeBody(stream, cts.Token);
                }
                catch (IOException ex)
                {
                    writeError = ex.Message;
                }
            }

            // No half-close: Kestrel takes a client's FIN for an aborted request. "Connection: close" ends the exchange.
            var bytes = await read;
            var text = Encoding.UTF8.GetString(bytes);
            var split = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            var headText = split < 0 ? text : text[..split];
            var status = headText.Length >= 12 && headText.StartsWith("HTTP/1.1 ", StringComparison.Ordinal)
                && int.TryParse(headText.AsSpan(9, 3), System.Globalization.CultureInfo.InvariantCulture, out var s) ? s : 0;
            return new RawResponse(status, headText, split < 0 ? "" : text[(split + 4)..], status == 0 ? writeError ?? "no response" : null);
        }
        catch (OperationCanceledException)
        {
            return new RawResponse(0, "", "", $"no answer within {timeout.TotalSeconds:F0} s");
        }
        catch (Exception ex) when (ex is IOException or SocketException)
        {
            return new RawResponse(0, "", "", ex.GetType().Name + ": " + ex.Message);
        }
    }

    private static async Task<byte[]> ReadAllAsync(NetworkStream stream, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        var chunk = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            int n;
            while ((n = await stream.ReadAsync(chunk, cancellationToken)) > 0)
            {
                // Only the head and the start of the body matter; keep memory flat on large answers.
                if (buffer.Length < 64 * 1024)
                {
                    buffer.Write(chunk, 0, n);
                }
            }
        }
        catch (IOException) when (buffer.Length > 0)
        {
            // Reset after the answer was sent (the server closes early on a refused body).
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }

        return buffer.ToArray();
    }
}

/// <summary>Hostile payloads, generated in the test (nothing binary is checked in).</summary>
internal static class HostilePayloads
{
    /// <summary>
    /// A DOCX-shaped zip whose document part inflates to <paramref name="inflatedBytes"/> of XML from a few hundred KB:
    /// a decompression bomb the sniffer takes for Word.
    /// </summary>
    public static byte[] DocxBomb(long inflatedBytes)
    {
        using var output = new MemoryStream();
        using (var zip = new ZipArchive(output, ZipArchiveMode.Create, leaveOpen: true))
        {
            Write(zip, "[Content_Types].xml", """<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>""");
            Write(zip, "_rels/.rels", """<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>""");
            var entry = zip.CreateEntry("word/document.xml", CompressionLevel.Optimal);
            using var stream = entry.Open();
            stream.Write("""<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>"""u8);
            var block = new byte[1 << 20];
            block.AsSpan().Fill((byte)'a');
            for (long written = 0; written < inflatedBytes; written += block.Length)
            {
                stream.Write(block);
            }

            stream.Write("</w:t></w:r></w:p></w:body></w:document>"u8);
        }

        return output.ToArray();
    }

    /// <summary>PDFs whose object graph loops: a page tree that is its own kid, a stream whose length is itself, a parent cycle.</summary>
    public static IReadOnlyList<byte[]> CyclicPdfs() =>
    [
        Pdf(
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>",
            "<< /Type /Page /Parent 3 0 R /Kids [2 0 R] /MediaBox [0 0 612 792] >>"),
        Pdf(
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 3 0 R >> >> >>",
            "<< /Length 4 0 R >>\nstream\nBT /F1 12 Tf (loop) Tj ET\nendstream"),
        Pdf(
            "<< /Type /Catalog /Pages 1 0 R /Outlines 2 0 R >>",
            "<< /Type /Outlines /First 2 0 R /Last 2 0 R /Next 2 0 R /Count 1 >>"),
    ];

    private static byte[] Pdf(params string[] objects)
    {
        var text = new StringBuilder("%PDF-1.7\n");
        var offsets = new List<int>();
        for (var i = 0; i < objects.Length; i++)
        {
            offsets.Add(Encoding.ASCII.GetByteCount(text.ToString()));
            text.Append(System.Globalization.CultureInfo.InvariantCulture, $"{i + 1} 0 obj\n{objects[i]}\nendobj\n");
        }

        var xref = Encoding.ASCII.GetByteCount(text.ToString());
        text.Append(System.Globalization.CultureInfo.InvariantCulture, $"xref\n0 {objects.Length + 1}\n0000000000 65535 f \n");
        foreach (var offset in offsets)
        {
            text.Append(System.Globalization.CultureInfo.InvariantCulture, $"{offset:D10} 00000 n \n");
        }

        text.Append(System.Globalization.CultureInfo.InvariantCulture, $"trailer\n<< /Size {objects.Length + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n");
        return Encoding.ASCII.GetBytes(text.ToString());
    }

    private static void Write(ZipArchive zip, string name, string content)
    {
        using var stream = zip.CreateEntry(name).Open();
        stream.Write(Encoding.UTF8.GetBytes(content));
    }
}
