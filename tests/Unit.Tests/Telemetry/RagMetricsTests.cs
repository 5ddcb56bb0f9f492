using System.Diagnostics.Metrics;
using RagOrleans.Grains.Telemetry;
using Xunit;

namespace RagOrleans.Unit.Tests.Telemetry;

public sealed class RagMetricsTests
{
    [Fact]
    public void Refusals_and_searches_carry_bounded_tenant_labels()
    {
        using var metrics = new RagMetrics(options: Microsoft.Extensions.Options.Options.Create(new TelemetryOptions { TopTenants = 1 }));
        var recorded = new List<(string Instrument, string? Tenant)>();
        using var listener = Listen(metrics, (instrument, tags) =>
            recorded.Add((instrument.Name, tags.FirstOrDefault(t => t.Key == "tenant").Value as string)));

        metrics.Search("big", "hybrid", TimeSpan.FromMilliseconds(3));
        metrics.Search("small", "hybrid", TimeSpan.FromMilliseconds(3));
        metrics.Refused("quota", "big");
        metrics.Refused("rate_limit", "small");

        Assert.Equal(
            [("rag.search.duration", "big"), ("rag.search.duration", "other"), ("rag.refusals", "big"), ("rag.refusals", "other")],
            recorded);
    }

    [Fact]
    public void Shards_report_count_and_memory_until_untracked()
    {
        using var metrics = new RagMetrics();
        using var first = metrics.TrackShard(() => 1000);
        var second = metrics.TrackShard(() => 234);
        Assert.Equal((2L, 1234L), Observe(metrics));
        second.Dispose();
        second.Dispose();
        Assert.Equal((1L, 1000L), Observe(metrics));
    }

    private static (long Shards, long Memory) Observe(RagMetrics metrics)
    {
        long shards = -1, memory = -1;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == RagMetrics.MeterName && instrument.Name is "rag.index.shards.active" or "rag.index.memory")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
        {
            if (instrument.Name == "rag.index.shards.active")
            {
                shards = value;
            }
            else
            {
                memory = value;
            }
        });
        listener.Start();
        listener.RecordObservableInstruments();
        return (shards, memory);
    }

    private static MeterListener Listen(RagMetrics metrics, Action<Instrument, KeyValuePair<string, object?>[]> onMeasurement)
    {
        var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == RagMetrics.MeterName && instrument.Name is "rag.search.duration" or "rag.refusals")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<double>((instrument, _, tags, _) => onMeasurement(instrument, tags.ToArray()));
        listener.SetMeasurementEventCallback<long>((instrument, _, tags, _) => onMeasurement(instrument, tags.ToArray()));
        listener.Start();
        _ = metrics;
        return listener;
    }
}
