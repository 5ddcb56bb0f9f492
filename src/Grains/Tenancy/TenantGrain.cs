using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Storage;
using RagOrleans.Grains.Telemetry;

namespace RagOrleans.Grains.Tenancy;

[GenerateSerializer, Alias("rag.StoredKey")]
public sealed record StoredKey(
    [property: Id(0)] string Id,
    [property: Id(1)] string Role,
    [property: Id(2)] string UserId,
    [property: Id(3)] byte[] Salt,
    [property: Id(4)] byte[] Hash,
    [property: Id(5)] DateTimeOffset CreatedAt);

[GenerateSerializer, Alias("rag.TenantState")]
public sealed class TenantState
{
    [Id(0)] public bool Exists { get; set; }
    [Id(1)] public string Name { get; set; } = "";
    [Id(2)] public DateTimeOffset CreatedAt { get; set; }
    [Id(3)] public Dictionary<string, StoredKey> Keys { get; set; } = [];
    [Id(4)] public SortedSet<string> Collections { get; set; } = new(StringComparer.Ordinal);
}

[GrainType("tenant")]
public sealed class TenantGrain(
    [PersistentState("tenant", RagStorage.GrainStateProvider)] IPersistentState<TenantState> state,
    IConversationStore conversations,
    IIdempotencyStore idempotencyKeys,
    TimeProvider clock,
    RagMetrics metrics,
    ILogger<TenantGrain> logger) : Grain, ITenantGrain
{
    private string TenantId => this.GetPrimaryKeyString();

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        metrics.TenantActive(+1);
        return Task.CompletedTask;
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        metrics.TenantActive(-1);
        return Task.CompletedTask;
    }

    public async Task<CreatedTenant> Create(string name)
    {
        if (state.State.Exists)
        {
            throw RagException.Conflict($"Tenant '{TenantId}' already exists.");
        }

        state.State = new TenantState { Exists = true, Name = name, CreatedAt = clock.GetUtcNow() };
        var key = NewKey(Roles.Admin, "admin");
        await state.WriteStateAsync();
        await GrainFactory.Reference<ITenantDirectoryGrain>(ITenantDirectoryGrain.Key).Register(TenantId);
        logger.LogInformation("Tenant {TenantId} created", TenantId);
        return new CreatedTenant(Info(), key);
    }

    public Task<TenantInfo> Get() => Task.FromResult(Info());

    public async Task Delete()
    {
        RequireExists();
        foreach (var collection in state.State.Collections.ToArray())
        {
            await GrainFactory.Reference<ICollectionGrain>(Ids.Key(TenantId, collection)).Delete();
        }

        await conversations.DeleteTenantAsync(TenantId);
        await GrainFactory.Reference<IQuotaGrain>(TenantId).Clear();
        await idempotencyKeys.DeleteTenantAsync(TenantId);
        await GrainFactory.Reference<ITenantDirectoryGrain>(ITenantDirectoryGrain.Key).Unregister(TenantId);
        await state.ClearStateAsync();
        state.State = new TenantState();
        logger.LogInformation("Tenant {TenantId} deleted", TenantId);
        DeactivateOnIdle();
    }

    public Task<KeyPrincipal?> Authenticate(string keyId, string secret)
    {
        if (!state.State.Exists || !state.State.Keys.TryGetValue(keyId, out var key))
        {
            return Task.FromResult<KeyPrincipal?>(null);
        }

        var presented = ApiKeySecrets.Hash(key.Salt, secret);
        return Task.FromResult(CryptographicOperations.FixedTimeEquals(presented, key.Hash)
            ? new KeyPrincipal(TenantId, key.Id, key.Role, key.UserId)
            : null);
    }

    public async Task<CreatedApiKey> CreateKey(string role, string userId)
    {
        RequireExists();
        if (!Roles.IsTenantRole(role))
        {
            throw RagException.Invalid($"Invalid role '{role}': use 'admin' or 'user'.");
        }

        Ids.RequireName(userId, "user id");
        var created = NewKey(role, userId);
        await state.WriteStateAsync();
        logger.LogInformation("Key {KeyId} ({Role}) created for tenant {TenantId}", created.Info.Id, role, TenantId);
        return created;
    }

    public Task<IReadOnlyList<ApiKeyInfo>> ListKeys()
    {
        RequireExists();
        IReadOnlyList<ApiKeyInfo> keys = state.State.Keys.Values
            .OrderBy(k => k.CreatedAt).ThenBy(k => k.Id, StringComparer.Ordinal)
            .Select(k => new ApiKeyInfo(k.Id, k.Role, k.UserId, k.CreatedAt)).ToList();
        return Task.FromResult(keys);
    }

    public async Task RevokeKey(string keyId)
    {
        RequireExists();
        if (!state.State.Keys.Remove(keyId))
        {
            throw RagException.NotFound($"Key '{keyId}' not found.");
        }

        await state.WriteStateAsync();
        logger.LogInformation("Key {KeyId} revoked for tenant {TenantId}", keyId, TenantId);
    }

    public async Task AddCollection(string name)
    {
        RequireExists();
        if (!state.State.Collections.Add(name))
        {
            throw RagException.Conflict($"Collection '{name}' already exists.");
        }

        await state.WriteStateAsync();
    }

    public async Task RemoveCollection(string name)
    {
        if (state.State.Collections.Remove(name))
        {
            await state.WriteStateAsync();
        }
    }

    public Task<IReadOnlyList<string>> ListCollections()
    {
        RequireExists();
        return Task.FromResult<IReadOnlyList<string>>([.. state.State.Collections]);
    }

    public Task<TenantBackup> ExportBackup()
    {
        RequireExists();
        var keys = state.State.Keys.Values
            .OrderBy(k => k.CreatedAt).ThenBy(k => k.Id, StringComparer.Ordinal)
            .Select(k => new TenantKeyBackup(k.Id, k.Role, k.UserId, k.Salt, k.Hash, k.CreatedAt)).ToList();
        return Task.FromResult(new TenantBackup(TenantId, state.State.Name, state.State.CreatedAt, keys, [.. state.State.Collections]));
    }

    public async Task BeginRestore(string name, DateTimeOffset createdAt)
    {
        if (state.State.Exists)
        {
            throw RagException.Conflict($"Tenant '{TenantId}' already exists; delete it first or import into another cluster.");
        }

        state.State = new TenantState { Exists = true, Name = name, CreatedAt = createdAt };
        await state.WriteStateAsync();
        logger.LogInformation("Tenant {TenantId} restore begun", TenantId);
    }

    public async Task CompleteRestore(IReadOnlyList<TenantKeyBackup> keys)
    {
        RequireExists();
        foreach (var key in keys)
        {
            if (!Roles.IsTenantRole(key.Role) || !Ids.IsValidName(key.Id) || !Ids.IsValidName(key.UserId) || key.Salt.Length == 0 || key.Hash.Length != 32)
            {
                throw RagException.Invalid($"Key '{key.Id}' of the backup is malformed.");
            }

            state.State.Keys[key.Id] = new StoredKey(key.Id, key.Role, key.UserId, key.Salt, key.Hash, key.CreatedAt);
        }

        await state.WriteStateAsync();
        await GrainFactory.Reference<ITenantDirectoryGrain>(ITenantDirectoryGrain.Key).Register(TenantId);
        logger.LogInformation("Tenant {TenantId} restored with {Keys} keys and {Collections} collections", TenantId, keys.Count, state.State.Collections.Count);
    }

    private CreatedApiKey NewKey(string role, string userId)
    {
        var key = ApiKeySecrets.Create(TenantId);
        var stored = new StoredKey(key.KeyId, role, userId, key.Salt, key.Hash, clock.GetUtcNow());
        state.State.Keys[key.KeyId] = stored;
        return new CreatedApiKey(new ApiKeyInfo(key.KeyId, role, userId, stored.CreatedAt), key.Key);
    }

    private TenantInfo Info()
    {
        RequireExists();
        return new TenantInfo(TenantId, state.State.Name, state.State.CreatedAt);
    }

    private void RequireExists()
    {
        if (!state.State.Exists)
        {
            throw RagException.NotFound($"Tenant '{TenantId}' not found.");
        }
    }
}

[GenerateSerializer, Alias("rag.TenantDirectoryState")]
public sealed class TenantDirectoryState
{
    [Id(0)] public SortedSet<string> Tenants { get; set; } = new(StringComparer.Ordinal);
}

[GrainType("tenant-directory")]
public sealed class TenantDirectoryGrain(
    [PersistentState("directory", RagStorage.GrainStateProvider)] IPersistentState<TenantDirectoryState> state) : Grain, ITenantDirectoryGrain
{
    public async Task<bool> Register(string tenantId)
    {
        if (!state.State.Tenants.Add(tenantId))
        {
            return false;
        }

        await state.WriteStateAsync();
        return true;
    }

    public async Task Unregister(string tenantId)
    {
        if (state.State.Tenants.Remove(tenantId))
        {
            await state.WriteStateAsync();
        }
    }

    public Task<IReadOnlyList<string>> List() => Task.FromResult<IReadOnlyList<string>>([.. state.State.Tenants]);
}
