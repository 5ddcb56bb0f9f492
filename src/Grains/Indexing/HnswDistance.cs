using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace RagOrleans.Grains.Indexing;

/// <summary>A distance function the search loops are specialised on, so the metric costs no branch per call.</summary>
internal unsafe interface IDistanceKernel
{
    static abstract float Distance(float* a, float* b, int length);
}

/// <summary>Cosine distance for L2-normalised vectors.</summary>
internal readonly unsafe struct CosineKernel : IDistanceKernel
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Distance(float* a, float* b, int length) => 1f - SimdKernels.Dot(a, b, length);
}

/// <summary>Squared euclidean distance.</summary>
internal readonly unsafe struct L2Kernel : IDistanceKernel
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Distance(float* a, float* b, int length) => SimdKernels.SquaredL2(a, b, length);
}

/// <summary>
/// Hand-written SIMD kernels. Measured faster than TensorPrimitives for the 128–384 dimension range
/// because they skip span validation and alignment prologues and keep four independent FMA chains.
/// </summary>
internal static unsafe class SimdKernels
{
    public static float Dot(float* a, float* b, int length)
    {
        int i = 0;
        float sum = 0f;
        if (Vector512.IsHardwareAccelerated && length >= 16)
        {
            Vector512<float> s0 = Vector512<float>.Zero, s1 = s0, s2 = s0, s3 = s0;
            for (; i <= length - 64; i += 64)
            {
                s0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), s0);
                s1 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i + 16), Vector512.Load(b + i + 16), s1);
                s2 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i + 32), Vector512.Load(b + i + 32), s2);
                s3 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i + 48), Vector512.Load(b + i + 48), s3);
            }

            for (; i <= length - 16; i += 16)
            {
                s0 = Vector512.FusedMultiplyAdd(Vector512.Load(a + i), Vector512.Load(b + i), s0);
            }

            sum = Vector512.Sum((s0 + s1) + (s2 + s3));
        }
        else if (Vector256.IsHardwareAccelerated && Fma.IsSupported && length >= 8)
        {
            Vector256<float> s0 = Vector256<float>.Zero, s1 = s0, s2 = s0, s3 = s0;
            for (; i <= length - 32; i += 32)
            {
                s0 = Fma.MultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), s0);
                s1 = Fma.MultiplyAdd(Vector256.Load(a + i + 8), Vector256.Load(b + i + 8), s1);
                s2 = Fma.MultiplyAdd(Vector256.Load(a + i + 16), Vector256.Load(b + i + 16), s2);
                s3 = Fma.MultiplyAdd(Vector256.Load(a + i + 24), Vector256.Load(b + i + 24), s3);
            }

            for (; i <= length - 8; i += 8)
            {
                s0 = Fma.MultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), s0);
            }

            sum = Vector256.Sum((s0 + s1) + (s2 + s3));
        }
        else if (Vector128.IsHardwareAccelerated && length >= 4)
        {
            Vector128<float> s0 = Vector128<float>.Zero, s1 = s0;
            for (; i <= length - 8; i += 8)
            {
                s0 += Vector128.Load(a + i) * Vector128.Load(b + i);
                s1 += Vector128.Load(a + i + 4) * Vector128.Load(b + i + 4);
            }

            for (; i <= length - 4; i += 4)
            {
                s0 += Vector128.Load(a + i) * Vector128.Load(b + i);
            }

            sum = Vector128.Sum(s0 + s1);
        }

        for (; i < length; i++)
        {
            sum += a[i] * b[i];
        }

        return sum;
    }

    public static float SquaredL2(float* a, float* b, int length)
    {
        int i = 0;
        float sum = 0f;
        if (Vector512.IsHardwareAccelerated && length >= 16)
        {
            Vector512<float> s0 = Vector512<float>.Zero, s1 = s0, s2 = s0, s3 = s0;
            for (; i <= length - 64; i += 64)
            {
                var d0 = Vector512.Load(a + i) - Vector512.Load(b + i);
                var d1 = Vector512.Load(a + i + 16) - Vector512.Load(b + i + 16);
                var d2 = Vector512.Load(a + i + 32) - Vector512.Load(b + i + 32);
                var d3 = Vector512.Load(a + i + 48) - Vector512.Load(b + i + 48);
                s0 = Vector512.FusedMultiplyAdd(d0, d0, s0);
                s1 = Vector512.FusedMultiplyAdd(d1, d1, s1);
                s2 = Vector512.FusedMultiplyAdd(d2, d2, s2);
                s3 = Vector512.FusedMultiplyAdd(d3, d3, s3);
            }

            for (; i <= length - 16; i += 16)
            {
                var d = Vector512.Load(a + i) - Vector512.Load(b + i);
                s0 = Vector512.FusedMultiplyAdd(d, d, s0);
            }

            sum = Vector512.Sum((s0 + s1) + (s2 + s3));
        }
        else if (Vector256.IsHardwareAccelerated && Fma.IsSupported && length >= 8)
        {
            Vector256<float> s0 = Vector256<float>.Zero, s1 = s0, s2 = s0, s3 = s0;
            for (; i <= length - 32; i += 32)
            {
                var d0 = Vector256.Load(a + i) - Vector256.Load(b + i);
                var d1 = Vector256.Load(a + i + 8) - Vector256.Load(b + i + 8);
                var d2 = Vector256.Load(a + i + 16) - Vector256.Load(b + i + 16);
                var d3 = Vector256.Load(a + i + 24) - Vector256.Load(b + i + 24);
                s0 = Fma.MultiplyAdd(d0, d0, s0);
                s1 = Fma.MultiplyAdd(d1, d1, s1);
                s2 = Fma.MultiplyAdd(d2, d2, s2);
                s3 = Fma.MultiplyAdd(d3, d3, s3);
            }

            for (; i <= length - 8; i += 8)
            {
                var d = Vector256.Load(a + i) - Vector256.Load(b + i);
                s0 = Fma.MultiplyAdd(d, d, s0);
            }

            sum = Vector256.Sum((s0 + s1) + (s2 + s3));
        }
        else if (Vector128.IsHardwareAccelerated && length >= 4)
        {
            Vector128<float> s0 = Vector128<float>.Zero;
            for (; i <= length - 4; i += 4)
            {
                var d = Vector128.Load(a + i) - Vector128.Load(b + i);
                s0 += d * d;
            }

            sum = Vector128.Sum(s0);
        }

        for (; i < length; i++)
        {
            float d = a[i] - b[i];
            sum += d * d;
        }

        return sum;
    }
}
