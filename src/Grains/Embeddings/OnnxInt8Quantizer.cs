using System.Buffers.Binary;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace RagOrleans.Grains.Embeddings;

/// <summary>What <see cref="OnnxInt8Quantizer.Quantize"/> produced.</summary>
/// <param name="Model">The rewritten ONNX model, ready for <c>new InferenceSession(byte[])</c>.</param>
/// <param name="MatMulsQuantized">MatMul nodes with a constant weight that became <c>DynamicQuantizeMatMul</c>.</param>
/// <param name="BiasesFolded">Of those, how many absorbed the constant bias <c>Add</c> that followed them.</param>
/// <param name="EmbeddingsQuantized">Embedding-table <c>Gather</c> nodes whose table became int8 with per-row scales.</param>
/// <param name="FloatModelBytes">Size of the input model (-1 if read from a stream of unknown length).</param>
public sealed record OnnxInt8Quantization(
    byte[] Model,
    int MatMulsQuantized,
    int BiasesFolded,
    int EmbeddingsQuantized,
    long FloatModelBytes);

/// <summary>
/// Rewrites a float ONNX model so its weights are int8 and ONNX Runtime runs the dense layers on its integer GEMM
/// kernels (weight-only "dynamic" quantization: activations are quantized per call, per tensor, to uint8).
/// </summary>
/// <remarks>
/// <para>
/// Every <c>MatMul</c> whose second input is a constant float initializer of shape [K, N] becomes the ONNX Runtime
/// contrib op <c>com.microsoft.DynamicQuantizeMatMul</c> (inputs A float, B int8 [K, N], b_scale float [N], no zero
/// point, optional bias [N]). Weights are quantized symmetrically per output column, scale = max |w| / 127, so a
/// column with small weights keeps its resolution; ORT's CPU kernel accepts a 1-D b_scale of length N.
/// A following <c>Add</c> of a constant [N] vector is folded into the op's bias input, saving one pass over the output.
/// </para>
/// <para>
/// Large embedding tables read by <c>Gather</c> (axis 0) are stored as int8 with one scale per row and dequantized
/// after the lookup (Gather int8 rows, Gather their scales, Cast, Mul): a lookup touches a few rows, so this costs
/// nothing at run time and removes most of a BERT model's float weights. Small tables (positions, token types) stay
/// float. Float initializers left without readers are dropped.
/// </para>
/// <para>Pure and deterministic: the same input gives the same bytes. Needs ONNX Runtime's CPU contrib ops to run.</para>
/// </remarks>
public static class OnnxInt8Quantizer
{
    /// <summary>Domain of ONNX Runtime's contrib operators.</summary>
    public const string MicrosoftDomain = "com.microsoft";

    /// <summary>Embedding tables with fewer rows stay float (position and token-type tables are small and precise).</summary>
    public const int DefaultMinEmbeddingRows = 4096;

    private const int FloatType = (int)TensorProto.Types.DataType.Float;
    private const int Int8Type = (int)TensorProto.Types.DataType.Int8;

    /// <summary>Quantizes <paramref name="floatModel"/> (the bytes of an .onnx file with embedded weights).</summary>
    /// <param name="floatModel">The float model.</param>
    /// <param name="quantizeEmbeddings">Whether large embedding tables become int8 as well.</param>
    /// <param name="minEmbeddingRows">Row count from which an embedding table is quantized.</param>
    /// <exception cref="InvalidDataException">The bytes are not an ONNX model, or it has no MatMul with a constant weight.</exception>
    public static OnnxInt8Quantization Quantize(byte[] floatModel, bool quantizeEmbeddings = true, int minEmbeddingRows = DefaultMinEmbeddingRows)
    {
        ArgumentNullException.ThrowIfNull(floatModel);
        return Quantize(() => ModelProto.Parser.ParseFrom(floatModel), floatModel.Length, quantizeEmbeddings, minEmbeddingRows);
    }

    /// <summary>
    /// Quantizes the model read from <paramref name="floatModel"/> (e.g. a manifest resource): it is parsed straight
    /// from the stream, which saves a copy of the whole float model in memory.
    /// </summary>
    /// <inheritdoc cref="Quantize(byte[], bool, int)"/>
    public static OnnxInt8Quantization Quantize(Stream floatModel, bool quantizeEmbeddings = true, int minEmbeddingRows = DefaultMinEmbeddingRows)
    {
        ArgumentNullException.ThrowIfNull(floatModel);
        return Quantize(() => ModelProto.Parser.ParseFrom(floatModel), floatModel.CanSeek ? floatModel.Length : -1, quantizeEmbeddings, minEmbeddingRows);
    }

    private static OnnxInt8Quantization Quantize(Func<ModelProto> parse, long length, bool quantizeEmbeddings, int minEmbeddingRows)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(minEmbeddingRows, 1);

        ModelProto model;
        try
        {
            model = parse();
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"Not an ONNX model ({length} bytes): {e.Message}", e);
        }

        // Protobuf parses many byte strings "successfully" into unknown fields; a real model has a graph with nodes.
        if (model.Graph is not { } graph || graph.Node.Count == 0 || model.OpsetImport.Count == 0)
        {
            throw new InvalidDataException($"Not an ONNX model ({length} bytes): no graph with nodes and opset imports.");
        }

        var rewriter = new Rewriter(graph);
        var matMuls = rewriter.QuantizeMatMuls();
        if (matMuls == 0)
        {
            throw new InvalidDataException("The model has no MatMul with a constant float [K, N] weight to quantize.");
        }

        var embeddings = quantizeEmbeddings ? rewriter.QuantizeEmbeddings(minEmbeddingRows) : 0;
        rewriter.RemoveUnreadInitializers();

        if (!model.OpsetImport.Any(o => o.Domain == MicrosoftDomain))
        {
            model.OpsetImport.Add(new OperatorSetIdProto { Domain = MicrosoftDomain, Version = 1 });
        }

        return new OnnxInt8Quantization(model.ToByteArray(), matMuls, rewriter.BiasesFolded, embeddings, length);
    }

    /// <summary>Symmetric int8 per column of a row-major [rows, columns] matrix; scale = max |w| / 127 (1 for an all-zero column).</summary>
    internal static float[] QuantizeColumns(ReadOnlySpan<float> weights, int rows, int columns, Span<sbyte> values)
    {
        var scales = new float[columns];
        for (var r = 0; r < rows; r++)
        {
            TensorPrimitives.MaxMagnitude(weights.Slice(r * columns, columns), scales, scales);
        }

        // MaxMagnitude keeps the sign of the larger-magnitude operand.
        TensorPrimitives.Abs(scales, scales);
        var inverse = new float[columns];
        for (var c = 0; c < columns; c++)
        {
            scales[c] = scales[c] > 0 ? scales[c] / 127f : 1f;
            inverse[c] = 1f / scales[c];
        }

        var scaled = new float[columns];
        for (var r = 0; r < rows; r++)
        {
            TensorPrimitives.Multiply(weights.Slice(r * columns, columns), inverse, scaled);
            ToInt8(scaled, values.Slice(r * columns, columns));
        }

        return scales;
    }

    /// <summary>Symmetric int8 per row of a row-major [rows, columns] matrix.</summary>
    internal static float[] QuantizeRows(ReadOnlySpan<float> weights, int rows, int columns, Span<sbyte> values)
    {
        var scales = new float[rows];
        var scaled = new float[columns];
        for (var r = 0; r < rows; r++)
        {
            var row = weights.Slice(r * columns, columns);
            var max = Math.Abs(TensorPrimitives.MaxMagnitude(row));
            var scale = max > 0 ? max / 127f : 1f;
            scales[r] = scale;
            TensorPrimitives.Multiply(row, 1f / scale, scaled);
            ToInt8(scaled, values.Slice(r * columns, columns));
        }

        return scales;
    }

    /// <summary>Rounds half to even and saturates to [-127, 127] (symmetric: -128 is never used).</summary>
    private static void ToInt8(Span<float> scaled, Span<sbyte> destination)
    {
        TensorPrimitives.Round(scaled, scaled);
        TensorPrimitives.Clamp(scaled, -127f, 127f, scaled);
        TensorPrimitives.ConvertTruncating<float, sbyte>(scaled, destination);
    }

    /// <summary>The tensor's floats; raw data is read in place on little-endian machines (no copy of ~90 MB of weights).</summary>
    private static ReadOnlySpan<float> ReadFloats(TensorProto tensor)
    {
        var count = checked((int)tensor.Dims.Aggregate(1L, (a, d) => a * d));
        if (tensor.FloatData.Count == count)
        {
            return tensor.FloatData.ToArray();
        }

        var raw = tensor.RawData.Span;
        if (raw.Length != count * sizeof(float))
        {
            throw new InvalidDataException($"Initializer {tensor.Name} holds {raw.Length} bytes for {count} floats.");
        }

        if (BitConverter.IsLittleEndian)
        {
            return MemoryMarshal.Cast<byte, float>(raw);
        }

        var values = new float[count];
        for (var i = 0; i < count; i++)
        {
            values[i] = BinaryPrimitives.ReadSingleLittleEndian(raw.Slice(i * sizeof(float)));
        }

        return values;
    }

    /// <summary>An int8 tensor over <paramref name="bytes"/> without copying them (nothing else writes to the array).</summary>
    private static TensorProto Int8Tensor(string name, byte[] bytes, params long[] dims)
    {
        var tensor = new TensorProto { Name = name, DataType = Int8Type, RawData = UnsafeByteOperations.UnsafeWrap(bytes) };
        tensor.Dims.AddRange(dims);
        return tensor;
    }

    private static TensorProto FloatTensor(string name, float[] values, params long[] dims)
    {
        var bytes = new byte[values.Length * sizeof(float)];
        if (BitConverter.IsLittleEndian)
        {
            MemoryMarshal.AsBytes(values.AsSpan()).CopyTo(bytes);
        }
        else
        {
            for (var i = 0; i < values.Length; i++)
            {
                BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), values[i]);
            }
        }

        var tensor = new TensorProto { Name = name, DataType = FloatType, RawData = UnsafeByteOperations.UnsafeWrap(bytes) };
        tensor.Dims.AddRange(dims);
        return tensor;
    }

    private sealed class Rewriter
    {
        private readonly GraphProto _graph;
        private readonly Dictionary<string, TensorProto> _initializers;
        private readonly HashSet<string> _names = new(StringComparer.Ordinal);
        private readonly HashSet<string> _graphOutputs;
        private readonly HashSet<string> _replaced = new(StringComparer.Ordinal);

        public Rewriter(GraphProto graph)
        {
            _graph = graph;

            // An initializer that is also a graph input is only a default the caller may override: not a constant.
            var inputs = graph.Input.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
            _initializers = graph.Initializer
                .Where(t => !inputs.Contains(t.Name) && t.DataLocation != TensorProto.Types.DataLocation.External)
                .GroupBy(t => t.Name, StringComparer.Ordinal)
                .ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
            _graphOutputs = graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
            foreach (var t in graph.Initializer)
            {
                _names.Add(t.Name);
            }

            foreach (var i in graph.Input)
            {
                _names.Add(i.Name);
            }

            foreach (var n in graph.Node)
            {
                _names.UnionWith(n.Output);
                _names.Add(n.Name);
            }
        }

        public int BiasesFolded { get; private set; }

        public int QuantizeMatMuls()
        {
            var quantized = new Dictionary<string, (string Values, string Scales)>(StringComparer.Ordinal);
            var consumers = Consumers();
            var count = 0;
            for (var i = 0; i < _graph.Node.Count; i++)
            {
                var node = _graph.Node[i];
                if (node.OpType != "MatMul" || node.Domain.Length != 0 || node.Input.Count != 2
                    || !_initializers.TryGetValue(node.Input[1], out var weight)
                    || weight.DataType != FloatType || weight.Dims.Count != 2)
                {
                    continue;
                }

                if (!quantized.TryGetValue(weight.Name, out var names))
                {
                    var rows = checked((int)weight.Dims[0]);
                    var columns = checked((int)weight.Dims[1]);
                    var values = new byte[rows * columns];
                    var scales = QuantizeColumns(ReadFloats(weight), rows, columns, MemoryMarshal.Cast<byte, sbyte>(values.AsSpan()));
                    names = (Unique(weight.Name + "_int8"), Unique(weight.Name + "_scale"));
                    _graph.Initializer.Add(Int8Tensor(names.Values, values, rows, columns));
                    _graph.Initializer.Add(FloatTensor(names.Scales, scales, columns));
                    quantized[weight.Name] = names;
                    _replaced.Add(weight.Name);
                }

                var replacement = new NodeProto
                {
                    Name = node.Name,
                    OpType = "DynamicQuantizeMatMul",
                    Domain = MicrosoftDomain,
                };
                replacement.Input.Add(node.Input[0]);
                replacement.Input.Add(names.Values);
                replacement.Input.Add(names.Scales);
                replacement.Output.Add(node.Output[0]);

                if (FoldableBias(node.Output[0], weight.Dims[1], consumers) is { } add)
                {
                    var bias = add.Input[0] == node.Output[0] ? add.Input[1] : add.Input[0];
                    replacement.Input.Add(string.Empty); // no b_zero_point: symmetric weights
                    replacement.Input.Add(bias);
                    replacement.Output[0] = add.Output[0];
                    _graph.Node.Remove(add);
                    BiasesFolded++;
                }

                _graph.Node[i] = replacement;
                count++;
            }

            return count;
        }

        public int QuantizeEmbeddings(int minRows)
        {
            var count = 0;
            for (var i = 0; i < _graph.Node.Count; i++)
            {
                var node = _graph.Node[i];
                if (node.OpType != "Gather" || node.Domain.Length != 0 || node.Input.Count != 2
                    || node.Attribute.Any(a => a.Name == "axis" && a.I != 0)
                    || !_initializers.TryGetValue(node.Input[0], out var table)
                    || table.DataType != FloatType || table.Dims.Count != 2 || table.Dims[0] < minRows)
                {
                    continue;
                }

                var rows = checked((int)table.Dims[0]);
                var columns = checked((int)table.Dims[1]);
                var values = new byte[rows * columns];
                var scales = QuantizeRows(ReadFloats(table), rows, columns, MemoryMarshal.Cast<byte, sbyte>(values.AsSpan()));
                var valuesName = Unique(table.Name + "_int8");
                var scalesName = Unique(table.Name + "_row_scale");
                _graph.Initializer.Add(Int8Tensor(valuesName, values, rows, columns));

                // [rows, 1]: the gathered scales come out as [..., 1] and broadcast over the vector without a reshape.
                _graph.Initializer.Add(FloatTensor(scalesName, scales, rows, 1));
                _replaced.Add(table.Name);

                var ids = node.Input[1];
                var output = node.Output[0];
                var gatheredValues = Unique(output + "_int8");
                var gatheredScales = Unique(output + "_row_scale");
                var asFloat = Unique(output + "_float");
                NodeProto[] replacement =
                [
                    Node("Gather", node.Name + "_int8", [valuesName, ids], gatheredValues),
                    Node("Gather", node.Name + "_row_scale", [scalesName, ids], gatheredScales),
                    Node("Cast", node.Name + "_cast", [gatheredValues], asFloat, new AttributeProto { Name = "to", Type = AttributeProto.Types.AttributeType.Int, I = FloatType }),
                    Node("Mul", node.Name + "_dequantize", [asFloat, gatheredScales], output),
                ];
                _graph.Node.RemoveAt(i);
                for (var k = 0; k < replacement.Length; k++)
                {
                    _graph.Node.Insert(i + k, replacement[k]);
                }

                i += replacement.Length - 1;
                count++;
            }

            return count;
        }

        public void RemoveUnreadInitializers()
        {
            var read = new HashSet<string>(_graphOutputs, StringComparer.Ordinal);
            CollectInputs(_graph, read);
            for (var i = _graph.Initializer.Count - 1; i >= 0; i--)
            {
                var name = _graph.Initializer[i].Name;
                if (_replaced.Contains(name) && !read.Contains(name))
                {
                    _graph.Initializer.RemoveAt(i);
                }
            }
        }

        private static void CollectInputs(GraphProto graph, HashSet<string> read)
        {
            foreach (var node in graph.Node)
            {
                read.UnionWith(node.Input);

                // Subgraphs (If, Loop) may read outer-scope initializers by name.
                foreach (var attribute in node.Attribute)
                {
                    if (attribute.G is { } g)
                    {
                        CollectInputs(g, read);
                    }

                    foreach (var sub in attribute.Graphs)
                    {
                        CollectInputs(sub, read);
                    }
                }
            }
        }

        private static NodeProto Node(string opType, string name, string[] inputs, string output, AttributeProto? attribute = null)
        {
            var node = new NodeProto { OpType = opType, Name = name };
            node.Input.AddRange(inputs);
            node.Output.Add(output);
            if (attribute is not null)
            {
                node.Attribute.Add(attribute);
            }

            return node;
        }

        private Dictionary<string, List<NodeProto>> Consumers()
        {
            var consumers = new Dictionary<string, List<NodeProto>>(StringComparer.Ordinal);
            foreach (var node in _graph.Node)
            {
                foreach (var input in node.Input.Distinct())
                {
                    if (!consumers.TryGetValue(input, out var list))
                    {
                        consumers[input] = list = [];
                    }

                    list.Add(node);
                }
            }

            return consumers;
        }

        /// <summary>The single <c>Add</c> reading <paramref name="output"/> and a constant float [N] vector, if that is all that reads it.</summary>
        private NodeProto? FoldableBias(string output, long columns, Dictionary<string, List<NodeProto>> consumers)
        {
            if (_graphOutputs.Contains(output) || !consumers.TryGetValue(output, out var readers) || readers.Count != 1)
            {
                return null;
            }

            var add = readers[0];
            if (add.OpType != "Add" || add.Domain.Length != 0 || add.Input.Count != 2 || add.Input[0] == add.Input[1])
            {
                return null;
            }

            var other = add.Input[0] == output ? add.Input[1] : add.Input[0];
            return _initializers.TryGetValue(other, out var bias)
                   && bias.DataType == FloatType && bias.Dims.Count == 1 && bias.Dims[0] == columns
                ? add
                : null;
        }

        private string Unique(string name)
        {
            var candidate = name;
            for (var i = 1; !_names.Add(candidate); i++)
            {
                candidate = $"{name}_{i}";
            }

            return candidate;
        }
    }
}
