using System.Diagnostics;
using System.Net;
using Xunit;
using Xunit.Abstractions;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>Ingests the 177 real Orleans documentation pages and asks questions about them.</summary>
public sealed class OrleansDocsTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Questions_about_the_Orleans_docs_find_the_right_page()
    {
        var root = Path.Combine(TestPaths.SharedData, "docs", "md", "orleans");
        var files = Directory.GetFiles(root, "*.md", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(177, files.Length);

        await using var service = await ServiceProcess.StartAsync(TestPaths.NewTempDir("orleans-docs"));
        var (_, adminKey) = await service.CreateTenant("docs");
        using var admin = service.Client(adminKey);
        await (await admin.PostJson("/v1/collections", new { name = "orleans" })).ExpectJson(HttpStatusCode.Created);

        var watch = Stopwatch.StartNew();
        foreach (var file in files)
        {
            using var form = new MultipartFormDataContent();
            form.Add(new ByteArrayContent(await File.ReadAllBytesAsync(file)), "file", Path.GetFileName(file));
            form.Add(new StringContent(IdOf(root, file)), "id");
            await (await admin.PostAsync("/v1/collections/orleans/documents", form)).ExpectJson(HttpStatusCode.Accepted);
        }

        // Everything was accepted at once; wait for the pipeline to finish every document.
        long chunks = 0;
        while (watch.Elapsed < TimeSpan.FromMinutes(8))
        {
            var docs = (await (await admin.GetAsync("/v1/collections/orleans/documents?limit=1000")).ExpectJson(HttpStatusCode.OK))["documents"]!.AsArray();
            var failed = docs.Where(d => d.Str("status") == "failed").Select(d => $"{d.Str("id")}: {d!["error"]}").ToList();
            Assert.True(failed.Count == 0, "failed documents: " + string.Join("; ", failed));
            if (docs.Count == files.Length && docs.All(d => d.Str("status") == "indexed"))
            {
                chunks = docs.Sum(d => d!["chunkCount"]!.GetValue<long>());
                break;
            }

            await Task.Delay(500);
        }

        var elapsed = watch.Elapsed;
        Assert.True(chunks > 0, "not all documents were indexed in time");
        output.WriteLine($"Ingested {files.Length} pages, {chunks} chunks in {elapsed.TotalSeconds:F1} s: {files.Length / elapsed.TotalSeconds:F1} docs/s, {chunks / elapsed.TotalSeconds:F1} chunks/s");

        var questions = new (string Question, string[] Expected)[]
        {
            ("what is the difference between timers and reminders", ["grains_timers-and-reminders", "grains_timers", "grains_reminders"]),
            ("How do I configure ADO.NET clustering with a database?", ["host_configuration-guide_configuring-ado-dot-net-providers", "host_configuration-guide_adonet-configuration"]),
            ("How do I write unit tests for grains with the test cluster?", ["grains_testing", "implementation_testing"]),
            ("What is a stateless worker grain?", ["grains_stateless-worker-grains"]),
            ("How do grain call filters intercept calls?", ["grains_interceptors"]),
        };
        var latencies = new List<double>();
        var top3 = 0;
        foreach (var (question, expected) in questions)
        {
            var sw = Stopwatch.StartNew();
            var results = await admin.Search("orleans", question, 5);
            latencies.Add(sw.Elapsed.TotalMilliseconds);
            var ids = results.Select(r => r.Str("documentId")).ToList();
            output.WriteLine($"{question} -> {string.Join(", ", ids)}");
            if (ids.Take(3).Any(id => expected.Contains(id)))
            {
                top3++;
            }
        }

        // The timers-and-reminders page is among the first results, and the best passage answers the question
        // (the FAQ's "difference between a grain timer and a reminder" entry is a fair winner too).
        var first = await admin.Search("orleans", questions[0].Question, 5);
        Assert.Contains(first, r => r.Str("documentId") == "grains_timers-and-reminders");
        Assert.Contains("timer", first[0].Str("text"), StringComparison.OrdinalIgnoreCase);
        Assert.Contains("reminder", first[0].Str("text"), StringComparison.OrdinalIgnoreCase);
        Assert.True(top3 >= 4, $"only {top3}/5 questions found their page in the top 3");

        var chat = await (await admin.PostJson("/v1/collections/orleans/chat", new { message = questions[0].Question })).ExpectJson(HttpStatusCode.OK);
        output.WriteLine("Answer: " + chat.Str("answer"));
        Assert.Contains(chat["citations"]!.AsArray(), c => c.Str("documentId").StartsWith("grains_timers", StringComparison.Ordinal));

        for (var i = 0; i < 20; i++)
        {
            var sw = Stopwatch.StartNew();
            await admin.Search("orleans", "grain persistence with Redis " + i, 10);
            latencies.Add(sw.Elapsed.TotalMilliseconds);
        }

        latencies.Sort();
        output.WriteLine($"search latency over HTTP: p50 {latencies[latencies.Count / 2]:F1} ms, max {latencies[^1]:F1} ms");
    }

    private static string IdOf(string root, string file) =>
        Path.GetRelativePath(root, file)[..^3].Replace(Path.DirectorySeparatorChar, '_');
}

/// <summary>Real PDF, DOCX, HTML and XML documents through the whole pipeline.</summary>
public sealed class FormatsTests
{
    [Fact]
    public async Task Real_documents_of_every_format_are_indexed_with_their_provenance()
    {
        await using var service = await ServiceProcess.StartAsync(TestPaths.NewTempDir("formats"));
        var (_, adminKey) = await service.CreateTenant("formats");
        using var admin = service.Client(adminKey);
        await (await admin.PostJson("/v1/collections", new { name = "mixed" })).ExpectJson(HttpStatusCode.Created);
        var docs = TestPaths.SharedData;
        foreach (var (path, id) in new[]
        {
            (Path.Combine(docs, "docs", "pdf", "nist-sp800-145.pdf"), "nist-cloud"),
            (Path.Combine(docs, "docs", "docx", "after-the-flood-fact-sheet.docx"), "flood"),
            (Path.Combine(docs, "docs", "html", "rfc6265.html"), "cookies"),
            (Path.Combine(docs, "docs", "xml", "rfc9204.xml"), "qpack"),
        })
        {
            using var form = new MultipartFormDataContent();
            form.Add(new ByteArrayContent(await File.ReadAllBytesAsync(path)), "file", Path.GetFileName(path));
            form.Add(new StringContent(id), "id");
            var doc = await (await admin.PostAsync("/v1/collections/mixed/documents?wait=true", form)).ExpectJson(HttpStatusCode.OK);
            Assert.True(doc.Str("status") == "indexed", doc.ToJsonString());
        }

        var cloud = await admin.Search("mixed", "What are the essential characteristics of cloud computing like on-demand self-service?", 3);
        Assert.Equal("nist-cloud", cloud[0].Str("documentId"));
        Assert.True(cloud[0]!["page"]!.GetValue<int>() >= 1);
        var cookie = await admin.Search("mixed", "How does the Set-Cookie header set the Max-Age attribute?", 3);
        Assert.Equal("cookies", cookie[0].Str("documentId"));
        Assert.False(string.IsNullOrEmpty(cookie[0]!["section"]?.GetValue<string>()));
        var qpack = await admin.Search("mixed", "QPACK dynamic table encoder stream", 3);
        Assert.Equal("qpack", qpack[0].Str("documentId"));
        var flood = await admin.Search("mixed", "flood insurance after a disaster", 3);
        Assert.Equal("flood", flood[0].Str("documentId"));
    }
}
