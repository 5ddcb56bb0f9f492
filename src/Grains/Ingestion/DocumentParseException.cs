namespace RagOrleans.Grains.Ingestion;

/// <summary>Why a document could not be turned into text.</summary>
public enum DocumentFailure
{
    /// <summary>The document is protected by a password we do not have.</summary>
    Encrypted,

    /// <summary>The document has pages but no extractable text (scanned images); OCR is not supported.</summary>
    NoTextLayer,

    /// <summary>The upload has no content, or the document contains no text at all.</summary>
    Empty,

    /// <summary>The bytes are truncated or malformed for the declared format.</summary>
    Corrupt,

    /// <summary>The content is a format we do not read (e.g. a zip that is not a Word document).</summary>
    Unsupported,

    /// <summary>The document exceeds a size, page, expansion or time limit.</summary>
    TooLarge,
}

/// <summary>
/// The only exception the document parsers throw for bad input; <see cref="Exception.Message"/>
/// is written to be shown to the uploader as is.
/// </summary>
/// <param name="reason">A user-facing explanation of why the document was refused.</param>
/// <param name="kind">The category of failure, for mapping to an API error.</param>
public sealed class DocumentParseException(string reason, DocumentFailure kind) : Exception(reason)
{
    /// <summary>Creates the exception keeping the library error that caused it, for logs.</summary>
    /// <param name="reason">A user-facing explanation of why the document was refused.</param>
    /// <param name="kind">The category of failure.</param>
    /// <param name="inner">The underlying library exception.</param>
    public DocumentParseException(string reason, DocumentFailure kind, Exception inner)
        : this(reason, kind)
    {
        InnerCause = inner;
    }

    /// <summary>The category of failure.</summary>
    public DocumentFailure Kind { get; } = kind;

    /// <summary>
    /// The library exception behind the failure, if any. Kept apart from <see cref="Exception.InnerException"/>
    /// because the primary constructor's base call cannot pass one through.
    /// </summary>
    public Exception? InnerCause { get; }
}
