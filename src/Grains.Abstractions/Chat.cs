namespace RagOrleans.Abstractions;

/// <summary>A passage the answer cites; <see cref="Number"/> matches the answer's [n] markers.</summary>
[GenerateSerializer, Immutable, Alias("rag.Citation")]
public sealed record Citation(
    [property: Id(0)] int Number,
    [property: Id(1)] string DocumentId,
    [property: Id(2)] string ChunkId,
    [property: Id(3)] string Text,
    [property: Id(4)] float Score,
    [property: Id(5)] string? Title,
    [property: Id(6)] string? Section);

/// <summary>An answer with the passages it came from.</summary>
[GenerateSerializer, Immutable, Alias("rag.ChatAnswer")]
public sealed record ChatAnswer(
    [property: Id(0)] string ConversationId,
    [property: Id(1)] string Answer,
    [property: Id(2)] IReadOnlyList<Citation> Citations,
    [property: Id(3)] string Query);

/// <summary>Tokens of one chat generation: the prompt read and the completion written.</summary>
[GenerateSerializer, Immutable, Alias("rag.ChatUsage")]
public sealed record ChatUsage(
    [property: Id(0)] long PromptTokens,
    [property: Id(1)] long CompletionTokens)
{
    /// <summary>No tokens (a cached answer).</summary>
    public static ChatUsage None { get; } = new(0, 0);

    /// <summary>Prompt plus completion.</summary>
    public long TotalTokens => PromptTokens + CompletionTokens;
}

/// <summary>
/// One turn of a conversation. <see cref="RewrittenQuery"/> is the stand-alone query retrieval used (the question
/// itself unless it was a follow-up); <see cref="Provider"/> names the generator that answered and
/// <see cref="Fallback"/> says the extractive answerer stood in for it.
/// </summary>
[GenerateSerializer, Immutable, Alias("rag.ChatTurn")]
public sealed record ChatTurn(
    [property: Id(0)] string Question,
    [property: Id(1)] string Answer,
    [property: Id(2)] IReadOnlyList<Citation> Citations,
    [property: Id(3)] DateTimeOffset At,
    [property: Id(4)] string? RewrittenQuery = null,
    [property: Id(5)] string? Provider = null,
    [property: Id(6)] bool Fallback = false,
    [property: Id(7)] bool Cached = false,
    [property: Id(8)] ChatUsage? Usage = null);

/// <summary>One conversation in a user's list: its first question is its title.</summary>
[GenerateSerializer, Immutable, Alias("rag.ConversationSummary")]
public sealed record ConversationSummary(
    [property: Id(0)] string Id,
    [property: Id(1)] string Collection,
    [property: Id(2)] string Title,
    [property: Id(3)] int Turns,
    [property: Id(4)] DateTimeOffset CreatedAt,
    [property: Id(5)] DateTimeOffset UpdatedAt);

/// <summary>A page of conversations, most recently active first; <see cref="NextCursor"/> fetches the next page.</summary>
[GenerateSerializer, Immutable, Alias("rag.ConversationPage")]
public sealed record ConversationPage(
    [property: Id(0)] IReadOnlyList<ConversationSummary> Conversations,
    [property: Id(1)] string? NextCursor);

/// <summary>
/// A conversation of one user of one tenant (key tenant/user/conversation), over one collection. It keeps the
/// history; retrieval and generation run in the frontend, which appends each finished turn.
/// </summary>
[Alias("rag.IConversationGrain")]
public interface IConversationGrain : IGrainWithStringKey
{
    /// <summary>Appends a finished turn; <paramref name="collection"/> is the collection it was answered from.</summary>
    [Alias("Append")] Task Append(string collection, ChatTurn turn);

    /// <summary>The turns so far, oldest first.</summary>
    [Alias("GetHistory")] Task<IReadOnlyList<ChatTurn>> GetHistory();

    /// <summary>Removes the conversation's turns from the store; false when it had none.</summary>
    [Alias("Delete")] Task<bool> Delete();
}

/// <summary>The conversations of one user of one tenant (key tenant/user); a stateless worker over the store.</summary>
[Alias("rag.IConversationListGrain")]
public interface IConversationListGrain : IGrainWithStringKey
{
    /// <summary>At most <paramref name="limit"/> conversations after <paramref name="cursor"/>, most recently active first.</summary>
    [Alias("List")] Task<ConversationPage> List(string? cursor, int limit);
}

/// <summary>An answer kept by <see cref="IChatCacheGrain"/>.</summary>
[GenerateSerializer, Immutable, Alias("rag.CachedAnswer")]
public sealed record CachedAnswer(
    [property: Id(0)] string Answer,
    [property: Id(1)] IReadOnlyList<Citation> Citations,
    [property: Id(2)] string Provider,
    [property: Id(3)] DateTimeOffset At);

/// <summary>
/// Answers of one collection (key tenant/collection) by normalized question, held in memory. Every entry carries the
/// collection's write version it was computed at; a lookup with another version misses, so any write to the
/// collection invalidates the whole cache.
/// </summary>
[Alias("rag.IChatCacheGrain")]
public interface IChatCacheGrain : IGrainWithStringKey
{
    /// <summary>The answer stored under <paramref name="key"/> at <paramref name="version"/>, or null.</summary>
    [Alias("Get")] Task<CachedAnswer?> Get(string key, string version);

    /// <summary>Stores an answer; entries of other versions are dropped.</summary>
    [Alias("Put")] Task Put(string key, string version, CachedAnswer answer);
}

/// <summary>Counts word pieces with an embedding model's tokenizer (stateless worker on every silo).</summary>
[Alias("rag.ITokenizerGrain")]
public interface ITokenizerGrain : IGrainWithIntegerKey
{
    /// <summary>Token counts of <paramref name="texts"/> under <paramref name="model"/>'s tokenizer, in order.</summary>
    [Alias("Count")] Task<long[]> Count(string model, IReadOnlyList<string> texts);
}
