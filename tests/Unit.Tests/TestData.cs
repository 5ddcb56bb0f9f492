namespace RagOrleans.Unit.Tests;

/// <summary>Locates the shared evaluation data beside the repository; it is read in place, never copied.</summary>
public static class TestData
{
    public static string Root { get; } = Find();

    public static string Path(params string[] parts) => System.IO.Path.Combine([Root, .. parts]);

    /// <summary>The real-world documents for ingestion tests.</summary>
    public static string DocsDirectory => Path("docs");

    /// <summary>The 177 Orleans documentation pages.</summary>
    public static string MarkdownDirectory => Path("docs", "md", "orleans");

    /// <summary>War and Peace, Project Gutenberg #2600.</summary>
    public static string WarAndPeacePath => Path("docs", "txt", "war-and-peace.txt");

    /// <summary>
    /// The first <paramref name="queries"/> SciFact training queries that have relevance judgements, each with the ids
    /// of its relevant (non-zero) abstracts, in file order.
    /// </summary>
    public static Dictionary<string, HashSet<string>> SciFactJudgedQueries(int queries) =>
        File.ReadLines(Path("scifact", "qrels-train.tsv")).Skip(1)
            .Select(l => l.Split('\t')).Where(p => p.Length >= 3 && p[2] != "0")
            .GroupBy(p => p[0]).Take(queries).ToDictionary(g => g.Key, g => g.Select(p => p[1]).ToHashSet());

    public static string NewTempDir(string prefix)
    {
        var dir = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "ragorleans-tests", prefix + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = System.IO.Path.Combine(dir.FullName, "shared", "data");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException("shared/data not found above " + AppContext.BaseDirectory + "; the tests read the evaluation data in place.");
    }
}
