using RagOrleans.Abstractions;
using RagOrleans.Grains.Storage;
using RagOrleans.Grains.Storage.Postgres;
using Xunit;

namespace RagOrleans.Integration.Tests;

[Collection(PostgresCollection.Name)]
public sealed class UsageLedgerTests(PostgresFixture pg)
{
    [Fact]
    public async Task Ledger_adds_charges_to_one_row_per_tenant_day_model_kind_and_user_and_groups_them()
    {
        var ledger = new PostgresUsageLedger(pg.DataSource);
        var tenant = "ledger-" + Guid.NewGuid().ToString("N")[..8];
        var d1 = new DateOnly(2026, 3, 1);
        var d2 = new DateOnly(2026, 3, 2);
        await ledger.AddAsync(
        [
            new LedgerEntry(tenant, d1, "extractive", LedgerKinds.ChatTokensOut, "alice", 10, 10m),
            new LedgerEntry(tenant, d1, "extractive", LedgerKinds.ChatTokensOut, "alice", 5, 5m),
            new LedgerEntry(tenant, d1, "all-minilm-l6-v2", LedgerKinds.Embeddings, "", 4, 0.5m),
            new LedgerEntry(tenant, d2, "extractive", LedgerKinds.ChatTokensOut, "bob", 7, 7m),
            new LedgerEntry("someone-else", d1, "extractive", LedgerKinds.ChatTokensOut, "alice", 100, 100m),
        ]);

        var byDay = await ledger.QueryAsync(tenant, d1, d2, LedgerGrouping.Day);
        Assert.Equal(
            [new LedgerRow("2026-03-01", LedgerKinds.ChatTokensOut, 15, 15m), new LedgerRow("2026-03-01", LedgerKinds.Embeddings, 4, 0.5m), new LedgerRow("2026-03-02", LedgerKinds.ChatTokensOut, 7, 7m)],
            byDay);
        var byModel = await ledger.QueryAsync(tenant, d1, d2, LedgerGrouping.Model);
        Assert.Equal(22, byModel.Single(r => r.Key == "extractive").Quantity);
        var byUser = await ledger.QueryAsync(tenant, d2, d2, LedgerGrouping.User);
        Assert.Equal([new LedgerRow("bob", LedgerKinds.ChatTokensOut, 7, 7m)], byUser);
    }
}
