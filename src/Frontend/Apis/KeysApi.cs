using Microsoft.AspNetCore.Http.HttpResults;
using RagOrleans.Abstractions;
using RagOrleans.Frontend.Infrastructure;

namespace RagOrleans.Frontend.Apis;

/// <summary>Tenant-admin endpoints: API keys.</summary>
public static class KeysApi
{
    public static IEndpointRouteBuilder MapKeysApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/keys").WithTags("Keys").RequireRole(Roles.Admin);
        group.MapPost("/", CreateKey).WithSummary("Create an API key (the secret is shown once)").Audited("key.create");
        group.MapGet("/", ListKeys).WithSummary("List API keys (never the secrets)");
        group.MapDelete("/{id}", RevokeKey).WithSummary("Revoke an API key at once").Audited("key.revoke");
        return app;
    }

    private static async Task<Created<KeyResponse>> CreateKey(CreateKeyRequest request, HttpContext http, IGrainFactory grains)
    {
        var principal = AuthenticationMiddleware.Principal(http)!;
        var role = request.Role ?? Roles.User;
        if (!Roles.IsTenantRole(role))
        {
            throw RagException.Invalid($"Invalid role '{role}': use 'admin' or 'user'.");
        }

        var userId = request.UserId ?? (role == Roles.Admin ? "admin" : null);
        Ids.RequireName(userId, "userId");
        var created = await grains.Reference<ITenantGrain>(principal.Tenant).CreateKey(role, userId!);
        return TypedResults.Created($"/v1/keys/{created.Info.Id}", KeyResponse.From(created.Info, created.Key));
    }

    private static async Task<Ok<IReadOnlyList<KeyResponse>>> ListKeys(HttpContext http, IGrainFactory grains)
    {
        var principal = AuthenticationMiddleware.Principal(http)!;
        var keys = await grains.Reference<ITenantGrain>(principal.Tenant).ListKeys();
        return TypedResults.Ok<IReadOnlyList<KeyResponse>>(keys.Select(k => KeyResponse.From(k)).ToList());
    }

    private static async Task<NoContent> RevokeKey(string id, HttpContext http, IGrainFactory grains)
    {
        var principal = AuthenticationMiddleware.Principal(http)!;
        Ids.RequireName(id, "key id");
        await grains.Reference<ITenantGrain>(principal.Tenant).RevokeKey(id);
        return TypedResults.NoContent();
    }
}
