using System.Buffers;
using System.Diagnostics;
using System.Numerics.Tensors;
using System.Reflection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.ML.OnnxRuntime;

namespace RagOrleans.Grains.Embeddings;

/// <summary>
/// Runs a BERT-style sentence embedding model (all-MiniLM-L6-v2 by default) on ONNX Runtime, CPU only.
/// </summary>
/// <remarks>
/// All instances with the same model and thread settings share one <see cref="InferenceSession"/> (reference
/// counted): a session holds ~90 MB of weights and its own thread pool, and <c>Run</c> is thread-safe, so a second
/// session would only compete for the same cores.
/// </remarks>
public sealed class OnnxEmbeddingModel : IEmbeddingModel, IDisposable
{
    private const string HiddenStateOutput = "last_hidden_state";

    private static readonly Lock SharedLock = new();
    private static readonly Dictionary<string, SharedSession> Sessions = new(StringComparer.Ordinal);

    private readonly SharedSession _shared;
    private readonly OnnxEmbeddingOptions _options;
    private int _disposed;

    /// <summary>Loads (or joins the already loaded) model described by <paramref name="options"/>.</summary>
    public OnnxEmbeddingModel(OnnxEmbeddingOptions? options = null, ILogger<OnnxEmbeddingModel>? logger = null)
    {
        _options = options ?? new OnnxEmbeddingOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.IntraOpNumThreads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaxBatchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaxBatchTokens, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.LongTextTokens, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.MaxPaddingRatio, 1.0);

        _shared = SharedSession.Acquire(_options, logger ?? (ILogger)NullLogger.Instance);
    }

    /// <inheritdoc />
    public EmbeddingModelDescriptor Descriptor => _options.Model;

    /// <inheritdoc />
    public ITokenCounter Tokenizer => _shared.Tokenizer;

    /// <inheritdoc />
    public int ParallelCalls => Math.Max(1, Environment.ProcessorCount / _options.IntraOpNumThreads);

    /// <summary>The model's tokenizer with its encoding API.</summary>
    public WordPieceTokenizer WordPieceTokenizer => _shared.Tokenizer;

    /// <inheritdoc />
    public float[][] Embed(IReadOnlyList<string> texts, EmbeddingPurpose purpose) => Run(texts, purpose, groupDone: null);

    /// <inheritdoc />
    public void EmbedInGroups(IReadOnlyList<string> texts, EmbeddingPurpose purpose, EmbeddedGroup groupDone)
    {
        ArgumentNullException.ThrowIfNull(groupDone);
        Run(texts, purpose, groupDone);
    }

    private float[][] Run(IReadOnlyList<string> texts, EmbeddingPurpose purpose, EmbeddedGroup? groupDone)
    {
        ArgumentNullException.ThrowIfNull(texts);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var count = texts.Count;
        var results = new float[count][];
        if (count == 0)
        {
            return results;
        }

        var maxLength = Descriptor.MaxSequenceLength;
        var prefix = Descriptor.PrefixFor(purpose);
        var tokenizer = _shared.Tokenizer;

        // Tokenize everything up front so texts can be grouped by length: padding a batch to its longest member
        // wastes work quadratically, and padding to the model limit is ~15x slower for short texts.
        var ids = ArrayPool<int>.Shared.Rent(count * maxLength);
        var lengths = new int[count];
        var order = new int[count];
        try
        {
            for (var i = 0; i < count; i++)
            {
                var text = texts[i] ?? throw new ArgumentException("Texts must not be null.", nameof(texts));
                var input = prefix.Length == 0 ? text : string.Concat(prefix, text);
                lengths[i] = tokenizer.EncodeInto(input, ids, i * maxLength, maxLength, out _);
                order[i] = i;
            }

            var sortedLengths = (int[])lengths.Clone();
            Array.Sort(sortedLengths, order);

            var start = 0;
            while (start < count)
            {
                var rows = InferenceBatching.NextBatch(sortedLengths.AsSpan(start), _options);

                RunBatch(order.AsSpan(start, rows), ids, lengths, results);
                groupDone?.Invoke(order.AsSpan(start, rows), results);
                start += rows;
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(ids);
        }

        return results;
    }

    /// <summary>Releases this instance's share of the session; the last one out disposes it.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _shared.Release();
        }
    }

    private void RunBatch(ReadOnlySpan<int> members, int[] ids, int[] lengths, float[][] results)
    {
        var rows = members.Length;
        var width = 0;
        foreach (var m in members)
        {
            width = Math.Max(width, lengths[m]);
        }

        var maxLength = Descriptor.MaxSequenceLength;
        var size = rows * width;
        var inputIds = ArrayPool<long>.Shared.Rent(size);
        var mask = ArrayPool<long>.Shared.Rent(size);
        var typeIds = ArrayPool<long>.Shared.Rent(size);
        try
        {
            Array.Clear(typeIds, 0, size);
            for (var r = 0; r < rows; r++)
            {
                var source = ids.AsSpan(members[r] * maxLength, lengths[members[r]]);
                var rowIds = inputIds.AsSpan(r * width, width);
                var rowMask = mask.AsSpan(r * width, width);
                for (var t = 0; t < source.Length; t++)
                {
                    rowIds[t] = source[t];
                }

                rowIds[source.Length..].Fill(_shared.Tokenizer.PadId);
                rowMask[..source.Length].Fill(1);
                rowMask[source.Length..].Clear();
            }

            long[] shape = [rows, width];
            using var idsValue = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, inputIds.AsMemory(0, size), shape);
            using var maskValue = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, mask.AsMemory(0, size), shape);
            using var typeValue = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, typeIds.AsMemory(0, size), shape);
            var inputs = new Dictionary<string, OrtValue>(3, StringComparer.Ordinal)
            {
                ["input_ids"] = idsValue,
                ["attention_mask"] = maskValue,
            };
            if (_shared.NeedsTokenTypeIds)
            {
                inputs["token_type_ids"] = typeValue;
            }

            using var runOptions = new RunOptions();
            using var outputs = _shared.Session.Run(runOptions, inputs, _shared.OutputNames);
            var hidden = outputs[0].GetTensorDataAsSpan<float>();
            var dims = Descriptor.Dimensions;
            for (var r = 0; r < rows; r++)
            {
                var vector = new float[dims];
                var rowStart = r * width * dims;
                if (Descriptor.Pooling == PoolingMode.Cls)
                {
                    hidden.Slice(rowStart, dims).CopyTo(vector);
                }
                else
                {
                    // A plain sum suffices for the mean: the L2 normalisation below removes the 1/length factor.
                    var real = lengths[members[r]];
                    for (var t = 0; t < real; t++)
                    {
                        TensorPrimitives.Add(vector, hidden.Slice(rowStart + (t * dims), dims), vector);
                    }
                }

                var norm = TensorPrimitives.Norm(vector);
                if (norm > 0)
                {
                    TensorPrimitives.Divide(vector, norm, vector);
                }

                results[members[r]] = vector;
            }
        }
        finally
        {
            ArrayPool<long>.Shared.Return(inputIds);
            ArrayPool<long>.Shared.Return(mask);
            ArrayPool<long>.Shared.Return(typeIds);
        }
    }

    private sealed class SharedSession
    {
        private readonly string _key;
        private int _references;

        private SharedSession(string key, InferenceSession session, WordPieceTokenizer tokenizer, EmbeddingModelDescriptor model)
        {
            _key = key;
            Session = session;
            Tokenizer = tokenizer;
            NeedsTokenTypeIds = session.InputMetadata.ContainsKey("token_type_ids");
            var output = session.OutputMetadata.ContainsKey(HiddenStateOutput)
                ? HiddenStateOutput
                : session.OutputMetadata.First(o => o.Value.Dimensions.Length == 3).Key;
            var width = session.OutputMetadata[output].Dimensions[^1];
            if (width != model.Dimensions)
            {
                throw new InvalidDataException($"Model {model.Name} outputs {width}-d states but its descriptor says {model.Dimensions}.");
            }

            OutputNames = [output];
        }

        public InferenceSession Session { get; }

        public WordPieceTokenizer Tokenizer { get; }

        public bool NeedsTokenTypeIds { get; }

        public string[] OutputNames { get; }

        public static SharedSession Acquire(OnnxEmbeddingOptions options, ILogger logger)
        {
            var key = string.Join('|', options.Model.Name, options.ModelPath, options.VocabPath, options.IntraOpNumThreads);
            lock (SharedLock)
            {
                if (!Sessions.TryGetValue(key, out var shared))
                {
                    shared = Load(key, options, logger);
                    Sessions[key] = shared;
                }

                shared._references++;
                return shared;
            }
        }

        public void Release()
        {
            lock (SharedLock)
            {
                if (--_references > 0)
                {
                    return;
                }

                Sessions.Remove(_key);
            }

            Session.Dispose();
        }

        private static SharedSession Load(string key, OnnxEmbeddingOptions options, ILogger logger)
        {
            var model = options.Model;
            var stopwatch = Stopwatch.StartNew();
            using var sessionOptions = new SessionOptions
            {
                IntraOpNumThreads = options.IntraOpNumThreads,
                InterOpNumThreads = 1,
                ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
                GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            };

            // Spinning threads burn the cores between calls that the rest of the silo needs; the latency it saves is
            // negligible next to a BERT forward pass.
            sessionOptions.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
            sessionOptions.AddSessionConfigEntry("session.inter_op.allow_spinning", "0");

            // Each configured path overrides its packaged counterpart on its own: a fine-tuned model.onnx usually
            // keeps the base model's vocabulary.
            var assembly = options.ModelPath is null || options.VocabPath is null ? LoadResourceAssembly(model) : null;
            WordPieceTokenizer tokenizer;
            using (var vocab = options.VocabPath is { } vocabPath ? File.OpenRead(vocabPath) : OpenResource(assembly!, model.VocabResourceName))
            {
                tokenizer = WordPieceTokenizer.FromVocab(vocab, model.LowerCase);
            }

            var source = options.ModelPath ?? $"{model.ResourceAssembly}/{model.ModelResourceName}";
            InferenceSession session;
            if (model.QuantizeWeightsInt8)
            {
                var quantizing = Stopwatch.StartNew();
                OnnxInt8Quantization quantized;
                using (var floatModel = options.ModelPath is { } path ? File.OpenRead(path) : OpenResource(assembly!, model.ModelResourceName))
                {
                    quantized = OnnxInt8Quantizer.Quantize(floatModel);
                }

                logger.LogInformation(
                    "Quantized embedding model {Model} to int8 in {ElapsedMs} ms: {MatMuls} MatMuls, {Embeddings} embedding tables, {FloatMb:F1} MB -> {Int8Mb:F1} MB",
                    model.Name,
                    quantizing.ElapsedMilliseconds,
                    quantized.MatMulsQuantized,
                    quantized.EmbeddingsQuantized,
                    quantized.FloatModelBytes / 1e6,
                    quantized.Model.Length / 1e6);
                session = new InferenceSession(quantized.Model, sessionOptions);
            }
            else
            {
                session = options.ModelPath is { } modelPath
                    ? new InferenceSession(modelPath, sessionOptions)
                    : new InferenceSession(ReadResource(assembly!, model.ModelResourceName), sessionOptions);
            }

            try
            {
                var shared = new SharedSession(key, session, tokenizer, model);
                logger.LogInformation(
                    "Loaded embedding model {Model} from {Source} in {ElapsedMs} ms ({Threads} intra-op threads)",
                    model.Name,
                    source,
                    stopwatch.ElapsedMilliseconds,
                    options.IntraOpNumThreads);
                return shared;
            }
            catch
            {
                session.Dispose();
                throw;
            }
        }

        private static Assembly LoadResourceAssembly(EmbeddingModelDescriptor model)
        {
            try
            {
                return Assembly.Load(new AssemblyName(model.ResourceAssembly));
            }
            catch (FileNotFoundException e)
            {
                throw new InvalidOperationException(
                    $"Embedding model {model.Name} needs the {model.ResourceAssembly} package, or ModelPath and VocabPath.", e);
            }
        }

        private static Stream OpenResource(Assembly assembly, string name) =>
            assembly.GetManifestResourceStream(name)
            ?? throw new InvalidDataException($"{assembly.GetName().Name} has no resource {name}.");

        private static byte[] ReadResource(Assembly assembly, string name)
        {
            using var stream = OpenResource(assembly, name);
            var bytes = new byte[stream.Length];
            stream.ReadExactly(bytes);
            return bytes;
        }
    }
}
