using RagOrleans.Abstractions;
using RagOrleans.Frontend.Chat;

namespace RagOrleans.Frontend.Apis;

/// <summary>Body of POST /v1/collections/{name}/chat; <see cref="Stream"/> (or <c>Accept: text/event-stream</c>) answers with server-sent events.</summary>
public sealed record ChatRequest(string? Message, string? ConversationId, int? TopK, bool? Stream = null);

/// <summary>Tokens of a chat answer.</summary>
public sealed record ChatUsageResponse(long PromptTokens, long CompletionTokens, long TotalTokens)
{
    public static ChatUsageResponse From(ChatUsage u) => new(u.PromptTokens, u.CompletionTokens, u.TotalTokens);
}

/// <summary>
/// A chat answer. <see cref="RewrittenQuery"/> is the stand-alone query retrieval used; <see cref="Provider"/> the
/// generator that answered (<c>extractive</c> or <c>openai</c>); <see cref="Fallback"/> is true when the configured
/// model failed and the extractive answerer stood in; <see cref="Cached"/> when the answer came from the response cache.
/// </summary>
public sealed record ChatResponse(
    string? ConversationId, string Answer, IReadOnlyList<CitationResponse> Citations, string Query, string RewrittenQuery,
    ChatUsageResponse Usage, string Provider, bool Fallback, bool Cached)
{
    public static ChatResponse From(ChatResult r) => new(
        r.ConversationId, r.Answer, r.Citations.Select(CitationResponse.From).ToList(), r.Query, r.RewrittenQuery,
        ChatUsageResponse.From(r.Usage), r.Provider, r.Fallback, r.Cached);
}

/// <summary>The first server-sent event: what the answer will cite.</summary>
public sealed record ChatCitationsEvent(string? ConversationId, string Query, string RewrittenQuery, IReadOnlyList<CitationResponse> Citations);

/// <summary>A piece of the answer.</summary>
public sealed record ChatDeltaEvent(string Text);

/// <summary>The last server-sent event of a successful answer.</summary>
public sealed record ChatDoneEvent(string? ConversationId, string Answer, ChatUsageResponse Usage, string Provider, bool Fallback, bool Cached);

/// <summary>One turn of a stored conversation.</summary>
public sealed record ConversationTurnResponse(
    string Question, string Answer, IReadOnlyList<CitationResponse> Citations, DateTimeOffset At, string RewrittenQuery,
    string? Provider, bool Fallback, bool Cached, ChatUsageResponse? Usage)
{
    public static ConversationTurnResponse From(ChatTurn t) => new(
        t.Question, t.Answer, t.Citations.Select(CitationResponse.From).ToList(), t.At, t.RewrittenQuery ?? t.Question,
        t.Provider, t.Fallback, t.Cached, t.Usage is null ? null : ChatUsageResponse.From(t.Usage));
}

/// <summary>A page of the caller's conversations, most recently active first.</summary>
public sealed record ConversationListResponse(IReadOnlyList<ConversationSummary> Conversations, string? NextCursor);
