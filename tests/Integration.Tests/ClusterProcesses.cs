using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using Npgsql;
using Xunit.Abstractions;

namespace RagOrleans.Integration.Tests;

/// <summary>
/// Finds the built silo and frontend executables. Normal layout: <c>src/&lt;Project&gt;/bin/&lt;Configuration&gt;/net10.0</c>.
/// Artifacts layout (<c>dotnet build --artifacts-path X</c>): <c>X/bin/&lt;Project&gt;/&lt;configuration&gt;</c>, taken
/// from <c>RAG_BIN_ROOT</c> when set, else recognised from where this test assembly itself was built.
/// </summary>
public static class RagBinaries
{
    /// <summary>The environment variable naming an artifacts root (the folder given to <c>--artifacts-path</c>).</summary>
    public const string BinRootVariable = "RAG_BIN_ROOT";

    /// <summary>The repository (the folder holding RagOrleans.sln).</summary>
    public static string RepoRoot { get; } = FindRepoRoot();

    /// <summary>The silo host's dll.</summary>
    public static string SiloDll => Find("Silo", "RagOrleans.Silo.dll");

    /// <summary>The frontend's dll.</summary>
    public static string FrontendDll => Find("Frontend", "RagOrleans.Frontend.dll");

    private static string Configuration =>
        AppContext.BaseDirectory.Split(Path.DirectorySeparatorChar).Any(s => s.StartsWith("release", StringComparison.OrdinalIgnoreCase))
            ? "Release"
            : "Debug";

    private static string Find(string project, string dll)
    {
        var candidates = new List<string>();
        var configured = Environment.GetEnvironmentVariable(BinRootVariable);
        if (!string.IsNullOrWhiteSpace(configured))
        {
            candidates.AddRange(ArtifactsCandidates(configured, project, dll));
        }
        else if (OwnArtifactsRoot() is { } own)
        {
            candidates.AddRange(ArtifactsCandidates(own, project, dll));
        }

        candidates.Add(Path.Combine(RepoRoot, "src", project, "bin", Configuration, "net10.0", dll));
        return candidates.FirstOrDefault(File.Exists)
            ?? throw new FileNotFoundException($"Build the solution first: {dll} is in none of: {string.Join(", ", candidates)}" +
                $" (set {BinRootVariable} to the --artifacts-path folder when building with one).");
    }

    private static IEnumerable<string> ArtifactsCandidates(string root, string project, string dll)
    {
        var pivot = Configuration.ToLowerInvariant();
        yield return Path.Combine(root, "bin", project, pivot, dll);
        yield return Path.Combine(root, "bin", project, pivot + "_net10.0", dll);
    }

    /// <summary>The artifacts root when this assembly runs from <c>&lt;root&gt;/bin/Integration.Tests/&lt;pivot&gt;/</c>.</summary>
    private static string? OwnArtifactsRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        return dir.Parent is { Name: "Integration.Tests" } project && project.Parent is { Name: "bin" } bin && bin.Parent is { } root
            ? root.FullName
            : null;
    }

    private static string FindRepoRoot()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Path.GetDirectoryName(SourceFile()) ?? "", Environment.CurrentDirectory })
        {
            for (var dir = string.IsNullOrEmpty(start) ? null : new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "RagOrleans.sln")))
                {
                    return dir.FullName;
                }
            }
        }

        throw new DirectoryNotFoundException("RagOrleans.sln not found above " + AppContext.BaseDirectory);
    }

    // The compile-time path of this file: finds the repository when the build output lives outside it.
    private static string SourceFile([CallerFilePath] string path = "") => path;
}

/// <summary>Which executable a <see cref="ClusterNode"/> runs.</summary>
public enum NodeKind
{
    Silo,
    Frontend,
}

/// <summary>
/// One real silo or frontend process in cluster mode on loopback ports of its own, its output captured
/// (and copied to a log file) so tests can look for log lines.
/// </summary>
public sealed class ClusterNode : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _lines = [];
    private readonly StreamWriter _log;

    private ClusterNode(NodeKind kind, string name, Process process, string url, int siloPort, int gatewayPort, string logFile)
    {
        Kind = kind;
        Name = name;
        _process = process;
        Url = url;
        SiloPort = siloPort;
        GatewayPort = gatewayPort;
        LogFile = logFile;
        _log = new StreamWriter(logFile, append: true) { AutoFlush = true };
        Started = DateTimeOffset.UtcNow;
    }

    public NodeKind Kind { get; }
    public string Name { get; }
    public string Url { get; }

    /// <summary>The silo-to-silo port (silos only; 0 for frontends).</summary>
    public int SiloPort { get; }

    /// <summary>The client gateway port (silos only; 0 for frontends).</summary>
    public int GatewayPort { get; }

    public string LogFile { get; }
    public DateTimeOffset Started { get; }
    public int Pid => _process.Id;
    public bool HasExited => _process.HasExited;

    /// <summary>Every output line so far (stdout and stderr).</summary>
    public IReadOnlyList<string> Lines { get { lock (_lines) { return [.. _lines]; } } }

    /// <summary>Starts <paramref name="kind"/> with the cluster's environment; does not wait for readiness.</summary>
    public static ClusterNode Start(NodeKind kind, string name, IReadOnlyDictionary<string, string> environment, string workDir)
    {
        var dll = kind == NodeKind.Silo ? RagBinaries.SiloDll : RagBinaries.FrontendDll;
        var (httpPort, siloPort, gatewayPort) = (FreePort(), kind == NodeKind.Silo ? FreePort() : 0, kind == NodeKind.Silo ? FreePort() : 0);
        var url = $"http://127.0.0.1:{httpPort}";
        var dir = Path.Combine(workDir, name);
        Directory.CreateDirectory(dir);
        var psi = new ProcessStartInfo("dotnet", [dll, "--urls", url])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = dir,
        };
        foreach (var (key, value) in environment)
        {
            psi.Environment[key] = value;
        }

        psi.Environment["Rag__DataDir"] = Path.Combine(dir, "data");
        psi.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        psi.Environment["Logging__Console__FormatterName"] = "simple";
        psi.Environment["Logging__Console__FormatterOptions__SingleLine"] = "true";
        psi.Environment["Logging__Console__FormatterOptions__TimestampFormat"] = "HH:mm:ss.fff ";
        if (kind == NodeKind.Silo)
        {
            psi.Environment["Orleans__SiloName"] = name;
            psi.Environment["Orleans__SiloPort"] = siloPort.ToString(CultureInfo.InvariantCulture);
            psi.Environment["Orleans__GatewayPort"] = gatewayPort.ToString(CultureInfo.InvariantCulture);
        }

        var logFile = Path.Combine(workDir, name + ".log");
        var process = Process.Start(psi) ?? throw new InvalidOperationException($"Could not start {dll}.");
        var node = new ClusterNode(kind, name, process, url, siloPort, gatewayPort, logFile);
        process.OutputDataReceived += (_, e) => node.Append(e.Data);
        process.ErrorDataReceived += (_, e) => node.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return node;
    }

    /// <summary>Waits until <c>/readyz</c> answers 200; fails with the process output when it exits or times out.</summary>
    public async Task WaitReadyAsync(TimeSpan timeout)
    {
        using var http = new HttpClient { BaseAddress = new Uri(Url), Timeout = TimeSpan.FromSeconds(10) };
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"{Name} exited with {_process.ExitCode} before it was ready:\n{Tail(60)}");
            }

            try
            {
                using var response = await http.GetAsync(new Uri("/readyz", UriKind.Relative));
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
            }

            await Task.Delay(200);
        }

        throw new TimeoutException($"{Name} was not ready within {timeout.TotalSeconds:F0} s:\n{Tail(60)}");
    }

    /// <summary>An HTTP client for this node that sends <paramref name="key"/> as the bearer token.</summary>
    public HttpClient Client(string? key, TimeSpan? timeout = null)
    {
        var client = new HttpClient { BaseAddress = new Uri(Url), Timeout = timeout ?? TimeSpan.FromMinutes(2) };
        if (key is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        return client;
    }

    /// <summary>SIGKILL: no shutdown code runs at all.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
    }

    /// <summary>SIGTERM, like an orchestrator's stop; SIGKILL after <paramref name="grace"/>. True when it exited by itself.</summary>
    public async Task<bool> StopAsync(TimeSpan grace)
    {
        if (_process.HasExited)
        {
            return true;
        }

        using (var kill = Process.Start("kill", ["-TERM", Pid.ToString(CultureInfo.InvariantCulture)]))
        {
            await kill!.WaitForExitAsync();
        }

        using var cts = new CancellationTokenSource(grace);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            await KillAsync();
            return false;
        }
    }

    /// <summary>The output lines containing <paramref name="text"/>.</summary>
    public IReadOnlyList<string> LinesContaining(string text) => Lines.Where(l => l.Contains(text, StringComparison.Ordinal)).ToList();

    /// <summary>The last <paramref name="count"/> output lines.</summary>
    public string Tail(int count)
    {
        var lines = Lines;
        return string.Join('\n', lines.Skip(Math.Max(0, lines.Count - count)));
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process.WaitForExit(); // drains the asynchronous output readers
        _process.Dispose();
        lock (_lines)
        {
            _log.Dispose();
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_lines)
        {
            _lines.Add(line);
            try
            {
                _log.WriteLine(line);
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    private static int FreePort() => TestPorts.Next();
}

/// <summary>
/// A cluster-mode deployment on this machine: silos and frontends as child processes sharing one Orleans
/// cluster id, one PostgreSQL database and one Redis. Everything it started is killed on dispose.
/// </summary>
public sealed class RagCluster : IAsyncDisposable
{
    /// <summary>
    /// How long a process may take to become ready (2 cores, several processes loading the model at once);
    /// <c>RAG_READY_TIMEOUT_SECONDS</c> raises it on a machine that is busier still.
    /// </summary>
    public static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(
        int.TryParse(Environment.GetEnvironmentVariable("RAG_READY_TIMEOUT_SECONDS"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var seconds) ? seconds : 150);

    private readonly List<ClusterNode> _all = [];
    private readonly ITestOutputHelper? _output;
    private int _generation;

    public RagCluster(string postgres, string redis, ITestOutputHelper? output = null)
    {
        Postgres = postgres;
        Redis = redis;
        _output = output;
        ClusterId = "t-" + Guid.NewGuid().ToString("N")[..12];
        OperatorKey = "op-it-" + Guid.NewGuid().ToString("N");
        WorkDir = Path.Combine(Path.GetTempPath(), "ragorleans-tests", "cluster-" + ClusterId);
        Directory.CreateDirectory(WorkDir);
    }

    public string ClusterId { get; }
    public string OperatorKey { get; }
    public string Postgres { get; }
    public string Redis { get; }

    /// <summary>Logs of every process (<c>&lt;name&gt;.log</c>), kept after the test.</summary>
    public string WorkDir { get; }

    /// <summary>The silos of the current generation (running or killed).</summary>
    public List<ClusterNode> Silos { get; } = [];

    /// <summary>The frontends of the current generation.</summary>
    public List<ClusterNode> Frontends { get; } = [];

    /// <summary>Every process ever started, older generations included.</summary>
    public IReadOnlyList<ClusterNode> All => _all;

    /// <summary>Starts silos and frontends all at once (schema set-up races included) and waits until each is ready.</summary>
    public async Task StartAsync(int silos, int frontends)
    {
        var started = Stopwatch.StartNew();
        _generation++;
        Silos.Clear();
        Frontends.Clear();
        for (var i = 1; i <= silos; i++)
        {
            Silos.Add(Start(NodeKind.Silo, $"silo{i}"));
        }

        for (var i = 1; i <= frontends; i++)
        {
            Frontends.Add(Start(NodeKind.Frontend, $"frontend{i}"));
        }

        await Task.WhenAll(Silos.Concat(Frontends).Select(n => n.WaitReadyAsync(ReadyTimeout)));
        _output?.WriteLine($"[{ClusterId}] generation {_generation}: {silos} silos and {frontends} frontends ready in {started.Elapsed.TotalSeconds:F1} s (logs in {WorkDir})");
    }

    /// <summary>Starts one more silo of the current generation (joining the running cluster) and waits until it is ready.</summary>
    public async Task<ClusterNode> AddSiloAsync()
    {
        var silo = Start(NodeKind.Silo, $"silo{Silos.Count + 1}");
        Silos.Add(silo);
        await silo.WaitReadyAsync(ReadyTimeout);
        return silo;
    }

    /// <summary>
    /// Starts silos one after the other (each joins a running cluster), then the frontends, like
    /// scripts/dev-cluster.sh: slower than <see cref="StartAsync"/> but it does not race joins on a saturated machine.
    /// </summary>
    public async Task StartStaggeredAsync(int silos, int frontends)
    {
        await StartAsync(silos: 1, frontends: 0);
        for (var i = 1; i < silos; i++)
        {
            await AddSiloAsync();
        }

        for (var i = 1; i <= frontends; i++)
        {
            var frontend = Start(NodeKind.Frontend, $"frontend{i}");
            Frontends.Add(frontend);
            await frontend.WaitReadyAsync(ReadyTimeout);
        }
    }

    /// <summary>SIGTERM to every frontend, then to every silo at once; returns the names that had to be killed.</summary>
    public async Task<IReadOnlyList<string>> StopAllAsync(TimeSpan grace)
    {
        var started = Stopwatch.StartNew();
        var killed = new List<string>();
        foreach (var group in new[] { Frontends, Silos })
        {
            var results = await Task.WhenAll(group.Select(async n => (n.Name, Clean: await n.StopAsync(grace))));
            killed.AddRange(results.Where(r => !r.Clean).Select(r => r.Name));
        }

        _output?.WriteLine($"[{ClusterId}] all processes stopped in {started.Elapsed.TotalSeconds:F1} s{(killed.Count > 0 ? "; killed after the grace period: " + string.Join(", ", killed) : "")}");
        return killed;
    }

    /// <summary>Membership rows of this cluster id: silo name, port, status (3 = active, 6 = dead).</summary>
    public async Task<IReadOnlyList<(string Name, int Port, int Status, int Generation)>> MembershipAsync()
    {
        await using var connection = new NpgsqlConnection(Postgres);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            "SELECT siloname, port, status, generation FROM orleansmembershiptable WHERE deploymentid = @c ORDER BY siloname, generation", connection);
        command.Parameters.AddWithValue("c", ClusterId);
        var rows = new List<(string, int, int, int)>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            rows.Add((reader.GetString(0), reader.GetInt32(1), reader.GetInt32(2), reader.GetInt32(3)));
        }

        return rows;
    }

    /// <summary>Polls the membership table until <paramref name="done"/> holds; returns the last rows either way.</summary>
    public async Task<IReadOnlyList<(string Name, int Port, int Status, int Generation)>> WaitForMembershipAsync(
        Func<IReadOnlyList<(string Name, int Port, int Status, int Generation)>, bool> done, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var rows = await MembershipAsync();
            if (done(rows) || DateTime.UtcNow > deadline)
            {
                return rows;
            }

            await Task.Delay(250);
        }
    }

    /// <summary>Error and warning lines plus the last lines of every process, for failure messages.</summary>
    public string Describe(int tail = 25)
    {
        var text = new StringBuilder();
        foreach (var node in _all)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"--- {node.Name} (pid {node.Pid}, {node.Url}{(node.Kind == NodeKind.Silo ? $", silo port {node.SiloPort}" : "")}, log {node.LogFile})");
            foreach (var line in node.Lines.Where(l => l.StartsWith("fail", StringComparison.Ordinal) || l.Contains(" fail:", StringComparison.Ordinal) || l.Contains(" crit:", StringComparison.Ordinal)).Take(20))
            {
                text.AppendLine("  ! " + line);
            }

            text.AppendLine(node.Tail(tail));
        }

        return text.ToString();
    }

    public async ValueTask DisposeAsync()
    {
        await Task.WhenAll(_all.Select(n => n.DisposeAsync().AsTask()));
    }

    private ClusterNode Start(NodeKind kind, string name)
    {
        var env = new Dictionary<string, string>
        {
            ["Rag__Mode"] = "cluster",
            ["ConnectionStrings__Postgres"] = Postgres,
            ["ConnectionStrings__Redis"] = Redis,
            ["Orleans__ClusterId"] = ClusterId,
            ["Rag__OperatorKey"] = OperatorKey,
        };
        var node = ClusterNode.Start(kind, _generation > 1 ? $"{name}-g{_generation}" : name, env, WorkDir);
        _all.Add(node);
        return node;
    }
}
