using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using RagOrleans.Abstractions;
using RagOrleans.Frontend.Infrastructure;
using RagOrleans.Grains;
using RagOrleans.Grains.Embeddings;

namespace RagOrleans.Frontend.Apis;

/// <summary>Collections: admins create and delete, users read.</summary>
public static class CollectionsApi
{
    public static IEndpointRouteBuilder MapCollectionsApi(this IEndpointRouteBuilder app)
    {
        var read = app.MapGroup("/v1/collections").WithTags("Collections").RequireRole(Roles.Admin, Roles.User);
        read.MapGet("/", ListCollections).WithSummary("List collections");
        read.MapGet("/{name}", GetCollection).WithSummary("Get a collection with document and chunk counts");
        read.MapPost("/{name}/prewarm", Prewarm)
            .WithSummary("Load the collection's shards into memory before a session starts; returns what was warmed and how long it took");

        var write = app.MapGroup("/v1/collections").WithTags("Collections").RequireRole(Roles.Admin);
        write.MapPost("/", CreateCollection).WithSummary("Create a collection").Audited("collection.create");
        write.MapDelete("/{name}", DeleteCollection).WithSummary("Delete a collection and all its documents").Audited("collection.delete");
        return app;
    }

    internal static ICollectionGrain Collection(IGrainFactory grains, HttpContext http, string name)
    {
        var principal = AuthenticationMiddleware.Principal(http)!;
        Ids.RequireName(name, "collection name");
        return grains.Reference<ICollectionGrain>(Ids.Key(principal.Tenant, name));
    }

    private static async Task<Created<CollectionResponse>> CreateCollection(
        CreateCollectionRequest request, HttpContext http, IGrainFactory grains, IOptions<RagOptions> options)
    {
        var name = Ids.RequireName(request.Name, "collection name");
        var shards = request.Shards ?? options.Value.DefaultShardCount;
        var model = request.Model is null ? EmbeddingModelCatalog.Default : EmbeddingModelCatalog.Resolve(request.Model);
        var bm25 = new Bm25Settings(request.Bm25?.K1 ?? Bm25Settings.Default.K1, request.Bm25?.B ?? Bm25Settings.Default.B).Validate();
        var quantization = VectorQuantizations.Normalize(request.VectorQuantization);
        var settings = new CollectionSettings(model.Name, model.Dimensions, shards, 200, 32, bm25,
            quantization == VectorQuantizations.None ? null : quantization);
        var info = await Collection(grains, http, name).Create(settings);
        return TypedResults.Created($"/v1/collections/{name}", CollectionResponse.From(info));
    }

    private static async Task<Ok<IReadOnlyList<CollectionResponse>>> ListCollections(HttpContext http, IGrainFactory grains)
    {
        var principal = AuthenticationMiddleware.Principal(http)!;
        var names = await grains.Reference<ITenantGrain>(principal.Tenant).ListCollections();
        var infos = await Task.WhenAll(names.Select(n => grains.Reference<ICollectionGrain>(Ids.Key(principal.Tenant, n)).Get()));
        return TypedResults.Ok<IReadOnlyList<CollectionResponse>>(infos.Select(CollectionResponse.From).ToList());
    }

    private static async Task<Ok<CollectionResponse>> GetCollection(string name, HttpContext http, IGrainFactory grains) =>
        TypedResults.Ok(CollectionResponse.From(await Collection(grains, http, name).Get()));

    private static async Task<Ok<PrewarmResponse>> Prewarm(string name, HttpContext http, IGrainFactory grains) =>
        TypedResults.Ok(PrewarmResponse.From(await Collection(grains, http, name).Prewarm()));

    private static async Task<NoContent> DeleteCollection(string name, HttpContext http, IGrainFactory grains)
    {
        await Collection(grains, http, name).Delete();
        return TypedResults.NoContent();
    }
}
