using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using RagOrleans.Abstractions;
using RagOrleans.Frontend.Infrastructure;
using RagOrleans.Grains;
using RagOrleans.Grains.Ingestion;
using RagOrleans.Grains.Storage;

namespace RagOrleans.Frontend.Apis;

/// <summary>
/// Resumable uploads: start, send parts in any order (a resent part replaces itself), list, abort, complete.
/// Part bodies stream from the request straight into the blob store; no part and no file is held in memory.
/// </summary>
public static class UploadsApi
{
    /// <summary>Optional part header: the part's SHA-256, as 64 hex digits or base64. A mismatch is 400 and the part is not kept.</summary>
    public const string ChecksumHeader = "x-checksum-sha256";

    public static IEndpointRouteBuilder MapUploadsApi(this IEndpointRouteBuilder app)
    {
        var write = app.MapGroup("/v1/collections/{name}/uploads").WithTags("Uploads").RequireRole(Roles.Admin);
        write.MapPost("/", CreateUpload).WithSummary("Start a resumable upload: {fileName, size?, contentType?, id?, title?, metadata?}");
        write.MapGet("/{uploadId}", GetUpload).WithSummary("The parts received so far");
        write.MapPut("/{uploadId}/parts/{partNumber:int}", PutPart)
            .WithSummary($"Store part n (1..{UploadGrain.MaxParts}), any order; resending replaces it; optional {ChecksumHeader} header")
            .Accepts<Stream>("application/octet-stream");
        write.MapDelete("/{uploadId}", AbortUpload).WithSummary("Abort the upload and free its parts");
        write.MapPost("/{uploadId}/complete", CompleteUpload).WithSummary("Assemble the parts into a document (202 with its id); the pipeline runs");
        return app;
    }

    private static async Task<Created<UploadResponse>> CreateUpload(
        string name, CreateUploadRequest request, HttpContext http, IGrainFactory grains, IOptions<RagOptions> options)
    {
        var collection = CollectionsApi.Collection(grains, http, name);
        await collection.GetSettings();
        if (string.IsNullOrWhiteSpace(request.FileName) || request.FileName.Length > 255)
        {
            throw RagException.Invalid("'fileName' is required (at most 255 characters).");
        }

        var limit = options.Value.MaxUploadBytesFor(Tenant(http));
        if (request.Size is { } size && (size < 1 || size > limit))
        {
            throw size < 1
                ? RagException.Invalid("'size' must be positive.")
                : new RagException(RagErrorKind.TooLarge, $"The upload is declared as {size} bytes; the limit is {limit}.");
        }

        var uploadId = "up-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        await collection.RegisterUpload(uploadId);
        var info = await Upload(grains, http, name, uploadId).Create(new UploadRequest(
            Path.GetFileName(request.FileName), request.Size, request.ContentType,
            request.Id is null ? null : Ids.RequireName(request.Id, "document id"),
            DocumentsApi.ValidTitle(request.Title), DocumentsApi.Metadata(request.Metadata)));
        return TypedResults.Created($"/v1/collections/{name}/uploads/{uploadId}", UploadResponse.From(info));
    }

    private static async Task<Ok<UploadResponse>> GetUpload(string name, string uploadId, HttpContext http, IGrainFactory grains) =>
        TypedResults.Ok(UploadResponse.From(await Upload(grains, http, name, uploadId).Get()));

    private static async Task<NoContent> AbortUpload(string name, string uploadId, HttpContext http, IGrainFactory grains)
    {
        await Upload(grains, http, name, uploadId).Abort();
        return TypedResults.NoContent();
    }

    private static async Task<Ok<UploadPartResponse>> PutPart(
        string name, string uploadId, int partNumber, HttpContext http, IGrainFactory grains, IBlobStore blobs, IOptions<RagOptions> options)
    {
        if (partNumber is < 1 or > UploadGrain.MaxParts)
        {
            throw RagException.Invalid($"The part number must be between 1 and {UploadGrain.MaxParts}.");
        }

        var expected = ExpectedChecksum(http);
        var upload = Upload(grains, http, name, uploadId);
        var info = await upload.Get();
        if (info.Phase != UploadPhase.Open)
        {
            throw RagException.Conflict($"Upload '{uploadId}' is {info.Phase.ToString().ToLowerInvariant()}; it takes no more parts.");
        }

        // Room left for this part: the limit minus every other part (a resent part frees its old size).
        var limit = options.Value.MaxUploadBytesFor(Tenant(http));
        var others = info.ReceivedBytes - (info.Parts.FirstOrDefault(p => p.Number == partNumber)?.Size ?? 0);
        var room = limit - others;
        AllowBody(http, room);

        var tenant = Tenant(http);
        var key = RagStorage.UploadPartKey(tenant, name, uploadId, partNumber, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)));
        using var body = new HashingReadStream(http.Request.Body, room);
        try
        {
            await blobs.PutStreamAsync(key, body, http.RequestAborted);
        }
        catch
        {
            await blobs.DeleteAsync(key);
            throw;
        }

        var sha256 = body.Sha256;
        if (expected is not null && !CryptographicOperations.FixedTimeEquals(expected, sha256))
        {
            await blobs.DeleteAsync(key);
            throw RagException.Invalid(
                $"Part {partNumber} does not match its {ChecksumHeader} header (received {body.BytesRead} bytes with SHA-256 {Convert.ToHexStringLower(sha256)}); send it again.");
        }

        var part = new UploadPart(partNumber, body.BytesRead, Convert.ToHexStringLower(sha256), key, DateTimeOffset.UtcNow);
        var updated = await upload.CommitPart(part, limit);
        return TypedResults.Ok(new UploadPartResponse(partNumber, part.Size, part.Sha256, updated.ReceivedBytes));
    }

    private static async Task<Accepted<UploadCompletedResponse>> CompleteUpload(
        string name, string uploadId, HttpContext http, IGrainFactory grains, IBlobStore blobs)
    {
        var collection = CollectionsApi.Collection(grains, http, name);
        var upload = Upload(grains, http, name, uploadId);
        var info = await upload.BeginComplete();
        if (info.Phase == UploadPhase.Completed)
        {
            return Completed(name, uploadId, info.DocumentId!, duplicate: false);
        }

        try
        {
            // Parts are streamed in order into one blob while hashing; the type is sniffed from its first bytes.
            var tenant = Tenant(http);
            var staged = RagStorage.UploadContentKey(tenant, name, uploadId);
            long length;
            string sha256;
            await using (var parts = new ConcatenatedBlobStream(blobs, info.Parts.Select(p => p.BlobKey).ToList()))
            using (var hashing = new HashingReadStream(parts, long.MaxValue))
            {
                length = await blobs.PutStreamAsync(staged, hashing, http.RequestAborted);
                sha256 = Convert.ToHexStringLower(hashing.Sha256);
            }

            var head = new byte[8192];
            int headLength;
            await using (var content = await blobs.OpenReadAsync(staged, http.RequestAborted)
                ?? throw new InvalidOperationException("The assembled upload vanished."))
            {
                headLength = await content.ReadAtLeastAsync(head, head.Length, throwOnEndOfStream: false, http.RequestAborted);
            }

            var request = info.Request;
            var type = DocumentTypeSniffer.Detect(head.AsSpan(0, headLength), request.FileName, request.ContentType);
            if (type == DocumentTypes.Unsupported)
            {
                await blobs.DeleteAsync(staged);
                throw new RagException(RagErrorKind.UnsupportedMediaType,
                    $"'{request.FileName}' is not a supported document type; send PDF, DOCX, HTML, XML, Markdown or plain text.");
            }

            var added = await collection.AddDocument(new DocumentUpload(
                request.DocumentId, request.Title, type, request.FileName, [], request.MetadataJson, staged, length, sha256));
            await upload.FinishComplete(added.Document.Id);
            return Completed(name, uploadId, added.Document.Id, added.Duplicate);
        }
        catch
        {
            await upload.AbortComplete();
            throw;
        }
    }

    /// <summary>Lets a body up to <paramref name="maxBytes"/> through Kestrel's default request size limit.</summary>
    internal static void AllowBody(HttpContext http, long maxBytes)
    {
        var feature = http.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (feature is { IsReadOnly: false })
        {
            // One more byte than allowed reaches our counting stream, which answers with a clear 413.
            feature.MaxRequestBodySize = Math.Max(0, maxBytes) + 1;
        }
    }

    private static byte[]? ExpectedChecksum(HttpContext http)
    {
        if (!http.Request.Headers.TryGetValue(ChecksumHeader, out var values))
        {
            return null;
        }

        var text = values.Count == 1 ? values[0]!.Trim() : "";
        if (text.Length == 64 && text.All(Uri.IsHexDigit))
        {
            return Convert.FromHexString(text);
        }

        var bytes = new byte[32];
        return Convert.TryFromBase64String(text, bytes, out var written) && written == 32
            ? bytes
            : throw RagException.Invalid($"{ChecksumHeader} must be a SHA-256 as 64 hex digits or base64.");
    }

    private static Accepted<UploadCompletedResponse> Completed(string name, string uploadId, string documentId, bool duplicate) =>
        TypedResults.Accepted($"/v1/collections/{name}/documents/{documentId}", new UploadCompletedResponse(uploadId, documentId, duplicate));

    private static string Tenant(HttpContext http) => AuthenticationMiddleware.Principal(http)!.Tenant;

    private static IUploadGrain Upload(IGrainFactory grains, HttpContext http, string name, string uploadId)
    {
        Ids.RequireName(name, "collection name");
        Ids.RequireName(uploadId, "upload id");
        return grains.Reference<IUploadGrain>(Ids.Key(Tenant(http), name, uploadId));
    }
}

/// <summary>Body of POST /v1/collections/{name}/uploads.</summary>
public sealed record CreateUploadRequest(string? FileName, long? Size, string? ContentType, string? Id, string? Title, JsonElement? Metadata);

/// <summary>One received part.</summary>
public sealed record UploadPartResponse(int PartNumber, long Size, string Sha256, long ReceivedBytes);

/// <summary>A part as listed with its upload.</summary>
public sealed record UploadPartInfo(int PartNumber, long Size, string Sha256, DateTimeOffset ReceivedAt);

/// <summary>A resumable upload and its parts, in part-number order.</summary>
public sealed record UploadResponse(
    string UploadId, string FileName, long? Size, string? ContentType, UploadPhase Phase, long ReceivedBytes,
    IReadOnlyList<UploadPartInfo> Parts, DateTimeOffset CreatedAt, string? DocumentId)
{
    public static UploadResponse From(UploadInfo u) => new(
        u.UploadId, u.Request.FileName, u.Request.Size, u.Request.ContentType, u.Phase, u.ReceivedBytes,
        u.Parts.Select(p => new UploadPartInfo(p.Number, p.Size, p.Sha256, p.ReceivedAt)).ToList(), u.CreatedAt, u.DocumentId);
}

/// <summary>The document an upload became (its pipeline runs after this answer).</summary>
public sealed record UploadCompletedResponse(string UploadId, string DocumentId, bool Duplicate);
