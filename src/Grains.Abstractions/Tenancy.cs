namespace RagOrleans.Abstractions;

/// <summary>API roles. The operator role comes from configuration, never from a stored key.</summary>
public static class Roles
{
    /// <summary>Manages tenants.</summary>
    public const string Operator = "operator";
    /// <summary>Manages one tenant's keys, collections and documents.</summary>
    public const string Admin = "admin";
    /// <summary>Reads, searches and chats within one tenant.</summary>
    public const string User = "user";

    /// <summary>True for roles a tenant key may carry.</summary>
    public static bool IsTenantRole(string? role) => role is Admin or User;
}

/// <summary>A tenant's public profile.</summary>
[GenerateSerializer, Immutable, Alias("rag.TenantInfo")]
public sealed record TenantInfo(
    [property: Id(0)] string Id,
    [property: Id(1)] string Name,
    [property: Id(2)] DateTimeOffset CreatedAt);

/// <summary>An API key as listed: never the secret.</summary>
[GenerateSerializer, Immutable, Alias("rag.ApiKeyInfo")]
public sealed record ApiKeyInfo(
    [property: Id(0)] string Id,
    [property: Id(1)] string Role,
    [property: Id(2)] string UserId,
    [property: Id(3)] DateTimeOffset CreatedAt);

/// <summary>A newly created key: the only time the full key string is returned.</summary>
[GenerateSerializer, Immutable, Alias("rag.CreatedApiKey")]
public sealed record CreatedApiKey(
    [property: Id(0)] ApiKeyInfo Info,
    [property: Id(1)] string Key);

/// <summary>A newly created tenant together with its first admin key.</summary>
[GenerateSerializer, Immutable, Alias("rag.CreatedTenant")]
public sealed record CreatedTenant(
    [property: Id(0)] TenantInfo Tenant,
    [property: Id(1)] CreatedApiKey AdminKey);

/// <summary>
/// An API key as a backup carries it: the salted hash, never the secret, so a restored key keeps working with the
/// same key string and a stolen archive yields no usable key.
/// </summary>
[GenerateSerializer, Immutable, Alias("rag.TenantKeyBackup")]
public sealed record TenantKeyBackup(
    [property: Id(0)] string Id,
    [property: Id(1)] string Role,
    [property: Id(2)] string UserId,
    [property: Id(3)] byte[] Salt,
    [property: Id(4)] byte[] Hash,
    [property: Id(5)] DateTimeOffset CreatedAt);

/// <summary>A tenant's record as exported: profile, key hashes and collection names.</summary>
[GenerateSerializer, Immutable, Alias("rag.TenantBackup")]
public sealed record TenantBackup(
    [property: Id(0)] string Id,
    [property: Id(1)] string Name,
    [property: Id(2)] DateTimeOffset CreatedAt,
    [property: Id(3)] IReadOnlyList<TenantKeyBackup> Keys,
    [property: Id(4)] IReadOnlyList<string> Collections);

/// <summary>Who a verified tenant key belongs to.</summary>
[GenerateSerializer, Immutable, Alias("rag.KeyPrincipal")]
public sealed record KeyPrincipal(
    [property: Id(0)] string TenantId,
    [property: Id(1)] string KeyId,
    [property: Id(2)] string Role,
    [property: Id(3)] string UserId);

/// <summary>One tenant: profile, API-key registry (salted hashes only) and the names of its collections.</summary>
[Alias("rag.ITenantGrain")]
public interface ITenantGrain : IGrainWithStringKey
{
    /// <summary>Creates the tenant with a first admin key; Conflict if it exists.</summary>
    [Alias("Create")] Task<CreatedTenant> Create(string name);

    /// <summary>The profile, or NotFound.</summary>
    [Alias("Get")] Task<TenantInfo> Get();

    /// <summary>Removes the tenant and everything it owns: keys, collections, documents, indexes, conversations.</summary>
    [Alias("Delete")] Task Delete();

    /// <summary>Verifies a key's secret in constant time; null when unknown, revoked or wrong.</summary>
    [Alias("Authenticate")] Task<KeyPrincipal?> Authenticate(string keyId, string secret);

    /// <summary>Issues a key for <paramref name="role"/> and <paramref name="userId"/>.</summary>
    [Alias("CreateKey")] Task<CreatedApiKey> CreateKey(string role, string userId);

    /// <summary>Lists live keys without secrets.</summary>
    [Alias("ListKeys")] Task<IReadOnlyList<ApiKeyInfo>> ListKeys();

    /// <summary>Revokes a key at once; NotFound if unknown.</summary>
    [Alias("RevokeKey")] Task RevokeKey(string keyId);

    /// <summary>Records a collection name in the tenant's registry; Conflict if present.</summary>
    [Alias("AddCollection")] Task AddCollection(string name);

    /// <summary>Removes a collection name from the registry. Interleaves: the tenant's own Delete waits on collections that call it.</summary>
    [Orleans.Concurrency.AlwaysInterleave]
    [Alias("RemoveCollection")] Task RemoveCollection(string name);

    /// <summary>The tenant's collection names, sorted.</summary>
    [Alias("ListCollections")] Task<IReadOnlyList<string>> ListCollections();

    /// <summary>The tenant's record for a backup (key hashes only); NotFound if absent.</summary>
    [Alias("ExportBackup")] Task<TenantBackup> ExportBackup();

    /// <summary>
    /// First step of a restore: creates the tenant with its profile but no key, so nothing can use it until
    /// <see cref="CompleteRestore"/>; Conflict if it exists. A failed restore is undone with <see cref="Delete"/>.
    /// </summary>
    [Alias("BeginRestore")] Task BeginRestore(string name, DateTimeOffset createdAt);

    /// <summary>Last step of a restore: installs the keys (from their hashes) and lists the tenant in the directory.</summary>
    [Alias("CompleteRestore")] Task CompleteRestore(IReadOnlyList<TenantKeyBackup> keys);
}

/// <summary>The cluster-wide list of tenants (a single activation keyed <see cref="Key"/>).</summary>
[Alias("rag.ITenantDirectoryGrain")]
public interface ITenantDirectoryGrain : IGrainWithStringKey
{
    /// <summary>The one key this grain is used with.</summary>
    const string Key = "all";

    /// <summary>Adds a tenant id; false if it was present.</summary>
    [Alias("Register")] Task<bool> Register(string tenantId);

    /// <summary>Removes a tenant id.</summary>
    [Alias("Unregister")] Task Unregister(string tenantId);

    /// <summary>All tenant ids, sorted.</summary>
    [Alias("List")] Task<IReadOnlyList<string>> List();
}

/// <summary>
/// The API key format <c>rk.{tenantId}.{keyId}.{secret}</c>: the tenant and key ids route the check to the
/// right grain without any global index; only the secret is verified (against a salted hash).
/// </summary>
public static class ApiKeyFormat
{
    /// <summary>Prefix of every tenant key.</summary>
    public const string Prefix = "rk";

    /// <summary>Builds the key string handed to the client once.</summary>
    public static string Format(string tenantId, string keyId, string secret) => $"{Prefix}.{tenantId}.{keyId}.{secret}";

    /// <summary>Splits a presented key; false when it is not shaped like one of ours.</summary>
    public static bool TryParse(string? key, out string tenantId, out string keyId, out string secret)
    {
        tenantId = keyId = secret = "";
        if (key is null || key.Length > 256)
        {
            return false;
        }

        var parts = key.Split('.');
        if (parts.Length != 4 || parts[0] != Prefix || !Ids.IsValidTenantId(parts[1]) || !Ids.IsValidName(parts[2]) || parts[3].Length is < 16 or > 128)
        {
            return false;
        }

        (tenantId, keyId, secret) = (parts[1], parts[2], parts[3]);
        return true;
    }
}
