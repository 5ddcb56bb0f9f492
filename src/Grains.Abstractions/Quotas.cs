using Orleans.Concurrency;

namespace RagOrleans.Abstractions;

/// <summary>The quota names of the API: JSON field names of limits, and the <c>quota</c> of a refusal.</summary>
public static class QuotaNames
{
    /// <summary>Collections a tenant may hold.</summary>
    public const string MaxCollections = "maxCollections";
    /// <summary>Documents a tenant may hold.</summary>
    public const string MaxDocuments = "maxDocuments";
    /// <summary>Bytes of uploaded content a tenant may store.</summary>
    public const string MaxStoredBytes = "maxStoredBytes";
    /// <summary>Indexed chunks (vectors) a tenant may hold.</summary>
    public const string MaxVectors = "maxVectors";
    /// <summary>Largest single upload.</summary>
    public const string MaxUploadBytes = "maxUploadBytes";
    /// <summary>Answer tokens per UTC day.</summary>
    public const string ChatTokensPerDay = "chatTokensPerDay";
    /// <summary>Requests per minute for the whole tenant.</summary>
    public const string RequestsPerMinute = "requestsPerMinute";
    /// <summary>Requests per minute for each user of the tenant.</summary>
    public const string UserRequestsPerMinute = "userRequestsPerMinute";
    /// <summary>Documents queued or being ingested at once.</summary>
    public const string MaxConcurrentIngestions = "maxConcurrentIngestions";
    /// <summary>Cost units per calendar month (UTC).</summary>
    public const string MonthlyBudget = "monthlyBudget";

    /// <summary>Every numeric tenant limit, in the order the API lists them.</summary>
    public static IReadOnlyList<string> TenantLimits { get; } =
    [
        MaxCollections, MaxDocuments, MaxStoredBytes, MaxVectors, MaxUploadBytes, ChatTokensPerDay,
        RequestsPerMinute, UserRequestsPerMinute, MaxConcurrentIngestions, MonthlyBudget,
    ];

    /// <summary>The limits a tenant admin may set for one user (each within the tenant's).</summary>
    public static IReadOnlyList<string> UserLimits { get; } = [RequestsPerMinute, ChatTokensPerDay];
}

/// <summary>A tenant's effective limits: the plan's defaults with the operator's overrides; null is unlimited.</summary>
[GenerateSerializer, Immutable, Alias("rag.TenantLimits")]
public sealed record TenantLimits(
    [property: Id(0)] string Plan,
    [property: Id(1)] long? MaxCollections,
    [property: Id(2)] long? MaxDocuments,
    [property: Id(3)] long? MaxStoredBytes,
    [property: Id(4)] long? MaxVectors,
    [property: Id(5)] long? MaxUploadBytes,
    [property: Id(6)] long? ChatTokensPerDay,
    [property: Id(7)] long? RequestsPerMinute,
    [property: Id(8)] long? UserRequestsPerMinute,
    [property: Id(9)] long? MaxConcurrentIngestions,
    [property: Id(10)] decimal? MonthlyBudget);

/// <summary>One user's own limits; null means only the tenant's limits apply.</summary>
[GenerateSerializer, Immutable, Alias("rag.UserLimits")]
public sealed record UserLimits(
    [property: Id(0)] string UserId,
    [property: Id(1)] long? RequestsPerMinute,
    [property: Id(2)] long? ChatTokensPerDay);

/// <summary>
/// A partial update of limits. Only the named fields change: a field absent from <see cref="Values"/> is
/// unchanged, a field present with null becomes unlimited (for a user: falls back to the tenant's limit).
/// </summary>
[GenerateSerializer, Immutable, Alias("rag.LimitsUpdate")]
public sealed record LimitsUpdate(
    [property: Id(0)] string? Plan,
    [property: Id(1)] IReadOnlyDictionary<string, decimal?> Values);

/// <summary>A tenant's current usage.</summary>
[GenerateSerializer, Immutable, Alias("rag.QuotaUsage")]
public sealed record QuotaUsage(
    [property: Id(0)] long Collections,
    [property: Id(1)] long Documents,
    [property: Id(2)] long StoredBytes,
    [property: Id(3)] long Vectors,
    [property: Id(4)] long ActiveIngestions,
    [property: Id(5)] long ChatTokensToday,
    [property: Id(6)] DateOnly Day,
    [property: Id(7)] decimal BudgetSpent,
    [property: Id(8)] string Month,
    [property: Id(9)] long RequestsThisMinute,
    [property: Id(10)] DateTimeOffset MinuteStart);

/// <summary>Which request-rate tokens a frontend wants leased, and how many requests of the user it admitted since it last said.</summary>
[GenerateSerializer, Immutable, Alias("rag.RateLeaseRequest")]
public sealed record RateLeaseRequest(
    [property: Id(0)] string UserId,
    [property: Id(1)] bool Tenant,
    [property: Id(2)] bool User,
    [property: Id(3)] long Served = 0);

/// <summary>
/// Request-rate tokens granted to one frontend for the current minute window. A null limit means unlimited:
/// the frontend needs no further lease until <see cref="WindowEnd"/>.
/// </summary>
[GenerateSerializer, Immutable, Alias("rag.RateLease")]
public sealed record RateLease(
    [property: Id(0)] DateTimeOffset WindowEnd,
    [property: Id(1)] long? TenantLimit,
    [property: Id(2)] long TenantGranted,
    [property: Id(3)] long TenantRemaining,
    [property: Id(4)] long? UserLimit,
    [property: Id(5)] long UserGranted,
    [property: Id(6)] long UserRemaining);

/// <summary>
/// A document write as the quota sees it. <see cref="JobId"/> names the ingestion job (idempotent);
/// a replaced document gives back its previous bytes and vectors.
/// </summary>
[GenerateSerializer, Immutable, Alias("rag.DocumentCharge")]
public sealed record DocumentCharge(
    [property: Id(0)] string JobId,
    [property: Id(1)] bool NewDocument,
    [property: Id(2)] long Bytes,
    [property: Id(3)] long PreviousBytes,
    [property: Id(4)] long PreviousVectors);

/// <summary>Why a request was refused: the quota, its limit, the usage and what was asked.</summary>
[GenerateSerializer, Immutable, Alias("rag.QuotaViolation")]
public sealed record QuotaViolation(
    [property: Id(0)] string Quota,
    [property: Id(1)] decimal Limit,
    [property: Id(2)] decimal Usage,
    [property: Id(3)] decimal Requested,
    [property: Id(4)] int? RetryAfterSeconds = null);

/// <summary>
/// What a backup keeps of a tenant's quota: the plan, the operator's overrides, per-user limits and the spending of
/// the current periods (so a restore does not hand out a fresh day or month). Stored counts (documents, bytes,
/// vectors) are not kept: a restore recounts them from what it restores.
/// </summary>
[GenerateSerializer, Immutable, Alias("rag.QuotaBackup")]
public sealed record QuotaBackup(
    [property: Id(0)] string? Plan,
    [property: Id(1)] IReadOnlyDictionary<string, decimal?> Overrides,
    [property: Id(2)] IReadOnlyList<UserLimits> Users,
    [property: Id(3)] DateOnly Day,
    [property: Id(4)] long ChatTokensToday,
    [property: Id(5)] IReadOnlyDictionary<string, long> UserTokensToday,
    [property: Id(6)] string Month,
    [property: Id(7)] decimal BudgetSpent);

/// <summary>What a restored tenant holds, counted by the restore.</summary>
[GenerateSerializer, Immutable, Alias("rag.QuotaHoldings")]
public sealed record QuotaHoldings(
    [property: Id(0)] long Collections,
    [property: Id(1)] long Documents,
    [property: Id(2)] long StoredBytes,
    [property: Id(3)] long Vectors);

/// <summary>
/// One tenant's limits and usage. Every reservation is checked and applied in one turn of this
/// single-threaded grain, so counters stay exact under any concurrency; releases give quota back.
/// </summary>
[Alias("rag.IQuotaGrain")]
public interface IQuotaGrain : IGrainWithStringKey
{
    /// <summary>The effective limits.</summary>
    [AlwaysInterleave]
    [Alias("GetLimits")] Task<TenantLimits> GetLimits();

    /// <summary>Applies an operator's update (plan and/or fields); Invalid for an unknown plan or field.</summary>
    [Alias("SetLimits")] Task<TenantLimits> SetLimits(LimitsUpdate update);

    /// <summary>A user's own limits.</summary>
    [AlwaysInterleave]
    [Alias("GetUserLimits")] Task<UserLimits> GetUserLimits(string userId);

    /// <summary>Sets a user's limits; Invalid when a value exceeds the tenant's.</summary>
    [Alias("SetUserLimits")] Task<UserLimits> SetUserLimits(string userId, LimitsUpdate update);

    /// <summary>Current usage.</summary>
    [Alias("GetUsage")] Task<QuotaUsage> GetUsage();

    /// <summary>Reserves one collection; Forbidden at the limit.</summary>
    [Alias("ReserveCollection")] Task ReserveCollection();

    /// <summary>Gives back one collection together with what its documents held.</summary>
    [Alias("ReleaseCollection")] Task ReleaseCollection(string collection, long documents, long bytes, long vectors);

    /// <summary>Reserves a document upload (count, bytes, ingestion job); Forbidden/TooLarge when it does not fit.</summary>
    [Alias("ReserveDocument")] Task ReserveDocument(DocumentCharge charge);

    /// <summary>Undoes <see cref="ReserveDocument"/> after the write failed.</summary>
    [Alias("CancelDocument")] Task CancelDocument(DocumentCharge charge);

    /// <summary>Gives back a deleted document's count, bytes and vectors, and ends its job.</summary>
    [Alias("ReleaseDocument")] Task ReleaseDocument(string jobId, long bytes, long vectors);

    /// <summary>Reserves the vectors of a document about to be embedded with <paramref name="model"/>; Forbidden when they do not fit.</summary>
    [Alias("ReserveVectors")] Task ReserveVectors(long vectors, string model);

    /// <summary>Gives back vectors (a failed attempt, a replaced or deleted document).</summary>
    [Alias("ReleaseVectors")] Task ReleaseVectors(long vectors);

    /// <summary>Ends an ingestion job (indexed, failed or deleted); idempotent.</summary>
    [Alias("EndIngestion")] Task EndIngestion(string jobId);

    /// <summary>Checks a chat may start: tokens left today (429) and budget (403).</summary>
    [Alias("CheckChat")] Task CheckChat(string userId);

    /// <summary>Charges an answer's tokens (counted with the model tokenizer) to the day and the budget; returns the count.</summary>
    [Alias("ChargeChat")] Task<long> ChargeChat(string userId, string answer);

    /// <summary>
    /// Charges a generation's prompt and completion tokens (already counted) to the day and the budget and records
    /// them in the ledger under <paramref name="model"/>.
    /// </summary>
    [Alias("ChargeChatTokens")] Task ChargeChatTokens(string userId, string model, ChatUsage usage);

    /// <summary>Leases request tokens of the current minute to a frontend.</summary>
    [Alias("Lease")] Task<RateLease> Lease(RateLeaseRequest request);

    /// <summary>The usage ledger between two UTC days (inclusive), grouped.</summary>
    [AlwaysInterleave]
    [Alias("QueryLedger")] Task<IReadOnlyList<LedgerRow>> QueryLedger(DateOnly from, DateOnly to, LedgerGrouping groupBy);

    /// <summary>Forgets limits and usage (the tenant was deleted); the ledger is kept.</summary>
    [Alias("Clear")] Task Clear();

    /// <summary>The limits and current-period spending, for a backup.</summary>
    [Alias("ExportBackup")] Task<QuotaBackup> ExportBackup();

    /// <summary>Replaces limits and usage with a backup's and the restored holdings; Invalid for an unknown plan or field.</summary>
    [Alias("RestoreBackup")] Task RestoreBackup(QuotaBackup backup, QuotaHoldings holdings);
}

/// <summary>One line of a usage report: the group (a day, a model or a user), the kind of charge, its total and cost.</summary>
[GenerateSerializer, Immutable, Alias("rag.LedgerRow")]
public sealed record LedgerRow(
    [property: Id(0)] string Key,
    [property: Id(1)] string Kind,
    [property: Id(2)] long Quantity,
    [property: Id(3)] decimal Cost);

/// <summary>How a usage report groups the ledger.</summary>
public enum LedgerGrouping
{
    /// <summary>One row per UTC day and kind.</summary>
    Day = 0,
    /// <summary>One row per model and kind.</summary>
    Model = 1,
    /// <summary>One row per user and kind.</summary>
    User = 2,
}

/// <summary>The kinds of charge the usage ledger records.</summary>
public static class LedgerKinds
{
    /// <summary>Requests admitted by the frontends.</summary>
    public const string Requests = "requests";
    /// <summary>Answer tokens of chats.</summary>
    public const string ChatTokensOut = "chatTokensOut";
    /// <summary>Prompt tokens of chats (question, passages and history the generator read).</summary>
    public const string ChatTokensIn = "chatTokensIn";
    /// <summary>Chunks embedded at ingestion.</summary>
    public const string Embeddings = "embeddings";
    /// <summary>Bytes of uploaded content stored.</summary>
    public const string UploadedBytes = "uploadedBytes";
}
