using Microsoft.AspNetCore.Http.HttpResults;
using RagOrleans.Abstractions;
using RagOrleans.Frontend.Infrastructure;

namespace RagOrleans.Frontend.Apis;

/// <summary>Search over a collection (users and admins); chat is in <see cref="ChatApi"/>.</summary>
public static class SearchApi
{
    private const int MaxQueryChars = 4000;

    public static IEndpointRouteBuilder MapSearchApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1").WithTags("Search and chat").RequireRole(Roles.Admin, Roles.User);
        group.MapPost("/collections/{name}/search", Search).WithSummary("Top-k passages for a query, best first");
        return app;
    }

    private static async Task<Ok<SearchResponse>> Search(string name, SearchRequest request, HttpContext http, IGrainFactory grains)
    {
        var query = RequireText(request.Query, "query");
        var search = new SearchQuery(
            query, request.TopK ?? 10, request.Mode ?? SearchMode.Hybrid, request.Explain ?? false, FilterJson(request.Filter),
            ParseRerank(request.Rerank), request.Lambda ?? SearchQuery.DefaultLambda, request.RrfK ?? SearchQuery.DefaultRrfK,
            request.Weights?.Vector ?? 1f, request.Weights?.Keyword ?? 1f);
        search.ValidateRanking();
        if (request.Lambda is not null && search.Rerank != RerankMode.Mmr)
        {
            throw RagException.Invalid("lambda applies only with \"rerank\": \"mmr\".");
        }

        var collection = CollectionsApi.Collection(grains, http, name);
        var hits = await TransientRetry.ReadAsync(() => collection.Search(search), http.RequestAborted);
        return TypedResults.Ok(new SearchResponse(hits.Select(SearchResult.From).ToList()));
    }

    private static RerankMode ParseRerank(string? rerank) => rerank?.Trim().ToLowerInvariant() switch
    {
        null or "" or "none" => RerankMode.None,
        "mmr" => RerankMode.Mmr,
        _ => throw RagException.Invalid($"Unknown rerank '{rerank}'. Available: 'none' (the default), 'mmr'."),
    };

    private static string? FilterJson(System.Text.Json.JsonElement? filter)
    {
        if (filter is null || filter.Value.ValueKind == System.Text.Json.JsonValueKind.Null)
        {
            return null;
        }

        var json = filter.Value.GetRawText();
        RagOrleans.Grains.Retrieval.MetadataFilter.Parse(json);
        return json;
    }

    internal static string RequireText(string? text, string field)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            throw RagException.Invalid($"'{field}' is required and must not be empty.");
        }

        return text.Length <= MaxQueryChars ? text : throw RagException.Invalid($"'{field}' must be at most {MaxQueryChars} characters.");
    }
}
