using System.Numerics;
using System.Runtime.InteropServices;

namespace RagOrleans.Grains.Indexing;

/// <summary>CRC-32C (Castagnoli) for snapshot checksums; BitOperations uses the SSE4.2 / ARM CRC instructions when present.</summary>
internal static class Crc32C
{
    public static uint Update(uint crc, ReadOnlySpan<byte> bytes)
    {
        var words = MemoryMarshal.Cast<byte, ulong>(bytes);
        foreach (var word in words)
        {
            crc = BitOperations.Crc32C(crc, word);
        }

        foreach (var b in bytes[(words.Length * sizeof(ulong))..])
        {
            crc = BitOperations.Crc32C(crc, b);
        }

        return crc;
    }
}
