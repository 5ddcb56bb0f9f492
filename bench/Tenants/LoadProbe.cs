using System.Diagnostics;
using System.Runtime.InteropServices;

namespace RagOrleans.Bench.Tenants;

/// <summary>
/// Where one cold load's time goes, measured rather than guessed: garbage collections and their pauses, JIT work,
/// the loading thread's own CPU time, page faults and context switches (getrusage), and when the loader reached each
/// part of the snapshot (a <see cref="ProbeStream"/> records the time of every read).
/// </summary>
internal sealed record LoadSample(
    double WallMs,
    double CpuMs,
    double SysMs,
    int Gen0,
    int Gen1,
    int Gen2,
    double GcPauseMs,
    double JitMs,
    long JitMethods,
    long MinorFaults,
    long MajorFaults,
    long VoluntarySwitches,
    long InvoluntarySwitches,
    double MapsMs,
    double VectorsMs,
    double GraphMs,
    double ValidateMs,
    double Bm25Ms,
    long AllocatedBytes)
{
    public override string ToString() =>
        $"{WallMs,7:F1} ms (cpu {CpuMs,6:F1}, of it kernel {SysMs,6:F1}) = maps {MapsMs,5:F1} + vectors {VectorsMs,5:F1} + links {GraphMs,5:F1} + validate {ValidateMs,5:F1} + bm25 {Bm25Ms,5:F1}; " +
        $"GCs {Gen0}/{Gen1}/{Gen2} pause {GcPauseMs,5:F1} ms; jit {JitMs,5:F1} ms ({JitMethods} methods); faults {MinorFaults}/{MajorFaults}; " +
        $"switches {VoluntarySwitches}/{InvoluntarySwitches}; allocated {AllocatedBytes / 1048576.0:F1} MB";
}

/// <summary>Byte offsets of a shard snapshot's parts, read off the file once.</summary>
internal sealed record SnapshotLayout(long HnswStart, long VectorsEnd, long HnswEnd, long End)
{
    // The shard snapshot is "RSHD" | version | maps length | CRC | maps, then HNSW ("RGHNSW\r\n" | version | 12 int32
    // fields, of which dims is the first and count the eighth | uint64 rng | [v2: quantization] | CRC | vectors ...),
    // then the keyword index.
    public static SnapshotLayout Of(byte[] image, long hnswEnd)
    {
        var hnswStart = 16L + BitConverter.ToInt32(image, 8);
        var version = BitConverter.ToInt32(image, (int)hnswStart + 8);
        var dims = BitConverter.ToInt32(image, (int)hnswStart + 12);
        var count = BitConverter.ToInt32(image, (int)hnswStart + 12 + (7 * 4));
        var header = 8 + 4 + (12 * 4) + 8 + (version >= 2 ? 4 : 0) + 4;
        return new SnapshotLayout(hnswStart, hnswStart + header + ((long)count * dims * sizeof(float)), hnswEnd, image.LongLength);
    }
}

/// <summary>Takes the counters before a load and turns the difference into a <see cref="LoadSample"/>.</summary>
internal sealed class LoadMeter
{
    private readonly long _start;
    private readonly int _gen0;
    private readonly int _gen1;
    private readonly int _gen2;
    private readonly TimeSpan _pause;
    private readonly TimeSpan _jit;
    private readonly long _jitMethods;
    private readonly long _allocated;
    private readonly Usage _usage;

    private LoadMeter()
    {
        _gen0 = GC.CollectionCount(0);
        _gen1 = GC.CollectionCount(1);
        _gen2 = GC.CollectionCount(2);
        _pause = GC.GetTotalPauseDuration();
        _jit = System.Runtime.JitInfo.GetCompilationTime();
        _jitMethods = System.Runtime.JitInfo.GetCompiledMethodCount();
        _allocated = GC.GetAllocatedBytesForCurrentThread();
        _usage = Usage.OfThread();
        _start = Stopwatch.GetTimestamp();
    }

    public static LoadMeter Start() => new();

    public LoadSample Stop(ProbeStream? probe, SnapshotLayout? layout)
    {
        var wall = Stopwatch.GetElapsedTime(_start).TotalMilliseconds;
        var end = Stopwatch.GetTimestamp();
        var usage = Usage.OfThread();
        var allocated = GC.GetAllocatedBytesForCurrentThread() - _allocated;
        double maps = 0, vectors = 0, graph = 0, validate = 0, bm25 = 0;
        if (probe is not null && layout is not null)
        {
            // Each mark is the moment a read that starts at or past the offset was issued: the loader had finished
            // everything before it. The HNSW's last read is its checksum; the gap to the keyword index's first read is
            // the graph validation.
            var atHnsw = probe.FirstReadAt(layout.HnswStart) ?? end;
            var atVectorsEnd = probe.FirstReadAt(layout.VectorsEnd) ?? end;
            var lastHnsw = probe.LastReadEndBefore(layout.HnswEnd) ?? end;
            var atBm25 = probe.FirstReadAt(layout.HnswEnd) ?? end;
            maps = Ms(_start, atHnsw);
            vectors = Ms(atHnsw, atVectorsEnd);
            graph = Ms(atVectorsEnd, lastHnsw);
            validate = Ms(lastHnsw, atBm25);
            bm25 = Ms(atBm25, end);
        }

        return new LoadSample(wall, (usage.CpuMicroseconds - _usage.CpuMicroseconds) / 1000.0, (usage.SysMicroseconds - _usage.SysMicroseconds) / 1000.0,
            GC.CollectionCount(0) - _gen0, GC.CollectionCount(1) - _gen1, GC.CollectionCount(2) - _gen2,
            (GC.GetTotalPauseDuration() - _pause).TotalMilliseconds, (System.Runtime.JitInfo.GetCompilationTime() - _jit).TotalMilliseconds,
            System.Runtime.JitInfo.GetCompiledMethodCount() - _jitMethods, usage.MinorFaults - _usage.MinorFaults, usage.MajorFaults - _usage.MajorFaults,
            usage.Voluntary - _usage.Voluntary, usage.Involuntary - _usage.Involuntary, maps, vectors, graph, validate, bm25, allocated);
    }

    /// <summary>Minor page faults of the whole process so far (getrusage(RUSAGE_SELF)); 0 where unavailable.</summary>
    public static long ProcessMinorFaults() => Usage.Of(who: 0).MinorFaults;

    private static double Ms(long from, long to) => Math.Max(0, Stopwatch.GetElapsedTime(from, to).TotalMilliseconds);

    /// <summary>getrusage(RUSAGE_THREAD) on Linux; zeros elsewhere.</summary>
    private readonly record struct Usage(long CpuMicroseconds, long SysMicroseconds, long MinorFaults, long MajorFaults, long Voluntary, long Involuntary)
    {
        private const int RusageThread = 1;

        public static Usage OfThread() => Of(RusageThread);

        public static Usage Of(int who)
        {
            if (!OperatingSystem.IsLinux())
            {
                return default;
            }

            Span<long> raw = stackalloc long[18];
            unsafe
            {
                fixed (long* p = raw)
                {
                    if (getrusage(who, p) != 0)
                    {
                        return default;
                    }
                }
            }

            // struct rusage: ru_utime, ru_stime (timeval: seconds, microseconds), then 14 longs: maxrss, ixrss, idrss,
            // isrss, minflt, majflt, nswap, inblock, oublock, msgsnd, msgrcv, nsignals, nvcsw, nivcsw.
            return new Usage((raw[0] * 1_000_000) + raw[1] + (raw[2] * 1_000_000) + raw[3], (raw[2] * 1_000_000) + raw[3], raw[8], raw[9], raw[16], raw[17]);
        }

        [DllImport("libc", SetLastError = true)]
        private static extern unsafe int getrusage(int who, long* usage);
    }
}

/// <summary>A read-only pass-through stream that records the position and time of every read.</summary>
internal sealed class ProbeStream(Stream inner) : Stream
{
    private readonly List<(long Start, long End, long IssuedAt, long DoneAt)> _reads = new(4096);

    public override bool CanRead => true;

    public override bool CanSeek => inner.CanSeek;

    public override bool CanWrite => false;

    public override long Length => inner.Length;

    public override long Position
    {
        get => inner.Position;
        set => inner.Position = value;
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var start = inner.Position;
        var issued = Stopwatch.GetTimestamp();
        var n = inner.Read(buffer);
        _reads.Add((start, start + n, issued, Stopwatch.GetTimestamp()));
        return n;
    }

    public long? FirstReadAt(long offset)
    {
        foreach (var r in _reads)
        {
            if (r.Start >= offset)
            {
                return r.IssuedAt;
            }
        }

        return null;
    }

    public long? LastReadEndBefore(long offset)
    {
        long? last = null;
        foreach (var r in _reads)
        {
            if (r.Start < offset)
            {
                last = r.DoneAt;
            }
        }

        return last;
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }

        base.Dispose(disposing);
    }
}
