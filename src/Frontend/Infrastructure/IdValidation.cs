using RagOrleans.Abstractions;

namespace RagOrleans.Frontend.Infrastructure;

/// <summary>
/// Checks every id that arrives in an API route (tenant, collection, document, key, conversation, upload and user
/// ids) against <see cref="Ids"/> before any handler runs, so an endpoint added later cannot forget to: traversal
/// (<c>..</c>, <c>/</c>, <c>%2F</c>), control characters, undecodable UTF-8 and over-long ids are a 400 problem.
/// Handlers still apply the narrower rule of their kind (a tenant id is lower case), and ids in bodies and query
/// strings go through the same <see cref="Ids"/> checks where they are read.
/// </summary>
public sealed class IdValidationMiddleware(RequestDelegate next)
{
    // Route parameters that are not ids; their own constraint or handler checks them.
    private static readonly HashSet<string> NotIds = new(StringComparer.OrdinalIgnoreCase) { "partNumber" };

    public async Task InvokeAsync(HttpContext context)
    {
        if (context.Request.Path.StartsWithSegments("/v1"))
        {
            foreach (var (name, value) in context.Request.RouteValues)
            {
                if (value is string text && !NotIds.Contains(name) && !Ids.IsValidName(text))
                {
                    await Problems.Write(context, StatusCodes.Status400BadRequest, "Bad Request",
                        $"Invalid {Describe(name)} in the path: use 1-{Ids.MaxNameLength} characters A-Z, a-z, 0-9, '-', '_' and '.', not starting with '.'.");
                    return;
                }
            }
        }

        await next(context);
    }

    private static string Describe(string parameter) => parameter switch
    {
        "name" => "collection name",
        "id" => "id",
        "uploadId" => "upload id",
        "userId" => "user id",
        _ => $"'{parameter}'",
    };
}
