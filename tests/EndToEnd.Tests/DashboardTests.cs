using System.Net;
using Xunit;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>The Orleans dashboard is served by the frontend, to operators only.</summary>
[Collection(ServiceCollection.Name)]
public sealed class DashboardTests(ServiceFixture fixture)
{
    private ServiceProcess Service => fixture.Service;

    [Fact]
    public async Task The_dashboard_answers_the_operator_and_refuses_everyone_else()
    {
        var (_, adminKey) = await Service.CreateTenant("dashboard");
        using var anonymous = Service.Client(null);
        using var admin = Service.Client(adminKey);
        using var op = Service.Client(Service.OperatorKey);

        foreach (var path in new[] { "/dashboard", "/dashboard/index.html" })
        {
            await (await anonymous.GetAsync(path)).ExpectProblem(HttpStatusCode.Unauthorized);
            await (await admin.GetAsync(path)).ExpectProblem(HttpStatusCode.Forbidden);
        }

        // "/dashboard" redirects to "/dashboard/" (HttpClient drops the key on redirects, as browsers do).
        using var page = await op.GetAsync("/dashboard/");
        Assert.True(page.StatusCode == HttpStatusCode.OK, $"{(int)page.StatusCode}: {await page.Content.ReadAsStringAsync()}");
        Assert.Contains("html", page.Content.Headers.ContentType?.MediaType ?? "", StringComparison.Ordinal);
    }
}
