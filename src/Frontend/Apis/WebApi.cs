using Microsoft.AspNetCore.StaticFiles;
using Microsoft.Extensions.FileProviders;
using Microsoft.Net.Http.Headers;

namespace RagOrleans.Frontend.Apis;

/// <summary>
/// The web page at <c>/</c>: plain static files from <c>wwwroot</c> beside the binary (no build step). They need no
/// API key; the page sends the key its user types with every API call it makes.
/// </summary>
public static class WebApi
{
    // The page may talk only to this origin and load nothing from anywhere else; no inline script or style.
    private const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    /// <summary>Serves the page's files before authentication, so they cost no key and no rate-limit token.</summary>
    public static WebApplication UseWebPage(this WebApplication app)
    {
        if (!app.Configuration.GetValue("Rag:WebPage", true))
        {
            return app;
        }

        var root = Path.Combine(app.Environment.ContentRootPath, "wwwroot");
        if (!Directory.Exists(root))
        {
            app.Logger.LogWarning("The web page is not served: {WebRoot} is missing", root);
            return app;
        }

        var files = new PhysicalFileProvider(root);
        app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = files, DefaultFileNames = ["index.html"] });
        var types = new FileExtensionContentTypeProvider();
        types.Mappings[".js"] = "text/javascript; charset=utf-8";
        types.Mappings[".css"] = "text/css; charset=utf-8";
        types.Mappings[".html"] = "text/html; charset=utf-8";
        app.UseStaticFiles(new StaticFileOptions
        {
            FileProvider = files,
            ContentTypeProvider = types,
            OnPrepareResponse = context =>
            {
                var headers = context.Context.Response.Headers;

                // File names carry no version: revalidate every time (cheap 304s through the ETag) so a deployment
                // never mixes an old module with a new one.
                headers.CacheControl = "no-cache";
                headers.XContentTypeOptions = "nosniff";
                headers[HeaderNames.ContentSecurityPolicy] = ContentSecurityPolicy;
                headers["Referrer-Policy"] = "no-referrer";
                headers.XFrameOptions = "DENY";
            },
        });
        return app;
    }
}
