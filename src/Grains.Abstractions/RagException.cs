namespace RagOrleans.Abstractions;

/// <summary>What went wrong, in terms the HTTP edge maps to a status code.</summary>
public enum RagErrorKind
{
    /// <summary>The request is malformed or a value is out of range (400).</summary>
    Invalid = 0,
    /// <summary>The addressed resource does not exist, or is not visible to the caller (404).</summary>
    NotFound = 1,
    /// <summary>The resource already exists or is in a state that forbids the operation (409).</summary>
    Conflict = 2,
    /// <summary>The content type is not supported (415).</summary>
    UnsupportedMediaType = 3,
    /// <summary>The content is well-formed but cannot be processed (422).</summary>
    Unprocessable = 4,
    /// <summary>The payload is larger than allowed (413).</summary>
    TooLarge = 5,
    /// <summary>The caller may not do this (403).</summary>
    Forbidden = 6,
    /// <summary>A dependency is temporarily unavailable (503).</summary>
    Unavailable = 7,
    /// <summary>A rate or periodic quota is used up for now; retry later (429).</summary>
    TooManyRequests = 8,
}

/// <summary>
/// The only exception type grains throw on purpose across the grain boundary: it is defined in this
/// assembly so every client can deserialize it, and it carries a kind the HTTP edge maps to a status.
/// </summary>
[GenerateSerializer, Alias("rag.RagException")]
public sealed class RagException : Exception
{
    /// <summary>Creates an error of <paramref name="kind"/> with a message meant for the API caller.</summary>
    public RagException(RagErrorKind kind, string message) : base(message) => Kind = kind;

    /// <summary>The category of failure.</summary>
    [Id(0)]
    public RagErrorKind Kind { get; private set; }

    /// <summary>For a quota refusal: which quota, its limit and the usage, so the edge can say exactly why.</summary>
    [Id(1)]
    public QuotaViolation? Quota { get; private set; }

    /// <summary>A refusal of <paramref name="kind"/> (Forbidden, TooLarge or TooManyRequests) naming the quota.</summary>
    public static RagException QuotaExceeded(RagErrorKind kind, QuotaViolation violation, string message) =>
        new(kind, message) { Quota = violation };

    /// <summary>Shorthand for a <see cref="RagErrorKind.NotFound"/> error.</summary>
    public static RagException NotFound(string message) => new(RagErrorKind.NotFound, message);

    /// <summary>Shorthand for a <see cref="RagErrorKind.Invalid"/> error.</summary>
    public static RagException Invalid(string message) => new(RagErrorKind.Invalid, message);

    /// <summary>Shorthand for a <see cref="RagErrorKind.Conflict"/> error.</summary>
    public static RagException Conflict(string message) => new(RagErrorKind.Conflict, message);
}
