using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace RagOrleans.Integration.Tests;

/// <summary>
/// The figures of a workload run against a cluster (shared by the failover tests and the chaos benchmark,
/// which links this file).
/// </summary>
internal static class WorkloadFigures
{
    /// <summary>The vocabulary of the probe documents: distinct words so each text finds its own document first.</summary>
    public static readonly string[] Words =
    [
        "amber", "basalt", "cobalt", "dune", "ember", "fjord", "granite", "harbor", "indigo", "juniper", "kelp", "lagoon",
        "meadow", "nebula", "orchard", "prairie", "quartz", "reef", "savanna", "tundra", "umber", "valley", "willow", "zenith",
        "falcon", "otter", "heron", "lynx", "badger", "walrus", "bison", "gecko", "marmot", "osprey", "puffin", "salmon",
        "lantern", "compass", "anchor", "saddle", "kettle", "loom", "anvil", "chisel", "barrel", "ladder", "mortar", "sickle",
        "drifts", "glows", "hums", "melts", "rusts", "sings", "sways", "wanders", "whistles", "blooms", "crumbles", "shimmers",
    ];

    public static JsonObject Counts(IEnumerable<string> values) =>
        new(values.GroupBy(v => v).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => KeyValuePair.Create(g.Key, (JsonNode?)g.Count())));

    public static double Seconds(TimeSpan t) => Math.Round(t.TotalSeconds, 2);

    /// <summary>
    /// When requests of this kind succeeded again, relative to the kill: the end of the first success among the
    /// requests started after the kill that started after the last failing one of them (the first success at all
    /// when none of them failed); null when there is none.
    /// </summary>
    public static TimeSpan? RecoveredAfter(IEnumerable<Attempt> attempts, TimeSpan killAt)
    {
        var after = attempts.Where(a => a.Start >= killAt).ToList();
        var failures = after.Where(a => a.Outcome is not (Outcome.Ok or Outcome.Accepted)).ToList();
        var from = failures.Count == 0 ? killAt : failures.Max(a => a.Start);
        var success = after.Where(a => a.Outcome == Outcome.Ok && a.Start >= from && !failures.Contains(a)).OrderBy(a => a.End).FirstOrDefault();
        return success?.End - killAt;
    }

    public static string Summary(IReadOnlyList<Attempt> attempts, TimeSpan? origin = null) =>
        attempts.Count == 0
            ? "(none)"
            : string.Join('\n', attempts.Take(60).Select(a =>
                $"  {a.Kind} {a.Tenant} via {a.Frontend} at {(a.Start - (origin ?? TimeSpan.Zero)).TotalSeconds:+0.00;-0.00}s for {(a.End - a.Start).TotalSeconds:F2}s: {a.Outcome} {a.Status} {a.Detail}"))
              + (attempts.Count > 60 ? $"\n  … {attempts.Count - 60} more" : "");
}

/// <summary>How a request ended.</summary>
internal enum Outcome
{
    /// <summary>200: indexed (ingestion) or the expected top hit (search).</summary>
    Ok,

    /// <summary>202: stored, not indexed within the request's wait.</summary>
    Accepted,

    /// <summary>A 5xx with an RFC 7807 problem body.</summary>
    Failed5xx,

    /// <summary>No HTTP answer (connection refused or reset).</summary>
    ConnectionError,

    /// <summary>Anything else: a wrong answer, a 4xx, a 5xx without a problem body, no answer in time.</summary>
    Violation,
}

/// <summary>One request of the workload (times relative to the test's clock).</summary>
internal sealed record Attempt(string Kind, string Tenant, string Frontend, string? DocumentId, TimeSpan Start, TimeSpan End, int Status, Outcome Outcome, string Detail);

/// <summary>One tenant's continuous ingestion and search, alternating between the frontends.</summary>
internal sealed class Workload(string tenant, string collection, IReadOnlyList<ClusterNode> frontends, string adminKey, string userKey, Stopwatch clock) : IDisposable
{
    private const int MaxInFlight = 64;
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(60);
    private readonly List<HttpClient> _admins = [.. frontends.Select(f => f.Client(adminKey, RequestTimeout))];
    private readonly List<HttpClient> _users = [.. frontends.Select(f => f.Client(userKey, RequestTimeout))];
    private readonly List<Attempt> _attempts = [];
    private readonly List<(string Id, string Text, TimeSpan At)> _acknowledged = [];
    private readonly List<string> _accepted = [];
    private readonly Dictionary<string, string> _uploads = [];
    private int _next;

    public string Tenant => tenant;

    /// <summary>The tenant's admin key, for checks after the workload.</summary>
    public string AdminKey => adminKey;

    public void Dispose()
    {
        foreach (var http in _admins.Concat(_users))
        {
            http.Dispose();
        }
    }

    public IReadOnlyList<Attempt> Attempts { get { lock (_attempts) { return [.. _attempts]; } } }

    public IReadOnlyList<(string Id, string Text, TimeSpan At)> Acknowledged { get { lock (_acknowledged) { return [.. _acknowledged]; } } }

    public IReadOnlyList<string> Accepted { get { lock (_accepted) { return [.. _accepted]; } } }

    /// <summary>A new document id and a short text no other document shares (distinct words and a unique code).</summary>
    public (string Id, string Text) NextDocument()
    {
        var n = Interlocked.Increment(ref _next);
        string Word() => WorkloadFigures.Words[Random.Shared.Next(WorkloadFigures.Words.Length)];
        var code = "q" + Convert.ToHexStringLower(Guid.NewGuid().ToByteArray()[..5]);
        return ($"p{n:D5}", $"Probe {n} of {tenant}: the {Word()} {Word()} {Word()} near the {Word()} {Word()} while the {Word()} {Word()}. Marker {code}.");
    }

    public void Acknowledge(string id, string text, TimeSpan at)
    {
        lock (_acknowledged)
        {
            _acknowledged.Add((id, text, at));
        }
    }

    /// <summary>True when a search started after the kill, and after the last failed one, has succeeded.</summary>
    public bool SearchesRecovered(TimeSpan killAt) => WorkloadFigures.RecoveredAfter(Attempts.Where(a => a.Kind == "search"), killAt) is not null;

    /// <summary>Uploads a new document with <c>?wait=true</c> every <paramref name="interval"/>, whatever earlier uploads are doing.</summary>
    public Task IngestLoop(TimeSpan interval, CancellationToken stop) => Paced(interval, stop, async i =>
    {
        var (id, text) = NextDocument();
        lock (_uploads)
        {
            _uploads[id] = text;
        }

        var attempt = await Send("ingest", i, id, async http =>
        {
            using var response = await http.PostAsJsonAsync($"/v1/collections/{collection}/documents?wait=true&timeoutSeconds=20", new { id, text });
            var body = await response.Content.ReadAsStringAsync();
            if (response.StatusCode == HttpStatusCode.OK)
            {
                var status = JsonNode.Parse(body).Str("status");
                return status == "indexed" ? (200, Outcome.Ok, "") : (200, Outcome.Violation, "answered 200 with status " + body);
            }

            return response.StatusCode == HttpStatusCode.Accepted ? (202, Outcome.Accepted, body) : Classify(response, body);
        });
        if (attempt.Outcome == Outcome.Ok)
        {
            Acknowledge(id, text, attempt.End);
        }
        else if (attempt.Outcome == Outcome.Accepted)
        {
            lock (_accepted)
            {
                _accepted.Add(id);
            }
        }
    });

    /// <summary>Every <paramref name="interval"/>, searches the exact text of a document acknowledged earlier and expects it first.</summary>
    public Task SearchLoop(TimeSpan interval, CancellationToken stop) => Paced(interval, stop, async i =>
    {
        var known = Acknowledged;
        var (id, text, _) = known[Random.Shared.Next(known.Count)];
        await Send("search", i, id, async http =>
        {
            using var response = await http.PostAsJsonAsync($"/v1/collections/{collection}/search", new { query = text, topK = 3 });
            var body = await response.Content.ReadAsStringAsync();
            if (response.StatusCode != HttpStatusCode.OK)
            {
                return Classify(response, body);
            }

            var hits = ClusterApi.Hits(JsonNode.Parse(body)!);
            return hits.Count > 0 && hits[0].DocumentId == id
                ? (200, Outcome.Ok, "")
                : (200, Outcome.Violation, $"wrong answer: expected {id} first, got [{string.Join(", ", hits.Select(h => h.DocumentId))}]");
        });
    });

    /// <summary>Null when the document is indexed and its own text finds it first; else what is wrong.</summary>
    public async Task<string?> VerifyAsync(string id, string text)
    {
        var http = _users[Random.Shared.Next(_users.Count)];
        using var document = await http.GetAsync(new Uri($"/v1/collections/{collection}/documents/{id}", UriKind.Relative));
        var body = await document.Content.ReadAsStringAsync();
        if (document.StatusCode != HttpStatusCode.OK || JsonNode.Parse(body).Str("status") != "indexed")
        {
            return $"GET answered {(int)document.StatusCode}: {body}";
        }

        using var search = await http.PostAsJsonAsync($"/v1/collections/{collection}/search", new { query = text, topK = 3 });
        body = await search.Content.ReadAsStringAsync();
        if (search.StatusCode != HttpStatusCode.OK)
        {
            return $"search answered {(int)search.StatusCode}: {body}";
        }

        var hits = ClusterApi.Hits(JsonNode.Parse(body)!);
        return hits.Count > 0 && hits[0].DocumentId == id ? null : $"search for its text found [{string.Join(", ", hits.Select(h => h.DocumentId))}]";
    }

    /// <summary>Sends an earlier upload again (same id and text) with <c>?wait=true</c>; returns its outcome.</summary>
    public async Task<string> RetryUploadAsync(string id)
    {
        var text = UploadText(id);
        using var response = await _admins[0].PostAsJsonAsync($"/v1/collections/{collection}/documents?wait=true&timeoutSeconds=15", new { id, text });
        var body = await response.Content.ReadAsStringAsync();
        var outcome = response.StatusCode is HttpStatusCode.OK or HttpStatusCode.Accepted
            ? $"{(int)response.StatusCode} {JsonNode.Parse(body).Str("status")}"
            : $"{(int)response.StatusCode}";
        return outcome;
    }

    /// <summary>The text of an earlier upload.</summary>
    public string UploadText(string id)
    {
        lock (_uploads)
        {
            return _uploads[id];
        }
    }

    /// <summary>The document's status now ("missing" when the collection does not know it).</summary>
    public async Task<string> StatusAsync(string id)
    {
        using var response = await _users[0].GetAsync(new Uri($"/v1/collections/{collection}/documents/{id}", UriKind.Relative));
        var body = await response.Content.ReadAsStringAsync();
        return response.StatusCode switch
        {
            HttpStatusCode.OK => JsonNode.Parse(body).Str("status"),
            HttpStatusCode.NotFound => "missing",
            _ => $"http-{(int)response.StatusCode}",
        };
    }

    /// <summary>
    /// Starts <paramref name="request"/> every <paramref name="interval"/> (at most <see cref="MaxInFlight"/> at once), so a
    /// request that hangs does not hide when new ones succeed again; returns when stopped and all have finished.
    /// </summary>
    private static async Task Paced(TimeSpan interval, CancellationToken stop, Func<int, Task> request)
    {
        using var slots = new SemaphoreSlim(MaxInFlight);
        var running = new List<Task>();
        for (var i = 0; !stop.IsCancellationRequested; i++)
        {
            await slots.WaitAsync(CancellationToken.None);
            var n = i;
            running.Add(Task.Run(async () =>
            {
                try
                {
                    await request(n);
                }
                finally
                {
                    slots.Release();
                }
            }, CancellationToken.None));
            try
            {
                await Task.Delay(interval, stop);
            }
            catch (OperationCanceledException)
            {
            }
        }

        await Task.WhenAll(running);
    }

    private async Task<Attempt> Send(string kind, int i, string id, Func<HttpClient, Task<(int Status, Outcome Outcome, string Detail)>> request)
    {
        var frontend = i % frontends.Count;
        var http = kind == "ingest" ? _admins[frontend] : _users[frontend];
        var start = clock.Elapsed;
        (int Status, Outcome Outcome, string Detail) result;
        try
        {
            result = await request(http);
        }
        catch (HttpRequestException e)
        {
            result = (0, Outcome.ConnectionError, e.Message);
        }
        catch (TaskCanceledException)
        {
            result = (0, Outcome.Violation, $"no answer within {RequestTimeout.TotalSeconds} s");
        }
        catch (JsonException e)
        {
            result = (0, Outcome.Violation, "unreadable answer: " + e.Message);
        }

        var attempt = new Attempt(kind, tenant, frontends[frontend].Name, id, start, clock.Elapsed, result.Status, result.Outcome, result.Detail);
        lock (_attempts)
        {
            _attempts.Add(attempt);
        }

        return attempt;
    }

    private static (int, Outcome, string) Classify(HttpResponseMessage response, string body)
    {
        var status = (int)response.StatusCode;
        var isProblem = response.Content.Headers.ContentType?.MediaType == "application/problem+json"
            && TryParse(body)?["status"]?.GetValue<int>() == status;
        var detail = body.Length > 300 ? body[..300] : body;
        return status >= 500 && isProblem ? (status, Outcome.Failed5xx, detail) : (status, Outcome.Violation, "unexpected answer: " + detail);
    }

    private static JsonNode? TryParse(string body)
    {
        try
        {
            return JsonNode.Parse(body);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
