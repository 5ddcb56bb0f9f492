using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Runtime.Hosting;
using Orleans.Storage;
using RagOrleans.Grains.Chat;
using RagOrleans.Grains.Embeddings;
using RagOrleans.Grains.Ingestion;
using RagOrleans.Grains.Storage;
using RagOrleans.Grains.Telemetry;

namespace RagOrleans.Grains.Hosting;

/// <summary>Registers everything a RagOrleans silo hosts: storage, the embedding model, pipeline services.</summary>
public static class RagSiloBuilderExtensions
{
    /// <summary>
    /// Adds the grains' services to a silo. Without <paramref name="storage"/>, the embedded stores keep all state
    /// under <see cref="RagOptions.DataDir"/>: one SQLite file for grain state, documents, the chunk log and
    /// conversations, plus files for snapshots and blobs. Cluster mode passes its own stores and grain storage.
    /// </summary>
    public static ISiloBuilder AddRag(this ISiloBuilder silo, Action<IServiceCollection>? storage = null)
    {
        var services = silo.Services;
        services.AddOptions<RagOptions>().BindConfiguration(RagOptions.Section);
        services.AddOptions<Quotas.QuotaOptions>().BindConfiguration(Quotas.QuotaOptions.Section);
        services.TryAddSingleton(TimeProvider.System);
        services.AddRagMetrics();
        services.TryAddKeyedSingleton<TimeProvider>(Quotas.QuotaOptions.ClockKey, static (sp, _) => sp.GetRequiredService<TimeProvider>());

        // Binary grain-state serializer from day one: switching later would orphan every stored row.
        services.AddSingleton<IGrainStorageSerializer, OrleansGrainStorageSerializer>();

        if (storage is not null)
        {
            storage(services);
        }
        else
        {
            AddEmbeddedStorage(services);
        }

        services.AddOptions<EmbeddingBatcherOptions>().BindConfiguration(EmbeddingBatcherOptions.Section);
        services.AddSingleton<EmbeddingModelRegistry>();
        services.AddSingleton<IEmbeddingModels>(sp => sp.GetRequiredService<EmbeddingModelRegistry>());
        services.AddSingleton(sp => new ChunkVectorCache(sp.GetRequiredService<IOptions<RagOptions>>().Value.ChunkEmbeddingCacheCapacity));
        silo.AddPlacementDirector<SiloTargetedPlacement, SiloTargetedPlacementDirector>();
        services.AddSingleton<IEmbeddingService>(sp => sp.GetRequiredService<EmbeddingModelRegistry>().Default);
        services.AddHostedService(sp => sp.GetRequiredService<EmbeddingModelRegistry>());
        services.AddOptions<Indexing.ShardMemoryOptions>().BindConfiguration(Indexing.ShardMemoryOptions.Section);
        services.AddSingleton<Indexing.ShardMemoryGovernor>();
        services.AddHostedService(sp => sp.GetRequiredService<Indexing.ShardMemoryGovernor>());
        services.AddSingleton<DocumentProcessor>();
        services.AddSingleton<IngestionThrottle>();
        services.AddSingleton(new ExtractiveAnswerer(new ExtractiveAnswerOptions()));
        services.AddSingleton<ILifecycleParticipant<ISiloLifecycle>, IngestionRecovery>();
        return silo;
    }

    private static void AddEmbeddedStorage(IServiceCollection services)
    {
        services.AddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<RagOptions>>().Value;
            return new SqliteDatabase(Path.Combine(options.ResolvedDataDir, "rag.db"), options.SqliteMmapBytes, sp.GetService<ILogger<SqliteDatabase>>());
        });
        services.AddSqliteStorageProbe();
        services.AddSingleton<IDocumentStore, SqliteDocumentStore>();
        services.AddSingleton<IChunkLog, SqliteChunkLog>();
        services.AddSingleton<IConversationStore, SqliteConversationStore>();
        services.AddSingleton<IUsageLedger, SqliteUsageLedger>();
        services.AddSingleton<IIdempotencyStore, SqliteIdempotencyStore>();
        services.AddSingleton<IAuditLog, SqliteAuditLog>();
        services.AddSingleton<ISnapshotStore>(sp => new FileSnapshotStore(Path.Combine(sp.GetRequiredService<IOptions<RagOptions>>().Value.ResolvedDataDir, "snapshots")));
        services.AddSingleton<IBlobStore>(sp => new FileBlobStore(Path.Combine(sp.GetRequiredService<IOptions<RagOptions>>().Value.ResolvedDataDir, "blobs")));
        services.AddGrainStorage(RagStorage.GrainStateProvider, static (sp, name) =>
            new SqliteGrainStorage(name, sp.GetRequiredService<SqliteDatabase>(), sp.GetRequiredService<IGrainStorageSerializer>()));
    }
}
