using System.Net;
using System.Diagnostics;
using OpenQA.Selenium;
using Xunit;
using Xunit.Abstractions;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>The web page at <c>/</c>, served by the frontend and driven in headless Chromium.</summary>
[Collection(ServiceCollection.Name)]
public sealed class WebPageTests(ServiceFixture fixture, BrowserFixture browsers, ITestOutputHelper output) : IClassFixture<BrowserFixture>
{
    private const string Handbook =
        "# Timers and reminders\n\n" +
        "## Timers\n\n" +
        "Timers are used for frequent periodic actions within a single grain activation. " +
        "They are not durable: a timer stops when the activation is deactivated or the silo fails.\n\n" +
        "## Reminders\n\n" +
        "Reminders are persistent. A reminder keeps firing at its period even after the grain is deactivated " +
        "or the cluster restarts, because it is stored in the reminder table.\n";

    private ServiceProcess Service => fixture.Service;

    [Fact]
    public async Task The_page_is_served_without_a_key_with_its_content_types_and_headers()
    {
        using var anonymous = Service.Client(null);
        foreach (var (path, type) in new[] { ("/", "text/html"), ("/index.html", "text/html"), ("/app.css", "text/css"), ("/js/app.js", "text/javascript"), ("/js/sse.js", "text/javascript") })
        {
            using var response = await anonymous.GetAsync(path);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{path}: {(int)response.StatusCode}");
            Assert.Equal(type, response.Content.Headers.ContentType?.MediaType);
            Assert.Equal("no-cache", response.Headers.CacheControl?.ToString());
            Assert.NotNull(response.Headers.ETag);
            Assert.Contains("default-src 'none'", string.Join(" ", response.Headers.GetValues("Content-Security-Policy")), StringComparison.Ordinal);
            Assert.Equal("nosniff", string.Join(" ", response.Headers.GetValues("X-Content-Type-Options")));
        }

        var html = await anonymous.GetStringAsync("/");
        Assert.Contains("<script type=\"module\" src=\"js/app.js\"></script>", html, StringComparison.Ordinal);

        // The ETag makes a reload a 304, and the API itself still wants a key.
        using var first = await anonymous.GetAsync("/js/app.js");
        using var conditional = new HttpRequestMessage(HttpMethod.Get, "/js/app.js");
        conditional.Headers.IfNoneMatch.Add(first.Headers.ETag!);
        using var again = await anonymous.SendAsync(conditional);
        Assert.Equal(HttpStatusCode.NotModified, again.StatusCode);
        await (await anonymous.GetAsync("/v1/collections")).ExpectProblem(HttpStatusCode.Unauthorized);
    }

    [BrowserFact]
    public async Task A_user_connects_creates_a_collection_uploads_a_file_and_chats_with_citations()
    {
        var (_, adminKey) = await Service.CreateTenant("webui");
        var file = Path.Combine(TestPaths.NewTempDir("webui"), "orleans-timers.md");
        await File.WriteAllTextAsync(file, Handbook);

        Step("tenant created");
        var browser = browsers.Open(Service.BaseUrl + "/");
        var driver = browser.Driver;
        Step("browser started");
        try
        {
            Assert.Equal("RagOrleans", driver.Title);
            Assert.Equal("Not connected", driver.FindElement(By.Id("connection")).Text);
            Assert.False(driver.FindElement(By.Id("question")).Enabled, "chat must wait for a key and a collection");

            // A wrong key is refused with the server's message, and nothing unlocks.
            driver.FindElement(By.Id("api-key")).SendKeys("rk.nope.nope" + Keys.Enter);
            browser.Until(() => Text(driver, "connection") is var t && t.Contains("invalid", StringComparison.OrdinalIgnoreCase) ? t : null, "the wrong key to be refused");
            Assert.False(driver.FindElement(By.Id("new-collection")).Enabled);

            driver.FindElement(By.Id("api-key")).SendKeys(adminKey + Keys.Enter);
            browser.Until(() => Text(driver, "connection") == "Connected" ? "ok" : null, "the key to connect");
            Assert.Equal(adminKey, driver.ExecuteScript("return sessionStorage.getItem('ragorleans.apiKey')"));
            Assert.Equal("", driver.FindElement(By.Id("api-key")).GetAttribute("value"));

            Step("connected");
            driver.FindElement(By.Id("new-collection")).SendKeys("handbook");
            driver.FindElement(By.Id("collection-create")).Click();
            browser.Until(() => driver.FindElement(By.Id("file-input")).Enabled && driver.ExecuteScript("return document.getElementById('collection-select').value") as string == "handbook" ? "ok" : null,
                "the new collection to be selected");
            Assert.Contains("Created handbook", Text(driver, "collection-info"), StringComparison.Ordinal);

            // Every status a row goes through, from the upload's own progress to the pipeline's.
            driver.ExecuteScript("""
                window.__seen = [];
                new MutationObserver(ms => { for (const m of ms) window.__seen.push(m.target.dataset.status); })
                  .observe(document.getElementById('documents'), { subtree: true, attributes: true, attributeFilter: ['data-status'] });
                """);
            Step("collection created");
            driver.FindElement(By.Id("file-input")).SendKeys(file);
            driver.FindElement(By.Id("upload-button")).Click();
            var row = browser.Until(() => driver.FindElements(By.CssSelector("#documents tr[data-status='indexed']")).FirstOrDefault(), "the upload to be indexed", 40);
            Step("document indexed");
            Assert.Contains("orleans-timers.md", row.Text, StringComparison.Ordinal);
            Assert.Matches(@"indexed \(\d+ chunks?\)", row.FindElement(By.CssSelector(".doc-status")).Text);
            Assert.Equal("100", row.FindElement(By.TagName("progress")).GetAttribute("value"));
            var seen = ((IEnumerable<object>)driver.ExecuteScript("return window.__seen")!).Select(s => s?.ToString()).ToList();
            Assert.True(seen.Count >= 2 && seen[0] == "uploading" && seen[^1] == "indexed", "statuses seen: " + string.Join(", ", seen));
            Assert.Equal("orleans-timers.md: indexed", driver.FindElement(By.Id("documents-status")).GetAttribute("textContent"));

            // Asked with the keyboard: Enter sends.
            driver.FindElement(By.Id("question")).SendKeys("Do reminders keep firing after the grain is deactivated?" + Keys.Enter);
            var answer = browser.Until(
                () => driver.FindElements(By.CssSelector("#messages article.assistant[aria-busy='false']")).FirstOrDefault(), "the answer", 30);
            Step("answered");
            Assert.Equal("You", driver.FindElement(By.CssSelector("#messages article.user h3")).GetDomProperty("textContent"));
            Assert.Contains("Do reminders keep firing", driver.FindElement(By.CssSelector("#messages article.user p")).Text, StringComparison.Ordinal);
            Assert.Empty(answer.FindElements(By.CssSelector(".error")));
            var answerText = answer.FindElement(By.CssSelector(".answer-text")).Text;
            Assert.Contains("reminder", answerText, StringComparison.OrdinalIgnoreCase);
            var markers = answer.FindElements(By.CssSelector(".answer-text button.cite"));
            Assert.NotEmpty(markers);
            Assert.Matches(@"^\[\d+\]$", markers[0].Text);
            Assert.NotEmpty(answer.FindElements(By.CssSelector("ol.sources button.cite")));

            Assert.False(driver.FindElement(By.Id("citation-panel")).Displayed);
            markers[0].Click();
            var panel = driver.FindElement(By.Id("citation-panel"));
            browser.Until(() => panel.Displayed ? "ok" : null, "the citation to open");
            Assert.Equal(markers[0].Text, Text(driver, "citation-number"));
            Assert.Contains("reminder table", Text(driver, "citation-text"), StringComparison.Ordinal);
            Assert.False(string.IsNullOrWhiteSpace(Text(driver, "citation-title")));
            Assert.False(string.IsNullOrWhiteSpace(Text(driver, "citation-section")));
            Assert.Equal("citation-panel", driver.SwitchTo().ActiveElement().GetAttribute("id"));
            Assert.Equal("true", markers[0].GetAttribute("aria-expanded"));
            browser.Screenshot("web-page-chat");
            Step("citation shown, screenshot saved");

            // Escape closes the source and gives the focus back to the marker.
            driver.SwitchTo().ActiveElement().SendKeys(Keys.Escape);
            browser.Until(() => panel.Displayed ? null : "ok", "the citation to close");
            Assert.Equal(markers[0].Text, driver.SwitchTo().ActiveElement().Text);

            // A reload keeps the key and the collection for this tab, and shows the indexed document again.
            driver.Navigate().Refresh();
            browser.Until(() => Text(driver, "connection") == "Connected" ? "ok" : null, "the stored key to reconnect");
            browser.Until(() => driver.FindElements(By.CssSelector("#documents tr[data-status='indexed']")).FirstOrDefault(), "the document list after a reload");
            Step("reloaded");
            Assert.Equal("handbook", driver.ExecuteScript("return document.getElementById('collection-select').value"));
        }
        catch
        {
            TrySaveFailureScreenshot(browser, "web-page-failure");
            throw;
        }
    }

    /// <summary>
    /// The server may answer with server-sent events: a stream fed to the page's own fetch, in 7-byte pieces that
    /// split CRLFs, markers and UTF-8 sequences, must render like the JSON answer, and an error event must show.
    /// </summary>
    [BrowserFact]
    public async Task A_streamed_answer_renders_as_it_arrives_and_an_error_event_is_shown()
    {
        var (_, adminKey) = await Service.CreateTenant("webui-stream");
        using (var admin = Service.Client(adminKey))
        {
            await (await admin.PostJson("/v1/collections", new { name = "docs" })).ExpectJson(HttpStatusCode.Created);
        }

        Step("tenant and collection created");
        var browser = browsers.Open(Service.BaseUrl + "/");
        var driver = browser.Driver;
        Step("browser started");
        try
        {
            driver.FindElement(By.Id("api-key")).SendKeys(adminKey + Keys.Enter);
            browser.Until(() => driver.FindElement(By.Id("question")).Enabled ? "ok" : null, "the only collection to be picked");
            driver.ExecuteScript("""
                const realFetch = window.fetch;
                window.__requests = [];
                window.__replies = [];
                window.fetch = (url, init) => {
                  if (!String(url).endsWith('/chat')) return realFetch(url, init);
                  window.__requests.push({ accept: init.headers.Accept, body: JSON.parse(init.body) });
                  const bytes = new TextEncoder().encode(window.__replies.shift());
                  let at = 0;
                  const body = new ReadableStream({
                    async pull(c) {
                      if (at >= bytes.length) { c.close(); return; }
                      await new Promise(r => setTimeout(r, 5));
                      c.enqueue(bytes.slice(at, at + 7));
                      at += 7;
                    },
                  });
                  return Promise.resolve(new Response(body, { status: 200, headers: { 'Content-Type': 'text/event-stream' } }));
                };
                """);
            driver.ExecuteScript("window.__replies.push(arguments[0])",
                "event: citations\r\ndata: {\"conversationId\":\"c-stream\",\"query\":\"limits?\",\"rewrittenQuery\":\"what are the limits of reminders\"," +
                "\"citations\":[{\"number\":1,\"documentId\":\"d1\",\"chunkId\":\"d1-0\",\"text\":\"Reminders fire at most once a minute.\",\"score\":0.91,\"title\":\"Handbook\",\"section\":\"Reminders\"}]}\r\n\r\n" +
                ": keep-alive comment\n\n" +
                "event: delta\ndata: {\"text\":\"Réminders fire at most \"}\n\n" +
                "event: delta\ndata: {\"text\":\"once a minute [\"}\n\n" +
                "event: delta\ndata: {\"text\":\"1] ✓.\"}\n\n" +
                "event: done\ndata: {\"conversationId\":\"c-stream\",\"answer\":\"Réminders fire at most once a minute [1] ✓.\",\"usage\":{\"promptTokens\":12,\"completionTokens\":9},\"provider\":\"openai\",\"fallback\":false,\"cached\":true}\n\n");

            Step("connected");
            driver.FindElement(By.Id("question")).SendKeys("and its limits?");
            driver.FindElement(By.Id("ask")).Click();
            var answer = browser.Until(() => driver.FindElements(By.CssSelector("#messages article.assistant[aria-busy='false']")).FirstOrDefault(), "the streamed answer");
            Step("streamed answer rendered");
            Assert.Equal("Réminders fire at most once a minute [1] ✓.", answer.FindElement(By.CssSelector(".answer-text")).Text);
            Assert.Equal("[1]", answer.FindElement(By.CssSelector(".answer-text button.cite")).Text);
            Assert.Equal("Searched for: what are the limits of reminders", answer.FindElement(By.CssSelector(".query")).Text);
            Assert.Equal("answered by openai; from the cache.", answer.FindElement(By.CssSelector(".notes")).Text);
            Assert.Equal("[1] Handbook — Reminders", answer.FindElement(By.CssSelector("ol.sources button.cite")).Text);

            answer.FindElement(By.CssSelector(".answer-text button.cite")).Click();
            browser.Until(() => driver.FindElement(By.Id("citation-panel")).Displayed ? "ok" : null, "the streamed citation to open");
            Assert.Equal("Reminders fire at most once a minute.", Text(driver, "citation-text"));
            Assert.Equal("Handbook", Text(driver, "citation-title"));
            Assert.Equal("Reminders", Text(driver, "citation-section"));
            Assert.Equal("0.910", Text(driver, "citation-score"));

            // The follow-up carries the conversation; a failure mid-stream shows the problem's detail.
            driver.ExecuteScript("window.__replies.push(arguments[0])",
                "event: citations\ndata: {\"conversationId\":\"c-stream\",\"citations\":[]}\n\n" +
                "event: delta\ndata: {\"text\":\"Partial\"}\n\n" +
                "event: error\ndata: {\"status\":503,\"title\":\"Service Unavailable\",\"detail\":\"The language model timed out.\"}\n\n");
            driver.FindElement(By.Id("question")).SendKeys("and then?" + Keys.Enter);
            var failed = browser.Until(() => driver.FindElements(By.CssSelector("#messages article.assistant[aria-busy='false']")).Skip(1).FirstOrDefault(), "the failed answer");
            Assert.Equal("The language model timed out.", failed.FindElement(By.CssSelector("[role='alert']")).Text);
            Assert.Equal("Partial", failed.FindElement(By.CssSelector(".answer-text")).Text);

            var requests = (IReadOnlyCollection<object>)driver.ExecuteScript("return window.__requests.map(r => [r.accept, r.body.stream, r.body.conversationId ?? null, r.body.message])")!;
            var list = requests.Cast<IReadOnlyCollection<object>>().Select(r => r.Select(x => x?.ToString()).ToArray()).ToList();
            Assert.Equal(2, list.Count);
            Assert.StartsWith("text/event-stream", list[0][0], StringComparison.Ordinal);
            Assert.Equal(new string?[] { "True", null, "and its limits?" }, list[0][1..]);
            Assert.Equal(new string?[] { "True", "c-stream", "and then?" }, list[1][1..]);
            Assert.True(driver.FindElement(By.Id("ask")).Enabled);
            browser.Screenshot("web-page-stream");
            Step("done");
        }
        catch
        {
            TrySaveFailureScreenshot(browser, "web-page-stream-failure");
            throw;
        }
    }

    private readonly Stopwatch _clock = Stopwatch.StartNew();

    // Step timings in the test output show where the time goes when the test gets slow.
    private void Step(string what) => output.WriteLine($"{_clock.Elapsed.TotalSeconds,6:F1} s  {what}");

    private static string Text(IWebDriver driver, string id) => driver.FindElement(By.Id(id)).Text;

    private static void TrySaveFailureScreenshot(HeadlessChromium browser, string name)
    {
        try
        {
            browser.Screenshot(name);
        }
        catch (WebDriverException)
        {
            // The original failure matters more than the picture.
        }
    }
}
