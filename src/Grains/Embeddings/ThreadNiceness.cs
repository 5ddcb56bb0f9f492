using System.Runtime.InteropServices;

namespace RagOrleans.Grains.Embeddings;

/// <summary>Per-thread scheduling priority on Linux, where .NET's <see cref="Thread.Priority"/> has no effect.</summary>
internal static partial class ThreadNiceness
{
    private const int PrioProcess = 0;

    /// <summary>Raises the calling thread's nice value by <paramref name="increment"/>; false where that is not possible.</summary>
    public static bool TryLowerCurrentThread(int increment)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(increment);
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }

        // On Linux a thread is a task with its own id, and PRIO_PROCESS with that id sets the one thread. Lowering a
        // priority needs no privilege.
        var tid = GetTid();
        var current = GetPriority(PrioProcess, tid);
        return SetPriority(PrioProcess, tid, Math.Min(19, current + increment)) == 0;
    }

    [LibraryImport("libc", EntryPoint = "gettid")]
    private static partial int GetTid();

    [LibraryImport("libc", EntryPoint = "getpriority")]
    private static partial int GetPriority(int which, int who);

    [LibraryImport("libc", EntryPoint = "setpriority")]
    private static partial int SetPriority(int which, int who, int priority);
}
