using System.Numerics.Tensors;
using System.Reflection;
using System.Text.Json;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using RagOrleans.Grains.Embeddings;
using Xunit;

namespace RagOrleans.Unit.Tests.Embeddings;

/// <summary>The packaged float MiniLM, its int8 rewrite, and the int8 catalog model, made once for these tests.</summary>
public sealed class Int8ModelFixture : IDisposable
{
    public Int8ModelFixture()
    {
        var descriptor = EmbeddingModelDescriptor.MiniLmL6V2;
        using var stream = Assembly.Load(new AssemblyName(descriptor.ResourceAssembly)).GetManifestResourceStream(descriptor.ModelResourceName)!;
        FloatBytes = new byte[stream.Length];
        stream.ReadExactly(FloatBytes);
        Quantized = OnnxInt8Quantizer.Quantize(FloatBytes);
        Int8 = new OnnxEmbeddingModel(new OnnxEmbeddingOptions { Model = EmbeddingModelDescriptor.MiniLmL6V2Int8 });
    }

    public byte[] FloatBytes { get; }

    public OnnxInt8Quantization Quantized { get; }

    /// <summary>The catalog's <c>all-minilm-l6-v2-int8</c>, quantized on load.</summary>
    public OnnxEmbeddingModel Int8 { get; }

    public void Dispose() => Int8.Dispose();
}

[Collection(EmbeddingModelCollection.Name)]
public sealed class OnnxInt8QuantizerTests(EmbeddingModelFixture floatFixture, Int8ModelFixture fixture, Xunit.Abstractions.ITestOutputHelper output)
    : IClassFixture<Int8ModelFixture>
{
    private readonly OnnxEmbeddingModel _float = floatFixture.Model;
    private readonly OnnxEmbeddingModel _int8 = fixture.Int8;

    [Fact]
    public void Every_constant_weight_matmul_becomes_int8_and_the_model_shrinks_about_four_times()
    {
        var original = ModelProto.Parser.ParseFrom(fixture.FloatBytes).Graph;
        var model = ModelProto.Parser.ParseFrom(fixture.Quantized.Model);
        var graph = model.Graph;
        var initializers = graph.Initializer.ToDictionary(t => t.Name);

        var constantMatMuls = original.Node.Count(n => n.OpType == "MatMul" && original.Initializer.Any(t => t.Name == n.Input[1]));
        Assert.Equal(36, constantMatMuls); // 6 layers x (Q, K, V, attention output, 2 feed-forward)
        Assert.Equal(constantMatMuls, fixture.Quantized.MatMulsQuantized);
        Assert.Equal(36, fixture.Quantized.BiasesFolded);
        Assert.Equal(1, fixture.Quantized.EmbeddingsQuantized);

        // The MatMuls left multiply two activations (attention scores and their weighted sum): 2 per layer.
        Assert.DoesNotContain(graph.Node, n => n.OpType == "MatMul" && initializers.ContainsKey(n.Input[1]));
        Assert.Equal(12, graph.Node.Count(n => n.OpType == "MatMul"));
        var quantized = graph.Node.Where(n => n.OpType == "DynamicQuantizeMatMul").ToList();
        Assert.Equal(36, quantized.Count);
        Assert.All(quantized, n =>
        {
            Assert.Equal(OnnxInt8Quantizer.MicrosoftDomain, n.Domain);
            var weight = initializers[n.Input[1]];
            Assert.Equal((int)TensorProto.Types.DataType.Int8, weight.DataType);
            Assert.Equal(new[] { weight.Dims[1] }, initializers[n.Input[2]].Dims.ToArray()); // a scale per column
            Assert.Equal(string.Empty, n.Input[3]);
            Assert.Equal(new[] { weight.Dims[1] }, initializers[n.Input[4]].Dims.ToArray());
        });
        Assert.Contains(model.OpsetImport, o => o.Domain == OnnxInt8Quantizer.MicrosoftDomain && o.Version == 1);

        // What stays float is small: biases, LayerNorm, scales, and the position and token-type tables.
        var largestFloat = graph.Initializer.Where(t => t.DataType == (int)TensorProto.Types.DataType.Float).Max(t => t.Dims.Aggregate(1L, (a, d) => a * d));
        Assert.Equal(512 * 384, largestFloat);
        Assert.DoesNotContain(graph.Initializer, t => t.Name == "embeddings.word_embeddings.weight");

        var ratio = (double)fixture.FloatBytes.Length / fixture.Quantized.Model.Length;
        output.WriteLine($"{fixture.FloatBytes.Length / 1e6:F1} MB -> {fixture.Quantized.Model.Length / 1e6:F1} MB ({ratio:F2}x)");
        Assert.InRange(ratio, 3.5, 4.2);
    }

    [Fact]
    public void The_quantized_model_loads_in_onnx_runtime_with_the_float_models_inputs_and_outputs()
    {
        using var floatSession = new InferenceSession(fixture.FloatBytes);
        using var session = new InferenceSession(fixture.Quantized.Model);
        Assert.Equal(floatSession.InputMetadata.Keys.Order(), session.InputMetadata.Keys.Order());
        Assert.Equal(floatSession.OutputMetadata.Keys.Order(), session.OutputMetadata.Keys.Order());
        Assert.Equal(384, session.OutputMetadata["last_hidden_state"].Dimensions[^1]);
    }

    [Fact]
    public void The_int8_catalog_model_is_its_own_model_and_not_the_default()
    {
        Assert.Same(EmbeddingModelDescriptor.MiniLmL6V2Int8, EmbeddingModelCatalog.Resolve("minilm-int8"));
        Assert.Same(EmbeddingModelDescriptor.MiniLmL6V2Int8, EmbeddingModelCatalog.Resolve("ALL-MINILM-L6-V2-INT8"));
        Assert.Same(EmbeddingModelDescriptor.MiniLmL6V2, EmbeddingModelCatalog.Default);
        Assert.Contains("minilm-int8", EmbeddingModelCatalog.AcceptedNames, StringComparison.Ordinal);
        Assert.NotEqual(EmbeddingModelDescriptor.MiniLmL6V2.Name, _int8.Descriptor.Name);
        Assert.True(_int8.Descriptor.QuantizeWeightsInt8);
        Assert.False(EmbeddingModelDescriptor.MiniLmL6V2.QuantizeWeightsInt8);
    }

    [Fact]
    public void Int8_vectors_of_real_sentences_stay_close_to_the_float_models()
    {
        // 200 SciFact claims (short sentences) and 100 abstracts (long inputs, truncated at 256 word pieces).
        var sentences = Queries().Take(200).ToList();
        var abstracts = Passages().Skip(500).Take(100).Select(p => p.Text).ToList();
        foreach (var (label, texts) in new[] { ("claims", sentences), ("abstracts", abstracts) })
        {
            var expected = _float.Embed(texts, EmbeddingPurpose.Document);
            var actual = _int8.Embed(texts, EmbeddingPurpose.Document);
            var cosines = expected.Zip(actual, (e, a) => (double)TensorPrimitives.CosineSimilarity(e, a)).ToArray();
            output.WriteLine($"{label}: {texts.Count} texts, cosine mean {cosines.Average():F4}, min {cosines.Min():F4}");
            Assert.All(actual, v => Assert.Equal(1.0, TensorPrimitives.Norm(v), 4));
            Assert.True(cosines.Min() >= 0.975, $"{label}: min cosine {cosines.Min():F4}");
            Assert.True(cosines.Average() >= 0.99, $"{label}: mean cosine {cosines.Average():F4}");
        }
    }

    [Fact]
    public void Nearest_passages_agree_with_the_float_model_and_retrieval_quality_holds()
    {
        // 50 judged SciFact claims against 500 passages (title and start of the abstract) that hold their relevant ones:
        // near-ties between unrelated passages aside, the int8 model should rank like the float one.
        var dir = TestData.Path("scifact");
        var qrels = TestData.SciFactJudgedQueries(50);
        var relevant = qrels.Values.SelectMany(v => v).ToHashSet();
        var passages = new List<(string Id, string Text)>();
        foreach (var (id, text) in Passages())
        {
            if (relevant.Contains(id) || passages.Count - passages.Count(p => relevant.Contains(p.Id)) < 500 - relevant.Count)
            {
                passages.Add((id, text));
            }
        }

        var queries = File.ReadLines(Path.Combine(dir, "queries-train.jsonl"))
            .Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => qrels.ContainsKey(e.GetProperty("_id").GetString()!))
            .Select(e => (Id: e.GetProperty("_id").GetString()!, Text: e.GetProperty("text").GetString()!))
            .ToList();
        var texts = passages.Select(p => p.Text).ToList();
        var floatTop = TopPassages(_float, [.. queries.Select(q => q.Text)], texts);
        var int8Top = TopPassages(_int8, [.. queries.Select(q => q.Text)], texts);

        var top1 = floatTop.Zip(int8Top, (f, q) => f[0] == q[0]).Count(x => x);
        var overlap = floatTop.Zip(int8Top, (f, q) => f.Intersect(q).Count()).Average() / 10.0;
        double Mrr(List<int[]> top) => queries.Select((q, i) =>
        {
            var rank = Array.FindIndex(top[i], p => qrels[q.Id].Contains(passages[p].Id));
            return rank < 0 ? 0 : 1.0 / (rank + 1);
        }).Average();
        var (floatMrr, int8Mrr) = (Mrr(floatTop), Mrr(int8Top));
        output.WriteLine($"{queries.Count} queries, {passages.Count} passages: top-1 agreement {top1}, mean top-10 overlap {overlap:P1}, MRR@10 float {floatMrr:F3} int8 {int8Mrr:F3}");
        Assert.Equal(50, queries.Count);
        Assert.True(top1 >= 45, $"top-1 agrees for {top1} of 50 queries");
        Assert.True(overlap >= 0.8, $"top-10 overlap {overlap:P1}");
        Assert.True(int8Mrr >= floatMrr - 0.03, $"MRR@10 int8 {int8Mrr:F3} vs float {floatMrr:F3}");
    }

    [Fact]
    public void A_small_matmul_with_bias_computes_what_the_float_one_does()
    {
        // y = x W + b with W [4, 3]; the last column is all zeros (scale must not divide by zero).
        float[] weights = [0.5f, -1.0f, 0, 0.25f, 2.0f, 0, -0.75f, 0.1f, 0, 1.0f, -0.3f, 0];
        float[] bias = [0.1f, -0.2f, 0.3f];
        var bytes = TinyModel(weights, bias);
        var quantized = OnnxInt8Quantizer.Quantize(bytes, quantizeEmbeddings: false);
        Assert.Equal(1, quantized.MatMulsQuantized);
        Assert.Equal(1, quantized.BiasesFolded);

        float[] x = [1.0f, -2.0f, 0.5f, 3.0f, 0.2f, 0.4f, -1.0f, 0.0f];
        var expected = Run(bytes, x);
        var actual = Run(quantized.Model, x);
        Assert.Equal(6, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.Equal(expected[i], actual[i], 0.05);
        }

        Assert.Equal(0.3f, actual[2], 0.001);
        Assert.Equal(0.3f, actual[5], 0.001);
        Assert.Equal(quantized.Model, OnnxInt8Quantizer.Quantize(bytes, quantizeEmbeddings: false).Model);
    }

    [Fact]
    public void Per_column_scales_map_each_columns_largest_weight_to_127()
    {
        float[] weights = [1f, -0.02f, 0, 0.6f, 0.005f, 0];
        var values = new sbyte[6];
        var scales = OnnxInt8Quantizer.QuantizeColumns(weights, 2, 3, values);
        Assert.Equal(new[] { 1f / 127, 0.02f / 127, 1f }, scales);
        Assert.Equal(new sbyte[] { 127, -127, 0, 76, 32, 0 }, values);

        var rowValues = new sbyte[6];
        var rowScales = OnnxInt8Quantizer.QuantizeRows(weights, 2, 3, rowValues);
        Assert.Equal(new[] { 1f / 127, 0.6f / 127 }, rowScales);
        Assert.Equal(new sbyte[] { 127, -3, 0, 127, 1, 0 }, rowValues);
    }

    [Fact]
    public void Bytes_that_are_not_an_onnx_model_fail_with_a_clear_error()
    {
        var random = new byte[4096];
        new Random(7).NextBytes(random);
        foreach (var garbage in new[] { random, "not a model"u8.ToArray(), Array.Empty<byte>() })
        {
            var error = Assert.Throws<InvalidDataException>(() => OnnxInt8Quantizer.Quantize(garbage));
            Assert.StartsWith("Not an ONNX model", error.Message, StringComparison.Ordinal);
        }

        // A real ONNX model with nothing to quantize is refused too rather than silently returned as it was.
        var noMatMul = new ModelProto { IrVersion = 7, Graph = new GraphProto { Name = "g" } };
        noMatMul.OpsetImport.Add(new OperatorSetIdProto { Version = 13 });
        var relu = new NodeProto { OpType = "Relu", Name = "relu" };
        relu.Input.Add("x");
        relu.Output.Add("y");
        noMatMul.Graph.Node.Add(relu);
        var none = Assert.Throws<InvalidDataException>(() => OnnxInt8Quantizer.Quantize(noMatMul.ToByteArray()));
        Assert.Contains("no MatMul", none.Message, StringComparison.Ordinal);
    }

    private static List<int[]> TopPassages(OnnxEmbeddingModel model, List<string> queries, List<string> passages)
    {
        var q = model.Embed(queries, EmbeddingPurpose.Query);
        var p = model.Embed(passages, EmbeddingPurpose.Document);
        return [.. q.Select(v => Enumerable.Range(0, p.Length).OrderByDescending(i => TensorPrimitives.Dot(v, p[i])).Take(10).ToArray())];
    }

    private static IEnumerable<string> Queries() =>
        File.ReadLines(TestData.Path("scifact", "queries-train.jsonl"))
            .Select(l => JsonDocument.Parse(l).RootElement.GetProperty("text").GetString()!);

    private static IEnumerable<(string Id, string Text)> Passages() =>
        File.ReadLines(TestData.Path("scifact", "corpus.jsonl")).Select(l =>
        {
            using var json = JsonDocument.Parse(l);
            var text = json.RootElement.GetProperty("title").GetString() + ". " + json.RootElement.GetProperty("text").GetString();
            return (json.RootElement.GetProperty("_id").GetString()!, text.Length > 400 ? text[..400] : text);
        });

    private static float[] Run(byte[] model, float[] x)
    {
        using var session = new InferenceSession(model);
        using var input = OrtValue.CreateTensorValueFromMemory(x, [2, 4]);
        using var outputs = session.Run(new RunOptions(), new Dictionary<string, OrtValue> { ["x"] = input }, ["y"]);
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }

    private static byte[] TinyModel(float[] weights, float[] bias)
    {
        var graph = new GraphProto { Name = "tiny" };
        graph.Input.Add(FloatInput("x", 2, 4));
        graph.Output.Add(FloatInput("y", 2, 3));
        graph.Initializer.Add(FloatTensor("W", weights, 4, 3));
        graph.Initializer.Add(FloatTensor("b", bias, 3));
        var matMul = new NodeProto { OpType = "MatMul", Name = "matmul" };
        matMul.Input.Add("x");
        matMul.Input.Add("W");
        matMul.Output.Add("xw");
        var add = new NodeProto { OpType = "Add", Name = "add" };
        add.Input.Add("b");
        add.Input.Add("xw");
        add.Output.Add("y");
        graph.Node.Add(matMul);
        graph.Node.Add(add);
        var model = new ModelProto { IrVersion = 7, Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Version = 13 });
        return model.ToByteArray();
    }

    private static TensorProto FloatTensor(string name, float[] values, params long[] dims)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
        tensor.Dims.AddRange(dims);
        tensor.FloatData.AddRange(values);
        return tensor;
    }

    private static ValueInfoProto FloatInput(string name, params long[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
        {
            shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        }

        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }
}
