using System.Buffers.Binary;

namespace RagOrleans.Unit.Tests.Indexing;

/// <summary>Test data for the HNSW tests: siftsmall readers, a seeded embedding-like generator and brute force.</summary>
internal static class HnswTestData
{
    /// <summary>shared/data/siftsmall, read in place.</summary>
    public static string FindSiftSmallDirectory() => TestData.Path("siftsmall");

    /// <summary>Reads an .fvecs file: per vector an int32 dimension then that many float32, little-endian.</summary>
    public static float[][] ReadFvecs(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        var rows = new List<float[]>();
        int offset = 0;
        while (offset < bytes.Length)
        {
            int dims = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(offset));
            offset += 4;
            var row = new float[dims];
            for (int i = 0; i < dims; i++, offset += 4)
            {
                row[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(offset));
            }

            rows.Add(row);
        }

        return rows.ToArray();
    }

    /// <summary>Reads an .ivecs file: per row an int32 length then that many int32, little-endian.</summary>
    public static int[][] ReadIvecs(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        var rows = new List<int[]>();
        int offset = 0;
        while (offset < bytes.Length)
        {
            int dims = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(offset));
            offset += 4;
            var row = new int[dims];
            for (int i = 0; i < dims; i++, offset += 4)
            {
                row[i] = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(offset));
            }

            rows.Add(row);
        }

        return rows.ToArray();
    }

    /// <summary>
    /// Vectors shaped like sentence embeddings: a seeded Gaussian mixture in a low-dimensional random subspace,
    /// embedded in <paramref name="dims"/> dimensions with small isotropic noise, then L2-normalised.
    /// Base and query vectors come from the same distribution but are drawn separately (held apart).
    /// </summary>
    public static (float[][] Base, float[][] Queries) EmbeddingLikeMixture(
        int count, int queries, int dims = 384, int subspace = 32, int clusters = 50, int seed = 1234,
        double clusterSpread = 0.75, double noise = 0.05)
    {
        var rng = new Random(seed);
        var basis = new double[subspace][];
        for (int s = 0; s < subspace; s++)
        {
            basis[s] = new double[dims];
            for (int d = 0; d < dims; d++)
            {
                basis[s][d] = Gaussian(rng);
            }
        }

        var centers = new double[clusters][];
        for (int c = 0; c < clusters; c++)
        {
            centers[c] = new double[subspace];
            for (int s = 0; s < subspace; s++)
            {
                centers[c][s] = Gaussian(rng);
            }
        }

        float[] Draw()
        {
            var center = centers[rng.Next(clusters)];
            var signal = new double[dims];
            for (int s = 0; s < subspace; s++)
            {
                double coefficient = center[s] + (clusterSpread * Gaussian(rng));
                var row = basis[s];
                for (int d = 0; d < dims; d++)
                {
                    signal[d] += coefficient * row[d];
                }
            }

            Normalize(signal);
            var vector = new float[dims];
            for (int d = 0; d < dims; d++)
            {
                vector[d] = (float)(signal[d] + (noise * Gaussian(rng)));
            }

            NormalizeInPlace(vector);
            return vector;
        }

        var baseVectors = new float[count][];
        for (int i = 0; i < count; i++)
        {
            baseVectors[i] = Draw();
        }

        var queryVectors = new float[queries][];
        for (int i = 0; i < queries; i++)
        {
            queryVectors[i] = Draw();
        }

        return (baseVectors, queryVectors);
    }

    /// <summary>Independent reference distance in double precision (no SIMD, no shared code with the index).</summary>
    public static double ReferenceDistance(float[] a, float[] b, bool cosine)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++)
        {
            if (cosine)
            {
                sum += (double)a[i] * b[i];
            }
            else
            {
                double d = (double)a[i] - b[i];
                sum += d * d;
            }
        }

        return cosine ? 1 - sum : sum;
    }

    /// <summary>Brute-force k nearest ids (ties by lower id) among the ids accepted by <paramref name="include"/>.</summary>
    public static int[] BruteForce(float[][] data, float[] query, int k, bool cosine, Func<int, bool>? include = null)
    {
        var scored = new List<(double Distance, int Id)>(data.Length);
        for (int i = 0; i < data.Length; i++)
        {
            if (include is null || include(i))
            {
                scored.Add((ReferenceDistance(data[i], query, cosine), i));
            }
        }

        scored.Sort();
        int take = Math.Min(k, scored.Count);
        var ids = new int[take];
        for (int i = 0; i < take; i++)
        {
            ids[i] = scored[i].Id;
        }

        return ids;
    }

    /// <summary>Fraction of the first k true ids found in the first k returned ids.</summary>
    public static double Recall(IReadOnlyList<int> returned, IReadOnlyList<int> truth, int k)
    {
        int limit = Math.Min(k, truth.Count);
        if (limit == 0)
        {
            return 1.0;
        }

        var expected = new HashSet<int>();
        for (int i = 0; i < limit; i++)
        {
            expected.Add(truth[i]);
        }

        int hits = 0;
        for (int i = 0; i < Math.Min(k, returned.Count); i++)
        {
            if (expected.Contains(returned[i]))
            {
                hits++;
            }
        }

        return (double)hits / limit;
    }

    private static double Gaussian(Random rng)
    {
        // Box-Muller; 1 - NextDouble() is in (0, 1] so the log is finite.
        double u1 = 1.0 - rng.NextDouble();
        double u2 = rng.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }

    private static void Normalize(double[] v)
    {
        double norm = 0;
        foreach (double x in v)
        {
            norm += x * x;
        }

        norm = Math.Sqrt(norm);
        for (int i = 0; i < v.Length; i++)
        {
            v[i] /= norm;
        }
    }

    public static void NormalizeInPlace(float[] v)
    {
        double norm = 0;
        foreach (float x in v)
        {
            norm += (double)x * x;
        }

        float inv = (float)(1.0 / Math.Sqrt(norm));
        for (int i = 0; i < v.Length; i++)
        {
            v[i] *= inv;
        }
    }
}
