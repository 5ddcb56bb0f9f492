using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Embeddings;
using RagOrleans.Grains.Storage;

namespace RagOrleans.Grains.Chat;

/// <summary>
/// One user's conversation: keeps the history in the conversation store. Retrieval and generation run in the
/// frontend (where the client's connection and the upstream model call live), which appends each finished turn.
/// </summary>
[GrainType("conversation")]
public sealed class ConversationGrain(
    IConversationStore store,
    ILogger<ConversationGrain> logger) : Grain, IConversationGrain
{
    private string _tenantId = "";
    private string _userId = "";
    private string _conversationId = "";
    private List<ChatTurn>? _history;

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var parts = Ids.Split(this.GetPrimaryKeyString(), 3);
        (_tenantId, _userId, _conversationId) = (parts[0], parts[1], parts[2]);
        return Task.CompletedTask;
    }

    public async Task Append(string collection, ChatTurn turn)
    {
        ArgumentNullException.ThrowIfNull(turn);
        await store.AppendAsync(_tenantId, _userId, _conversationId, collection, turn);
        _history?.Add(turn);
        logger.LogDebug("Conversation {ConversationId} of {TenantId}: turn appended ({Provider})", _conversationId, _tenantId, turn.Provider);
    }

    public async Task<IReadOnlyList<ChatTurn>> GetHistory()
    {
        _history ??= [.. await store.GetAsync(_tenantId, _userId, _conversationId)];
        return _history;
    }

    public async Task<bool> Delete()
    {
        var deleted = await store.DeleteAsync(_tenantId, _userId, _conversationId);
        _history = null;
        DeactivateOnIdle();
        logger.LogInformation("Conversation {ConversationId} of {TenantId}/{UserId} deleted ({Turns} turns)", _conversationId, _tenantId, _userId, deleted);
        return deleted > 0;
    }
}

/// <summary>Lists one user's conversations from the store (no state of its own, so any silo may serve it).</summary>
[GrainType("conversation-list"), StatelessWorker]
public sealed class ConversationListGrain(IConversationStore store) : Grain, IConversationListGrain
{
    public Task<ConversationPage> List(string? cursor, int limit)
    {
        var parts = Ids.Split(this.GetPrimaryKeyString(), 2);
        return store.ListAsync(parts[0], parts[1], cursor, Math.Clamp(limit, 1, 100));
    }
}

/// <summary>Counts tokens with the WordPiece tokenizer of a local embedding model.</summary>
[GrainType("tokenizer"), StatelessWorker]
public sealed class TokenizerGrain(EmbeddingModelRegistry models) : Grain, ITokenizerGrain
{
    public Task<long[]> Count(string model, IReadOnlyList<string> texts)
    {
        var tokenizer = models.Get(model).Tokenizer;
        var counts = new long[texts.Count];
        for (var i = 0; i < texts.Count; i++)
        {
            counts[i] = string.IsNullOrEmpty(texts[i]) ? 0 : tokenizer.CountTokens(texts[i]);
        }

        return Task.FromResult(counts);
    }
}

/// <summary>
/// The response cache of one collection, in memory: at most <see cref="Capacity"/> answers of the current write
/// version, least recently used evicted first. Losing it (deactivation) only costs regeneration.
/// </summary>
[GrainType("chat-cache")]
public sealed class ChatCacheGrain : Grain, IChatCacheGrain
{
    /// <summary>Entries kept per collection.</summary>
    public const int Capacity = 512;

    private readonly Dictionary<string, LinkedListNode<(string Key, CachedAnswer Answer)>> _entries = new(StringComparer.Ordinal);
    private readonly LinkedList<(string Key, CachedAnswer Answer)> _lru = new();
    private string _version = "";

    public Task<CachedAnswer?> Get(string key, string version)
    {
        if (!string.Equals(version, _version, StringComparison.Ordinal) || !_entries.TryGetValue(key, out var node))
        {
            return Task.FromResult<CachedAnswer?>(null);
        }

        _lru.Remove(node);
        _lru.AddFirst(node);
        return Task.FromResult<CachedAnswer?>(node.Value.Answer);
    }

    public Task Put(string key, string version, CachedAnswer answer)
    {
        if (!string.Equals(version, _version, StringComparison.Ordinal))
        {
            _entries.Clear();
            _lru.Clear();
            _version = version;
        }

        if (_entries.Remove(key, out var old))
        {
            _lru.Remove(old);
        }

        _entries[key] = _lru.AddFirst((key, answer));
        while (_entries.Count > Capacity)
        {
            _entries.Remove(_lru.Last!.Value.Key);
            _lru.RemoveLast();
        }

        return Task.CompletedTask;
    }
}
