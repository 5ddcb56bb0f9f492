using System.Globalization;
using System.Text;

namespace RagOrleans.Unit.Tests.Ingestion;

/// <summary>
/// Writes minimal PDFs by hand for structures no PDF library will produce on purpose
/// (reference cycles, thousands of pages); object n is the n-th body, 1-based.
/// </summary>
internal static class RawPdf
{
    public static byte[] Build(IReadOnlyList<string> objects, int root = 1)
    {
        var sb = new StringBuilder("%PDF-1.4\n");
        var offsets = new List<int>();
        for (var i = 0; i < objects.Count; i++)
        {
            offsets.Add(Encoding.Latin1.GetByteCount(sb.ToString()));
            sb.Append(CultureInfo.InvariantCulture, $"{i + 1} 0 obj\n{objects[i]}\nendobj\n");
        }

        var xref = Encoding.Latin1.GetByteCount(sb.ToString());
        sb.Append(CultureInfo.InvariantCulture, $"xref\n0 {objects.Count + 1}\n0000000000 65535 f \n");
        foreach (var offset in offsets)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{offset:D10} 00000 n \n");
        }

        sb.Append(CultureInfo.InvariantCulture, $"trailer\n<< /Size {objects.Count + 1} /Root {root} 0 R >>\nstartxref\n{xref}\n%%EOF\n");
        return Encoding.Latin1.GetBytes(sb.ToString());
    }

    /// <summary>A content stream object drawing <paramref name="text"/> in Helvetica (a standard font, so nothing is embedded).</summary>
    public static string TextStream(string text)
    {
        var content = $"BT /F1 12 Tf 20 100 Td ({text}) Tj ET";
        return $"<< /Length {content.Length} >>\nstream\n{content}\nendstream";
    }

    public const string FontResources = "/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >>";
}
