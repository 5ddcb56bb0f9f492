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
}
