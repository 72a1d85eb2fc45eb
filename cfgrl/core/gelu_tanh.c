/* The tanh-approximate GELU (flax's nn.gelu) and its derivative over float32 arrays, for cfgrl/core/fast_gelu.py.

   gelu(x) = 0.5 x (1 + tanh(u)) = x sigmoid(2u),  u = sqrt(2/pi) (x + 0.044715 x^3)

   computed as x / (1 + exp(-2u)), with exp by Cody-Waite range reduction and the Cephes single-precision
   polynomial (its coefficients). Every step is an IEEE operation written out (explicit fmaf, no contraction, no
   fast-math), so the result does not depend on the instruction set a clone runs on, nor on the compiler: the
   AVX-512 and AVX2 clones and a plain build give the same bits (tests/test_fast_gelu.py). Results below the
   smallest normal float are flushed to zero: denormal inputs make the next layer's matrix product many times
   slower (measured: a GCBC update 1.6x slower before the flush). */

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && !defined(CFGRL_NO_CLONES)
#define CLONES __attribute__((target_clones("avx512f", "arch=haswell", "default")))
#else
#define CLONES
#endif

static const float TWO_K = 1.5957691216057308f; /* 2 sqrt(2 / pi) */
static const float KAPPA = 0.044715f;
static const float SMALLEST_NORMAL = 1.17549435e-38f;

static inline float flush(float r) { return fabsf(r) < SMALLEST_NORMAL ? 0.0f : r; }

/* exp(v), v clamped to [-87, 87] (so 1 / (1 + exp(v)) stays a normal float) */
static inline float exp_clamped(float v) {
    v = v < -87.0f ? -87.0f : (v > 87.0f ? 87.0f : v);
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to the nearest integer */
    float t = fmaf(v, 1.44269504088896341f, shifter);
    float n = t - shifter;
    float r = fmaf(n, -0.693359375f, v); /* v - n ln2, ln2 split in two parts */
    r = fmaf(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    p = fmaf(p, r * r, r) + 1.0f;
    int32_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - 0x4B400000 + 127) << 23; /* 2^n */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* y[i] = gelu(x[i]) */
CLONES void cfgrl_gelu_tanh_forward(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float xi = x[i];
        float z = TWO_K * (xi + KAPPA * (xi * xi * xi));
        y[i] = flush(xi / (1.0f + exp_clamped(-z)));
    }
}

/* gx[i] = gy[i] * gelu'(x[i]),  gelu' = s + x s (1 - s) dz/dx,  s = sigmoid(z), z = 2u */
CLONES void cfgrl_gelu_tanh_backward(const float *x, const float *gy, float *gx, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float xi = x[i];
        float x2 = xi * xi;
        float z = TWO_K * (xi + KAPPA * (x2 * xi));
        float s = 1.0f / (1.0f + exp_clamped(-z));
        float dz = TWO_K * (1.0f + 3.0f * KAPPA * x2);
        gx[i] = flush(gy[i] * (s + xi * s * (1.0f - s) * dz));
    }
}

/* 2: AVX-512 clone, 1: AVX2 + FMA clone (or a non-x86 build with hardware FMA), 0: the plain loop (fmaf in
   software on x86-64 without FMA: slower than PyTorch's own kernel, so the Python side does not use it) */
int cfgrl_gelu_isa(void) {
#if defined(__x86_64__) && !defined(CFGRL_NO_CLONES)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
    return 0;
#elif defined(__FP_FAST_FMAF) || defined(__ARM_FEATURE_FMA)
    return 1;
#else
    return 0;
#endif
}
