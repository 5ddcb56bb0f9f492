using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;
using RagOrleans.Abstractions;
using RagOrleans.Grains;
using RagOrleans.Grains.Hosting;
using RagOrleans.Grains.Quotas;
using Xunit;

namespace RagOrleans.Cluster.Tests;

/// <summary>A clock the test moves by hand; only the quota periods use it.</summary>
public sealed class ManualClock : TimeProvider
{
    private long _ticks = new DateTimeOffset(2026, 3, 10, 12, 0, 0, TimeSpan.Zero).UtcTicks;

    public override DateTimeOffset GetUtcNow() => new(Interlocked.Read(ref _ticks), TimeSpan.Zero);

    public void Set(DateTimeOffset now) => Interlocked.Exchange(ref _ticks, now.UtcTicks);

    public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
}

/// <summary>Two silos with the real grains; the quota grains' clock is a <see cref="ManualClock"/>.</summary>
public sealed class QuotaClusterFixture : IAsyncLifetime
{
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "ragorleans-tests", "quota-" + Guid.NewGuid().ToString("N")[..8]);

    public ManualClock Clock { get; } = new();

    public InProcessTestCluster Cluster { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(initialSilosCount: 2);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.Services.AddKeyedSingleton<TimeProvider>(QuotaOptions.ClockKey, Clock);
            silo.AddRag();
            silo.UseInMemoryReminderService();
            silo.Services.PostConfigure<RagOptions>(o =>
            {
                o.DataDir = _dataDir;
                o.SnapshotInterval = TimeSpan.FromHours(1);
            });
            silo.Services.PostConfigure<QuotaOptions>(o =>
            {
                o.Plans["small"] = new PlanLimits { MaxDocuments = 3, RequestsPerMinute = 100, ChatTokensPerDay = 1000 };
                o.Costs.ChatToken = 1m;
                o.Costs.Vector = 0.5m;
            });
        });
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

    public async Task DisposeAsync() => await Cluster.DisposeAsync();
}

public sealed class QuotaClusterTests(QuotaClusterFixture fixture) : IClassFixture<QuotaClusterFixture>
{
    private IGrainFactory Grains => fixture.Cluster.Client;
    private ManualClock Clock => fixture.Clock;

    private static LimitsUpdate Set(params (string Name, decimal? Value)[] values) =>
        new(null, values.ToDictionary(v => v.Name, v => v.Value));

    private static async Task<RagException> Refused(Func<Task> action, RagErrorKind kind, string quota)
    {
        var ex = await Assert.ThrowsAsync<RagException>(action);
        Assert.Equal(kind, ex.Kind);
        Assert.NotNull(ex.Quota);
        Assert.Equal(quota, ex.Quota!.Quota);
        return ex;
    }

    [Fact]
    public async Task Plans_come_from_configuration_and_fields_override_them_one_by_one()
    {
        var quota = Grains.GetGrain<IQuotaGrain>("plans");
        var limits = await quota.GetLimits();
        Assert.Equal("default", limits.Plan);
        Assert.Null(limits.MaxDocuments);

        limits = await quota.SetLimits(new LimitsUpdate("small", new Dictionary<string, decimal?>()));
        Assert.Equal(("small", 3L, 100L, 1000L), (limits.Plan, limits.MaxDocuments!.Value, limits.RequestsPerMinute!.Value, limits.ChatTokensPerDay!.Value));

        limits = await quota.SetLimits(Set((QuotaNames.MaxDocuments, 5), (QuotaNames.MonthlyBudget, 12.5m)));
        Assert.Equal(5, limits.MaxDocuments);
        Assert.Equal(12.5m, limits.MonthlyBudget);
        Assert.Equal(100, limits.RequestsPerMinute);

        // Absent is unchanged; null is unlimited even where the plan sets a value.
        limits = await quota.SetLimits(Set((QuotaNames.RequestsPerMinute, null)));
        Assert.Equal(5, limits.MaxDocuments);
        Assert.Null(limits.RequestsPerMinute);

        await Assert.ThrowsAsync<RagException>(() => quota.SetLimits(new LimitsUpdate("platinum", new Dictionary<string, decimal?>())));
        await Assert.ThrowsAsync<RagException>(() => quota.SetLimits(Set(("maxWidgets", 1))));
        await Assert.ThrowsAsync<RagException>(() => quota.SetLimits(Set((QuotaNames.MaxDocuments, -1))));
        await Assert.ThrowsAsync<RagException>(() => quota.SetLimits(Set((QuotaNames.MaxDocuments, 1.5m))));
        Assert.Equal(5, (await quota.GetLimits()).MaxDocuments);

        // Per-user limits stay within the tenant's.
        await quota.SetLimits(Set((QuotaNames.UserRequestsPerMinute, 20), (QuotaNames.ChatTokensPerDay, 1000)));
        var user = await quota.SetUserLimits("alice", Set((QuotaNames.RequestsPerMinute, 10)));
        Assert.Equal(10, user.RequestsPerMinute);
        var tooMuch = await Assert.ThrowsAsync<RagException>(() => quota.SetUserLimits("alice", Set((QuotaNames.RequestsPerMinute, 21))));
        Assert.Equal(RagErrorKind.Invalid, tooMuch.Kind);
        await Assert.ThrowsAsync<RagException>(() => quota.SetUserLimits("alice", Set((QuotaNames.ChatTokensPerDay, 1001))));
        await Assert.ThrowsAsync<RagException>(() => quota.SetUserLimits("alice", Set((QuotaNames.MaxDocuments, 1))));
        Assert.Equal(10, (await quota.GetUserLimits("alice")).RequestsPerMinute);
    }

    [Fact]
    public async Task Two_hundred_parallel_document_reservations_against_one_hundred_admit_exactly_one_hundred()
    {
        var quota = Grains.GetGrain<IQuotaGrain>("parallel");
        await quota.SetLimits(Set((QuotaNames.MaxDocuments, 100)));
        var outcomes = await Task.WhenAll(Enumerable.Range(0, 200).Select(async i =>
        {
            try
            {
                await quota.ReserveDocument(new DocumentCharge($"parallel/c/d{i}", true, 10, 0, 0));
                return true;
            }
            catch (RagException ex) when (ex.Quota?.Quota == QuotaNames.MaxDocuments)
            {
                Assert.Equal(RagErrorKind.Forbidden, ex.Kind);
                Assert.Equal((100m, 100m), (ex.Quota.Limit, ex.Quota.Usage));
                return false;
            }
        }));
        Assert.Equal(100, outcomes.Count(o => o));
        var usage = await quota.GetUsage();
        Assert.Equal((100L, 1000L, 100L), (usage.Documents, usage.StoredBytes, usage.ActiveIngestions));

        // Deletes give quota back; ending a job twice is harmless.
        await quota.ReleaseDocument("parallel/c/d0", 10, 0);
        await quota.EndIngestion("parallel/c/d0");
        await quota.ReserveDocument(new DocumentCharge("parallel/c/again", true, 10, 0, 0));
        await Refused(() => quota.ReserveDocument(new DocumentCharge("parallel/c/more", true, 10, 0, 0)), RagErrorKind.Forbidden, QuotaNames.MaxDocuments);

        // Replacing a document is not a new one; only the byte difference counts.
        await quota.SetLimits(Set((QuotaNames.MaxStoredBytes, 1005)));
        await quota.ReserveDocument(new DocumentCharge("parallel/c/again", false, 15, 10, 0));
        var ex = await Refused(() => quota.ReserveDocument(new DocumentCharge("parallel/c/again", false, 16, 15, 0)), RagErrorKind.TooLarge, QuotaNames.MaxStoredBytes);
        Assert.Equal((1005m, 1005m, 1m), (ex.Quota!.Limit, ex.Quota.Usage, ex.Quota.Requested));
    }

    [Fact]
    public async Task Two_frontends_leasing_from_one_grain_admit_exactly_the_limit_per_minute()
    {
        Clock.Set(new DateTimeOffset(2026, 3, 10, 12, 0, 10, TimeSpan.Zero));
        var quota = Grains.GetGrain<IQuotaGrain>("rate");
        await quota.SetLimits(Set((QuotaNames.RequestsPerMinute, 50), (QuotaNames.UserRequestsPerMinute, 30)));
        var frontends = new[] { new RateLeaseLimiter(Grains, Clock), new RateLeaseLimiter(Grains, Clock) };

        async Task<RateDecision[]> Burst(string user, int perFrontend) =>
            await Task.WhenAll(frontends.SelectMany(f => Enumerable.Range(0, perFrontend).Select(_ => f.AcquireAsync("rate", user).AsTask())));

        // One user: the per-user limit binds first.
        var alice = await Burst("alice", 40);
        Assert.Equal(30, alice.Count(d => d.Allowed));
        Assert.All(alice.Where(d => !d.Allowed), d => Assert.Equal((QuotaNames.UserRequestsPerMinute, 30L, 50), (d.Quota!, d.Limit!.Value, d.ResetSeconds)));

        // Another user gets the rest of the tenant's minute, and no more.
        var bob = await Burst("bob", 40);
        Assert.Equal(20, bob.Count(d => d.Allowed));
        Assert.Contains(bob, d => !d.Allowed && d.Quota == QuotaNames.RequestsPerMinute);
        Assert.Equal(50, (await quota.GetUsage()).RequestsThisMinute);

        // Both frontends drew on the budget: a lease is a share of the minute, not all of it.
        Assert.True(alice.Take(40).Any(d => d.Allowed) && alice.Skip(40).Any(d => d.Allowed));

        // A new minute starts a new budget everywhere.
        Clock.Advance(TimeSpan.FromMinutes(1));
        var next = await Burst("carol", 10);
        Assert.Equal(20, next.Count(d => d.Allowed));
        Assert.All(next, d => Assert.True(d.Remaining <= 50 && d.Limit is 30 or 50));
    }

    [Fact]
    public async Task Leases_are_a_fraction_of_the_minute_so_each_frontend_calls_the_grain_rarely()
    {
        Clock.Set(new DateTimeOffset(2026, 3, 10, 12, 5, 0, TimeSpan.Zero));
        await Grains.GetGrain<IQuotaGrain>("lease").SetLimits(Set((QuotaNames.RequestsPerMinute, 1000)));
        var calls = new int[2];
        var frontends = Enumerable.Range(0, 2).Select(i => new RateLeaseLimiter((tenant, request) =>
        {
            Interlocked.Increment(ref calls[i]);
            return Grains.GetGrain<IQuotaGrain>(tenant).Lease(request);
        }, Clock)).ToArray();
        for (var r = 0; r < 500; r++)
        {
            Assert.True((await frontends[r % 2].AcquireAsync("lease", "u")).Allowed);
        }

        // 100-token leases (10% of 1000): 250 requests per frontend need 3 tenant leases each (user tokens are unlimited, leased once).
        Assert.All(calls, c => Assert.InRange(c, 1, 4));

        // Admitted requests reach the ledger with each frontend's next lease (here: the next minute's).
        Clock.Advance(TimeSpan.FromMinutes(1));
        Assert.True((await frontends[0].AcquireAsync("lease", "u")).Allowed);
        Assert.True((await frontends[1].AcquireAsync("lease", "u")).Allowed);
        var ledger = await Grains.GetGrain<IQuotaGrain>("lease").QueryLedger(new DateOnly(2026, 3, 10), new DateOnly(2026, 3, 10), LedgerGrouping.User);
        Assert.Equal(new LedgerRow("u", LedgerKinds.Requests, 500, 0m), ledger.Single());
    }

    [Fact]
    public async Task Daily_chat_tokens_reset_at_utc_midnight()
    {
        Clock.Set(new DateTimeOffset(2026, 3, 10, 23, 59, 0, TimeSpan.Zero));
        var quota = Grains.GetGrain<IQuotaGrain>("tokens");
        await quota.SetLimits(Set((QuotaNames.ChatTokensPerDay, 10)));
        await quota.CheckChat("u");
        var charged = await quota.ChargeChat("u", "Reminders are persistent and keep firing after the grain is deactivated or the cluster restarts.");
        Assert.InRange(charged, 12, 40);
        Assert.Equal(charged, (await quota.GetUsage()).ChatTokensToday);

        var ex = await Refused(() => quota.CheckChat("u"), RagErrorKind.TooManyRequests, QuotaNames.ChatTokensPerDay);
        Assert.Equal(60, ex.Quota!.RetryAfterSeconds);
        Clock.Advance(TimeSpan.FromSeconds(59.5));
        ex = await Refused(() => quota.CheckChat("u"), RagErrorKind.TooManyRequests, QuotaNames.ChatTokensPerDay);
        Assert.Equal(1, ex.Quota!.RetryAfterSeconds);

        Clock.Advance(TimeSpan.FromSeconds(0.5));
        await quota.CheckChat("u");
        var usage = await quota.GetUsage();
        Assert.Equal((0L, new DateOnly(2026, 3, 11)), (usage.ChatTokensToday, usage.Day));

        // A user's own daily limit binds before the tenant's.
        await quota.SetUserLimits("v", Set((QuotaNames.ChatTokensPerDay, 5)));
        await quota.ChargeChat("v", "one two three four five six");
        await Refused(() => quota.CheckChat("v"), RagErrorKind.TooManyRequests, QuotaNames.ChatTokensPerDay);
        await quota.CheckChat("u");

        // Every charge is in the ledger, on the UTC day it happened.
        var byDay = await quota.QueryLedger(new DateOnly(2026, 3, 10), new DateOnly(2026, 3, 11), LedgerGrouping.Day);
        Assert.Equal(charged, byDay.Single(r => r.Key == "2026-03-10" && r.Kind == LedgerKinds.ChatTokensOut).Quantity);
        Assert.Equal(6, byDay.Single(r => r.Key == "2026-03-11" && r.Kind == LedgerKinds.ChatTokensOut).Quantity);
        var byUser = await quota.QueryLedger(new DateOnly(2026, 3, 10), new DateOnly(2026, 3, 11), LedgerGrouping.User);
        Assert.Equal([("u", charged), ("v", 6L)], byUser.Select(r => (r.Key, r.Quantity)).ToArray());
    }

    [Fact]
    public async Task Monthly_budget_blocks_chat_and_ingestion_until_the_first()
    {
        Clock.Set(new DateTimeOffset(2026, 1, 31, 22, 0, 0, TimeSpan.Zero));
        var quota = Grains.GetGrain<IQuotaGrain>("budget");
        await quota.SetLimits(Set((QuotaNames.MonthlyBudget, 10)));
        await quota.ReserveDocument(new DocumentCharge("budget/c/d1", true, 100, 0, 0));
        await quota.ReserveVectors(4, "all-minilm-l6-v2"); // 4 × 0.5 = 2 units
        await quota.ChargeChat("u", "Timers are used for frequent periodic actions within a single grain activation.");
        var usage = await quota.GetUsage();
        Assert.True(usage.BudgetSpent > 10, $"spent {usage.BudgetSpent}");
        var byModel = await quota.QueryLedger(new DateOnly(2026, 1, 1), new DateOnly(2026, 1, 31), LedgerGrouping.Model);
        Assert.Contains(new LedgerRow("all-minilm-l6-v2", LedgerKinds.Embeddings, 4, 2m), byModel);
        Assert.Contains(new LedgerRow("", LedgerKinds.UploadedBytes, 100, 0m), byModel);
        Assert.Equal(usage.BudgetSpent, byModel.Sum(r => r.Cost));

        var ex = await Refused(() => quota.CheckChat("u"), RagErrorKind.Forbidden, QuotaNames.MonthlyBudget);
        Assert.Equal(10m, ex.Quota!.Limit);
        await Refused(() => quota.ReserveDocument(new DocumentCharge("budget/c/d2", true, 100, 0, 0)), RagErrorKind.Forbidden, QuotaNames.MonthlyBudget);

        // Deleting still works over budget and gives the stored quota back.
        await quota.ReleaseDocument("budget/c/d1", 100, 4);
        Assert.Equal((0L, 0L), ((await quota.GetUsage()).Documents, (await quota.GetUsage()).Vectors));

        Clock.Set(new DateTimeOffset(2026, 2, 1, 0, 0, 1, TimeSpan.Zero));
        await quota.CheckChat("u");
        await quota.ReserveDocument(new DocumentCharge("budget/c/d2", true, 100, 0, 0));
        usage = await quota.GetUsage();
        Assert.Equal((0m, "2026-02"), (usage.BudgetSpent, usage.Month));
    }

    [Fact]
    public async Task Real_collections_and_documents_reserve_before_the_work_and_give_back_on_delete()
    {
        Clock.Set(new DateTimeOffset(2026, 3, 12, 9, 0, 0, TimeSpan.Zero));
        var tenant = Grains.GetGrain<ITenantGrain>("real");
        await tenant.Create("Real");
        var quota = Grains.GetGrain<IQuotaGrain>("real");
        await quota.SetLimits(Set((QuotaNames.MaxCollections, 1), (QuotaNames.MaxUploadBytes, 2000)));
        var settings = new CollectionSettings("all-minilm-l6-v2", 384, 1, 200, 32);
        var first = Grains.GetGrain<ICollectionGrain>(Ids.Key("real", "first"));
        var second = Grains.GetGrain<ICollectionGrain>(Ids.Key("real", "second"));
        await first.Create(settings);
        await Refused(() => second.Create(settings), RagErrorKind.Forbidden, QuotaNames.MaxCollections);
        await Assert.ThrowsAsync<RagException>(() => first.Create(settings)); // conflict: the reservation is given back
        Assert.Equal(1, (await quota.GetUsage()).Collections);

        await Refused(() => first.AddDocument(Upload("big", new string('x', 2001))), RagErrorKind.TooLarge, QuotaNames.MaxUploadBytes);
        await first.AddDocument(Upload("a", "The moon pulls the ocean and makes the tides rise and fall twice a day."));
        var indexed = await first.WaitForDocument("a", TimeSpan.FromSeconds(60));
        Assert.Equal(DocumentStatus.Indexed, indexed.Status);
        var usage = await quota.GetUsage();
        Assert.Equal((1L, indexed.SizeBytes, (long)indexed.ChunkCount, 0L), (usage.Documents, usage.StoredBytes, usage.Vectors, usage.ActiveIngestions));

        // No room for another vector: refused at upload, before any work.
        await quota.SetLimits(Set((QuotaNames.MaxVectors, indexed.ChunkCount)));
        await Refused(() => first.AddDocument(Upload("b", "Coffee is brewed from roasted beans.")), RagErrorKind.Forbidden, QuotaNames.MaxVectors);

        // Room for one vector but the document needs more: it fails with the quota's reason and holds nothing.
        await quota.SetLimits(Set((QuotaNames.MaxVectors, indexed.ChunkCount + 1), (QuotaNames.MaxUploadBytes, null)));
        var longText = string.Join("\n\n", Enumerable.Range(0, 40).Select(i => $"Paragraph {i} talks about the history of France, its kings, its revolutions and its many cheeses in some detail."));
        await first.AddDocument(Upload("c", longText));
        var failed = await first.WaitForDocument("c", TimeSpan.FromSeconds(60));
        Assert.Equal(DocumentStatus.Failed, failed.Status);
        Assert.Contains("vector limit", failed.Error, StringComparison.Ordinal);
        usage = await quota.GetUsage();
        Assert.Equal((2L, (long)indexed.ChunkCount, 0L), (usage.Documents, usage.Vectors, usage.ActiveIngestions));

        await first.DeleteDocument("a");
        usage = await quota.GetUsage();
        Assert.Equal((1L, failed.SizeBytes, 0L), (usage.Documents, usage.StoredBytes, usage.Vectors));

        await first.Delete();
        usage = await quota.GetUsage();
        Assert.Equal((0L, 0L, 0L), (usage.Collections, usage.Documents, usage.StoredBytes));
        await second.Create(settings);
    }

    private static DocumentUpload Upload(string id, string text) =>
        new(id, null, "text", null, System.Text.Encoding.UTF8.GetBytes(text), null);
}
