namespace RagOrleans.Grains.Storage;

/// <summary>Names shared by grains and hosts.</summary>
public static class RagStorage
{
    /// <summary>The grain-state provider every grain of ours uses.</summary>
    public const string GrainStateProvider = "rag";

    /// <summary>Blob key of a document's uploaded content.</summary>
    public static string DocumentBlobKey(string tenantId, string collection, string documentId) => $"{tenantId}/{collection}/{documentId}";

    /// <summary>Blob key prefix of a collection.</summary>
    public static string CollectionBlobPrefix(string tenantId, string collection) => $"{tenantId}/{collection}";

    /// <summary>
    /// Blob key prefix of a resumable upload's parts and staged content, inside its collection (so a collection
    /// delete removes it). '.' cannot start a document id, so it never meets a document's key.
    /// </summary>
    public static string UploadBlobPrefix(string tenantId, string collection, string uploadId) => $"{tenantId}/{collection}/.uploads/{uploadId}";

    /// <summary>Blob key of one received copy of a part; every attempt gets its own, so a retry never overwrites a part in use.</summary>
    public static string UploadPartKey(string tenantId, string collection, string uploadId, int partNumber, string attempt) =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{UploadBlobPrefix(tenantId, collection, uploadId)}/part-{partNumber:D5}-{attempt}");

    /// <summary>Blob key where a plain (non-resumable) upload's file is streamed before it becomes a document's.</summary>
    public static string StagedUploadKey(string tenantId, string collection, string stagingId) => $"{tenantId}/{collection}/.uploads/{stagingId}";

    /// <summary>Blob key of an upload's assembled content before it becomes a document's.</summary>
    public static string UploadContentKey(string tenantId, string collection, string uploadId) => $"{UploadBlobPrefix(tenantId, collection, uploadId)}/content";
}
