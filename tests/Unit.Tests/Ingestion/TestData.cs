namespace RagOrleans.Unit.Tests.Ingestion;

/// <summary>Locates the shared real-world documents (shared/ sits beside the repository checkout).</summary>
internal static class TestData
{
    private static readonly Lazy<string> Root = new(FindRoot);

    public static string DocsDirectory => Root.Value;

    public static string MarkdownDirectory => Path.Combine(DocsDirectory, "md", "orleans");

    public static string WarAndPeacePath => Path.Combine(DocsDirectory, "txt", "war-and-peace.txt");

    private static string FindRoot()
    {
        var fromEnv = Environment.GetEnvironmentVariable("RAG_SHARED_DOCS");
        if (!string.IsNullOrEmpty(fromEnv) && Directory.Exists(fromEnv))
        {
            return fromEnv;
        }

        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            foreach (var candidate in new[] { Path.Combine(dir.FullName, "shared", "data", "docs"), Path.Combine(dir.FullName, "data", "docs") })
            {
                if (Directory.Exists(Path.Combine(candidate, "md", "orleans")))
                {
                    return candidate;
                }
            }
        }

        throw new DirectoryNotFoundException(
            "shared/data/docs not found above " + AppContext.BaseDirectory + "; set RAG_SHARED_DOCS to its path.");
    }
}
