using System.Net;
using Xunit;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>The brute-force guard of the real process: failed authentications from one client are cut off with 429.</summary>
public sealed class AuthGuardTests
{
    [Fact]
    public async Task Repeated_failed_authentications_are_refused_with_429_and_Retry_After()
    {
        await using var service = await ServiceProcess.StartAsync(TestPaths.NewTempDir("guard"), env: new Dictionary<string, string>
        {
            ["Rag__AuthGuard__MaxFailuresPerClient"] = "5",
            ["Rag__AuthGuard__MaxFailuresPerKeyId"] = "3",
            ["Rag__AuthGuard__Window"] = "00:10:00",
        });

        // Per key id first: three wrong secrets for one key id, from the one client, block that key id only.
        var (_, adminKey) = await service.CreateTenant("guarded");
        var keyId = adminKey.Split('.')[2];
        using (var guessing = service.Client($"rk.guarded.{keyId}.{new string('x', 43)}"))
        {
            for (var i = 0; i < 3; i++)
            {
                await (await guessing.GetAsync("/v1/collections")).ExpectProblem(HttpStatusCode.Unauthorized);
            }

            var blocked = await guessing.GetAsync("/v1/collections");
            await blocked.ExpectProblem(HttpStatusCode.TooManyRequests);
            Assert.InRange(int.Parse(blocked.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture), 1, 600);
        }

        // The per-client count is at 3 (the 429 was not a failure): two more failures reach the limit of 5.
        using (var wrong = service.Client("not-a-key"))
        {
            for (var i = 0; i < 2; i++)
            {
                await (await wrong.GetAsync("/v1/collections")).ExpectProblem(HttpStatusCode.Unauthorized);
            }

            await (await wrong.GetAsync("/v1/collections")).ExpectProblem(HttpStatusCode.TooManyRequests);
        }

        // While the client is blocked, every attempt with a key is refused before any check, the right key included;
        // requests without a key (probes) are not attempts and still pass.
        using (var admin = service.Client(adminKey))
        {
            var refused = await admin.GetAsync("/v1/collections");
            var problem = await refused.ExpectProblem(HttpStatusCode.TooManyRequests);
            Assert.Contains("failed authentications", problem["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        }

        using var anonymous = service.Client(null);
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/healthz")).StatusCode);
        Assert.Contains("auth_failures", await anonymous.GetStringAsync("/metrics"), StringComparison.Ordinal);
    }
}
