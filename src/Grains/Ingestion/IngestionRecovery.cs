using Microsoft.Extensions.Logging;
using RagOrleans.Abstractions;
using RagOrleans.Grains.Storage;

namespace RagOrleans.Grains.Ingestion;

/// <summary>
/// The fast path of resumption; the guarantee is each unfinished document's reminder (see <see cref="DocumentGrain"/>),
/// which fires on a surviving silo within <see cref="RagOptions.IngestionWatchdogPeriod"/> where the reminder table is
/// durable. This sweep matters where it is not (embedded mode keeps reminders in memory, so a restart loses them) and
/// shortens the wait after a silo dies from up to a watchdog period to seconds.
/// Resumes documents whose pipeline was lost: after this silo starts (everything queued or processing when the
/// process stopped), and whenever another silo of the cluster is declared dead (its document activations went
/// with it, and nobody else would call them again). Starting a document whose pipeline is alive is harmless:
/// the call reaches its one activation, which re-reads the record and finishes or carries on.
/// </summary>
public sealed class IngestionRecovery(
    IDocumentStore documents,
    IGrainFactory grains,
    IClusterMembershipService membership,
    ILocalSiloDetails localSilo,
    Microsoft.Extensions.Options.IOptions<RagOptions> options,
    ILogger<IngestionRecovery> logger) : ILifecycleParticipant<ISiloLifecycle>
{
    private readonly CancellationTokenSource _stopping = new();
    private Task _watch = Task.CompletedTask;

    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(IngestionRecovery), ServiceLifecycleStage.Active, OnActiveAsync, OnStopAsync);

    private Task OnActiveAsync(CancellationToken cancellationToken)
    {
        if (!options.Value.IngestionRecovery)
        {
            // Reminders alone then resume documents (tests prove they suffice).
            return Task.CompletedTask;
        }

        // In the background: each Start registers a reminder, and the silo's start must not wait on the reminder
        // service (or on thousands of documents) before it serves requests.
        _watch = Task.Run(async () =>
        {
            await ResumeUnfinishedAsync("this silo started", _stopping.Token);
            await WatchMembershipAsync(_stopping.Token);
        }, CancellationToken.None);
        return Task.CompletedTask;
    }

    private async Task OnStopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        await Task.WhenAny(_watch, Task.Delay(Timeout.Infinite, cancellationToken));
    }

    private async Task WatchMembershipAsync(CancellationToken cancellationToken)
    {
        var dead = membership.CurrentSnapshot.Members.Values.Where(m => m.Status == SiloStatus.Dead).Select(m => m.SiloAddress).ToHashSet();
        try
        {
            await foreach (var snapshot in membership.MembershipUpdates.WithCancellation(cancellationToken))
            {
                var newlyDead = snapshot.Members.Values.Where(m => m.Status == SiloStatus.Dead && dead.Add(m.SiloAddress)).ToList();
                if (newlyDead.Count == 0)
                {
                    continue;
                }

                // One survivor does the work: the active silo with the lowest address.
                var leader = snapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).Select(m => m.SiloAddress).Order().FirstOrDefault();
                if (leader is not null && leader.Equals(localSilo.SiloAddress))
                {
                    await ResumeUnfinishedAsync($"silo {string.Join(", ", newlyDead.Select(m => m.Name))} died", cancellationToken);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            logger.LogError(ex, "Stopped watching the cluster membership; documents of dead silos resume on the next restart or upload");
        }
    }

    private async Task ResumeUnfinishedAsync(string why, CancellationToken cancellationToken)
    {
        try
        {
            var unfinished = await documents.ListUnfinishedAsync(100_000, cancellationToken);
            foreach (var (tenant, collection, id) in unfinished)
            {
                await grains.Reference<IDocumentGrain>(Ids.Key(tenant, collection, id)).Start();
            }

            if (unfinished.Count > 0)
            {
                logger.LogInformation("Resumed ingestion of {Count} unfinished documents ({Why})", unfinished.Count, why);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The silo must keep running; the documents stay queued and resume on the next start or upload.
            logger.LogError(ex, "Could not resume unfinished documents ({Why})", why);
        }
    }
}
