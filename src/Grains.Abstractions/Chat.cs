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

/// <summary>One turn of a conversation.</summary>
[GenerateSerializer, Immutable, Alias("rag.ChatTurn")]
public sealed record ChatTurn(
    [property: Id(0)] string Question,
    [property: Id(1)] string Answer,
    [property: Id(2)] IReadOnlyList<Citation> Citations,
    [property: Id(3)] DateTimeOffset At);

/// <summary>A conversation of one user of one tenant (key tenant/user/conversation), over one collection.</summary>
[Alias("rag.IConversationGrain")]
public interface IConversationGrain : IGrainWithStringKey
{
    /// <summary>Answers <paramref name="message"/> from <paramref name="collection"/> and appends the turn.</summary>
    [Alias("Ask")] Task<ChatAnswer> Ask(string collection, string message, int topK);

    /// <summary>The turns so far, oldest first.</summary>
    [Alias("GetHistory")] Task<IReadOnlyList<ChatTurn>> GetHistory();
}
