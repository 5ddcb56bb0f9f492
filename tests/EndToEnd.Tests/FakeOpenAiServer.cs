using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>
/// An OpenAI-compatible chat-completions server on a loopback port, in the test process (Kestrel): answers with
/// scripted text, streamed or not, can fail the next requests with chosen statuses or fail always, streams slowly
/// on demand and records what it was sent and whether a client aborted a stream.
/// </summary>
public sealed class FakeOpenAiServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _requests;

    private FakeOpenAiServer(WebApplication app) => _app = app;

    /// <summary>Base URL up to <c>/v1</c>.</summary>
    public string BaseUrl { get; private set; } = "";

    /// <summary>Requests received so far.</summary>
    public int Requests => Volatile.Read(ref _requests);

    /// <summary>Bodies received, in order.</summary>
    public ConcurrentQueue<JsonNode> Bodies { get; } = new();

    /// <summary>Authorization headers received, in order.</summary>
    public ConcurrentQueue<string> Authorizations { get; } = new();

    /// <summary>Statuses to answer the next requests with, one each.</summary>
    public ConcurrentQueue<int> FailNext { get; } = new();

    /// <summary>Answer every request with 503.</summary>
    public bool AlwaysFail { get; set; }

    /// <summary>The pieces of a streamed answer (joined for a non-streamed one).</summary>
    public string[] Chunks { get; set; } = ["Reminders are persistent", " and survive restarts [1].", " Timers are not durable [2]."];

    /// <summary>The answer to non-streamed requests (query rewriting).</summary>
    public string RewriteAnswer { get; set; } = "reminder table limits";

    /// <summary>Usage reported at the end (null: none reported).</summary>
    public (int Prompt, int Completion)? Usage { get; set; } = (321, 45);

    /// <summary>Pause before each streamed chunk.</summary>
    public TimeSpan ChunkDelay { get; set; } = TimeSpan.Zero;

    /// <summary>Completed when a client aborted a streamed response.</summary>
    public TaskCompletionSource StreamAborted { get; private set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Starts the server on a free loopback port.</summary>
    public static async Task<FakeOpenAiServer> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var server = new FakeOpenAiServer(app);
        app.MapPost("/v1/chat/completions", server.HandleAsync);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.BaseUrl = address.TrimEnd('/') + "/v1";
        return server;
    }

    /// <summary>Resets the abort signal before a test that waits for it.</summary>
    public void ResetAbort() => StreamAborted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    private async Task HandleAsync(HttpContext http)
    {
        Interlocked.Increment(ref _requests);
        var body = (await JsonNode.ParseAsync(http.Request.Body))!;
        Bodies.Enqueue(body);
        Authorizations.Enqueue(http.Request.Headers.Authorization.ToString());
        var fail = AlwaysFail ? 503 : FailNext.TryDequeue(out var next) ? next : 0;
        if (fail > 0)
        {
            http.Response.StatusCode = fail;
            await http.Response.WriteAsJsonAsync(new { error = new { message = "scripted failure", type = "server_error" } });
            return;
        }

        var model = body["model"]!.GetValue<string>();
        if (body["stream"]?.GetValue<bool>() != true)
        {
            var response = new JsonObject
            {
                ["id"] = "fake-1", ["object"] = "chat.completion", ["model"] = model,
                ["choices"] = new JsonArray(new JsonObject
                {
                    ["index"] = 0, ["finish_reason"] = "stop",
                    ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = RewriteAnswer },
                }),
            };
            if (Usage is { } u)
            {
                response["usage"] = new JsonObject { ["prompt_tokens"] = 20, ["completion_tokens"] = 4, ["total_tokens"] = 24 };
            }

            await http.Response.WriteAsJsonAsync(response);
            return;
        }

        http.Response.ContentType = "text/event-stream";
        var aborted = http.RequestAborted;
        try
        {
            foreach (var chunk in Chunks)
            {
                await Task.Delay(ChunkDelay, aborted);
                await WriteAsync(http, new JsonObject
                {
                    ["id"] = "fake-1", ["object"] = "chat.completion.chunk", ["model"] = model,
                    ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = new JsonObject { ["content"] = chunk }, ["finish_reason"] = null }),
                }, aborted);
            }

            if (Usage is { } u && body["stream_options"]?["include_usage"]?.GetValue<bool>() == true)
            {
                await WriteAsync(http, new JsonObject
                {
                    ["id"] = "fake-1", ["object"] = "chat.completion.chunk", ["model"] = model, ["choices"] = new JsonArray(),
                    ["usage"] = new JsonObject { ["prompt_tokens"] = u.Prompt, ["completion_tokens"] = u.Completion, ["total_tokens"] = u.Prompt + u.Completion },
                }, aborted);
            }

            await http.Response.WriteAsync("data: [DONE]\n\n", aborted);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            StreamAborted.TrySetResult();
        }
        catch (IOException)
        {
            StreamAborted.TrySetResult();
        }
    }

    private static async Task WriteAsync(HttpContext http, JsonNode chunk, CancellationToken cancellationToken)
    {
        await http.Response.WriteAsync("data: " + chunk.ToJsonString() + "\n\n", cancellationToken);
        await http.Response.Body.FlushAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
