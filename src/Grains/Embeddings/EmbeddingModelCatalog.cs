using RagOrleans.Abstractions;

namespace RagOrleans.Grains.Embeddings;

/// <summary>
/// The embedding models a silo can run, by canonical name and by the short names API callers use. A collection
/// stores the canonical name, so its vectors are never mixed with another model's.
/// </summary>
public static class EmbeddingModelCatalog
{
    private static readonly (EmbeddingModelDescriptor Model, string[] Aliases)[] Entries =
    [
        (EmbeddingModelDescriptor.MiniLmL6V2, ["minilm"]),
        (EmbeddingModelDescriptor.ArcticEmbedXs, ["arctic-xs"]),
        (EmbeddingModelDescriptor.MiniLmL6V2Int8, ["minilm-int8"]),
    ];

    /// <summary>The model collections get when they name none.</summary>
    public static EmbeddingModelDescriptor Default => EmbeddingModelDescriptor.MiniLmL6V2;

    /// <summary>Every model, default first.</summary>
    public static IReadOnlyList<EmbeddingModelDescriptor> All { get; } = [.. Entries.Select(e => e.Model)];

    /// <summary>Human-readable list of the accepted names, for error messages.</summary>
    public static string AcceptedNames => string.Join("; ", Entries.Select(e => $"'{e.Aliases[0]}' ({e.Model.Name})"));

    /// <summary>The model named <paramref name="name"/> (canonical or short, case-insensitive), or null.</summary>
    public static EmbeddingModelDescriptor? Find(string? name)
    {
        if (string.IsNullOrWhiteSpace(name))
        {
            return null;
        }

        foreach (var (model, aliases) in Entries)
        {
            if (string.Equals(name, model.Name, StringComparison.OrdinalIgnoreCase)
                || aliases.Any(a => string.Equals(name, a, StringComparison.OrdinalIgnoreCase)))
            {
                return model;
            }
        }

        return null;
    }

    /// <summary>The model named <paramref name="name"/>; <see cref="RagException"/> (Invalid) listing the choices if unknown.</summary>
    public static EmbeddingModelDescriptor Resolve(string name) =>
        Find(name) ?? throw RagException.Invalid($"Unknown embedding model '{name}'. Available: {AcceptedNames}.");
}
