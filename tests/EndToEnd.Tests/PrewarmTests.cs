using System.Net;
using System.Text.Json.Nodes;
using Xunit;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>POST /v1/collections/{name}/prewarm: loads a collection's shards before a session, across a restart.</summary>
public sealed class PrewarmTests
{
    private static readonly string[] Notes =
    [
        "The tides rise and fall twice a day because of the pull of the moon on the oceans.",
        "Sourdough bread needs a starter of flour and water that ferments for several days.",
        "Grain activations that stay idle longer than the collection age are deactivated by the runtime.",
    ];

    [Fact]
    public async Task Prewarm_loads_every_shard_from_its_snapshot_after_a_restart_and_reports_it()
    {
        var dataDir = TestPaths.NewTempDir("prewarm");
        string adminKey, userKey;

        await using (var service = await ServiceProcess.StartAsync(dataDir))
        {
            (_, adminKey) = await service.CreateTenant("warm");
            using var admin = service.Client(adminKey);
            userKey = (await (await admin.PostJson("/v1/keys", new { role = "user", userId = "u1" })).ExpectJson(HttpStatusCode.Created)).Str("key");
            await (await admin.PostJson("/v1/collections", new { name = "kb", shards = 2 })).ExpectJson(HttpStatusCode.Created);
            for (var i = 0; i < Notes.Length; i++)
            {
                await admin.Ingest("kb", new { id = $"n{i}", text = Notes[i] });
            }

            // A search fans out to both shards, so both are in memory: prewarm finds them warm.
            await admin.Search("kb", "moon and tides");
            var warm = await Prewarm(admin, "kb");
            Assert.Equal("kb", warm.Str("collection"));
            Assert.Equal(0, warm["shardsWarmed"]!.GetValue<int>());
            Assert.Equal(2, warm["shardsAlreadyActive"]!.GetValue<int>());
            Assert.Equal(Notes.Length, warm["chunks"]!.GetValue<long>());

            // Graceful stop: shards write their snapshots on deactivation.
            await service.StopAsync();
        }

        await using (var service = await ServiceProcess.StartAsync(dataDir))
        {
            // A user key of the tenant may prewarm; this is the first touch of the shards since the restart.
            using var user = service.Client(userKey);
            var cold = await Prewarm(user, "kb");
            Assert.Equal(2, cold["shardsWarmed"]!.GetValue<int>());
            Assert.Equal(0, cold["shardsAlreadyActive"]!.GetValue<int>());
            Assert.Equal(Notes.Length, cold["chunks"]!.GetValue<long>());
            Assert.True(cold["elapsedMs"]!.GetValue<double>() > 0);
            var shards = cold["shards"]!.AsArray();
            Assert.Equal([0, 1], shards.Select(s => s!["shard"]!.GetValue<int>()).Order());
            Assert.All(shards, s =>
            {
                Assert.False(s!["wasActive"]!.GetValue<bool>());
                Assert.True(s["loadMs"]!.GetValue<double>() > 0);
                Assert.Equal(0, s["replayedLogEntries"]!.GetValue<long>()); // loaded from the snapshot, nothing replayed
            });
            Assert.True(shards.Sum(s => s!["indexBytes"]!.GetValue<long>()) > 0);

            // Again: nothing left to load.
            var again = await Prewarm(user, "kb");
            Assert.Equal(2, again["shardsAlreadyActive"]!.GetValue<int>());
            Assert.Equal("n2", Assert.Single(await user.Search("kb", Notes[2], 1)).Str("documentId"));

            // Unknown collection, no key, and another tenant's view are refused with problem details.
            await (await user.PostAsync("/v1/collections/nope/prewarm", null)).ExpectProblem(HttpStatusCode.NotFound);
            using var anonymous = service.Client(null);
            await (await anonymous.PostAsync("/v1/collections/kb/prewarm", null)).ExpectProblem(HttpStatusCode.Unauthorized);
            var (_, otherKey) = await service.CreateTenant("other");
            using var other = service.Client(otherKey);
            await (await other.PostAsync("/v1/collections/kb/prewarm", null)).ExpectProblem(HttpStatusCode.NotFound);
        }
    }

    private static async Task<JsonNode> Prewarm(HttpClient client, string collection) =>
        await (await client.PostAsync($"/v1/collections/{collection}/prewarm", null)).ExpectJson(HttpStatusCode.OK);
}
