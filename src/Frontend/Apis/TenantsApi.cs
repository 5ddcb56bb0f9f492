using Microsoft.AspNetCore.Http.HttpResults;
using RagOrleans.Abstractions;
using RagOrleans.Frontend.Infrastructure;

namespace RagOrleans.Frontend.Apis;

/// <summary>Operator endpoints: tenants.</summary>
public static class TenantsApi
{
    public static IEndpointRouteBuilder MapTenantsApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/tenants").WithTags("Tenants").RequireRole(Roles.Operator);
        group.MapPost("/", CreateTenant).WithSummary("Create a tenant and its first admin key").Audited("tenant.create");
        group.MapGet("/", ListTenants).WithSummary("List tenants");
        group.MapGet("/{id}", GetTenant).WithSummary("Get a tenant");
        group.MapDelete("/{id}", DeleteTenant).WithSummary("Delete a tenant and everything it owns").Audited("tenant.delete");
        return app;
    }

    private static async Task<Created<TenantResponse>> CreateTenant(CreateTenantRequest request, IGrainFactory grains)
    {
        var id = Ids.RequireTenantId(request.Id);
        var name = string.IsNullOrWhiteSpace(request.Name) ? id : request.Name.Trim();
        if (name.Length > 200)
        {
            throw RagException.Invalid("name must be at most 200 characters.");
        }

        var created = await grains.Reference<ITenantGrain>(id).Create(name);
        var t = created.Tenant;
        return TypedResults.Created($"/v1/tenants/{id}", new TenantResponse(t.Id, t.Name, t.CreatedAt, created.AdminKey.Key, created.AdminKey.Info.Id));
    }

    private static async Task<Ok<IReadOnlyList<TenantResponse>>> ListTenants(IGrainFactory grains)
    {
        var ids = await grains.Reference<ITenantDirectoryGrain>(ITenantDirectoryGrain.Key).List();
        var tenants = await Task.WhenAll(ids.Select(id => grains.Reference<ITenantGrain>(id).Get()));
        return TypedResults.Ok<IReadOnlyList<TenantResponse>>(tenants.Select(TenantResponse.From).ToList());
    }

    private static async Task<Ok<TenantResponse>> GetTenant(string id, IGrainFactory grains)
    {
        Ids.RequireTenantId(id);
        return TypedResults.Ok(TenantResponse.From(await grains.Reference<ITenantGrain>(id).Get()));
    }

    private static async Task<NoContent> DeleteTenant(string id, IGrainFactory grains)
    {
        Ids.RequireTenantId(id);
        await grains.Reference<ITenantGrain>(id).Delete();
        return TypedResults.NoContent();
    }
}
