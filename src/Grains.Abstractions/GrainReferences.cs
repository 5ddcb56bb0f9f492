namespace RagOrleans.Abstractions;

/// <summary>
/// Grain references without Orleans' per-call type lookup. <c>IGrainFactory.GetGrain&lt;T&gt;(key)</c> resolves the
/// interface's <see cref="GrainInterfaceType"/> anew at every call (custom-attribute reflection, then formatting the
/// type's name), and a search makes four references: 5.8 % of the service's CPU on a search whose query embedding is
/// cached (bench/README.md, session 18). These methods learn the interface type and the grain type from the first
/// reference Orleans makes for an interface and build every later one from its grain id.
/// </summary>
/// <remarks>
/// The grain type is learned once per process: every grain class of this application pins its type name with
/// <c>[GrainType]</c> and is the only implementation of its interface, so the resolution cannot differ between calls,
/// silos or clusters. A reference made before the cluster's manifest names an implementation (a client that has not
/// heard from a gateway yet gets a placeholder type under Orleans' <c>sys.</c> prefix) is returned but not learned.
/// </remarks>
public static class GrainReferences
{
    /// <summary>The reference to the grain of interface <typeparamref name="TGrain"/> with a string key.</summary>
    public static TGrain Reference<TGrain>(this IGrainFactory grains, string key)
        where TGrain : IGrainWithStringKey
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(key);
        if (Learned<TGrain>.Types is { } types)
        {
            return (TGrain)grains.GetGrain(GrainId.Create(types.GrainType, key), types.InterfaceType);
        }

        return Learned<TGrain>.Learn(grains.GetGrain<TGrain>(key));
    }

    /// <summary>The reference to the grain of interface <typeparamref name="TGrain"/> with an integer key.</summary>
    public static TGrain Reference<TGrain>(this IGrainFactory grains, long key)
        where TGrain : IGrainWithIntegerKey
    {
        if (Learned<TGrain>.Types is { } types)
        {
            return (TGrain)grains.GetGrain(GrainId.Create(types.GrainType, GrainIdKeyExtensions.CreateIntegerKey(key)), types.InterfaceType);
        }

        return Learned<TGrain>.Learn(grains.GetGrain<TGrain>(key));
    }

    private sealed record ResolvedTypes(GrainType GrainType, GrainInterfaceType InterfaceType);

    private static class Learned<TGrain>
        where TGrain : IAddressable
    {
        // A reference-type field: a reader sees either null or a fully built pair, never a torn one.
        public static ResolvedTypes? Types;

        public static TGrain Learn(TGrain grain)
        {
            if (grain is GrainReference reference)
            {
                var grainType = grain.GetGrainId().Type;
                if (!grainType.ToString()!.StartsWith(GrainTypePrefix.SystemPrefix, StringComparison.Ordinal))
                {
                    Types = new ResolvedTypes(grainType, reference.InterfaceType);
                }
            }

            return grain;
        }
    }
}
