using System.Runtime.InteropServices;

namespace RagOrleans.Bench.Tenants;

/// <summary>Where a bench shard's vectors come from: bench/Ann's cache of real embeddings, or synthetic clusters.</summary>
internal abstract class VectorSource
{
    public abstract string Name { get; }

    /// <summary>Row i of a shard of <paramref name="size"/> vectors; <paramref name="seed"/> picks which vectors.</summary>
    public abstract Func<int, float[]> Take(int size, int seed);

    public static VectorSource Open(string path) => string.IsNullOrEmpty(path) ? new Synthetic() : new CachedFile(path);

    /// <summary>
    /// bench/Ann's cache (<c>ann-real-all-minilm-l6-v2.f32</c>): a 44-byte header (magic, version, dimensions, 32-byte
    /// fingerprint of the texts) then float32 rows. Read in place, never copied.
    /// </summary>
    private sealed class CachedFile : VectorSource
    {
        private const int HeaderBytes = 44;
        private readonly string _path;
        private readonly int _dims;
        private readonly int _rows;

        public CachedFile(string path)
        {
            _path = path;
            using var stream = File.OpenRead(path);
            Span<byte> header = stackalloc byte[12];
            stream.ReadExactly(header);
            _dims = BitConverter.ToInt32(header[8..]);
            if (_dims is < 1 or > 4096)
            {
                throw new InvalidDataException($"{path}: not a bench/Ann vector cache (dimensions {_dims}).");
            }

            _rows = (int)((stream.Length - HeaderBytes) / (_dims * sizeof(float)));
        }

        public override string Name => "minilm";

        public override Func<int, float[]> Take(int size, int seed)
        {
            if (size > _rows)
            {
                throw new ArgumentOutOfRangeException(nameof(size), size, $"{_path} holds only {_rows:N0} vectors.");
            }

            // Consecutive rows from a seed-chosen start: the cache is already shuffled, so any window is a fair sample.
            var start = (int)((uint)(seed * 7919) % (uint)(_rows - size + 1));
            var rows = new float[size * _dims];
            using (var stream = File.OpenRead(_path))
            {
                stream.Position = HeaderBytes + ((long)start * _dims * sizeof(float));
                stream.ReadExactly(MemoryMarshal.AsBytes(rows.AsSpan()));
            }

            return i => rows.AsSpan(i * _dims, _dims).ToArray();
        }
    }

    /// <summary>384-d unit vectors drawn around 2,000 random cluster centres (not uniform noise).</summary>
    private sealed class Synthetic : VectorSource
    {
        private const int Dimensions = 384;

        public override string Name => "synthetic";

        public override Func<int, float[]> Take(int size, int seed)
        {
            var random = new Random(seed);
            var centres = new float[2000][];
            for (var c = 0; c < centres.Length; c++)
            {
                centres[c] = Normalize(Enumerable.Range(0, Dimensions).Select(_ => (float)Gaussian(random)).ToArray());
            }

            return _ =>
            {
                var centre = centres[random.Next(centres.Length)];
                var vector = new float[Dimensions];
                for (var d = 0; d < Dimensions; d++)
                {
                    vector[d] = centre[d] + (0.35f * (float)Gaussian(random) / MathF.Sqrt(Dimensions));
                }

                return Normalize(vector);
            };
        }

        private static float[] Normalize(float[] v)
        {
            var norm = MathF.Sqrt(v.Sum(x => x * x));
            for (var i = 0; i < v.Length; i++)
            {
                v[i] /= norm;
            }

            return v;
        }

        private static double Gaussian(Random random) =>
            Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
    }
}
