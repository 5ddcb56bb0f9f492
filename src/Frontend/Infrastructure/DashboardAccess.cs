using RagOrleans.Abstractions;

namespace RagOrleans.Frontend.Infrastructure;

/// <summary>Guards the Orleans dashboard (its pages and its data API alike) with the operator key.</summary>
public static class DashboardAccess
{
    /// <summary>401 without a key, 403 with a tenant key, else the dashboard.</summary>
    public static async Task RequireOperatorAsync(HttpContext context, RequestDelegate next)
    {
        var principal = AuthenticationMiddleware.Principal(context);
        if (principal is null)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
            await Problems.Write(context, StatusCodes.Status401Unauthorized, "Unauthorized", "The dashboard needs 'Authorization: Bearer <operator key>'.");
            return;
        }

        if (principal.Role != Roles.Operator)
        {
            await Problems.Write(context, StatusCodes.Status403Forbidden, "Forbidden", $"The dashboard needs the operator role; the key has '{principal.Role}'.");
            return;
        }

        await next(context);
    }
}
