using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using RagOrleans.Abstractions;
using RagOrleans.Frontend.Infrastructure;
using RagOrleans.Grains.Backup;

namespace RagOrleans.Frontend.Apis;

/// <summary>Backup and restore of one tenant: export streams an archive, import restores one into a cluster without the tenant.</summary>
public static class BackupApi
{
    public static IEndpointRouteBuilder MapBackupApi(this IEndpointRouteBuilder app)
    {
        // A tenant admin may take a backup of its own tenant (its data, key hashes only); restoring creates a tenant,
        // which only the operator does.
        app.MapPost("/v1/tenants/{id}/export", Export).WithTags("Backup")
            .WithSummary("Stream a backup archive (zip) of one tenant: settings, key hashes, limits, collections, documents, blobs, index snapshots, chunk log, conversations")
            .RequireRole(Roles.Operator, Roles.Admin).Audited("tenant.export");
        app.MapPost("/v1/tenants/import", Import).WithTags("Backup")
            .WithSummary("Restore a tenant from an export archive (the raw request body, e.g. Content-Type: application/zip); 409 if the tenant exists")
            .RequireRole(Roles.Operator).Audited("tenant.import");
        return app;
    }

    private static async Task<PushStreamHttpResult> Export(string id, HttpContext http, TenantExporter exporter, ILoggerFactory loggers)
    {
        var tenantId = Ids.RequireTenantId(id);
        var principal = AuthenticationMiddleware.Principal(http)!;
        if (principal.Role != Roles.Operator && principal.TenantId != tenantId)
        {
            // Another tenant's existence is not revealed to a tenant admin.
            throw RagException.NotFound($"Tenant '{tenantId}' not found.");
        }

        // Everything that can refuse (404, 409) happens before the first byte: after it, a failure can only cut the stream.
        var plan = await exporter.PrepareAsync(tenantId, http.RequestAborted);
        var logger = loggers.CreateLogger(typeof(BackupApi).FullName!);
        var fileName = $"{tenantId}-{DateTimeOffset.UtcNow:yyyyMMdd'T'HHmmss'Z'}.ragbackup.zip";
        return TypedResults.Stream(async body =>
        {
            try
            {
                await exporter.WriteAsync(plan, body, http.RequestAborted);
            }
            catch (Exception ex) when (!http.RequestAborted.IsCancellationRequested)
            {
                // The status line is gone: abort the connection so the client sees a broken transfer, never a short
                // archive that looks complete (an archive without its manifest and central directory is refused on import).
                logger.LogError(ex, "Export of tenant {TenantId} failed after it started streaming; the connection is aborted", tenantId);
                http.Abort();
            }
        }, "application/zip", fileName);
    }

    private static async Task<Created<ImportResponse>> Import(HttpContext http, TenantImporter importer, IOptions<BackupOptions> options)
    {
        var limit = options.Value.MaxImportBytes;
        UploadsApi.AllowBody(http, limit);
        if (http.Request.ContentLength > limit)
        {
            throw new RagException(RagErrorKind.TooLarge, $"The archive is {http.Request.ContentLength} bytes; the import limit is {limit} (Rag:Backup:MaxImportBytes).");
        }

        // Zip needs random access, and the whole archive is checked before anything is restored: spool it to disk
        // (never to memory), deleted on close whatever happens.
        var folder = options.Value.TempDir is { Length: > 0 } dir ? dir : Path.GetTempPath();
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, "rag-import-" + Guid.NewGuid().ToString("N") + ".zip");
        await using var spool = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16,
            FileOptions.Asynchronous | FileOptions.DeleteOnClose);
        var buffer = new byte[1 << 16];
        long total = 0;
        int read;
        while ((read = await http.Request.Body.ReadAsync(buffer, http.RequestAborted)) > 0)
        {
            total += read;
            if (total > limit)
            {
                throw new RagException(RagErrorKind.TooLarge, $"The archive is larger than the import limit of {limit} bytes (Rag:Backup:MaxImportBytes).");
            }

            await spool.WriteAsync(buffer.AsMemory(0, read), http.RequestAborted);
        }

        if (total == 0)
        {
            throw RagException.Invalid("The body is empty: send the archive an export produced (Content-Type: application/zip).");
        }

        await spool.FlushAsync(http.RequestAborted);
        spool.Position = 0;

        // The restore is not tied to the client's connection: once it starts writing, it finishes or cleans up.
        var result = await importer.ImportAsync(spool, CancellationToken.None);
        return TypedResults.Created($"/v1/tenants/{result.TenantId}", new ImportResponse(
            result.TenantId, result.Collections, result.Documents, result.Chunks, result.Keys, result.Conversations));
    }
}

/// <summary>What an import restored.</summary>
public sealed record ImportResponse(string TenantId, int Collections, long Documents, long Chunks, int Keys, int Conversations);
