using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Chat;

namespace RagOrleans.Frontend.Chat;

/// <summary>What to answer: the caller, the collection, the message and the conversation it belongs to.</summary>
/// <param name="TenantId">The caller's tenant.</param>
/// <param name="UserId">The caller.</param>
/// <param name="Collection">The collection to answer from.</param>
/// <param name="Message">The user's message as typed.</param>
/// <param name="ConversationId">The stored conversation the turn is appended to; null for a stateless call (OpenAI-compatible API).</param>
/// <param name="History">Earlier turns given by the client (OpenAI-compatible API); ignored when <paramref name="ConversationId"/> is set.</param>
/// <param name="TopK">Passages retrieved.</param>
/// <param name="Streaming">Whether deltas reach the client as they come: if not, a model failing mid-answer can still be replaced by the fallback.</param>
public sealed record ChatInvocation(
    string TenantId, string UserId, string Collection, string Message, string? ConversationId,
    IReadOnlyList<(string Question, string Answer)>? History, int TopK, bool Streaming = true);

/// <summary>What is known before the answer: sent first (the <c>citations</c> event).</summary>
public sealed record ChatStart(string? ConversationId, string Query, string RewrittenQuery, IReadOnlyList<Citation> Citations);

/// <summary>The finished answer (the <c>done</c> event).</summary>
public sealed record ChatResult(
    string? ConversationId, string Answer, string Query, string RewrittenQuery, IReadOnlyList<Citation> Citations,
    ChatUsage Usage, string Provider, bool Fallback, bool Cached);

/// <summary>The provider failed after part of the answer was already sent: the answer cannot be replaced any more.</summary>
public sealed class ChatStreamBrokenException(string message, Exception inner) : Exception(message, inner);

/// <summary>
/// Answers a chat message: rewrites a follow-up into a stand-alone query, answers from the response cache when it
/// can, retrieves passages, generates (OpenAI-compatible model, streamed; or the extractive answerer, also the
/// fallback when the model fails before its first word), charges the tokens and appends the turn.
/// </summary>
public sealed class ChatService(
    IGrainFactory grains,
    IOptionsMonitor<ChatOptions> options,
    OpenAiChatClient openAi,
    ExtractiveAnswerer answerer,
    TimeProvider clock,
    ILogger<ChatService> logger)
{
    private const int RewriteMaxTokens = 96;

    /// <summary>
    /// Runs one chat turn. <paramref name="onStart"/> is called once, after retrieval and before generation;
    /// <paramref name="onDelta"/> with each piece of the answer, in order. Cancelling <paramref name="cancellationToken"/>
    /// (the client went away) cancels the model call; the tokens used so far are still charged.
    /// </summary>
    public async Task<ChatResult> RunAsync(
        ChatInvocation chat, Func<ChatStart, Task> onStart, Func<string, Task> onDelta, CancellationToken cancellationToken)
    {
        var settings = options.CurrentValue.For(chat.TenantId);
        var quota = grains.Reference<IQuotaGrain>(chat.TenantId);
        await quota.CheckChat(chat.UserId);

        var collection = grains.Reference<ICollectionGrain>(Ids.Key(chat.TenantId, chat.Collection));
        var collectionSettings = await collection.GetSettings();
        var conversation = chat.ConversationId is null
            ? null
            : grains.Reference<IConversationGrain>(Ids.Key(chat.TenantId, chat.UserId, chat.ConversationId));
        var storedHistory = conversation is null ? null : await conversation.GetHistory();
        var history = storedHistory is null ? chat.History ?? [] : storedHistory.Select(t => (t.Question, t.Answer)).ToList();

        var usage = ChatUsage.None;
        var (rewritten, rewriteUsage) = await RewriteAsync(chat.Message, history, storedHistory, settings, collectionSettings.Model, cancellationToken);
        usage = Add(usage, rewriteUsage);

        // The response cache: keyed by the stand-alone query, valid for one write version of the collection.
        var version = settings.CacheEnabled ? await collection.GetWriteVersion() : null;
        var cacheKey = CacheKey(settings, rewritten, chat.TopK);
        var cache = grains.Reference<IChatCacheGrain>(Ids.Key(chat.TenantId, chat.Collection));
        if (version is not null && await cache.Get(cacheKey, version) is { } hit)
        {
            await onStart(new ChatStart(chat.ConversationId, chat.Message, rewritten, hit.Citations));
            await onDelta(hit.Answer);
            await ChargeAsync(quota, chat.UserId, settings.Provider == ChatOptions.OpenAi ? settings.OpenAI.Model! : ChatOptions.Extractive, usage);
            var cached = new ChatResult(chat.ConversationId, hit.Answer, chat.Message, rewritten, hit.Citations, usage, hit.Provider, false, true);
            await AppendAsync(conversation, chat.Collection, cached);
            return cached;
        }

        var hits = await collection.Search(new SearchQuery(rewritten, chat.TopK));
        var citations = hits.Select((h, i) => new Citation(i + 1, h.DocumentId, h.ChunkId, h.Text, h.Score, h.Title, h.Section)).ToList();
        await onStart(new ChatStart(chat.ConversationId, chat.Message, rewritten, citations));

        string answer;
        string provider;
        var fallback = false;
        if (settings.Provider == ChatOptions.OpenAi)
        {
            var generated = await GenerateAsync(settings, rewritten, citations, history, collectionSettings.Model, quota, chat.UserId, usage, chat.Streaming, onDelta, cancellationToken);
            if (generated is { } g)
            {
                (answer, usage) = (g.Answer, g.Usage);
                provider = ChatOptions.OpenAi;
            }
            else
            {
                fallback = true;
                (answer, usage) = await ExtractAsync(rewritten, citations, collectionSettings.Model, usage, onDelta);
                provider = ChatOptions.Extractive;
            }
        }
        else
        {
            (answer, usage) = await ExtractAsync(rewritten, citations, collectionSettings.Model, usage, onDelta);
            provider = ChatOptions.Extractive;
        }

        await ChargeAsync(quota, chat.UserId, provider == ChatOptions.OpenAi ? settings.OpenAI.Model! : ChatOptions.Extractive, usage);
        if (version is not null && !fallback)
        {
            await cache.Put(cacheKey, version, new CachedAnswer(answer, citations, provider, clock.GetUtcNow()));
        }

        var result = new ChatResult(chat.ConversationId, answer, chat.Message, rewritten, citations, usage, provider, fallback, false);
        await AppendAsync(conversation, chat.Collection, result);
        return result;
    }

    private async Task<(string Query, ChatUsage Usage)> RewriteAsync(
        string message, IReadOnlyList<(string Question, string Answer)> history, IReadOnlyList<ChatTurn>? stored,
        EffectiveChatSettings settings, string embeddingModel, CancellationToken cancellationToken)
    {
        var turns = stored ?? history.Select(h => new ChatTurn(h.Question, h.Answer, [], default)).ToList();
        if (history.Count == 0)
        {
            return (message.Trim(), ChatUsage.None);
        }

        if (settings.Provider != ChatOptions.OpenAi || !settings.RewriteWithModel)
        {
            return (FollowUpRewriter.Rewrite(message, turns), ChatUsage.None);
        }

        var prompt = ChatPrompt.BuildRewrite(message, history);
        try
        {
            var (text, reported) = await openAi.CompleteAsync(settings.OpenAI, prompt, RewriteMaxTokens, cancellationToken);
            var query = ChatPrompt.CleanQuery(text);
            if (query.Length is 0 or > 1000)
            {
                return (FollowUpRewriter.Rewrite(message, turns), reported ?? ChatUsage.None);
            }

            return (query, reported ?? await EstimateAsync(embeddingModel, string.Join("\n", prompt.Select(m => m.Content)), text));
        }
        catch (ChatProviderException e)
        {
            logger.LogInformation("Follow-up rewritten locally: the model failed ({Reason})", e.Message);
            return (FollowUpRewriter.Rewrite(message, turns), ChatUsage.None);
        }
    }

    /// <summary>The model's streamed answer; null when it failed before its first word (the caller falls back).</summary>
    private async Task<(string Answer, ChatUsage Usage)?> GenerateAsync(
        EffectiveChatSettings settings, string question, IReadOnlyList<Citation> citations, IReadOnlyList<(string Question, string Answer)> history,
        string embeddingModel, IQuotaGrain quota, string userId, ChatUsage usageSoFar, bool streaming, Func<string, Task> onDelta, CancellationToken cancellationToken)
    {
        var o = settings.OpenAI;
        var prompt = ChatPrompt.Build(settings.SystemInstructions, question, citations, history, o.ContextTokens, ChatPrompt.EstimateTokens);
        var answer = new StringBuilder();
        ChatUsage? reported = null;
        try
        {
            await foreach (var chunk in openAi.StreamAsync(o, prompt.Messages, o.MaxCompletionTokens, cancellationToken))
            {
                if (chunk.Usage is { } u)
                {
                    reported = u;
                }
                else if (chunk.Text is { } text)
                {
                    answer.Append(text);
                    await onDelta(text);
                }
            }
        }
        catch (ChatProviderException e) when (answer.Length == 0 || !streaming)
        {
            if (answer.Length > 0)
            {
                await ChargeAsync(quota, userId, o.Model!, await EstimateAsync(embeddingModel, PromptText(prompt), answer.ToString()));
            }

            logger.LogWarning("Chat for {Question} falls back to the extractive answer: {Reason}", Trim(question), e.Message);
            return null;
        }
        catch (ChatProviderException e)
        {
            await ChargeAsync(quota, userId, o.Model!, Add(usageSoFar, await EstimateAsync(embeddingModel, PromptText(prompt), answer.ToString())));
            throw new ChatStreamBrokenException("The model failed while answering: " + e.Message, e);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client went away: the model call is cancelled, but what it already read and wrote was spent.
            await ChargeAsync(quota, userId, o.Model!, Add(usageSoFar, await EstimateAsync(embeddingModel, PromptText(prompt), answer.ToString())));
            logger.LogInformation("Chat cancelled by the client after {Chars} characters", answer.Length);
            throw;
        }

        // Provider-reported usage when the endpoint sends it; otherwise our WordPiece count as an estimate.
        var usage = reported ?? await EstimateAsync(embeddingModel, PromptText(prompt), answer.ToString());
        return (answer.ToString(), Add(usageSoFar, usage));
    }

    private async Task<(string Answer, ChatUsage Usage)> ExtractAsync(
        string question, IReadOnlyList<Citation> citations, string model, ChatUsage usageSoFar, Func<string, Task> onDelta)
    {
        var passages = citations.Select(c => new AnswerPassage(c.Number, c.Text, c.Score)).ToList();

        // Sentence scoring is semantic as well as lexical: embed the question and every candidate sentence in one batch.
        var candidates = answerer.CandidateSentences(passages);
        var vectors = candidates.Count == 0
            ? []
            : await grains.Reference<IEmbedderGrain>(0).Embed(model, [question, .. candidates], EmbeddingKind.Document);
        var extracted = answerer.Compose(question, passages, vectors);
        if (extracted.Sentences.Count == 0)
        {
            await onDelta(extracted.Answer);
        }
        else
        {
            for (var i = 0; i < extracted.Sentences.Count; i++)
            {
                var s = extracted.Sentences[i];
                await onDelta(string.Concat(i == 0 ? "" : " ", s.Text, " [", s.CitationNumber.ToString(System.Globalization.CultureInfo.InvariantCulture), "]"));
            }
        }

        // The local model's own tokenizer: what the answerer read (question and passages) and what it wrote.
        var counts = await grains.Reference<ITokenizerGrain>(0).Count(model, [question, .. passages.Select(p => p.Text), extracted.Answer]);
        var prompt = counts.Take(counts.Length - 1).Sum();
        return (extracted.Answer, Add(usageSoFar, new ChatUsage(prompt, counts[^1])));
    }

    private async Task<ChatUsage> EstimateAsync(string model, string prompt, string completion)
    {
        var counts = await grains.Reference<ITokenizerGrain>(0).Count(model, [prompt, completion]);
        return new ChatUsage(counts[0], counts[1]);
    }

    private static async Task ChargeAsync(IQuotaGrain quota, string userId, string model, ChatUsage usage)
    {
        if (usage.TotalTokens > 0)
        {
            await quota.ChargeChatTokens(userId, model, usage);
        }
    }

    private async Task AppendAsync(IConversationGrain? conversation, string collection, ChatResult result)
    {
        if (conversation is not null)
        {
            await conversation.Append(collection, new ChatTurn(
                result.Query, result.Answer, result.Citations, clock.GetUtcNow(), result.RewrittenQuery, result.Provider, result.Fallback, result.Cached, result.Usage));
        }
    }

    private static string CacheKey(EffectiveChatSettings settings, string query, int topK)
    {
        var model = settings.Provider == ChatOptions.OpenAi ? $"{settings.OpenAI.BaseUrl}|{settings.OpenAI.Model}" : "";
        var text = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{settings.Provider}|{model}|{topK}|{ChatPrompt.NormalizeQuestion(query)}");
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
    }

    private static string PromptText(BuiltPrompt prompt) => string.Join("\n", prompt.Messages.Select(m => m.Content));

    private static ChatUsage Add(ChatUsage a, ChatUsage b) => new(a.PromptTokens + b.PromptTokens, a.CompletionTokens + b.CompletionTokens);

    private static string Trim(string text) => text.Length > 80 ? text[..80] + "…" : text;
}
