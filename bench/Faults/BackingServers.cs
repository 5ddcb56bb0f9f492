using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace RagOrleans.Bench.Faults;

/// <summary>
/// A PostgreSQL and a Redis of this benchmark's own (a private folder and free loopback ports), so stopping them
/// never disturbs the shared test services. PostgreSQL stops with <c>pg_ctl stop -m fast</c> (clients are
/// disconnected, committed data stays); Redis with <c>SHUTDOWN SAVE</c> into its folder and loads that dump when it
/// starts again, so a stop loses nothing either server had accepted.
/// </summary>
internal sealed class BackingServers : IAsyncDisposable
{
    private readonly string _bin;

    private BackingServers(string dir, string bin)
    {
        Dir = dir;
        _bin = bin;
        PgPort = FreePort();
        RedisPort = FreePort();
    }

    public string Dir { get; }
    public int PgPort { get; }
    public int RedisPort { get; }
    public string Postgres => $"Host=127.0.0.1;Port={PgPort};Database=rag;Username=postgres";
    public string Redis => $"127.0.0.1:{RedisPort}";

    public static async Task<BackingServers> StartAsync()
    {
        var bin = Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin"))
            .Where(d => File.Exists(Path.Combine(d, "pg_ctl"))).OrderBy(d => d, StringComparer.Ordinal).LastOrDefault()
            ?? throw new InvalidOperationException("PostgreSQL binaries not found under /usr/lib/postgresql (scripts/test-services.sh installs them).");
        var dir = Path.Combine(Path.GetTempPath(), "ragorleans-faults-" + Guid.NewGuid().ToString("N")[..8]);
        var servers = new BackingServers(dir, bin);
        Directory.CreateDirectory(Path.Combine(dir, "pgdata"));
        Directory.CreateDirectory(Path.Combine(dir, "pgsock"));
        Directory.CreateDirectory(Path.Combine(dir, "redis"));
        await RunAsync("chown", "-R", "postgres:postgres", dir);
        await RunAsync("chmod", "755", dir);
        await servers.AsPostgresAsync($"{bin}/initdb -D {dir}/pgdata -A trust -U postgres -E UTF8 --no-sync");
        await servers.StartPostgresAsync();
        await servers.AsPostgresAsync($"{bin}/psql -h 127.0.0.1 -p {servers.PgPort} -U postgres -d postgres -qc 'CREATE DATABASE rag'");
        await servers.StartRedisAsync();
        return servers;
    }

    public Task StartPostgresAsync() => AsPostgresAsync(
        $"{_bin}/pg_ctl -D {Dir}/pgdata -l {Dir}/pg.log -w -t 60 -o \"-c listen_addresses=127.0.0.1 -p {PgPort} -k {Dir}/pgsock -c max_connections=200\" start");

    public Task StopPostgresAsync() => AsPostgresAsync($"{_bin}/pg_ctl -D {Dir}/pgdata -m fast -w -t 60 stop");

    public async Task StartRedisAsync()
    {
        await RunAsync("redis-server", "--bind", "127.0.0.1", "--port", RedisPort.ToString(CultureInfo.InvariantCulture), "--save", "", "--appendonly", "no",
            "--dir", Path.Combine(Dir, "redis"), "--daemonize", "yes", "--pidfile", Path.Combine(Dir, "redis.pid"), "--logfile", Path.Combine(Dir, "redis.log"));
        for (var i = 0; i < 100; i++)
        {
            if (await TryRunAsync("redis-cli", "-p", RedisPort.ToString(CultureInfo.InvariantCulture), "ping"))
            {
                return;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException("Redis did not start; see " + Path.Combine(Dir, "redis.log"));
    }

    public async Task StopRedisAsync()
    {
        await TryRunAsync("redis-cli", "-p", RedisPort.ToString(CultureInfo.InvariantCulture), "shutdown", "save");
        var pidFile = Path.Combine(Dir, "redis.pid");
        for (var i = 0; i < 100 && File.Exists(pidFile); i++)
        {
            await Task.Delay(100);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await TryRunAsync("redis-cli", "-p", RedisPort.ToString(CultureInfo.InvariantCulture), "shutdown", "nosave");
        await TryRunAsync("su", "postgres", "-s", "/bin/bash", "-c", $"{_bin}/pg_ctl -D {Dir}/pgdata -m immediate stop");
        try
        {
            Directory.Delete(Dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private async Task AsPostgresAsync(string command)
    {
        if (Environment.UserName == "root")
        {
            await RunAsync("su", "postgres", "-s", "/bin/bash", "-c", command);
        }
        else
        {
            await RunAsync("/bin/bash", "-c", command);
        }
    }

    private static async Task RunAsync(string file, params string[] arguments)
    {
        var (code, output) = await ExecAsync(file, arguments);
        if (code != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', arguments)} exited with {code}: {output}");
        }
    }

    private static async Task<bool> TryRunAsync(string file, params string[] arguments) => (await ExecAsync(file, arguments)).Code == 0;

    private static async Task<(int Code, string Output)> ExecAsync(string file, string[] arguments)
    {
        var psi = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var process = Process.Start(psi) ?? throw new InvalidOperationException("Could not start " + file);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await stdout + await stderr);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
