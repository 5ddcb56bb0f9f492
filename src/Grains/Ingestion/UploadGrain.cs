using Microsoft.Extensions.Logging;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Storage;

namespace RagOrleans.Grains.Ingestion;

[GenerateSerializer, Alias("rag.UploadState")]
public sealed class UploadState
{
    [Id(0)] public UploadRequest? Request { get; set; }
    [Id(1)] public UploadPhase Phase { get; set; }
    [Id(2)] public Dictionary<int, UploadPart> Parts { get; set; } = [];
    [Id(3)] public DateTimeOffset CreatedAt { get; set; }
    [Id(4)] public string? DocumentId { get; set; }
}

/// <summary>
/// A resumable upload's part list, durable in grain state. Parts may arrive in any order and any number of times:
/// each copy is its own blob, and recording one drops the copy it replaces, so a retry racing a slow original never
/// leaves a torn part.
/// </summary>
[GrainType("upload")]
public sealed class UploadGrain(
    [PersistentState("upload", RagStorage.GrainStateProvider)] IPersistentState<UploadState> state,
    IBlobStore blobs,
    TimeProvider clock,
    ILogger<UploadGrain> logger) : Grain, IUploadGrain
{
    /// <summary>Highest part number accepted.</summary>
    public const int MaxParts = 10_000;

    private string _tenantId = "";
    private string _collection = "";
    private string _uploadId = "";

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var parts = Ids.Split(this.GetPrimaryKeyString(), 3);
        (_tenantId, _collection, _uploadId) = (parts[0], parts[1], parts[2]);
        return Task.CompletedTask;
    }

    public async Task<UploadInfo> Create(UploadRequest request)
    {
        if (state.State.Request is not null)
        {
            throw RagException.Conflict($"Upload '{_uploadId}' already exists.");
        }

        state.State = new UploadState { Request = request, CreatedAt = clock.GetUtcNow() };
        await state.WriteStateAsync();
        logger.LogInformation("Upload {UploadId} of {TenantId}/{Collection} started for {FileName}", _uploadId, _tenantId, _collection, request.FileName);
        return Info();
    }

    public Task<UploadInfo> Get() => Task.FromResult(Info());

    public async Task<UploadInfo> CommitPart(UploadPart part, long maxBytes)
    {
        try
        {
            var info = Info();
            if (state.State.Phase != UploadPhase.Open)
            {
                throw RagException.Conflict($"Upload '{_uploadId}' is {state.State.Phase.ToString().ToLowerInvariant()}; it takes no more parts.");
            }

            var others = info.ReceivedBytes - (state.State.Parts.TryGetValue(part.Number, out var old) ? old.Size : 0);
            if (others + part.Size > maxBytes)
            {
                throw new RagException(RagErrorKind.TooLarge, $"The upload would be {others + part.Size} bytes; the limit is {maxBytes}.");
            }
        }
        catch (RagException)
        {
            await blobs.DeleteAsync(part.BlobKey);
            throw;
        }

        state.State.Parts.TryGetValue(part.Number, out var replaced);
        state.State.Parts[part.Number] = part;
        await state.WriteStateAsync();
        if (replaced is not null && replaced.BlobKey != part.BlobKey)
        {
            await blobs.DeleteAsync(replaced.BlobKey);
        }

        return Info();
    }

    public async Task<UploadInfo> BeginComplete()
    {
        var info = Info();
        if (state.State.Phase == UploadPhase.Completed)
        {
            return info;
        }

        if (info.Parts.Count == 0)
        {
            throw RagException.Invalid("The upload has no parts yet.");
        }

        // Parts are numbered from 1; a gap means a part the client still has to send.
        var missing = Enumerable.Range(1, info.Parts[^1].Number).Except(state.State.Parts.Keys).Take(10).ToList();
        if (missing.Count > 0)
        {
            throw RagException.Invalid($"Parts are missing: {string.Join(", ", missing)}. Send them, then complete again.");
        }

        if (state.State.Request!.Size is { } declared && declared != info.ReceivedBytes)
        {
            throw RagException.Invalid($"The upload was declared as {declared} bytes but its parts hold {info.ReceivedBytes}.");
        }

        // A Completing upload whose assembler died is simply assembled again.
        state.State.Phase = UploadPhase.Completing;
        await state.WriteStateAsync();
        return Info();
    }

    public async Task<UploadInfo> FinishComplete(string documentId)
    {
        Info();
        state.State.Phase = UploadPhase.Completed;
        state.State.DocumentId = documentId;
        state.State.Parts = [];
        await state.WriteStateAsync();
        await blobs.DeletePrefixAsync(RagStorage.UploadBlobPrefix(_tenantId, _collection, _uploadId));

        logger.LogInformation("Upload {UploadId} of {TenantId}/{Collection} completed as document {DocumentId}", _uploadId, _tenantId, _collection, documentId);
        return Info();
    }

    public async Task AbortComplete()
    {
        if (state.State.Phase == UploadPhase.Completing)
        {
            state.State.Phase = UploadPhase.Open;
            await state.WriteStateAsync();
        }
    }

    public async Task Abort()
    {
        Info();
        await blobs.DeletePrefixAsync(RagStorage.UploadBlobPrefix(_tenantId, _collection, _uploadId));
        await state.ClearStateAsync();
        state.State = new UploadState();
        logger.LogInformation("Upload {UploadId} of {TenantId}/{Collection} aborted", _uploadId, _tenantId, _collection);
        DeactivateOnIdle();
    }

    private UploadInfo Info()
    {
        var request = state.State.Request ?? throw RagException.NotFound($"Upload '{_uploadId}' not found in collection '{_collection}'.");
        var parts = state.State.Parts.Values.OrderBy(p => p.Number).ToList();
        return new UploadInfo(_uploadId, request, state.State.Phase, parts, parts.Sum(p => p.Size), state.State.CreatedAt, state.State.DocumentId);
    }
}
