using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;

namespace RagOrleans.EndToEnd.Tests;

/// <summary>
/// The real frontend executable (embedded mode: in-process silo, SQLite, the ONNX model) started as a
/// child process on free loopback ports and a data folder of its own.
/// </summary>
public sealed class ServiceProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private ServiceProcess(Process process, string dataDir, string baseUrl, string operatorKey)
    {
        _process = process;
        DataDir = dataDir;
        BaseUrl = baseUrl;
        OperatorKey = operatorKey;
        Http = new HttpClient { BaseAddress = new Uri(baseUrl), Timeout = TimeSpan.FromMinutes(10) };
    }

    public string DataDir { get; }
    public string BaseUrl { get; }
    public string OperatorKey { get; }
    public HttpClient Http { get; }

    /// <summary>The service's process id (for reading its resident memory from /proc).</summary>
    public int Pid => _process.Id;
    public string Output { get { lock (_output) { return _output.ToString(); } } }

    /// <summary>The frontend's process id (to read its /proc status).</summary>
    public int ProcessId => _process.Id;

    /// <summary>True once the process has ended.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>Starts the service and waits until /readyz answers 200.</summary>
    public static async Task<ServiceProcess> StartAsync(string dataDir, string? operatorKey = "test-operator-key-0123456789", IDictionary<string, string>? env = null)
    {
        var dll = FrontendDll();
        var port = FreePort();
        var url = $"http://127.0.0.1:{port}";
        var psi = new ProcessStartInfo("dotnet", [dll, "--urls", url])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(dll)!,
        };
        psi.Environment["Rag__DataDir"] = dataDir;
        if (operatorKey is not null)
        {
            psi.Environment["Rag__OperatorKey"] = operatorKey;
        }

        psi.Environment["Orleans__SiloPort"] = FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture);
        psi.Environment["Orleans__GatewayPort"] = FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture);
        psi.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        psi.Environment["Logging__LogLevel__Default"] = "Information";
        foreach (var (k, v) in env ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }

        var process = Process.Start(psi) ?? throw new InvalidOperationException("Could not start the frontend.");
        var service = new ServiceProcess(process, dataDir, url, operatorKey ?? "");
        process.OutputDataReceived += (_, e) => service.Append(e.Data);
        process.ErrorDataReceived += (_, e) => service.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        // RAG_READY_TIMEOUT_SECONDS: longer on a saturated machine (the benchmarks that link this file set it); 240 s by default,
        // since on a shared 2-core machine under heavy load start-up alone (before the model loads) can take a minute.
        var readySeconds = int.TryParse(Environment.GetEnvironmentVariable("RAG_READY_TIMEOUT_SECONDS"), System.Globalization.NumberStyles.Integer,
            System.Globalization.CultureInfo.InvariantCulture, out var configured) ? configured : 240;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(readySeconds);
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"The frontend exited with {process.ExitCode}:\n{service.Output}");
            }

            try
            {
                using var response = await service.Http.GetAsync("/readyz");
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return service;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(200);
        }

        await service.DisposeAsync();
        throw new TimeoutException($"The frontend did not become ready:\n{service.Output}");
    }

    /// <summary>A client that sends <paramref name="key"/> as the bearer token.</summary>
    public HttpClient Client(string? key)
    {
        var client = new HttpClient { BaseAddress = new Uri(BaseUrl), Timeout = TimeSpan.FromMinutes(10) };
        if (key is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        return client;
    }

    /// <summary>Kills the process at once: no graceful shutdown, no snapshots.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
    }

    /// <summary>SIGTERM and wait, like an orchestrator's stop.</summary>
    public async Task StopAsync()
    {
        if (!_process.HasExited)
        {
            using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            await kill!.WaitForExitAsync();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            try
            {
                await _process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                await KillAsync();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process.Dispose();
        Http.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string FrontendDll()
    {
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";
        var dll = Path.Combine(TestPaths.RepoRoot, "src", "Frontend", "bin", configuration, "net10.0", "RagOrleans.Frontend.dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException($"Build the solution first: {dll} is missing.");
    }
}

/// <summary>Locations of the repository and of the shared evaluation data (read in place, never copied).</summary>
public static class TestPaths
{
    public static string RepoRoot { get; } = FindUp(d => File.Exists(Path.Combine(d, "RagOrleans.sln")))
        ?? throw new DirectoryNotFoundException("RagOrleans.sln not found above " + AppContext.BaseDirectory);

    public static string SharedData { get; } = FindUp(d => Directory.Exists(Path.Combine(d, "shared", "data")), RepoRoot) is { } d
        ? Path.Combine(d, "shared", "data")
        : throw new DirectoryNotFoundException("shared/data not found beside the repository; the tests read the evaluation data in place.");

    public static string NewTempDir(string prefix)
    {
        var dir = Path.Combine(Path.GetTempPath(), "ragorleans-tests", prefix + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static string? FindUp(Func<string, bool> match, string? start = null)
    {
        for (var dir = new DirectoryInfo(start ?? AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (match(dir.FullName))
            {
                return dir.FullName;
            }
        }

        return null;
    }
}
