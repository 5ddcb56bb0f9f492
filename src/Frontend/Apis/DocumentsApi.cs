using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using RagOrleans.Abstractions;
using RagOrleans.Frontend.Infrastructure;
using RagOrleans.Grains;
using RagOrleans.Grains.Ingestion;
using RagOrleans.Grains.Storage;
using Microsoft.AspNetCore.Http.Features;

namespace RagOrleans.Frontend.Apis;

/// <summary>Documents: admins upload and delete, users read.</summary>
public static class DocumentsApi
{
    /// <summary>Request header naming an idempotent POST.</summary>
    public const string IdempotencyKeyHeader = "Idempotency-Key";

    /// <summary>Response header set when the response is the stored first response of an earlier request with the same key.</summary>
    public const string IdempotentReplayedHeader = "Idempotent-Replayed";

    private const int MaxMetadataBytes = 16 * 1024;

    // Room for the multipart envelope and form fields around the file.
    private const long MultipartOverheadBytes = 1024 * 1024;

    // Well inside the client's response timeout, so a long ?wait=true is many short calls, each of which
    // fails fast (and is retried by the loop) if the silo holding the document dies.
    private static readonly TimeSpan WaitSlice = TimeSpan.FromSeconds(5);

    public static IEndpointRouteBuilder MapDocumentsApi(this IEndpointRouteBuilder app)
    {
        var read = app.MapGroup("/v1/collections/{name}/documents").WithTags("Documents").RequireRole(Roles.Admin, Roles.User);
        read.MapGet("/", ListDocuments).WithSummary("List documents with their ingestion status");
        read.MapGet("/{id}", GetDocument).WithSummary("Get a document's ingestion status");

        var write = app.MapGroup("/v1/collections/{name}/documents").WithTags("Documents").RequireRole(Roles.Admin);
        write.MapPost("/", AddDocument).WithSummary("Upload a document (JSON text or multipart file); ?wait=true waits until indexed or failed")
            .Accepts<AddDocumentRequest>("application/json", "multipart/form-data")
            .DisableAntiforgery();
        write.MapDelete("/{id}", DeleteDocument).WithSummary("Delete a document and its chunks").Audited("document.delete");
        write.MapPost("/{id}/retry", RetryDocument).WithSummary("Re-run the pipeline of a failed document from its stored content (409 unless failed)");
        return app;
    }

    private static async Task<Results<Accepted<DocumentResponse>, Ok<DocumentResponse>, ContentHttpResult>> AddDocument(
        string name, HttpContext http, IGrainFactory grains, IOptions<RagOptions> options, bool? wait, int? timeoutSeconds)
    {
        var collection = CollectionsApi.Collection(grains, http, name);
        string? idempotencyKey = null;
        if (http.Request.Headers.TryGetValue(IdempotencyKeyHeader, out var keyValues))
        {
            idempotencyKey = keyValues.Count == 1 && RequestFingerprint.IsValidKey(keyValues[0])
                ? keyValues[0]
                : throw RagException.Invalid($"{IdempotencyKeyHeader} must be one value of 1 to 255 visible ASCII characters.");
        }

        var upload = http.Request.HasFormContentType
            ? await ReadMultipartAsync(http, options.Value)
            : await ReadJsonAsync(http, options.Value);
        try
        {
            return await AddUploadAsync(name, collection, upload, idempotencyKey, http, grains, wait, timeoutSeconds);
        }
        finally
        {
            // Moved into place when the document took it; otherwise (replay, refusal, error) it must not linger.
            if (upload.StagedBlobKey is not null)
            {
                await http.RequestServices.GetRequiredService<IBlobStore>().DeleteAsync(upload.StagedBlobKey);
            }
        }
    }

    private static async Task<Results<Accepted<DocumentResponse>, Ok<DocumentResponse>, ContentHttpResult>> AddUploadAsync(
        string name, ICollectionGrain collection, DocumentUpload upload, string? idempotencyKey, HttpContext http, IGrainFactory grains,
        bool? wait, int? timeoutSeconds)
    {
        if (idempotencyKey is null)
        {
            return Typed(http, await AddAsync(name, collection, upload, http, wait, timeoutSeconds));
        }

        // Keys are per tenant and stored hashed; the fingerprint covers what the request asked for (not how the
        // multipart body happened to be framed), so an honest retry matches and a different request does not.
        var tenant = AuthenticationMiddleware.Principal(http)!.Tenant;
        var keyGrain = grains.Reference<IIdempotencyGrain>(Ids.Key(tenant, RequestFingerprint.Of(idempotencyKey)));
        var fingerprint = RequestFingerprint.Of(
            "POST documents", name, upload.Id, upload.Title, upload.SourceType, upload.FileName, upload.MetadataJson,
            upload.StagedSha256 ?? Convert.ToHexStringLower(SHA256.HashData(upload.Content)));
        if (await keyGrain.Begin(fingerprint) is { } replay)
        {
            http.Response.Headers[IdempotentReplayedHeader] = "true";
            SetLocation(http, replay.StatusCode, replay.Location);
            return TypedResults.Content(replay.Body, "application/json", Encoding.UTF8, replay.StatusCode);
        }

        try
        {
            var outcome = await AddAsync(name, collection, upload, http, wait, timeoutSeconds);
            var jsonOptions = http.RequestServices.GetRequiredService<IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions>>().Value.SerializerOptions;
            await keyGrain.Complete(fingerprint, new IdempotentResponse(
                outcome.Status, outcome.Location, JsonSerializer.Serialize(outcome.Response, jsonOptions)));
            return Typed(http, outcome);
        }
        catch
        {
            await keyGrain.Release(fingerprint);
            throw;
        }
    }

    private static async Task<AddOutcome> AddAsync(
        string name, ICollectionGrain collection, DocumentUpload upload, HttpContext http, bool? wait, int? timeoutSeconds)
    {
        // Safe to repeat when the cluster refused the call: a second attempt after a first that got through finds
        // the same content and answers as a duplicate of it.
        var added = await TransientRetry.ReadAsync(() => collection.AddDocument(upload), http.RequestAborted);
        var info = added.Document;
        var location = $"/v1/collections/{name}/documents/{info.Id}";
        if (wait == true)
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(Math.Clamp(timeoutSeconds ?? 600, 1, 3600));
            while (info.Status is DocumentStatus.Queued or DocumentStatus.Processing && DateTime.UtcNow < deadline)
            {
                var slice = deadline - DateTime.UtcNow;
                var id = info.Id;
                info = await TransientRetry.ReadAsync(() => collection.WaitForDocument(id, slice < WaitSlice ? slice : WaitSlice), http.RequestAborted);
                http.RequestAborted.ThrowIfCancellationRequested();
            }
        }

        var finished = info.Status is DocumentStatus.Indexed or DocumentStatus.Failed;
        if (added.Duplicate && (wait != true || finished))
        {
            // The content is already here: 200 with the existing document (duplicate: true), nothing new queued.
            return new AddOutcome(StatusCodes.Status200OK, location, DocumentResponse.From(info, duplicate: true));
        }

        if (finished && wait == true)
        {
            return new AddOutcome(StatusCodes.Status200OK, null, DocumentResponse.From(info));
        }

        // With ?wait=true a 200 promises a finished document, also for a duplicate (a client's retry of an upload
        // that got through): one still in the pipeline when the wait ends is 202, like a new one.
        return new AddOutcome(StatusCodes.Status202Accepted, location, DocumentResponse.From(info, duplicate: added.Duplicate));
    }

    private static Results<Accepted<DocumentResponse>, Ok<DocumentResponse>, ContentHttpResult> Typed(HttpContext http, AddOutcome outcome)
    {
        if (outcome.Status == StatusCodes.Status202Accepted)
        {
            return TypedResults.Accepted(outcome.Location, outcome.Response);
        }

        // A duplicate carries the existing document's address.
        SetLocation(http, outcome.Status, outcome.Location);
        return TypedResults.Ok(outcome.Response);
    }

    private static void SetLocation(HttpContext http, int status, string? location)
    {
        if (location is null)
        {
            return;
        }

        if (status == StatusCodes.Status202Accepted)
        {
            http.Response.Headers.Location = location;
        }
        else
        {
            http.Response.Headers.ContentLocation = location;
        }
    }

    private static async Task<Ok<DocumentListResponse>> ListDocuments(
        string name, HttpContext http, IGrainFactory grains, string? cursor, int? limit, string? status)
    {
        DocumentStatus? filter = null;
        if (!string.IsNullOrEmpty(status))
        {
            filter = Enum.TryParse<DocumentStatus>(status, ignoreCase: true, out var parsed) && Enum.IsDefined(parsed) && !char.IsDigit(status[0])
                ? parsed
                : throw RagException.Invalid($"Unknown status '{status}': use queued, processing, indexed or failed.");
        }

        var page = await CollectionsApi.Collection(grains, http, name).ListDocuments(cursor, limit ?? 100, filter);
        return TypedResults.Ok(new DocumentListResponse(page.Documents.Select(d => DocumentResponse.From(d)).ToList(), page.NextCursor));
    }

    private static async Task<Ok<DocumentResponse>> GetDocument(string name, string id, HttpContext http, IGrainFactory grains)
    {
        Ids.RequireName(id, "document id");
        return TypedResults.Ok(DocumentResponse.From(await CollectionsApi.Collection(grains, http, name).GetDocument(id)));
    }

    private static async Task<Accepted<DocumentResponse>> RetryDocument(string name, string id, HttpContext http, IGrainFactory grains)
    {
        Ids.RequireName(id, "document id");
        var info = await CollectionsApi.Collection(grains, http, name).RetryDocument(id);
        return TypedResults.Accepted($"/v1/collections/{name}/documents/{id}", DocumentResponse.From(info));
    }

    private static async Task<NoContent> DeleteDocument(string name, string id, HttpContext http, IGrainFactory grains)
    {
        Ids.RequireName(id, "document id");
        await CollectionsApi.Collection(grains, http, name).DeleteDocument(id);
        return TypedResults.NoContent();
    }

    private static async Task<DocumentUpload> ReadJsonAsync(HttpContext http, RagOptions options)
    {
        // JSON escaping may double the text; the document limit itself is checked on the decoded bytes.
        var limit = options.MaxUploadBytesFor(AuthenticationMiddleware.Principal(http)!.Tenant);
        if (http.Request.ContentLength > limit * 2)
        {
            throw new RagException(RagErrorKind.TooLarge, $"The request body is larger than the {limit}-byte document limit.");
        }

        UploadsApi.AllowBody(http, limit * 2);

        if (!(http.Request.ContentType ?? "").StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
        {
            throw new RagException(RagErrorKind.UnsupportedMediaType, "Send application/json {\"text\": ...} or multipart/form-data with a 'file' field.");
        }

        var jsonOptions = http.RequestServices.GetRequiredService<IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions>>().Value.SerializerOptions;
        var request = await JsonSerializer.DeserializeAsync<AddDocumentRequest>(http.Request.Body, jsonOptions, http.RequestAborted)
            ?? throw RagException.Invalid("The body must be a JSON object.");
        if (string.IsNullOrWhiteSpace(request.Text))
        {
            throw RagException.Invalid("'text' is required and must not be empty.");
        }

        var content = Encoding.UTF8.GetBytes(request.Text);
        var format = request.Format?.ToLowerInvariant() ?? "text";
        if (format is not ("text" or "markdown"))
        {
            throw new RagException(RagErrorKind.UnsupportedMediaType, $"Unsupported format '{request.Format}': use 'text' or 'markdown'.");
        }

        return new DocumentUpload(ValidId(request.Id), ValidTitle(request.Title), format, null, content, Metadata(request.Metadata));
    }

    private static async Task<DocumentUpload> ReadMultipartAsync(HttpContext http, RagOptions options)
    {
        // The form reader spools files beyond 64 KB to disk; the file then streams into the blob store.
        var tenant = AuthenticationMiddleware.Principal(http)!.Tenant;
        var limit = options.MaxUploadBytesFor(tenant);
        UploadsApi.AllowBody(http, limit + MultipartOverheadBytes);
        http.Features.Set<IFormFeature>(new FormFeature(http.Request, new FormOptions { MultipartBodyLengthLimit = limit + MultipartOverheadBytes }));

        IFormCollection form;
        try
        {
            form = await http.Request.ReadFormAsync(http.RequestAborted);
        }
        catch (IOException ex) when (!http.RequestAborted.IsCancellationRequested)
        {
            // A truncated or malformed multipart body (found by the fuzzer: it was a 500).
            throw RagException.Invalid("The multipart body is malformed or truncated: " + ex.Message);
        }

        var file = form.Files.GetFile("file") ?? throw RagException.Invalid("The multipart body needs a 'file' field.");
        if (file.Length == 0)
        {
            throw new RagException(RagErrorKind.Unprocessable, "The uploaded file is empty.");
        }

        if (file.Length > limit)
        {
            throw new RagException(RagErrorKind.TooLarge, $"The file is {file.Length} bytes; the limit is {limit}.");
        }

        var head = new byte[8192];
        int headLength;
        await using (var stream = file.OpenReadStream())
        {
            headLength = await stream.ReadAtLeastAsync(head, head.Length, throwOnEndOfStream: false, http.RequestAborted);
        }

        var type = DocumentTypeSniffer.Detect(head.AsSpan(0, headLength), file.FileName, file.ContentType);
        if (type == DocumentTypes.Unsupported)
        {
            throw new RagException(RagErrorKind.UnsupportedMediaType,
                $"'{file.FileName}' is not a supported document type; send PDF, DOCX, HTML, XML, Markdown or plain text.");
        }

        JsonElement? metadata = null;
        if (form.TryGetValue("metadata", out var metadataText) && !string.IsNullOrWhiteSpace(metadataText))
        {
            try
            {
                using var doc = JsonDocument.Parse(metadataText.ToString());
                metadata = doc.RootElement.Clone();
            }
            catch (JsonException ex)
            {
                throw RagException.Invalid("The 'metadata' field is not valid JSON: " + ex.Message);
            }
        }

        string? id = form.TryGetValue("id", out var idValue) && !string.IsNullOrEmpty(idValue) ? idValue.ToString() : null;
        string? title = form.TryGetValue("title", out var titleValue) && !string.IsNullOrEmpty(titleValue) ? titleValue.ToString() : null;
        var (validId, validTitle, validMetadata) = (ValidId(id), ValidTitle(title), Metadata(metadata));

        // Staged in the blob store, hashed on the way: the silo gets a reference, not the bytes.
        var blobs = http.RequestServices.GetRequiredService<IBlobStore>();
        var staged = RagStorage.StagedUploadKey(tenant, CollectionName(http), "s-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12)));
        await using var source = file.OpenReadStream();
        using var hashing = new HashingReadStream(source, limit);
        var length = await blobs.PutStreamAsync(staged, hashing, http.RequestAborted);
        return new DocumentUpload(validId, validTitle, type, Path.GetFileName(file.FileName), [], validMetadata,
            staged, length, Convert.ToHexStringLower(hashing.Sha256));
    }

    private static string CollectionName(HttpContext http) => (string)http.Request.RouteValues["name"]!;

    private static string? ValidId(string? id) => id is null ? null : Ids.RequireName(id, "document id");

    internal static string? ValidTitle(string? title) => title is null
        ? null
        : title.Length <= 500 ? title.Trim() : throw RagException.Invalid("title must be at most 500 characters.");

    internal static string? Metadata(JsonElement? metadata)
    {
        if (metadata is null || metadata.Value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (metadata.Value.ValueKind != JsonValueKind.Object)
        {
            throw RagException.Invalid("metadata must be a JSON object.");
        }

        var raw = metadata.Value.GetRawText();
        return Encoding.UTF8.GetByteCount(raw) <= MaxMetadataBytes
            ? raw
            : throw RagException.Invalid($"metadata must be at most {MaxMetadataBytes} bytes of JSON.");
    }

    private sealed record AddOutcome(int Status, string? Location, DocumentResponse Response);
}
