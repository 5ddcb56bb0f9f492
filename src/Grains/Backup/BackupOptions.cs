namespace RagOrleans.Grains.Backup;

/// <summary>Limits of tenant import (<c>Rag:Backup</c>).</summary>
public sealed class BackupOptions
{
    /// <summary>Configuration section name.</summary>
    public const string Section = "Rag:Backup";

    /// <summary>Largest archive an import accepts (the request body), in bytes.</summary>
    public long MaxImportBytes { get; set; } = 8L << 30;

    /// <summary>Largest uncompressed size of any one entry (a blob, a snapshot, a chunk log), in bytes.</summary>
    public long MaxEntryBytes { get; set; } = 2L << 30;

    /// <summary>Largest uncompressed size of all entries together, in bytes.</summary>
    public long MaxTotalBytes { get; set; } = 32L << 30;

    /// <summary>Largest uncompressed/compressed ratio of an entry over 1 MiB: beyond it the entry is taken for a decompression bomb.</summary>
    public double MaxCompressionRatio { get; set; } = 200;

    /// <summary>Where an uploaded archive is spooled while it is checked and restored; the system temp folder by default.</summary>
    public string? TempDir { get; set; }
}
