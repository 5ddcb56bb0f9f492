using Microsoft.Extensions.Logging;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Storage;

namespace RagOrleans.Grains.Ingestion;

/// <summary>
/// After a restart, restarts every document that was queued or processing when the process stopped,
/// so no document stays "processing" forever. Starting a document twice is harmless (one activation).
/// </summary>
public sealed class IngestionRecovery(IDocumentStore documents, IGrainFactory grains, ILogger<IngestionRecovery> logger)
    : ILifecycleParticipant<ISiloLifecycle>
{
    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(IngestionRecovery), ServiceLifecycleStage.Active, OnActiveAsync);

    private async Task OnActiveAsync(CancellationToken cancellationToken)
    {
        try
        {
            var unfinished = await documents.ListUnfinishedAsync(100_000, cancellationToken);
            foreach (var (tenant, collection, id) in unfinished)
            {
                await grains.GetGrain<IDocumentGrain>(Ids.Key(tenant, collection, id)).Start();
            }

            if (unfinished.Count > 0)
            {
                logger.LogInformation("Resumed ingestion of {Count} unfinished documents", unfinished.Count);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The silo must still start; the documents stay queued and resume on the next start or upload.
            logger.LogError(ex, "Could not resume unfinished documents");
        }
    }
}
