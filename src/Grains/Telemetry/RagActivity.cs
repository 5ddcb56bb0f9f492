using System.Diagnostics;

namespace RagOrleans.Grains.Telemetry;

/// <summary>The service's own trace spans, on the <see cref="SourceName"/> activity source.</summary>
public static class RagActivity
{
    /// <summary>The activity source name to export.</summary>
    public const string SourceName = "RagOrleans";

    /// <summary>The source; spans cost nothing when no listener samples them.</summary>
    public static readonly ActivitySource Source = new(SourceName);

    /// <summary>Starts an internal span tagged with the tenant, or returns null when nobody listens.</summary>
    public static Activity? Start(string name, string? tenantId = null, string? collection = null)
    {
        var activity = Source.StartActivity(name, ActivityKind.Internal);
        if (activity is not null)
        {
            if (tenantId is not null)
            {
                activity.SetTag("rag.tenant", tenantId);
            }

            if (collection is not null)
            {
                activity.SetTag("rag.collection", collection);
            }
        }

        return activity;
    }
}
