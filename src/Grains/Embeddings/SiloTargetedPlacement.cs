using Orleans.Placement;
using Orleans.Runtime.Placement;

namespace RagOrleans.Grains.Embeddings;

/// <summary>Places a grain on the silo its string key names (<c>SiloAddress.ToParsableString()</c>).</summary>
public sealed class SiloTargetedPlacement : PlacementStrategy
{
    internal static readonly SiloTargetedPlacement Instance = new();
}

/// <summary>Marks a grain class for <see cref="SiloTargetedPlacement"/>.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class SiloTargetedPlacementAttribute() : PlacementAttribute(SiloTargetedPlacement.Instance);

/// <summary>
/// Puts the activation on the silo named by the key when that silo is compatible (alive); otherwise on a random
/// compatible one, so a key naming a dead silo still answers (callers address live silos only, so that is rare).
/// </summary>
public sealed class SiloTargetedPlacementDirector : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var silos = context.GetCompatibleSilos(target);
        var key = target.GrainIdentity.Key.ToString();
        foreach (var silo in silos)
        {
            if (string.Equals(silo.ToParsableString(), key, StringComparison.Ordinal))
            {
                return Task.FromResult(silo);
            }
        }

        return Task.FromResult(silos[Random.Shared.Next(silos.Length)]);
    }
}
