using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Embeddings;
using RagOrleans.Grains.Storage;

namespace RagOrleans.Grains.Quotas;

[GenerateSerializer, Alias("rag.QuotaState")]
public sealed class QuotaState
{
    [Id(0)] public string? Plan { get; set; }
    [Id(1)] public Dictionary<string, decimal?> Overrides { get; set; } = new(StringComparer.Ordinal);
    [Id(2)] public Dictionary<string, UserLimits> Users { get; set; } = new(StringComparer.Ordinal);
    [Id(3)] public long Collections { get; set; }
    [Id(4)] public long Documents { get; set; }
    [Id(5)] public long StoredBytes { get; set; }
    [Id(6)] public long Vectors { get; set; }
    [Id(7)] public HashSet<string> Jobs { get; set; } = new(StringComparer.Ordinal);
    [Id(8)] public DateOnly Day { get; set; }
    [Id(9)] public long ChatTokensToday { get; set; }
    [Id(10)] public Dictionary<string, long> UserTokensToday { get; set; } = new(StringComparer.Ordinal);
    [Id(11)] public string Month { get; set; } = "";
    [Id(12)] public decimal BudgetSpent { get; set; }
    [Id(13)] public DateTimeOffset MinuteStart { get; set; }
    [Id(14)] public long TenantGranted { get; set; }
    [Id(15)] public Dictionary<string, long> UserGranted { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>
/// One tenant's limits and usage. Checks and counter updates happen in one turn of this non-reentrant grain,
/// and the state is written before the caller is answered, so counters are exact and survive restarts.
/// Periods (minute, UTC day, UTC month) roll over lazily on the first call after their end. Every charge is
/// also added to the usage ledger before the call returns.
/// </summary>
[GrainType("quota")]
public sealed class QuotaGrain(
    [PersistentState("quota", RagStorage.GrainStateProvider)] IPersistentState<QuotaState> state,
    IOptionsMonitor<QuotaOptions> options,
    IEmbeddingService embeddings,
    IUsageLedger ledger,
    [FromKeyedServices(QuotaOptions.ClockKey)] TimeProvider clock,
    ILogger<QuotaGrain> logger) : Grain, IQuotaGrain
{
    private QuotaState S => state.State;
    private string TenantId => this.GetPrimaryKeyString();

    public Task<TenantLimits> GetLimits() => Task.FromResult(Limits());

    public async Task<TenantLimits> SetLimits(LimitsUpdate update)
    {
        LimitsResolver.Validate(update.Values, QuotaNames.TenantLimits, "tenant");
        if (update.Plan is not null)
        {
            if (options.CurrentValue.FindPlan(update.Plan) is null)
            {
                var known = options.CurrentValue.Plans.Keys.Append(options.CurrentValue.DefaultPlan).Distinct(StringComparer.OrdinalIgnoreCase);
                throw RagException.Invalid($"Unknown plan '{update.Plan}'; configured plans: {string.Join(", ", known.Select(p => $"'{p}'"))}.");
            }

            S.Plan = update.Plan;
        }

        foreach (var (name, value) in update.Values)
        {
            S.Overrides[name] = value;
        }

        await state.WriteStateAsync();
        var limits = Limits();
        logger.LogInformation("Limits of tenant {TenantId} set: {Limits}", TenantId, limits);
        return limits;
    }

    public Task<UserLimits> GetUserLimits(string userId) =>
        Task.FromResult(S.Users.GetValueOrDefault(userId) ?? new UserLimits(userId, null, null));

    public async Task<UserLimits> SetUserLimits(string userId, LimitsUpdate update)
    {
        if (update.Plan is not null)
        {
            throw RagException.Invalid("A user has no plan; only the operator sets the tenant's plan.");
        }

        LimitsResolver.Validate(update.Values, QuotaNames.UserLimits, "per-user");
        var tenant = Limits();
        var current = S.Users.GetValueOrDefault(userId) ?? new UserLimits(userId, null, null);
        var rpm = update.Values.TryGetValue(QuotaNames.RequestsPerMinute, out var r) ? (long?)r : current.RequestsPerMinute;
        var tokens = update.Values.TryGetValue(QuotaNames.ChatTokensPerDay, out var t) ? (long?)t : current.ChatTokensPerDay;
        Within(QuotaNames.RequestsPerMinute, rpm, LimitsResolver.UserRequestCap(tenant), "the tenant's per-user request limit");
        Within(QuotaNames.ChatTokensPerDay, tokens, tenant.ChatTokensPerDay, "the tenant's daily chat tokens");
        var limits = new UserLimits(userId, rpm, tokens);
        if (rpm is null && tokens is null)
        {
            S.Users.Remove(userId);
        }
        else
        {
            S.Users[userId] = limits;
        }

        await state.WriteStateAsync();
        return limits;

        static void Within(string name, long? value, long? cap, string what)
        {
            if (value is not null && cap is not null && value > cap)
            {
                throw RagException.Invalid($"'{name}' = {value} exceeds {what} ({cap}).");
            }
        }
    }

    public Task<QuotaUsage> GetUsage()
    {
        Roll();
        return Task.FromResult(new QuotaUsage(
            S.Collections, S.Documents, S.StoredBytes, S.Vectors, S.Jobs.Count, S.ChatTokensToday, S.Day,
            S.BudgetSpent, S.Month, S.TenantGranted, S.MinuteStart));
    }

    public async Task ReserveCollection()
    {
        var limits = Limits();
        if (limits.MaxCollections is { } max && S.Collections + 1 > max)
        {
            throw Refuse(RagErrorKind.Forbidden, QuotaNames.MaxCollections, max, S.Collections, 1,
                $"The tenant may hold at most {max} collections and has {S.Collections}.");
        }

        S.Collections++;
        await state.WriteStateAsync();
    }

    public async Task ReleaseCollection(string collection, long documents, long bytes, long vectors)
    {
        S.Collections = Math.Max(0, S.Collections - 1);
        S.Documents = Math.Max(0, S.Documents - documents);
        S.StoredBytes = Math.Max(0, S.StoredBytes - bytes);
        S.Vectors = Math.Max(0, S.Vectors - vectors);
        var prefix = Ids.Key(TenantId, collection) + "/";
        S.Jobs.RemoveWhere(j => j.StartsWith(prefix, StringComparison.Ordinal));
        await state.WriteStateAsync();
    }

    public async Task ReserveDocument(DocumentCharge charge)
    {
        Roll();
        var limits = Limits();
        var o = options.CurrentValue;
        if (limits.MaxUploadBytes is { } maxUpload && charge.Bytes > maxUpload)
        {
            throw Refuse(RagErrorKind.TooLarge, QuotaNames.MaxUploadBytes, maxUpload, charge.Bytes, charge.Bytes,
                $"The document is {charge.Bytes} bytes; the tenant's upload limit is {maxUpload} bytes.");
        }

        if (o.OverBudgetBlocksIngestion && limits.MonthlyBudget is { } budget && S.BudgetSpent >= budget)
        {
            throw OverBudget(budget, "upload documents");
        }

        if (charge.NewDocument && limits.MaxDocuments is { } maxDocs && S.Documents + 1 > maxDocs)
        {
            throw Refuse(RagErrorKind.Forbidden, QuotaNames.MaxDocuments, maxDocs, S.Documents, 1,
                $"The tenant may hold at most {maxDocs} documents and has {S.Documents}.");
        }

        var delta = charge.Bytes - charge.PreviousBytes;
        if (delta > 0 && limits.MaxStoredBytes is { } maxBytes && S.StoredBytes + delta > maxBytes)
        {
            throw Refuse(RagErrorKind.TooLarge, QuotaNames.MaxStoredBytes, maxBytes, S.StoredBytes, delta,
                $"Storing {delta} more bytes would exceed the tenant's {maxBytes}-byte storage limit ({S.StoredBytes} used).");
        }

        var vectorsAfter = Math.Max(0, S.Vectors - charge.PreviousVectors);
        if (limits.MaxVectors is { } maxVectors && vectorsAfter >= maxVectors)
        {
            throw Refuse(RagErrorKind.Forbidden, QuotaNames.MaxVectors, maxVectors, vectorsAfter, 1,
                $"The tenant's vector limit ({maxVectors}) is used up ({vectorsAfter} indexed chunks); delete documents first.");
        }

        if (!S.Jobs.Contains(charge.JobId) && limits.MaxConcurrentIngestions is { } maxJobs && S.Jobs.Count + 1 > maxJobs)
        {
            throw Refuse(RagErrorKind.TooManyRequests, QuotaNames.MaxConcurrentIngestions, maxJobs, S.Jobs.Count, 1,
                $"The tenant already has {S.Jobs.Count} documents queued or ingesting (limit {maxJobs}); retry when some finish.", 5);
        }

        S.Documents += charge.NewDocument ? 1 : 0;
        S.StoredBytes = Math.Max(0, S.StoredBytes + delta);
        S.Vectors = vectorsAfter;
        S.Jobs.Add(charge.JobId);
        await state.WriteStateAsync();
        await Record("", LedgerKinds.UploadedBytes, "", charge.Bytes, 0);
    }

    public async Task CancelDocument(DocumentCharge charge)
    {
        S.Documents = Math.Max(0, S.Documents - (charge.NewDocument ? 1 : 0));
        S.StoredBytes = Math.Max(0, S.StoredBytes - (charge.Bytes - charge.PreviousBytes));
        S.Vectors += charge.PreviousVectors;
        S.Jobs.Remove(charge.JobId);
        await state.WriteStateAsync();
    }

    public async Task ReleaseDocument(string jobId, long bytes, long vectors)
    {
        S.Documents = Math.Max(0, S.Documents - 1);
        S.StoredBytes = Math.Max(0, S.StoredBytes - bytes);
        S.Vectors = Math.Max(0, S.Vectors - vectors);
        S.Jobs.Remove(jobId);
        await state.WriteStateAsync();
    }

    public async Task ReserveVectors(long vectors, string model)
    {
        Roll();
        var limits = Limits();
        if (limits.MaxVectors is { } max && S.Vectors + vectors > max)
        {
            throw Refuse(RagErrorKind.Forbidden, QuotaNames.MaxVectors, max, S.Vectors, vectors,
                $"Indexing {vectors} chunks would exceed the tenant's vector limit of {max} ({S.Vectors} indexed).");
        }

        var cost = vectors * options.CurrentValue.Costs.Vector;
        S.Vectors += vectors;
        S.BudgetSpent += cost;
        await state.WriteStateAsync();
        await Record(model, LedgerKinds.Embeddings, "", vectors, cost);
    }

    public async Task ReleaseVectors(long vectors)
    {
        S.Vectors = Math.Max(0, S.Vectors - vectors);
        await state.WriteStateAsync();
    }

    public async Task EndIngestion(string jobId)
    {
        if (S.Jobs.Remove(jobId))
        {
            await state.WriteStateAsync();
        }
    }

    public Task CheckChat(string userId)
    {
        Roll();
        var limits = Limits();
        if (options.CurrentValue.OverBudgetBlocksChat && limits.MonthlyBudget is { } budget && S.BudgetSpent >= budget)
        {
            throw OverBudget(budget, "chat");
        }

        var now = clock.GetUtcNow();
        if (limits.ChatTokensPerDay is { } max && S.ChatTokensToday >= max)
        {
            throw Refuse(RagErrorKind.TooManyRequests, QuotaNames.ChatTokensPerDay, max, S.ChatTokensToday, 1,
                $"The tenant has used its {max} chat tokens for today (UTC); the quota resets at midnight UTC.", LimitsResolver.SecondsToNextDay(now));
        }

        var used = S.UserTokensToday.GetValueOrDefault(userId);
        if (S.Users.GetValueOrDefault(userId)?.ChatTokensPerDay is { } userMax && used >= userMax)
        {
            throw Refuse(RagErrorKind.TooManyRequests, QuotaNames.ChatTokensPerDay, userMax, used, 1,
                $"User '{userId}' has used their {userMax} chat tokens for today (UTC); the quota resets at midnight UTC.", LimitsResolver.SecondsToNextDay(now));
        }

        return Task.CompletedTask;
    }

    public async Task<long> ChargeChat(string userId, string answer)
    {
        Roll();
        long tokens = embeddings.Tokenizer.CountTokens(answer);
        S.ChatTokensToday += tokens;
        S.UserTokensToday[userId] = S.UserTokensToday.GetValueOrDefault(userId) + tokens;
        var cost = tokens * options.CurrentValue.Costs.ChatToken;
        S.BudgetSpent += cost;
        await state.WriteStateAsync();
        await Record(ChatModel, LedgerKinds.ChatTokensOut, userId, tokens, cost);
        return tokens;
    }

    public async Task ChargeChatTokens(string userId, string model, ChatUsage usage)
    {
        Roll();
        var tokens = Math.Max(0, usage.PromptTokens) + Math.Max(0, usage.CompletionTokens);
        if (tokens == 0)
        {
            return;
        }

        S.ChatTokensToday += tokens;
        S.UserTokensToday[userId] = S.UserTokensToday.GetValueOrDefault(userId) + tokens;
        var price = options.CurrentValue.Costs.ChatToken;
        S.BudgetSpent += tokens * price;
        await state.WriteStateAsync();
        var day = DateOnly.FromDateTime(clock.GetUtcNow().UtcDateTime);
        var entries = new List<LedgerEntry>(2);
        foreach (var (kind, quantity) in new[] { (LedgerKinds.ChatTokensIn, usage.PromptTokens), (LedgerKinds.ChatTokensOut, usage.CompletionTokens) })
        {
            if (quantity > 0)
            {
                entries.Add(new LedgerEntry(TenantId, day, model, kind, userId, quantity, quantity * price));
            }
        }

        await ledger.AddAsync(entries);
    }

    public async Task<RateLease> Lease(RateLeaseRequest request)
    {
        Roll();
        var limits = Limits();
        var o = options.CurrentValue;
        var windowEnd = S.MinuteStart.AddMinutes(1);
        var tenantLimit = limits.RequestsPerMinute;
        var userLimit = LimitsResolver.Min(S.Users.GetValueOrDefault(request.UserId)?.RequestsPerMinute, limits.UserRequestsPerMinute);
        long tenantGranted = 0, userGranted = 0;
        if (request.Tenant && tenantLimit is { } tl)
        {
            tenantGranted = Math.Min(LimitsResolver.LeaseBatch(tl, o.RateLeaseFraction, o.MaxRateLease), Math.Max(0, tl - S.TenantGranted));
            S.TenantGranted += tenantGranted;
        }

        var userUsed = S.UserGranted.GetValueOrDefault(request.UserId);
        if (request.User && userLimit is { } ul)
        {
            userGranted = Math.Min(LimitsResolver.LeaseBatch(ul, o.RateLeaseFraction, o.MaxRateLease), Math.Max(0, ul - userUsed));
            userUsed += userGranted;
            S.UserGranted[request.UserId] = userUsed;
        }

        var served = Math.Max(0, request.Served);
        var requestCost = served * o.Costs.Request;
        S.BudgetSpent += requestCost;
        if (tenantGranted > 0 || userGranted > 0 || served > 0)
        {
            await state.WriteStateAsync();
        }

        await Record("", LedgerKinds.Requests, request.UserId, served, requestCost);

        return new RateLease(
            windowEnd,
            tenantLimit, tenantGranted, tenantLimit is { } t ? Math.Max(0, t - S.TenantGranted) : 0,
            userLimit, userGranted, userLimit is { } u ? Math.Max(0, u - userUsed) : 0);
    }

    public Task<IReadOnlyList<LedgerRow>> QueryLedger(DateOnly from, DateOnly to, LedgerGrouping groupBy) =>
        ledger.QueryAsync(TenantId, from, to, groupBy);

    public async Task Clear()
    {
        await state.ClearStateAsync();
        state.State = new QuotaState();
        DeactivateOnIdle();
    }

    public Task<QuotaBackup> ExportBackup()
    {
        Roll();
        return Task.FromResult(new QuotaBackup(
            S.Plan, new Dictionary<string, decimal?>(S.Overrides, StringComparer.Ordinal), [.. S.Users.Values],
            S.Day, S.ChatTokensToday, new Dictionary<string, long>(S.UserTokensToday, StringComparer.Ordinal), S.Month, S.BudgetSpent));
    }

    public async Task RestoreBackup(QuotaBackup backup, QuotaHoldings holdings)
    {
        LimitsResolver.Validate(backup.Overrides, QuotaNames.TenantLimits, "tenant");
        if (backup.Plan is not null && options.CurrentValue.FindPlan(backup.Plan) is null)
        {
            throw RagException.Invalid($"The archive's plan '{backup.Plan}' is not configured here (Rag:Plans:{backup.Plan}); configure it before the import.");
        }

        var users = new Dictionary<string, UserLimits>(StringComparer.Ordinal);
        foreach (var user in backup.Users)
        {
            LimitsResolver.Validate(
                new Dictionary<string, decimal?> { [QuotaNames.RequestsPerMinute] = user.RequestsPerMinute, [QuotaNames.ChatTokensPerDay] = user.ChatTokensPerDay },
                QuotaNames.UserLimits, "per-user");
            users[Ids.RequireName(user.UserId, "user id")] = user;
        }

        // Spending carries over only within its period: a restore must not hand out a fresh day or month, and an
        // archive from an earlier period starts the current one at zero (Roll below).
        state.State = new QuotaState
        {
            Plan = backup.Plan,
            Overrides = new Dictionary<string, decimal?>(backup.Overrides, StringComparer.Ordinal),
            Users = users,
            Collections = holdings.Collections,
            Documents = holdings.Documents,
            StoredBytes = holdings.StoredBytes,
            Vectors = holdings.Vectors,
            Day = backup.Day,
            ChatTokensToday = Math.Max(0, backup.ChatTokensToday),
            UserTokensToday = new Dictionary<string, long>(backup.UserTokensToday, StringComparer.Ordinal),
            Month = backup.Month,
            BudgetSpent = Math.Max(0, backup.BudgetSpent),
        };
        Roll();
        await state.WriteStateAsync();
        logger.LogInformation("Quota of tenant {TenantId} restored: {Documents} documents, {Bytes} bytes, {Vectors} vectors",
            TenantId, holdings.Documents, holdings.StoredBytes, holdings.Vectors);
    }

    /// <summary>The model name chat answers are recorded under: the extractive answerer, not a generative model.</summary>
    private const string ChatModel = "extractive";

    private Task Record(string model, string kind, string userId, long quantity, decimal cost) =>
        quantity == 0 && cost == 0
            ? Task.CompletedTask
            : ledger.AddAsync([new LedgerEntry(TenantId, DateOnly.FromDateTime(clock.GetUtcNow().UtcDateTime), model, kind, userId, quantity, cost)]);

    private TenantLimits Limits()
    {
        var o = options.CurrentValue;
        var plan = S.Plan ?? o.DefaultPlan;
        // A plan removed from configuration falls back to unlimited defaults rather than locking the tenant out.
        return LimitsResolver.Resolve(plan, o.FindPlan(plan) ?? new PlanLimits(), S.Overrides);
    }

    /// <summary>Starts a new minute, day or month when the clock has passed into one.</summary>
    private void Roll()
    {
        var now = clock.GetUtcNow();
        var minute = LimitsResolver.MinuteStart(now);
        if (minute != S.MinuteStart)
        {
            S.MinuteStart = minute;
            S.TenantGranted = 0;
            S.UserGranted.Clear();
        }

        var day = DateOnly.FromDateTime(now.UtcDateTime);
        if (day != S.Day)
        {
            S.Day = day;
            S.ChatTokensToday = 0;
            S.UserTokensToday.Clear();
        }

        var month = LimitsResolver.Month(now);
        if (month != S.Month)
        {
            S.Month = month;
            S.BudgetSpent = 0;
        }
    }

    private RagException OverBudget(decimal budget, string what) =>
        Refuse(RagErrorKind.Forbidden, QuotaNames.MonthlyBudget, budget, S.BudgetSpent, 0,
            string.Create(CultureInfo.InvariantCulture,
                $"The tenant has spent {S.BudgetSpent} of its {budget} cost units this month and may not {what} until the budget resets on the 1st (UTC); reading and search still work."));

    private RagException Refuse(RagErrorKind kind, string quota, decimal limit, decimal usage, decimal requested, string message, int? retryAfter = null)
    {
        logger.LogInformation("Tenant {TenantId} refused by quota {Quota}: limit {Limit}, usage {Usage}, requested {Requested}",
            TenantId, quota, limit, usage, requested);
        return RagException.QuotaExceeded(kind, new QuotaViolation(quota, limit, usage, requested, retryAfter), message);
    }
}
