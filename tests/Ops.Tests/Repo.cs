using System.Xml.Linq;

namespace RagOrleans.Ops.Tests;

/// <summary>Locates the repository and reads its project files.</summary>
internal static class Repo
{
    public static string Root { get; } = FindRoot();

    public static string PathOf(string relative) => Path.GetFullPath(Path.Combine(Root, relative.Replace('/', Path.DirectorySeparatorChar)));

    /// <summary>The AssemblyName of a project (its file name when unset).</summary>
    public static string AssemblyName(string csprojRelative)
    {
        var doc = XDocument.Load(PathOf(csprojRelative));
        return doc.Descendants("AssemblyName").Select(e => e.Value.Trim()).FirstOrDefault()
            ?? Path.GetFileNameWithoutExtension(csprojRelative);
    }

    /// <summary>The project and every project it references, transitively, as repository-relative paths.</summary>
    public static IReadOnlySet<string> ProjectClosure(string csprojRelative)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>([Normalize(csprojRelative)]);
        while (pending.Count > 0)
        {
            var project = pending.Pop();
            if (!seen.Add(project))
            {
                continue;
            }

            var dir = Path.GetDirectoryName(PathOf(project))!;
            foreach (var reference in XDocument.Load(PathOf(project)).Descendants("ProjectReference"))
            {
                var full = Path.GetFullPath(Path.Combine(dir, reference.Attribute("Include")!.Value.Replace('\\', '/')));
                pending.Push(Normalize(Path.GetRelativePath(Root, full)));
            }
        }

        return seen;
    }

    /// <summary>Every C# source and appsettings file under src/: what "the code reads" is searched in.</summary>
    public static IReadOnlyList<string> SourceFiles { get; } =
        Directory.EnumerateFiles(PathOf("src"), "*.*", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && (f.EndsWith(".cs", StringComparison.Ordinal) || Path.GetFileName(f).StartsWith("appsettings", StringComparison.Ordinal)))
            .Select(File.ReadAllText)
            .ToList();

    /// <summary>All of <see cref="SourceFiles"/>, concatenated.</summary>
    public static string SourceText { get; } = string.Join('\n', SourceFiles);

    public static string Normalize(string relative) => relative.Replace('\\', '/');

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "RagOrleans.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("RagOrleans.sln not found above " + AppContext.BaseDirectory);
    }
}
