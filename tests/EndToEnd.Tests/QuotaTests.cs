using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Xunit;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>Quotas and rate limits over HTTP against the real process.</summary>
[Collection(ServiceCollection.Name)]
public sealed class QuotaTests(ServiceFixture fixture)
{
    private ServiceProcess Service => fixture.Service;

    private static Task<HttpResponseMessage> PutJson(HttpClient client, string url, string json) =>
        client.PutAsync(url, new StringContent(json, Encoding.UTF8, "application/json"));

    [Fact]
    public async Task Two_hundred_parallel_uploads_against_one_hundred_documents_index_exactly_one_hundred()
    {
        var (tenant, adminKey) = await Service.CreateTenant("q-parallel");
        using var op = Service.Client(Service.OperatorKey);
        var limits = await (await PutJson(op, $"/v1/tenants/{tenant}/limits", """{"maxDocuments": 100}""")).ExpectJson(HttpStatusCode.OK);
        Assert.Equal(100, limits["maxDocuments"]!.GetValue<long>());
        Assert.Null(limits["maxCollections"]);

        using var admin = Service.Client(adminKey);
        await (await admin.PostJson("/v1/collections", new { name = "docs" })).ExpectJson(HttpStatusCode.Created);
        var responses = await Task.WhenAll(Enumerable.Range(0, 200).Select(i =>
            admin.PostJson("/v1/collections/docs/documents", new { id = $"d{i}", text = $"Fact number {i}: the value of item {i} is {i * 7}." })));
        Assert.Equal(100, responses.Count(r => r.StatusCode == HttpStatusCode.Accepted));
        var refused = responses.Where(r => r.StatusCode != HttpStatusCode.Accepted).ToList();
        Assert.Equal(100, refused.Count);
        foreach (var r in refused)
        {
            var problem = await r.ExpectProblem(HttpStatusCode.Forbidden);
            Assert.Equal("maxDocuments", problem.Str("quota"));
            Assert.Equal(100, problem["limit"]!.GetValue<decimal>());
            Assert.Equal(100, problem["usage"]!.GetValue<decimal>());
        }

        // All accepted documents get indexed; the usage matches exactly.
        var deadline = DateTime.UtcNow.AddMinutes(5);
        JsonNode info;
        do
        {
            await Task.Delay(500);
            info = await (await admin.GetAsync("/v1/collections/docs")).ExpectJson(HttpStatusCode.OK);
        }
        while (info["chunkCount"]!.GetValue<long>() < 100 && DateTime.UtcNow < deadline);
        Assert.Equal((100L, 100L), (info["documentCount"]!.GetValue<long>(), info["chunkCount"]!.GetValue<long>()));
        var usage = await (await admin.GetAsync("/v1/usage")).ExpectJson(HttpStatusCode.OK);
        Assert.Equal((100L, 100L, 1L), (usage["documents"]!.GetValue<long>(), usage["vectors"]!.GetValue<long>(), usage["collections"]!.GetValue<long>()));

        // Deletes give quota back.
        var accepted = (await responses.First(r => r.StatusCode == HttpStatusCode.Accepted).ExpectJson(HttpStatusCode.Accepted)).Str("id");
        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/v1/collections/docs/documents/{accepted}")).StatusCode);
        await (await admin.PostJson("/v1/collections/docs/documents", new { id = "late", text = "A late arrival." })).ExpectJson(HttpStatusCode.Accepted);
        await (await admin.PostJson("/v1/collections/docs/documents", new { id = "later", text = "One too many." })).ExpectProblem(HttpStatusCode.Forbidden);
    }

    [Fact]
    public async Task Limits_api_for_operators_and_tenant_admins()
    {
        var (tenant, adminKey) = await Service.CreateTenant("q-api");
        using var op = Service.Client(Service.OperatorKey);
        using var admin = Service.Client(adminKey);
        var userKey = (await (await admin.PostJson("/v1/keys", new { role = "user", userId = "bob" })).ExpectJson(HttpStatusCode.Created)).Str("key");
        using var user = Service.Client(userKey);

        await (await PutJson(op, $"/v1/tenants/{tenant}/limits", """{"maxCollections": 1, "maxUploadBytes": 100, "userRequestsPerMinute": 50, "monthlyBudget": 99.5}""")).ExpectJson(HttpStatusCode.OK);
        var limits = await (await PutJson(op, $"/v1/tenants/{tenant}/limits", """{"maxUploadBytes": null}""")).ExpectJson(HttpStatusCode.OK);
        Assert.Equal((1L, 50L, 99.5m), (limits["maxCollections"]!.GetValue<long>(), limits["userRequestsPerMinute"]!.GetValue<long>(), limits["monthlyBudget"]!.GetValue<decimal>()));
        Assert.Null(limits["maxUploadBytes"]);
        Assert.Equal("default", limits.Str("plan"));
        await (await PutJson(op, $"/v1/tenants/{tenant}/limits", """{"plan": "gold"}""")).ExpectProblem(HttpStatusCode.BadRequest);
        await (await PutJson(op, $"/v1/tenants/{tenant}/limits", """{"maxDocuments": "many"}""")).ExpectProblem(HttpStatusCode.BadRequest);
        await (await PutJson(op, "/v1/tenants/nobody-here/limits", """{"maxDocuments": 1}""")).ExpectProblem(HttpStatusCode.NotFound);
        await (await PutJson(admin, $"/v1/tenants/{tenant}/limits", """{"maxDocuments": 1000}""")).ExpectProblem(HttpStatusCode.Forbidden);

        Assert.Equal(1, (await (await admin.GetAsync("/v1/limits")).ExpectJson(HttpStatusCode.OK))["maxCollections"]!.GetValue<long>());
        await (await user.GetAsync("/v1/limits")).ExpectProblem(HttpStatusCode.Forbidden);

        // Per-user limits within the tenant's.
        var bob = await (await PutJson(admin, "/v1/users/bob/limits", """{"requestsPerMinute": 20}""")).ExpectJson(HttpStatusCode.OK);
        Assert.Equal(20, bob["requestsPerMinute"]!.GetValue<long>());
        var over = await (await PutJson(admin, "/v1/users/bob/limits", """{"requestsPerMinute": 51}""")).ExpectProblem(HttpStatusCode.BadRequest);
        Assert.Contains("exceeds", over.Str("detail"), StringComparison.Ordinal);
        await (await PutJson(admin, "/v1/users/bob/limits", """{"plan": "default"}""")).ExpectProblem(HttpStatusCode.BadRequest);
        await (await PutJson(user, "/v1/users/bob/limits", """{"requestsPerMinute": 50}""")).ExpectProblem(HttpStatusCode.Forbidden);

        // Counts refuse with 403 naming the quota; sizes with 413.
        await (await admin.PostJson("/v1/collections", new { name = "one" })).ExpectJson(HttpStatusCode.Created);
        var second = await (await admin.PostJson("/v1/collections", new { name = "two" })).ExpectProblem(HttpStatusCode.Forbidden);
        Assert.Equal(("maxCollections", 1m, 1m), (second.Str("quota"), second["limit"]!.GetValue<decimal>(), second["usage"]!.GetValue<decimal>()));
        await (await PutJson(op, $"/v1/tenants/{tenant}/limits", """{"maxUploadBytes": 20}""")).ExpectJson(HttpStatusCode.OK);
        var big = await (await admin.PostJson("/v1/collections/one/documents", new { text = "This text is longer than twenty bytes." })).ExpectProblem(HttpStatusCode.RequestEntityTooLarge);
        Assert.Equal("maxUploadBytes", big.Str("quota"));

        var usage = await (await admin.GetAsync("/v1/usage")).ExpectJson(HttpStatusCode.OK);
        Assert.Equal((1L, 0L), (usage["collections"]!.GetValue<long>(), usage["documents"]!.GetValue<long>()));
        Assert.Equal(1, usage["limits"]!["maxCollections"]!.GetValue<long>());
    }

    [Fact]
    public async Task Chat_answers_are_charged_and_the_daily_token_quota_answers_429()
    {
        var (tenant, adminKey) = await Service.CreateTenant("q-chat");
        using var op = Service.Client(Service.OperatorKey);
        using var admin = Service.Client(adminKey);
        await (await admin.PostJson("/v1/collections", new { name = "kb" })).ExpectJson(HttpStatusCode.Created);
        await admin.Ingest("kb", new { id = "moon", text = "The moon pulls on the ocean, which makes the tides rise and fall twice a day." });
        await (await PutJson(op, $"/v1/tenants/{tenant}/limits", """{"chatTokensPerDay": 5}""")).ExpectJson(HttpStatusCode.OK);

        await (await admin.PostJson("/v1/collections/kb/chat", new { message = "What makes the tides?" })).ExpectJson(HttpStatusCode.OK);
        var usage = await (await admin.GetAsync("/v1/usage")).ExpectJson(HttpStatusCode.OK);
        Assert.True(usage["chatTokensToday"]!.GetValue<long>() > 5, usage.ToJsonString());

        var response = await admin.PostJson("/v1/collections/kb/chat", new { message = "And again?" });
        var problem = await response.ExpectProblem(HttpStatusCode.TooManyRequests);
        Assert.Equal("chatTokensPerDay", problem.Str("quota"));
        Assert.True(int.Parse(response.Headers.GetValues("Retry-After").Single(), CultureInfo.InvariantCulture) is > 0 and <= 86400);

        // Reading and searching still work with the chat quota used up.
        Assert.NotEmpty(await admin.Search("kb", "tides"));

        // The ledger by model: the answer tokens under the extractive answerer, the embedded chunk under the model.
        var ledger = (await (await admin.GetAsync("/v1/usage?groupBy=model")).ExpectJson(HttpStatusCode.OK))["ledger"]!;
        Assert.Equal("model", ledger.Str("groupBy"));
        var rows = ledger["rows"]!.AsArray();
        // The day's chat tokens are the prompt (question and passages read) plus the answer, both counted with WordPiece.
        long Quantity(string kind) => rows.Where(r => r.Str("key") == "extractive" && r.Str("kind") == kind).Sum(r => r!["quantity"]!.GetValue<long>());
        Assert.True(Quantity("chatTokensOut") > 0 && Quantity("chatTokensIn") > 0, rows.ToJsonString());
        Assert.Equal(usage["chatTokensToday"]!.GetValue<long>(), Quantity("chatTokensIn") + Quantity("chatTokensOut"));
        Assert.Contains(rows, r => r.Str("key") == "all-minilm-l6-v2" && r.Str("kind") == "embeddings" && r!["quantity"]!.GetValue<long>() == 1);
        await (await admin.GetAsync("/v1/usage?groupBy=color")).ExpectProblem(HttpStatusCode.BadRequest);
        await (await admin.GetAsync("/v1/usage?from=2026-13-01")).ExpectProblem(HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Rate_limit_answers_429_with_headers_and_usage_survives_a_restart()
    {
        var dataDir = TestPaths.NewTempDir("quota-restart");
        string adminKey;
        await using (var service = await ServiceProcess.StartAsync(dataDir))
        {
            (var tenant, adminKey) = await service.CreateTenant("q-rate");
            using var op = service.Client(service.OperatorKey);
            await (await PutJson(op, $"/v1/tenants/{tenant}/limits", """{"requestsPerMinute": 6, "maxDocuments": 1}""")).ExpectJson(HttpStatusCode.OK);

            // Start early in a minute so the restart below happens within the same window.
            while (DateTime.UtcNow.Second > 10)
            {
                await Task.Delay(500);
            }

            using var admin = service.Client(adminKey);
            await (await admin.PostJson("/v1/collections", new { name = "c" })).ExpectJson(HttpStatusCode.Created);
            await (await admin.PostJson("/v1/collections/c/documents", new { id = "only", text = "The only document." })).ExpectJson(HttpStatusCode.Accepted);
            for (var i = 0; i < 3; i++)
            {
                var ok = await admin.GetAsync("/v1/collections");
                await ok.ExpectJson(HttpStatusCode.OK);
                Assert.Equal("6", ok.Headers.GetValues("RateLimit-Limit").Single());
                Assert.Equal((3 - i).ToString(CultureInfo.InvariantCulture), ok.Headers.GetValues("RateLimit-Remaining").Single());
                Assert.InRange(int.Parse(ok.Headers.GetValues("RateLimit-Reset").Single(), CultureInfo.InvariantCulture), 1, 60);
            }

            await service.StopAsync();
        }

        await using (var service = await ServiceProcess.StartAsync(dataDir))
        {
            using var admin = service.Client(adminKey);
            var minute = DateTime.UtcNow.Minute;

            // Five of six requests were spent before the restart; one is left.
            var last = await admin.GetAsync("/v1/usage");
            var usage = await last.ExpectJson(HttpStatusCode.OK);
            Assert.Equal("0", last.Headers.GetValues("RateLimit-Remaining").Single());
            Assert.Equal(1, usage["documents"]!.GetValue<long>());

            var refused = await admin.GetAsync("/v1/collections");
            var problem = await refused.ExpectProblem(HttpStatusCode.TooManyRequests);
            Assert.Equal("requestsPerMinute", problem.Str("quota"));
            var retryAfter = int.Parse(refused.Headers.GetValues("Retry-After").Single(), CultureInfo.InvariantCulture);
            Assert.InRange(retryAfter, 1, 60);
            Assert.Equal(retryAfter.ToString(CultureInfo.InvariantCulture), refused.Headers.GetValues("RateLimit-Reset").Single());
            Assert.Equal(("6", "0"), (refused.Headers.GetValues("RateLimit-Limit").Single(), refused.Headers.GetValues("RateLimit-Remaining").Single()));
            Assert.Equal(minute, DateTime.UtcNow.Minute);

            // After the window, the document quota still holds (persisted): a second document is refused with 403.
            await Task.Delay(TimeSpan.FromSeconds(retryAfter + 1));
            var doc = await (await admin.PostJson("/v1/collections/c/documents", new { id = "second", text = "Too many." })).ExpectProblem(HttpStatusCode.Forbidden);
            Assert.Equal("maxDocuments", doc.Str("quota"));
        }
    }
}
