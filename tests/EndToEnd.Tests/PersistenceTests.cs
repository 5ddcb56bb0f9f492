using System.Net;
using Xunit;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>Restarts of the real process: graceful and hard kills.</summary>
public sealed class PersistenceTests
{
    [Fact]
    public async Task Everything_is_back_after_a_restart_and_acknowledged_chunks_survive_a_hard_kill()
    {
        var dataDir = TestPaths.NewTempDir("restart");
        string adminKey, userKey;
        string[] before;

        await using (var service = await ServiceProcess.StartAsync(dataDir))
        {
            (_, adminKey) = await service.CreateTenant("persist");
            using var admin = service.Client(adminKey);
            userKey = (await (await admin.PostJson("/v1/keys", new { role = "user", userId = "u1" })).ExpectJson(HttpStatusCode.Created)).Str("key");
            await (await admin.PostJson("/v1/collections", new { name = "notes" })).ExpectJson(HttpStatusCode.Created);
            for (var i = 0; i < 5; i++)
            {
                await admin.Ingest("notes", new { id = $"n{i}", text = Sentences[i] });
            }

            before = (await admin.Search("notes", "ocean tides and the moon", 5)).Select(r => r.Str("chunkId")).ToArray();
            await service.StopAsync();
        }

        await using (var service = await ServiceProcess.StartAsync(dataDir))
        {
            using var op = service.Client(service.OperatorKey);
            await (await op.GetAsync("/v1/tenants/persist")).ExpectJson(HttpStatusCode.OK);
            using var user = service.Client(userKey);
            var info = await (await user.GetAsync("/v1/collections/notes")).ExpectJson(HttpStatusCode.OK);
            Assert.Equal(5, info["documentCount"]!.GetValue<long>());
            var after = (await user.Search("notes", "ocean tides and the moon", 5)).Select(r => r.Str("chunkId")).ToArray();
            Assert.Equal(before, after);

            // Acknowledged writes, then a hard kill before any snapshot can be taken.
            using var admin = service.Client(adminKey);
            for (var i = 5; i < Sentences.Length; i++)
            {
                await admin.Ingest("notes", new { id = $"n{i}", text = Sentences[i] });
            }

            await service.KillAsync();
        }

        await using (var service = await ServiceProcess.StartAsync(dataDir))
        {
            using var user = service.Client(userKey);
            for (var i = 0; i < Sentences.Length; i++)
            {
                var hits = await user.Search("notes", Sentences[i], 1);
                Assert.Equal($"n{i}", hits[0].Str("documentId"));
            }

            var info = await (await user.GetAsync("/v1/collections/notes")).ExpectJson(HttpStatusCode.OK);
            Assert.Equal(Sentences.Length, info["documentCount"]!.GetValue<long>());
        }
    }

    [Fact]
    public async Task A_generated_operator_key_is_kept_in_the_data_folder_and_never_logged()
    {
        var dataDir = TestPaths.NewTempDir("opkey");
        string key;
        await using (var service = await ServiceProcess.StartAsync(dataDir, operatorKey: null))
        {
            var file = Path.Combine(dataDir, "operator.key");
            Assert.True(File.Exists(file));
            key = File.ReadAllText(file).Trim();
            using var op = service.Client(key);
            await (await op.GetAsync("/v1/tenants")).ExpectJson(HttpStatusCode.OK);
            Assert.Contains(file, service.Output, StringComparison.Ordinal);
            Assert.DoesNotContain(key, service.Output, StringComparison.Ordinal);
        }

        await using (var service = await ServiceProcess.StartAsync(dataDir, operatorKey: null))
        {
            using var op = service.Client(key);
            await (await op.GetAsync("/v1/tenants")).ExpectJson(HttpStatusCode.OK);
            Assert.DoesNotContain(key, service.Output, StringComparison.Ordinal);
        }
    }

    private static readonly string[] Sentences =
    [
        "The tides rise and fall twice a day because of the gravitational pull of the moon on the oceans.",
        "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar and oxygen.",
        "A compiler translates source code written in a high-level language into machine instructions.",
        "The French Revolution began in 1789 with the storming of the Bastille in Paris.",
        "Espresso is brewed by forcing hot water through finely ground coffee under high pressure.",
        "Glaciers carve U-shaped valleys as they slowly move downhill under their own weight.",
        "Vaccines train the immune system to recognise a pathogen without causing the disease.",
        "The violin has four strings tuned in perfect fifths and is played with a bow.",
    ];
}
