using System.Text.RegularExpressions;
using RagOrleans.ServiceDefaults;
using Xunit;

namespace RagOrleans.Ops.Tests;

/// <summary>
/// No Docker engine here, so the Dockerfiles are checked statically: what they copy exists, restore sees every
/// project it needs, the entry point is the published project's assembly, and the image runs as non-root with a
/// health check on a probe the code serves, on the port it listens on.
/// </summary>
public sealed partial class DockerfileTests
{
    public static TheoryData<string, string> Images => new()
    {
        { "src/Silo/Dockerfile", "src/Silo/Silo.csproj" },
        { "src/Frontend/Dockerfile", "src/Frontend/Frontend.csproj" },
    };

    [Theory]
    [MemberData(nameof(Images))]
    public void Every_copied_path_exists_in_the_build_context(string dockerfile, string project)
    {
        _ = project;
        var copies = Instructions(dockerfile).Where(i => i.Op == "COPY" && !i.Args.StartsWith("--from", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(copies);
        foreach (var copy in copies)
        {
            var parts = copy.Args.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            foreach (var source in parts[..^1])
            {
                Assert.True(File.Exists(Repo.PathOf(source)) || Directory.Exists(Repo.PathOf(source)), $"{dockerfile}: COPY source '{source}' does not exist");
                Assert.False(IsDockerIgnored(source), $"{dockerfile}: COPY source '{source}' is excluded by .dockerignore");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Images))]
    public void Restore_sees_every_project_and_the_entry_point_is_the_published_assembly(string dockerfile, string project)
    {
        var instructions = Instructions(dockerfile);
        var copied = instructions.Where(i => i.Op == "COPY").Select(i => i.Args.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0]).ToHashSet();
        var restoreIndex = instructions.FindIndex(i => i.Op == "RUN" && i.Args.Contains("dotnet restore " + project, StringComparison.Ordinal));
        Assert.True(restoreIndex >= 0, $"{dockerfile} does not restore {project}");
        var copiedBeforeRestore = instructions.Take(restoreIndex).Where(i => i.Op == "COPY")
            .SelectMany(i => i.Args.Split(' ', StringSplitOptions.RemoveEmptyEntries)[..^1]).ToHashSet();
        foreach (var needed in Repo.ProjectClosure(project))
        {
            Assert.Contains(needed, copiedBeforeRestore);
        }

        foreach (var props in new[] { "Directory.Build.props", "Directory.Packages.props", "global.json" })
        {
            Assert.Contains(props, copiedBeforeRestore);
        }

        Assert.Contains(instructions, i => i.Op == "RUN" && i.Args.Contains("dotnet publish " + project, StringComparison.Ordinal));
        var entry = instructions.Last(i => i.Op == "ENTRYPOINT").Args;
        Assert.Equal($"[\"dotnet\", \"{Repo.AssemblyName(project)}.dll\"]", entry);
        Assert.Contains("src/", copied);
    }

    [Theory]
    [MemberData(nameof(Images))]
    public void The_image_is_net10_runs_as_non_root_and_checks_health_on_its_own_port(string dockerfile, string project)
    {
        _ = project;
        var instructions = Instructions(dockerfile);
        var froms = instructions.Where(i => i.Op == "FROM").Select(i => i.Args).ToList();
        Assert.StartsWith("mcr.microsoft.com/dotnet/sdk:10.0 ", froms[0], StringComparison.Ordinal);
        Assert.StartsWith("mcr.microsoft.com/dotnet/aspnet:10.0 ", froms[^1], StringComparison.Ordinal);

        var user = instructions.Last(i => i.Op == "USER").Args;
        Assert.NotEqual("root", user);
        Assert.NotEqual("0", user);
        Assert.True(instructions.FindLastIndex(i => i.Op == "USER") > instructions.FindLastIndex(i => i.Op == "FROM"), "USER must be set in the runtime stage");

        var env = string.Join(' ', instructions.Where(i => i.Op == "ENV").Select(i => i.Args));
        var port = UrlsPort().Match(env);
        Assert.True(port.Success, $"{dockerfile} sets no Urls port");
        Assert.Contains(instructions, i => i.Op == "EXPOSE" && i.Args.Split(' ').Contains(port.Groups[1].Value));
        var health = instructions.Single(i => i.Op == "HEALTHCHECK").Args;
        Assert.Contains($"/dev/tcp/127.0.0.1/{port.Groups[1].Value}", health, StringComparison.Ordinal);
        Assert.Contains($"GET {Probes.Live} ", health, StringComparison.Ordinal);
        Assert.Contains("Rag__DataDir", env, StringComparison.Ordinal);
        Assert.Contains("\"DataDir\"", Repo.SourceText, StringComparison.Ordinal);
    }

    /// <summary>Instructions with continuation lines joined and comments dropped.</summary>
    internal static List<(string Op, string Args)> Instructions(string dockerfile)
    {
        var result = new List<(string, string)>();
        var current = "";
        foreach (var raw in File.ReadAllLines(Repo.PathOf(dockerfile)))
        {
            var line = raw.Trim();
            if (line.StartsWith('#') || line.Length == 0)
            {
                continue;
            }

            if (line.EndsWith('\\'))
            {
                current += line[..^1].Trim() + " ";
                continue;
            }

            current += line;
            var space = current.IndexOf(' ', StringComparison.Ordinal);
            result.Add((current[..space].ToUpperInvariant(), current[(space + 1)..].Trim()));
            current = "";
        }

        return result;
    }

    private static bool IsDockerIgnored(string source)
    {
        var segments = source.TrimEnd('/').Split('/');
        return segments.Any(s => s is "bin" or "obj" or "tests" or "artifacts" or ".git");
    }

    [GeneratedRegex(@"Urls=http://\+:(\d+)")]
    private static partial Regex UrlsPort();
}
