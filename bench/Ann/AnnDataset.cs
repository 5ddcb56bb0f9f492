using System.Buffers.Binary;
using RagOrleans.Grains.Indexing;

namespace RagOrleans.Bench.Ann;

/// <summary>Base vectors, held-apart queries and (when the data set ships it) the exact top-k of every query.</summary>
/// <param name="Name">Label used in the output.</param>
/// <param name="Base">Vectors inserted into the index.</param>
/// <param name="Queries">Query vectors, never inserted.</param>
/// <param name="GroundTruth">Exact neighbour ids per query, best first; null when they must be computed by brute force.</param>
/// <param name="Metric">Distance the index uses.</param>
internal sealed record AnnDataset(string Name, float[][] Base, float[][] Queries, int[][]? GroundTruth, VectorMetric Metric)
{
    public int Dimensions => Base[0].Length;

    /// <summary>ANN_SIFT10K ("siftsmall"): 10,000 x 128-d SIFT descriptors, 100 queries, L2 ground truth (top 100).</summary>
    public static AnnDataset SiftSmall(string sharedData)
    {
        var dir = Path.Combine(sharedData, "siftsmall");
        return new AnnDataset(
            "siftsmall",
            ReadVecs(Path.Combine(dir, "siftsmall_base.fvecs"), BinaryPrimitives.ReadSingleLittleEndian),
            ReadVecs(Path.Combine(dir, "siftsmall_query.fvecs"), BinaryPrimitives.ReadSingleLittleEndian),
            ReadVecs(Path.Combine(dir, "siftsmall_groundtruth.ivecs"), BinaryPrimitives.ReadInt32LittleEndian),
            VectorMetric.L2);
    }

    /// <summary>
    /// Real all-MiniLM-L6-v2 embeddings (bench/Common/Real): the first <paramref name="queryCount"/> rows of the shuffled
    /// cache are the queries, so they never enter the index; the next <paramref name="baseCount"/> are the base vectors.
    /// </summary>
    public static AnnDataset Real(string sharedData, int baseCount, int queryCount)
    {
        var corpus = RealEmbeddings.Load(sharedData, baseCount + queryCount);
        return new AnnDataset(
            $"minilm-{baseCount}",
            corpus.Vectors.GetRange(queryCount, baseCount).ToArray(),
            corpus.Vectors.GetRange(0, queryCount).ToArray(),
            GroundTruth: null,
            VectorMetric.Cosine);
    }

    // .fvecs/.ivecs (TEXMEX format): every row is a little-endian int32 dimension followed by that many 4-byte values.
    private static T[][] ReadVecs<T>(string path, Func<ReadOnlySpan<byte>, T> read)
    {
        var bytes = File.ReadAllBytes(path);
        var rows = new List<T[]>();
        var offset = 0;
        while (offset < bytes.Length)
        {
            var dims = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(offset));
            offset += 4;
            var row = new T[dims];
            for (var i = 0; i < dims; i++, offset += 4)
            {
                row[i] = read(bytes.AsSpan(offset, 4));
            }

            rows.Add(row);
        }

        return [.. rows];
    }
}
