using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Configuration;
using Orleans.TestingHost;
using RagOrleans.Abstractions;
using RagOrleans.Grains;
using RagOrleans.Grains.Embeddings;
using RagOrleans.Grains.Hosting;
using RagOrleans.Grains.Ingestion;
using Xunit;

namespace RagOrleans.Cluster.Tests;

/// <summary>
/// Sees every document text that reaches a model on any silo, and can make the model fail or stall for texts
/// containing a marker. One instance is shared by all silos of the test cluster.
/// </summary>
public sealed class EmbeddingProbe
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, int> _failures = [];
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _holds = new();

    /// <summary>Every document text embedded, with the silo whose model embedded it.</summary>
    public ConcurrentQueue<(string Silo, string Text)> Embedded { get; } = new();

    /// <summary>Silos that started a held call, by marker.</summary>
    public ConcurrentDictionary<string, string> HeldOn { get; } = new();

    /// <summary>The model fails the next <paramref name="times"/> calls whose texts contain <paramref name="marker"/>.</summary>
    public void Fail(string marker, int times)
    {
        lock (_lock)
        {
            _failures[marker] = times;
        }
    }

    /// <summary>Calls with <paramref name="marker"/> wait until <see cref="Release"/>.</summary>
    public void Hold(string marker) => _holds[marker] = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Lets held calls carry on.</summary>
    public void Release(string marker)
    {
        if (_holds.TryRemove(marker, out var hold))
        {
            hold.TrySetResult();
        }
    }

    /// <summary>Texts with <paramref name="marker"/> the models embedded so far.</summary>
    public int Count(string marker) => Embedded.Count(e => e.Text.Contains(marker, StringComparison.Ordinal));

    /// <summary>Silos whose models embedded texts with <paramref name="marker"/>.</summary>
    public IReadOnlySet<string> SilosOf(string marker) =>
        Embedded.Where(e => e.Text.Contains(marker, StringComparison.Ordinal)).Select(e => e.Silo).ToHashSet();

    internal async Task BeforeModelAsync(string silo, IReadOnlyList<string> texts)
    {
        foreach (var (marker, hold) in _holds)
        {
            if (texts.Any(t => t.Contains(marker, StringComparison.Ordinal)))
            {
                HeldOn.TryAdd(marker, silo);
                await hold.Task;
            }
        }

        lock (_lock)
        {
            foreach (var marker in _failures.Keys.ToList())
            {
                if (_failures[marker] > 0 && texts.Any(t => t.Contains(marker, StringComparison.Ordinal)))
                {
                    _failures[marker]--;
                    throw new RagException(RagErrorKind.Unavailable, $"The embedder is unavailable (injected fault for {marker}).");
                }
            }
        }
    }
}

/// <summary>The silo's real models behind the probe.</summary>
public sealed class ProbedModels(EmbeddingModelRegistry models, EmbeddingProbe probe, string silo) : IEmbeddingModels
{
    public bool IsReady => models.IsReady;

    public IEmbeddingService Get(string model) => new Probed(models.Get(model), probe, silo);

    private sealed class Probed(IEmbeddingService inner, EmbeddingProbe probe, string silo) : IEmbeddingService
    {
        public string ModelName => inner.ModelName;

        public int Dimensions => inner.Dimensions;

        public int MaxTokens => inner.MaxTokens;

        public bool IsReady => inner.IsReady;

        public ITokenCounter Tokenizer => inner.Tokenizer;

        public async Task<float[][]> EmbedAsync(IReadOnlyList<string> texts, EmbeddingKind kind, CancellationToken cancellationToken = default)
        {
            if (kind == EmbeddingKind.Document)
            {
                await probe.BeforeModelAsync(silo, texts);
                foreach (var text in texts)
                {
                    probe.Embedded.Enqueue((silo, text));
                }
            }

            return await inner.EmbedAsync(texts, kind, cancellationToken);
        }
    }
}

/// <summary>
/// A reminder table all silos of the test share, kept outside any silo: like the PostgreSQL table of cluster mode, it
/// outlives a killed silo (Orleans' in-memory table is a grain, which would die with its host).
/// </summary>
public sealed class SharedReminderTable : IReminderTable
{
    private readonly Lock _lock = new();
    private readonly Dictionary<(GrainId, string), ReminderEntry> _rows = [];
    private long _etag;

    /// <summary>Rows whose grain id contains <paramref name="text"/>.</summary>
    public int Count(string text)
    {
        lock (_lock)
        {
            return _rows.Keys.Count(k => k.Item1.ToString().Contains(text, StringComparison.Ordinal));
        }
    }

    public Task Init() => Task.CompletedTask;

    public Task<ReminderTableData> ReadRows(GrainId grainId)
    {
        lock (_lock)
        {
            return Task.FromResult(new ReminderTableData(_rows.Values.Where(r => r.GrainId == grainId).Select(Copy).ToList()));
        }
    }

    public Task<ReminderTableData> ReadRows(uint begin, uint end)
    {
        lock (_lock)
        {
            // The ring range (begin, end], wrapping when begin >= end.
            var rows = _rows.Values.Where(r =>
            {
                var hash = r.GrainId.GetUniformHashCode();
                return begin < end ? hash > begin && hash <= end : hash > begin || hash <= end;
            });
            return Task.FromResult(new ReminderTableData(rows.Select(Copy).ToList()));
        }
    }

    public Task<ReminderEntry?> ReadRow(GrainId grainId, string reminderName)
    {
        lock (_lock)
        {
            return Task.FromResult<ReminderEntry?>(_rows.TryGetValue((grainId, reminderName), out var row) ? Copy(row) : null);
        }
    }

    public Task<string?> UpsertRow(ReminderEntry entry)
    {
        lock (_lock)
        {
            var row = Copy(entry);
            row.ETag = (++_etag).ToString(System.Globalization.CultureInfo.InvariantCulture);
            _rows[(entry.GrainId, entry.ReminderName)] = row;
            return Task.FromResult<string?>(row.ETag);
        }
    }

    public Task<bool> RemoveRow(GrainId grainId, string reminderName, string eTag)
    {
        lock (_lock)
        {
            if (_rows.TryGetValue((grainId, reminderName), out var row) && row.ETag == eTag)
            {
                _rows.Remove((grainId, reminderName));
                return Task.FromResult(true);
            }

            return Task.FromResult(false);
        }
    }

    public Task TestOnlyClearTable()
    {
        lock (_lock)
        {
            _rows.Clear();
        }

        return Task.CompletedTask;
    }

    private static ReminderEntry Copy(ReminderEntry r) =>
        new() { GrainId = r.GrainId, ReminderName = r.ReminderName, StartAt = r.StartAt, Period = r.Period, ETag = r.ETag };
}

/// <summary>Three silos with the real model behind a probe, a shared reminder table, fast retries and no recovery sweep.</summary>
public sealed class IngestionClusterFixture : IAsyncLifetime
{
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "ragorleans-tests", "ingest-" + Guid.NewGuid().ToString("N")[..8]);

    public EmbeddingProbe Probe { get; } = new();

    public SharedReminderTable Reminders { get; } = new();

    public InProcessTestCluster Cluster { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(initialSilosCount: 3);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddRag();
            silo.AddReminders();
            silo.Services.AddSingleton<IReminderTable>(Reminders);
            silo.Services.Configure<ReminderOptions>(o => o.MinimumReminderPeriod = TimeSpan.FromSeconds(1));
            silo.Services.AddSingleton<IEmbeddingModels>(sp => new ProbedModels(
                sp.GetRequiredService<EmbeddingModelRegistry>(), Probe, sp.GetRequiredService<ILocalSiloDetails>().SiloAddress.ToString()));
            silo.Services.PostConfigure<RagOptions>(o =>
            {
                o.DataDir = _dataDir;
                o.SnapshotInterval = TimeSpan.FromHours(1);
                o.IngestionMaxAttempts = 3;
                o.IngestionRetryDelay = TimeSpan.FromMilliseconds(200);
                o.IngestionWatchdogPeriod = TimeSpan.FromSeconds(2);
                o.MaxConcurrentIngestions = 8;

                // Only reminders resume documents here; and no silo cache, so reuse can only come from the index.
                o.IngestionRecovery = false;
                o.ChunkEmbeddingCacheCapacity = 0;
            });
        });
        Cluster = builder.Build();
        await Cluster.DeployAsync();
    }

    public async Task DisposeAsync() => await Cluster.DisposeAsync();
}

public sealed class IngestionClusterTests(IngestionClusterFixture fixture) : IClassFixture<IngestionClusterFixture>
{
    private static readonly string[] Vocabulary =
    [
        "river", "mountain", "engine", "garden", "window", "science", "market", "village", "winter", "summer", "doctor",
        "music", "silver", "forest", "letter", "bridge", "castle", "island", "harbor", "planet", "signal", "pencil",
        "coffee", "battery", "kitchen", "lantern", "meadow", "orchard", "rocket", "saddle", "temple", "violin", "wallet",
        "yellow", "zebra", "anchor", "basket", "candle", "desert", "feather", "glacier", "hammer", "jacket", "ladder",
        "mirror", "needle", "ocean", "pillow", "quartz", "ribbon", "shadow", "tunnel", "valley", "whistle", "butter",
        "cotton", "dragon", "falcon", "ginger", "helmet", "insect", "jungle", "kettle", "lemon", "magnet", "napkin",
    ];

    private IGrainFactory Grains => fixture.Cluster.Client;

    private EmbeddingProbe Probe => fixture.Probe;

    [Fact]
    public async Task A_transiently_failing_embedder_is_retried_by_the_reminder_until_the_document_is_indexed()
    {
        var collection = await CollectionAsync("flaky", "docs", 200);
        Probe.Fail("flakymarker", 2);
        await collection.AddDocument(Upload("doc", "The flakymarker document: " + Words(1, 60)));

        var doc = await PollAsync(collection, "doc", TimeSpan.FromSeconds(60));
        Assert.Equal(DocumentStatus.Indexed, doc.Status);
        Assert.Equal(3, doc.Attempts);
        Assert.Null(doc.Error);
        Assert.Equal(0, fixture.Reminders.Count("flaky"));
    }

    [Fact]
    public async Task A_document_that_always_fails_is_dead_lettered_after_max_attempts_and_the_retry_endpoint_revives_it()
    {
        var collection = await CollectionAsync("dead", "docs", 200);
        Probe.Fail("deadmarker", int.MaxValue);
        await collection.AddDocument(Upload("doc", "The deadmarker document: " + Words(2, 60)));

        var doc = await PollAsync(collection, "doc", TimeSpan.FromSeconds(60));
        Assert.Equal(DocumentStatus.Failed, doc.Status);
        Assert.Equal(3, doc.Attempts);
        Assert.Contains("after 3 attempts", doc.Error, StringComparison.Ordinal);
        Assert.Contains("injected fault for deadmarker", doc.Error, StringComparison.Ordinal);
        var deadLetters = await collection.ListDocuments(null, 100, DocumentStatus.Failed);
        Assert.Equal(["doc"], deadLetters.Documents.Select(d => d.Id));
        Assert.Equal(0, fixture.Reminders.Count("dead"));

        // A parse failure is permanent: failed at the first attempt, no retry.
        await collection.AddDocument(Upload("blank", " \n\t \n "));
        var blank = await PollAsync(collection, "blank", TimeSpan.FromSeconds(30));
        Assert.Equal((DocumentStatus.Failed, 1), (blank.Status, blank.Attempts));

        Probe.Fail("deadmarker", 0);
        var retried = await collection.RetryDocument("doc");
        Assert.Equal(DocumentStatus.Queued, retried.Status);
        doc = await PollAsync(collection, "doc", TimeSpan.FromSeconds(60));
        Assert.Equal(DocumentStatus.Indexed, doc.Status);
        Assert.Equal(1, doc.Attempts);
        Assert.DoesNotContain("doc", (await collection.ListDocuments(null, 100, DocumentStatus.Failed)).Documents.Select(d => d.Id));
        Assert.Equal(0, fixture.Reminders.Count("dead"));
    }

    [Fact]
    public async Task A_document_whose_silo_dies_mid_embedding_is_resumed_elsewhere_by_its_reminder()
    {
        var primary = fixture.Cluster.Silos[0].SiloAddress.ToString();
        await Grains.GetGrain<ITenantGrain>("crash").Create("crash");
        ICollectionGrain? collection = null;
        string? victimCollection = null;
        string? victimDoc = null;
        string? victimSilo = null;
        for (var i = 0; i < 24 && victimDoc is null; i++)
        {
            // A collection per try: new document grains tend to be placed beside their collection grain, so a fresh
            // collection is a fresh draw of silo. One batch per document, so its only model call runs on the document
            // grain's own silo.
            var tryCollection = Grains.GetGrain<ICollectionGrain>(Ids.Key("crash", $"docs{i}"));
            await tryCollection.Create(new CollectionSettings("all-minilm-l6-v2", 384, 1, 200, 0));
            var marker = $"crashmarker{i}x";
            Probe.Hold(marker);
            await tryCollection.AddDocument(Upload($"doc{i}x", $"The {marker} document: " + Words(10 + i, 40)));
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (!Probe.HeldOn.ContainsKey(marker) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(100);
            }

            Assert.True(Probe.HeldOn.TryGetValue(marker, out var silo), $"doc{i}x never reached a model");
            if (silo != primary)
            {
                (collection, victimCollection, victimDoc, victimSilo) = (tryCollection, $"docs{i}", $"doc{i}x", silo);
            }
            else
            {
                // Not a candidate (the primary silo stays up): let it finish so it holds no ingestion slot.
                Probe.Release(marker);
            }
        }

        Assert.NotNull(victimDoc);
        Assert.NotNull(collection);
        Assert.Equal(1, fixture.Reminders.Count($"crash/{victimCollection}/" + victimDoc));
        var victim = fixture.Cluster.Silos.Single(s => s.SiloAddress.ToString() == victimSilo);
        await fixture.Cluster.KillSiloAsync(victim);
        foreach (var marker in Probe.HeldOn.Keys.Where(k => k.StartsWith("crashmarker", StringComparison.Ordinal)).ToList())
        {
            Probe.Release(marker);
        }

        // No recovery sweep, no waiting caller: only the reminder can bring the document back.
        var doc = await PollAsync(collection, victimDoc, TimeSpan.FromSeconds(90));
        Assert.Equal(DocumentStatus.Indexed, doc.Status);
        Assert.Equal(2, doc.Attempts);
        Assert.Equal(0, fixture.Reminders.Count($"crash/{victimCollection}/" + victimDoc));
        var hits = await collection.Search(new SearchQuery("crashmarker document", 20, SearchMode.Keyword));
        Assert.Contains(hits, h => h.DocumentId == victimDoc);
    }

    [Fact]
    public async Task A_large_document_is_embedded_on_every_silo_with_each_vector_on_its_own_chunk()
    {
        var collection = await CollectionAsync("spread", "docs", 40);
        var text = string.Join("\n\n", Enumerable.Range(0, 130).Select(p => $"Paragraph spreadmarker {p}: " + Words(100 + p, 45)));
        await collection.AddDocument(Upload("big", text));

        var doc = await PollAsync(collection, "big", TimeSpan.FromSeconds(120));
        Assert.Equal(DocumentStatus.Indexed, doc.Status);
        Assert.True(doc.ChunkCount > 3 * 32, $"expected more than three batches, got {doc.ChunkCount} chunks");
        var silos = Probe.SilosOf("spreadmarker");
        Assert.True(silos.Count >= 2, $"batches ran on {silos.Count} silo(s): {string.Join(", ", silos)}");

        // Order preserved: a chunk's own text finds that very chunk by its vector.
        var chunks = await collection.Search(new SearchQuery("spreadmarker", 10, SearchMode.Keyword));
        Assert.NotEmpty(chunks);
        foreach (var chunk in chunks.Take(5))
        {
            var hits = await collection.Search(new SearchQuery(chunk.Text, 1, SearchMode.Vector));
            Assert.Equal(chunk.ChunkId, hits[0].ChunkId);
        }
    }

    [Fact]
    public async Task Reingesting_a_document_with_one_paragraph_changed_embeds_only_the_changed_chunks()
    {
        var collection = await CollectionAsync("reuse", "docs", 64);
        var paragraphs = Enumerable.Range(0, 12).Select(p => Marked(200 + p, 40, "reusemarker")).ToArray();
        await collection.AddDocument(Upload("doc", string.Join("\n\n", paragraphs)));
        var first = await PollAsync(collection, "doc", TimeSpan.FromSeconds(60));
        Assert.Equal(DocumentStatus.Indexed, first.Status);
        Assert.True(first.ChunkCount >= 12, $"{first.ChunkCount} chunks");
        var embeddedFirst = Probe.Count("reusemarker");
        Assert.InRange(embeddedFirst, first.ChunkCount - 6, first.ChunkCount);

        // Two words of one paragraph swap places: the same word pieces, so every other chunk keeps its exact text.
        var changed = paragraphs.ToArray();
        var words = changed[6].Split(' ');
        var other = words[4] != words[3] ? 4 : 5;
        (words[3], words[other]) = (words[other], words[3]);
        changed[6] = string.Join(' ', words);
        await collection.AddDocument(Upload("doc", string.Join("\n\n", changed)));
        var second = await PollAsync(collection, "doc", TimeSpan.FromSeconds(60));
        Assert.Equal(DocumentStatus.Indexed, second.Status);
        Assert.Equal(first.ChunkCount, second.ChunkCount);
        var embeddedSecond = Probe.Count("reusemarker") - embeddedFirst;
        Assert.InRange(embeddedSecond, 1, 2);

        // The reused vectors are the right ones: the changed paragraph's chunk is found by its new text.
        var hits = await collection.Search(new SearchQuery(changed[6], 1, SearchMode.Vector));
        Assert.Contains(string.Join(' ', words[3..(other + 1)]), hits[0].Text, StringComparison.Ordinal);
    }

    private async Task<ICollectionGrain> CollectionAsync(string tenant, string name, int chunkTokens)
    {
        await Grains.GetGrain<ITenantGrain>(tenant).Create(tenant);
        var collection = Grains.GetGrain<ICollectionGrain>(Ids.Key(tenant, name));
        await collection.Create(new CollectionSettings("all-minilm-l6-v2", 384, 1, chunkTokens, 0));
        return collection;
    }

    /// <summary>Reads the record until the document is indexed or failed (no call that would itself resume it).</summary>
    private static async Task<DocumentInfo> PollAsync(ICollectionGrain collection, string id, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var doc = await collection.GetDocument(id);
            if (doc.Status is DocumentStatus.Indexed or DocumentStatus.Failed || DateTime.UtcNow > deadline)
            {
                return doc;
            }

            await Task.Delay(200);
        }
    }

    private static string Words(int seed, int count)
    {
        var random = new Random(seed);
        return string.Join(' ', Enumerable.Range(0, count).Select(_ => Vocabulary[random.Next(Vocabulary.Length)])) + ".";
    }

    /// <summary>Random words with <paramref name="marker"/> every sixth word, so every chunk carries it.</summary>
    private static string Marked(int seed, int count, string marker)
    {
        var random = new Random(seed);
        return string.Join(' ', Enumerable.Range(0, count).Select(i => i % 6 == 0 ? marker : Vocabulary[random.Next(Vocabulary.Length)])) + ".";
    }

    private static DocumentUpload Upload(string id, string text) =>
        new(id, null, "text", null, System.Text.Encoding.UTF8.GetBytes(text), null);
}
