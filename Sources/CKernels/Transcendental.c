// Vectorized float32 transcendental functions and softmax rows.
//
// The math is written once over 8-float clang vectors in always-inline helpers; each exported
// function dispatches to a copy compiled for AVX2+FMA (`target` attribute, so no global flags
// are needed) or to a portable copy (SSE2 on x86-64). `a * b + c` in one expression becomes an
// FMA in the AVX2 copy (clang's default -ffp-contract=on).

#include "CKernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// The 8-float vectors only pass between always-inline helpers, never across a real call.
#pragma clang diagnostic ignored "-Wpsabi"

typedef float v8f __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));
typedef float v8f_u __attribute__((vector_size(32), aligned(4)));

#define CK_INLINE static inline __attribute__((always_inline))
#define CK_AVX2 __attribute__((target("avx2,fma")))

CK_INLINE v8f splat(float v) { return (v8f){v, v, v, v, v, v, v, v}; }
CK_INLINE v8f load8(const float *p) { return *(const v8f_u *)p; }
CK_INLINE void store8(float *p, v8f v) { *(v8f_u *)p = v; }
/// m ? a : b for a comparison mask m.
CK_INLINE v8f sel(v8i m, v8f a, v8f b) { return (v8f)((m & (v8i)a) | (~m & (v8i)b)); }
/// max / min that keep `v` when it is NaN (maxps/minps with `v` second).
CK_INLINE v8f vmax(v8f v, v8f lo) { return sel(lo > v, lo, v); }
CK_INLINE v8f vmin(v8f v, v8f hi) { return sel(hi < v, hi, v); }

CK_INLINE float hsum(v8f v) {
    float s0 = (v[0] + v[4]) + (v[1] + v[5]);
    float s1 = (v[2] + v[6]) + (v[3] + v[7]);
    return s0 + s1;
}

CK_INLINE float hmax(v8f v) {
    float m = v[0];
    for (int i = 1; i < 8; i++) m = v[i] > m ? v[i] : m;
    return m;
}

// Cephes expf: n = round(x log2 e), r = x - n ln 2 (two-part ln 2), degree-5 polynomial, times
// 2 * 2^(n-1) built in the exponent bits (n in [-124, 128] keeps 2^(n-1) normal). Written once
// for both vector widths (VF/VI: float and int vector types; SPLAT, SEL, VMIN, VMAX: their helpers).
#define CK_EXP_BODY(VF, VI, SPLAT, SEL, VMIN, VMAX)                          \
    const VF lo = SPLAT(-86.6f), hi = SPLAT(88.72283f);                      \
    VF x = VMIN(VMAX(v, lo), hi);                                            \
    const VF magic = SPLAT(12582912.0f);                                     \
    VF t = x * SPLAT(1.44269504088896341f) + magic;                          \
    VF fx = t - magic;                                                       \
    x = x - fx * SPLAT(0.693359375f);                                        \
    x = x - fx * SPLAT(-2.12194440e-4f);                                     \
    VF y = SPLAT(1.9875691500e-4f);                                          \
    y = y * x + SPLAT(1.3981999507e-3f);                                     \
    y = y * x + SPLAT(8.3334519073e-3f);                                     \
    y = y * x + SPLAT(4.1665795894e-2f);                                     \
    y = y * x + SPLAT(1.6666665459e-1f);                                     \
    y = y * x + SPLAT(5.0000001201e-1f);                                     \
    y = y * (x * x) + (x + SPLAT(1.0f));                                     \
    VI n = (VI)t - (VI)SPLAT(12582912.0f);                                   \
    VF p = (VF)((n + 126) << 23);                                            \
    y = (y + y) * p;                                                         \
    y = SEL(v < lo, SPLAT(0.0f), y);                                         \
    return SEL(v > hi, SPLAT(__builtin_inff()), y);

CK_INLINE v8f exp8(v8f v) { CK_EXP_BODY(v8f, v8i, splat, sel, vmin, vmax) }

// Eigen's generic_fast_tanh_float: x P(x^2) / Q(x^2) on [-7.9053, 7.9053] (+-1 beyond), x itself
// for |x| < 0.0004.
CK_INLINE v8f tanh8(v8f v) {
    const v8f c = splat(7.90531110763549805f);
    v8f x = vmin(vmax(v, -c), c);
    v8f x2 = x * x;
    v8f p = x2 * splat(-2.76076847742355e-16f) + splat(2.00018790482477e-13f);
    p = x2 * p + splat(-8.60467152213735e-11f);
    p = x2 * p + splat(5.12229709037114e-08f);
    p = x2 * p + splat(1.48572235717979e-05f);
    p = x2 * p + splat(6.37261928875436e-04f);
    p = x2 * p + splat(4.89352455891786e-03f);
    p = x * p;
    v8f q = x2 * splat(1.19825839466702e-06f) + splat(1.18534705686654e-04f);
    q = x2 * q + splat(2.26843463243900e-03f);
    q = x2 * q + splat(4.89352518554385e-03f);
    v8f r = p / q;
    v8f a = (v8f)((v8i)v & 0x7fffffff);
    return sel(a < splat(0.0004f), v, r);
}

// Eigen's generic_fast_erf_float: x P(x^2) / Q(x^2) on [-4, 4] (+-1 beyond in float).
CK_INLINE v8f erf8(v8f v) {
    v8f x = vmin(vmax(v, splat(-4.0f)), splat(4.0f));
    v8f x2 = x * x;
    v8f p = x2 * splat(-2.72614225801306e-10f) + splat(2.77068142495902e-08f);
    p = x2 * p + splat(-2.10102402082508e-06f);
    p = x2 * p + splat(-5.69250639462346e-05f);
    p = x2 * p + splat(-7.34990630326855e-04f);
    p = x2 * p + splat(-2.95459980854025e-03f);
    p = x2 * p + splat(-1.60960333262415e-02f);
    p = x * p;
    v8f q = x2 * splat(-1.45660718464996e-05f) + splat(-2.13374055278905e-04f);
    q = x2 * q + splat(-1.68282697438203e-03f);
    q = x2 * q + splat(-7.37332916720468e-03f);
    q = x2 * q + splat(-1.42647390514189e-02f);
    return p / q;
}

CK_INLINE v8f sigmoid8(v8f x) { return splat(1.0f) / (splat(1.0f) + exp8(-x)); }

CK_INLINE v8f gelu8(v8f x) {
    return splat(0.5f) * x * (splat(1.0f) + erf8(x * splat(0.70710678118654752440f)));
}

CK_INLINE v8f gelu_tanh8(v8f x) {
    v8f inner = splat(0.79788456080286535588f) * (x + splat(0.044715f) * x * x * x);
    return splat(0.5f) * x * (splat(1.0f) + tanh8(inner));
}

// Elementwise loops: two vectors per step, the tail through a padded buffer (same formulas).
#define CK_MAP_LOOP(F)                                                   \
    long i = 0;                                                          \
    for (; i + 16 <= n; i += 16) {                                       \
        v8f a = load8(x + i), b = load8(x + i + 8);                      \
        store8(y + i, F(a));                                             \
        store8(y + i + 8, F(b));                                         \
    }                                                                    \
    for (; i + 8 <= n; i += 8) store8(y + i, F(load8(x + i)));           \
    if (i < n) {                                                         \
        float buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};                         \
        memcpy(buf, x + i, (size_t)(n - i) * sizeof(float));             \
        store8(buf, F(load8(buf)));                                      \
        memcpy(y + i, buf, (size_t)(n - i) * sizeof(float));             \
    }

static int ck_avx2_state = -1;

int ck_uses_avx2(void) {
    int s = __atomic_load_n(&ck_avx2_state, __ATOMIC_RELAXED);
    if (s < 0) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_cpu_init();
        s = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
        // PRUNEC_NO_AVX2=1 runs the portable copies (to test them on an AVX2 machine).
        const char *off = getenv("PRUNEC_NO_AVX2");
        if (off && off[0] && off[0] != '0') s = 0;
#else
        s = 0;
#endif
        __atomic_store_n(&ck_avx2_state, s, __ATOMIC_RELAXED);
    }
    return s;
}

#if defined(__x86_64__) || defined(__i386__)
#define CK_DISPATCH_MAP(NAME, F)                                                    \
    CK_INLINE void NAME##_body(const float *x, float *y, long n) { CK_MAP_LOOP(F) } \
    CK_AVX2 static void NAME##_avx2(const float *x, float *y, long n) { NAME##_body(x, y, n); } \
    static void NAME##_base(const float *x, float *y, long n) { NAME##_body(x, y, n); } \
    void NAME(const float *x, float *y, long n) {                                   \
        if (ck_uses_avx2()) NAME##_avx2(x, y, n); else NAME##_base(x, y, n);        \
    }
#else
#define CK_DISPATCH_MAP(NAME, F) \
    void NAME(const float *x, float *y, long n) { CK_MAP_LOOP(F) }
#endif

CK_DISPATCH_MAP(ck_exp_f32, exp8)
CK_DISPATCH_MAP(ck_sigmoid_f32, sigmoid8)
CK_DISPATCH_MAP(ck_tanh_f32, tanh8)
CK_DISPATCH_MAP(ck_erf_f32, erf8)

// Below x = -2.5, 1 + erf(x / sqrt 2) cancels and the rational erf's ~1e-7 absolute error becomes
// a relative error above 1e-5 (up to 1e-4 near -3); those (rare) lanes are redone with erfc.
CK_INLINE v8f gelu8_fixed(v8f x) {
    v8f r = gelu8(x);
    v8i far = x < splat(-2.5f);
    long any = 0;
    for (int k = 0; k < 8; k++) any |= far[k];
    if (__builtin_expect(any != 0, 0)) {
        for (int k = 0; k < 8; k++) {
            if (far[k]) r[k] = 0.5f * x[k] * erfcf(-x[k] * 0.70710678118654752440f);
        }
    }
    return r;
}

CK_DISPATCH_MAP(ck_gelu_f32, gelu8_fixed)
CK_DISPATCH_MAP(ck_gelu_tanh_f32, gelu_tanh8)

CK_INLINE void swish_body(const float *x, float *y, long n, float alpha) {
    const v8f al = splat(-alpha);
#define CK_SWISH(v) ((v) / (splat(1.0f) + exp8(al * (v))))
    CK_MAP_LOOP(CK_SWISH)
#undef CK_SWISH
}

// One softmax row; returns 0 (row untouched) when its maximum is not finite.
CK_INLINE int softmax_row(const float *x, float *y, long n, int log) {
    v8f m0 = splat(-__builtin_inff()), m1 = m0;
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        m0 = vmax(load8(x + i), m0);
        m1 = vmax(load8(x + i + 8), m1);
    }
    for (; i + 8 <= n; i += 8) m0 = vmax(load8(x + i), m0);
    float m = hmax(vmax(m1, m0));
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    if (!(m - m == 0.0f)) return 0;  // inf or NaN (or an all -inf row)
    const v8f mv = splat(m);
    v8f s0 = splat(0.0f), s1 = s0;
    long tail = n & ~7L;
    if (log) {
        for (i = 0; i + 16 <= n; i += 16) {
            s0 += exp8(load8(x + i) - mv);
            s1 += exp8(load8(x + i + 8) - mv);
        }
        for (; i < tail; i += 8) s0 += exp8(load8(x + i) - mv);
    } else {
        for (i = 0; i + 16 <= n; i += 16) {
            v8f e0 = exp8(load8(x + i) - mv), e1 = exp8(load8(x + i + 8) - mv);
            store8(y + i, e0);
            store8(y + i + 8, e1);
            s0 += e0;
            s1 += e1;
        }
        for (; i < tail; i += 8) {
            v8f e = exp8(load8(x + i) - mv);
            store8(y + i, e);
            s0 += e;
        }
    }
    float s = hsum(s0 + s1);
    if (tail < n) {
        float buf[8];
        for (int k = 0; k < 8; k++) buf[k] = tail + k < n ? x[tail + k] - m : -__builtin_inff();
        store8(buf, exp8(load8(buf)));
        for (long k = tail; k < n; k++) {
            s += buf[k - tail];
            if (!log) y[k] = buf[k - tail];
        }
    }
    if (log) {
        const v8f sh = splat(m + logf(s));
        for (i = 0; i < tail; i += 8) store8(y + i, load8(x + i) - sh);
        for (; i < n; i++) y[i] = x[i] - (m + logf(s));
    } else {
        const float r = 1.0f / s;
        const v8f rv = splat(r);
        for (i = 0; i < tail; i += 8) store8(y + i, load8(y + i) * rv);
        for (; i < n; i++) y[i] *= r;
    }
    return 1;
}

CK_INLINE long softmax_rows_body(const float *x, float *y, long rows, long n, int log) {
    for (long r = 0; r < rows; r++) {
        if (!softmax_row(x + r * n, y + r * n, n, log)) return r;
    }
    return rows;
}

#if defined(__x86_64__)
// Softmax rows on 16-float vectors for AVX-512 CPUs: the same expf and the same steps as
// softmax_row, twice the lanes (attention's softmax is a quarter of a small UNet's run).
typedef float v16f __attribute__((vector_size(64)));
typedef int v16i __attribute__((vector_size(64)));
typedef float v16f_u __attribute__((vector_size(64), aligned(4)));
#define CK_AVX512 __attribute__((target("avx512f,avx512dq,avx2,fma")))
#define CK_INLINE512 CK_INLINE CK_AVX512

CK_INLINE512 v16f splat16(float v) { return (v16f){v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v}; }
CK_INLINE512 v16f load16(const float *p) { return *(const v16f_u *)p; }
CK_INLINE512 void store16(float *p, v16f v) { *(v16f_u *)p = v; }
CK_INLINE512 v16f sel16(v16i m, v16f a, v16f b) { return (v16f)((m & (v16i)a) | (~m & (v16i)b)); }
CK_INLINE512 v16f vmax16(v16f v, v16f lo) { return sel16(lo > v, lo, v); }
CK_INLINE512 v16f vmin16(v16f v, v16f hi) { return sel16(hi < v, hi, v); }

// exp8 on 16 lanes (the same steps: the same value per element).
CK_INLINE512 v16f exp16(v16f v) { CK_EXP_BODY(v16f, v16i, splat16, sel16, vmin16, vmax16) }

CK_AVX512 static int softmax_row16(const float *x, float *y, long n, int log) {
    v16f m0 = splat16(-__builtin_inff());
    long i = 0;
    for (; i + 16 <= n; i += 16) m0 = vmax16(load16(x + i), m0);
    float m = m0[0];
    for (int k = 1; k < 16; k++) m = m0[k] > m ? m0[k] : m;
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    if (!(m - m == 0.0f)) return 0;  // inf or NaN (or an all -inf row)
    const v16f mv = splat16(m);
    v16f s0 = splat16(0.0f);
    long tail = n & ~15L;
    for (i = 0; i < tail; i += 16) {
        v16f e = exp16(load16(x + i) - mv);
        if (!log) store16(y + i, e);
        s0 += e;
    }
    float s = 0.0f;
    for (int k = 0; k < 16; k++) s += s0[k];
    if (tail < n) {
        float buf[16];
        for (int k = 0; k < 16; k++) buf[k] = tail + k < n ? x[tail + k] - m : -__builtin_inff();
        store16(buf, exp16(load16(buf)));
        for (long k = tail; k < n; k++) {
            s += buf[k - tail];
            if (!log) y[k] = buf[k - tail];
        }
    }
    if (log) {
        const float shift = m + logf(s);
        const v16f sh = splat16(shift);
        for (i = 0; i < tail; i += 16) store16(y + i, load16(x + i) - sh);
        for (; i < n; i++) y[i] = x[i] - shift;
    } else {
        const v16f rv = splat16(1.0f / s);
        for (i = 0; i < tail; i += 16) store16(y + i, load16(y + i) * rv);
        for (; i < n; i++) y[i] *= 1.0f / s;
    }
    return 1;
}

CK_AVX512 static long softmax_avx512(const float *x, float *y, long rows, long n, int log) {
    for (long r = 0; r < rows; r++) {
        if (!softmax_row16(x + r * n, y + r * n, n, log)) return r;
    }
    return rows;
}

static int ck_avx512_state = -1;
/// AVX-512 F/DQ and AVX2 copies allowed: ck_vector_level's AVX-512 (with its
/// PRUNEC_CKERNELS_LEVEL), and PRUNEC_NO_AVX2 turns both off.
static int uses_avx512(void) {
    int s = __atomic_load_n(&ck_avx512_state, __ATOMIC_RELAXED);
    if (s < 0) {
        s = ck_uses_avx2() && ck_vector_level() >= 3 && __builtin_cpu_supports("avx512dq") ? 1 : 0;
        __atomic_store_n(&ck_avx512_state, s, __ATOMIC_RELAXED);
    }
    return s;
}
#endif

#if defined(__x86_64__) || defined(__i386__)
CK_AVX2 static void swish_avx2(const float *x, float *y, long n, float a) { swish_body(x, y, n, a); }
static void swish_base(const float *x, float *y, long n, float a) { swish_body(x, y, n, a); }
void ck_swish_f32(const float *x, float *y, long n, float alpha) {
    if (ck_uses_avx2()) swish_avx2(x, y, n, alpha); else swish_base(x, y, n, alpha);
}

CK_AVX2 static long softmax_avx2(const float *x, float *y, long rows, long n, int log) {
    return softmax_rows_body(x, y, rows, n, log);
}
static long softmax_base(const float *x, float *y, long rows, long n, int log) {
    return softmax_rows_body(x, y, rows, n, log);
}
long ck_softmax_rows_f32(const float *x, float *y, long rows, long n, int log) {
#if defined(__x86_64__)
    if (n >= 16 && uses_avx512()) return softmax_avx512(x, y, rows, n, log);
#endif
    return ck_uses_avx2() ? softmax_avx2(x, y, rows, n, log) : softmax_base(x, y, rows, n, log);
}
#else
void ck_swish_f32(const float *x, float *y, long n, float alpha) { swish_body(x, y, n, alpha); }
long ck_softmax_rows_f32(const float *x, float *y, long rows, long n, int log) {
    return softmax_rows_body(x, y, rows, n, log);
}
#endif
