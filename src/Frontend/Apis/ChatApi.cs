using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;
using RagOrleans.Abstractions;
using RagOrleans.Frontend.Chat;
using RagOrleans.Frontend.Infrastructure;

namespace RagOrleans.Frontend.Apis;

/// <summary>Chat over a collection and the caller's own conversations (users and admins).</summary>
public static class ChatApi
{
    public static IEndpointRouteBuilder MapChatApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1").WithTags("Chat").RequireRole(Roles.Admin, Roles.User);
        group.MapPost("/collections/{name}/chat", Chat)
            .WithSummary("Answer a message from the collection, with citations; server-sent events with \"stream\": true or Accept: text/event-stream");
        group.MapGet("/conversations", ListConversations).WithSummary("The caller's conversations, most recently active first (paged)");
        group.MapGet("/conversations/{id}", GetConversation).WithSummary("A conversation's turns (only the caller's own)");
        group.MapDelete("/conversations/{id}", DeleteConversation).WithSummary("Delete one of the caller's conversations");
        return app;
    }

    private static async Task<Results<Ok<ChatResponse>, EmptyHttpResult>> Chat(
        string name, ChatRequest request, HttpContext http, ChatService chat, IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions> json)
    {
        var principal = AuthenticationMiddleware.Principal(http)!;
        var message = SearchApi.RequireText(request.Message, "message");
        Ids.RequireName(name, "collection name");
        var conversationId = request.ConversationId is null
            ? "c-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))
            : Ids.RequireName(request.ConversationId, "conversationId");
        var topK = request.TopK ?? 5;
        if (topK is < 1 or > 20)
        {
            throw RagException.Invalid("topK must be between 1 and 20 for chat.");
        }

        var invocation = new ChatInvocation(principal.Tenant, principal.User, name, message, conversationId, null, topK);
        var stream = request.Stream ?? http.Request.Headers.Accept.Any(a => a?.Contains("text/event-stream", StringComparison.OrdinalIgnoreCase) == true);
        if (!stream)
        {
            var result = await chat.RunAsync(invocation, _ => Task.CompletedTask, _ => Task.CompletedTask, http.RequestAborted);
            return TypedResults.Ok(ChatResponse.From(result));
        }

        var events = new ServerSentEvents(http, json.Value.SerializerOptions);
        try
        {
            var result = await chat.RunAsync(
                invocation,
                start => events.WriteAsync("citations", new ChatCitationsEvent(
                    start.ConversationId, start.Query, start.RewrittenQuery, start.Citations.Select(CitationResponse.From).ToList())),
                delta => events.WriteAsync("delta", new ChatDeltaEvent(delta)),
                http.RequestAborted);
            await events.WriteAsync("done", new ChatDoneEvent(
                result.ConversationId, result.Answer, ChatUsageResponse.From(result.Usage), result.Provider, result.Fallback, result.Cached));
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            // The client went away; generation was cancelled with it and there is no one to tell.
        }
        catch (Exception e) when (events.Started && !http.RequestAborted.IsCancellationRequested)
        {
            // Headers are gone: the failure can only be told in the stream.
            await events.WriteAsync("error", ServerSentEvents.Problem(e, http, out var log));
            if (log)
            {
                http.RequestServices.GetRequiredService<ILogger<ChatService>>().LogError(e, "Chat stream failed");
            }
        }

        return TypedResults.Empty;
    }

    private static async Task<Ok<ConversationListResponse>> ListConversations(HttpContext http, IGrainFactory grains, int? limit, string? cursor)
    {
        var principal = AuthenticationMiddleware.Principal(http)!;
        var size = limit ?? 20;
        if (size is < 1 or > 100)
        {
            throw RagException.Invalid("limit must be between 1 and 100.");
        }

        var page = await grains.Reference<IConversationListGrain>(Ids.Key(principal.Tenant, principal.User)).List(cursor, size);
        return TypedResults.Ok(new ConversationListResponse(page.Conversations, page.NextCursor));
    }

    private static async Task<Ok<IReadOnlyList<ConversationTurnResponse>>> GetConversation(string id, HttpContext http, IGrainFactory grains)
    {
        var principal = AuthenticationMiddleware.Principal(http)!;
        Ids.RequireName(id, "conversation id");
        var turns = await grains.Reference<IConversationGrain>(Ids.Key(principal.Tenant, principal.User, id)).GetHistory();
        if (turns.Count == 0)
        {
            // Another user's conversation is not "forbidden": for this caller it does not exist.
            throw RagException.NotFound($"Conversation '{id}' not found.");
        }

        return TypedResults.Ok<IReadOnlyList<ConversationTurnResponse>>(turns.Select(ConversationTurnResponse.From).ToList());
    }

    private static async Task<NoContent> DeleteConversation(string id, HttpContext http, IGrainFactory grains)
    {
        var principal = AuthenticationMiddleware.Principal(http)!;
        Ids.RequireName(id, "conversation id");
        if (!await grains.Reference<IConversationGrain>(Ids.Key(principal.Tenant, principal.User, id)).Delete())
        {
            throw RagException.NotFound($"Conversation '{id}' not found.");
        }

        return TypedResults.NoContent();
    }
}

/// <summary>Writes <c>text/event-stream</c> events; the headers go out with the first event.</summary>
public sealed class ServerSentEvents(HttpContext http, JsonSerializerOptions json)
{
    /// <summary>Whether the first event (and so the 200 and its headers) was sent.</summary>
    public bool Started { get; private set; }

    /// <summary>Writes one event and flushes it.</summary>
    public async Task WriteAsync<T>(string name, T data)
    {
        var response = http.Response;
        if (!Started)
        {
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = "text/event-stream; charset=utf-8";
            response.Headers.CacheControl = "no-cache";
            response.Headers["X-Accel-Buffering"] = "no";
            http.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
            Started = true;
        }

        var payload = JsonSerializer.Serialize(data, json);
        await response.WriteAsync($"event: {name}\ndata: {payload}\n\n", Encoding.UTF8, http.RequestAborted);
        await response.Body.FlushAsync(http.RequestAborted);
    }

    /// <summary>The problem details of a failure after the stream started; <paramref name="log"/> when it is unexpected.</summary>
    public static ProblemDetails Problem(Exception e, HttpContext http, out bool log)
    {
        var (status, title, detail) = e switch
        {
            RagException rag => (Problems.Map(rag.Kind).Status, Problems.Map(rag.Kind).Title, rag.Message),
            ChatStreamBrokenException broken => (StatusCodes.Status502BadGateway, "Bad Gateway", broken.Message),
            ChatProviderException provider => (StatusCodes.Status502BadGateway, "Bad Gateway", provider.Message),
            TimeoutException => (StatusCodes.Status503ServiceUnavailable, "Service Unavailable", "The cluster did not answer in time; retry shortly."),
            _ => (StatusCodes.Status500InternalServerError, "Internal Server Error", "An unexpected error occurred; it has been logged."),
        };
        log = status >= 500 && e is not (ChatStreamBrokenException or ChatProviderException);
        return new ProblemDetails { Status = status, Title = title, Detail = detail, Instance = http.Request.Path };
    }
}
