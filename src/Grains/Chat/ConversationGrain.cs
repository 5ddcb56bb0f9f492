using Microsoft.Extensions.Logging;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Storage;

namespace RagOrleans.Grains.Chat;

/// <summary>
/// One user's conversation: retrieves passages for each question, composes a grounded answer with the
/// built-in extractive answerer and keeps the history in the conversation store.
/// </summary>
[GrainType("conversation")]
public sealed class ConversationGrain(
    IConversationStore store,
    ExtractiveAnswerer answerer,
    TimeProvider clock,
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

    public async Task<ChatAnswer> Ask(string collection, string message, int topK)
    {
        if (string.IsNullOrWhiteSpace(message))
        {
            throw RagException.Invalid("The message is empty.");
        }

        var collectionGrain = GrainFactory.GetGrain<ICollectionGrain>(Ids.Key(_tenantId, collection));
        var settings = await collectionGrain.GetSettings();
        var hits = await collectionGrain.Search(new SearchQuery(message, topK));
        var passages = new List<AnswerPassage>(hits.Count);
        for (var i = 0; i < hits.Count; i++)
        {
            passages.Add(new AnswerPassage(i + 1, hits[i].Text, hits[i].Score));
        }

        // Sentence scoring is semantic as well as lexical: embed the question and every candidate sentence in one batch.
        var candidates = answerer.CandidateSentences(passages);
        var embedder = GrainFactory.GetGrain<IEmbedderGrain>(0);
        var vectors = candidates.Count == 0
            ? []
            : await embedder.Embed(settings.Model, [message, .. candidates], EmbeddingKind.Document);
        var answer = answerer.Compose(message, passages, vectors);

        var citations = new List<Citation>(hits.Count);
        for (var i = 0; i < hits.Count; i++)
        {
            var h = hits[i];
            citations.Add(new Citation(i + 1, h.DocumentId, h.ChunkId, h.Text, h.Score, h.Title, h.Section));
        }

        var turn = new ChatTurn(message, answer.Answer, citations, clock.GetUtcNow());
        await store.AppendAsync(_tenantId, _userId, _conversationId, collection, turn);
        _history?.Add(turn);
        logger.LogDebug("Conversation {ConversationId} of {TenantId}: answered from {Passages} passages", _conversationId, _tenantId, hits.Count);
        return new ChatAnswer(_conversationId, answer.Answer, citations, message);
    }

    public async Task<IReadOnlyList<ChatTurn>> GetHistory()
    {
        _history ??= [.. await store.GetAsync(_tenantId, _userId, _conversationId)];
        return _history;
    }
}
