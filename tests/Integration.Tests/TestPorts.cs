using System.Net;
using System.Net.Sockets;

namespace RagOrleans.Integration.Tests;

/// <summary>
/// Listening ports for the processes and silos the tests start. A port the OS hands out for port 0 lies in the
/// ephemeral range, which outgoing connections draw from too: between picking it and the child process binding it, a
/// client socket took one once in CI ("address already in use"). These come from below that range (Linux's default
/// starts at 32768), each handed out once per test run and checked to be free when picked.
/// </summary>
internal static class TestPorts
{
    private const int First = 20_000, Last = 32_000;
    private static int _next = First + Random.Shared.Next(0, 6_000);

    public static int Next()
    {
        for (var attempt = 0; attempt < Last - First; attempt++)
        {
            var port = Interlocked.Increment(ref _next);
            if (port >= Last)
            {
                Interlocked.CompareExchange(ref _next, First, port);
                continue;
            }

            try
            {
                using var listener = new TcpListener(IPAddress.Loopback, port);
                listener.Start();
                return port;
            }
            catch (SocketException)
            {
                // Taken by something else on the machine: try the next one.
            }
        }

        throw new InvalidOperationException($"No free port between {First} and {Last}.");
    }
}
