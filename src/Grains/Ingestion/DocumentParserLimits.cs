namespace RagOrleans.Grains.Ingestion;

/// <summary>
/// Resource limits the parsers enforce so a hostile or pathological upload is refused with
/// <see cref="DocumentFailure.TooLarge"/> instead of exhausting a silo.
/// </summary>
public sealed record DocumentParserLimits
{
    /// <summary>The defaults used when a parser is created without limits.</summary>
    public static DocumentParserLimits Default { get; } = new();

    /// <summary>PDFs with more pages than this are refused.</summary>
    public int MaxPdfPages { get; init; } = 5_000;

    /// <summary>Wall-clock budget for one parse, checked between pages, parts and elements.</summary>
    public TimeSpan MaxParseTime { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>Upper bound on the declared uncompressed size of all parts of a DOCX.</summary>
    public long MaxUncompressedBytes { get; init; } = 200L * 1024 * 1024;

    /// <summary>Upper bound on uncompressed size divided by compressed size for a DOCX (zip-bomb guard).</summary>
    public int MaxCompressionRatio { get; init; } = 100;

    /// <summary>Upper bound on the characters of extracted text.</summary>
    public int MaxTextCharacters { get; init; } = 64 * 1024 * 1024;
}
