using System.Text.Json.Nodes;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>One server-sent event.</summary>
public sealed record SseEvent(string Name, string Data)
{
    public JsonNode Json => JsonNode.Parse(Data)!;
}

/// <summary>Reads <c>text/event-stream</c> bodies.</summary>
public static class Sse
{
    /// <summary>Events as they arrive; stops at the end of the body.</summary>
    public static async IAsyncEnumerable<SseEvent> ReadAsync(HttpResponseMessage response)
    {
        await using var body = await response.Content.ReadAsStreamAsync();
        using var reader = new StreamReader(body);
        string? name = null;
        var data = new List<string>();
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.Length == 0)
            {
                if (data.Count > 0)
                {
                    yield return new SseEvent(name ?? "message", string.Join("\n", data));
                }

                name = null;
                data.Clear();
            }
            else if (line.StartsWith("event:", StringComparison.Ordinal))
            {
                name = line[6..].Trim();
            }
            else if (line.StartsWith("data:", StringComparison.Ordinal))
            {
                data.Add(line[5..].TrimStart());
            }
        }
    }

    /// <summary>All events of a finished response.</summary>
    public static async Task<List<SseEvent>> ReadAllAsync(HttpResponseMessage response)
    {
        var events = new List<SseEvent>();
        await foreach (var e in ReadAsync(response))
        {
            events.Add(e);
        }

        return events;
    }
}
