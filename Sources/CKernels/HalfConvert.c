// float16 and bfloat16 to float32 and back, for arrays: F16C and AVX2 copies picked at run
// time, portable loops elsewhere. float32 -> float16 and -> bfloat16 round to nearest even;
// NaN stays NaN (bfloat16: a quiet NaN with the same sign and top payload bits).

#include "CKernels.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CK_X86 1
#endif

#define CK_F16C __attribute__((target("avx2,f16c")))

static int ck_half_state = -1;

/// 1 when the CPU has F16C and AVX2.
static int half_vector(void) {
    int s = __atomic_load_n(&ck_half_state, __ATOMIC_RELAXED);
    if (s < 0) {
#ifdef CK_X86
        __builtin_cpu_init();
        s = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") ? 1 : 0;
#else
        s = 0;
#endif
        __atomic_store_n(&ck_half_state, s, __ATOMIC_RELAXED);
    }
    return s;
}

static inline float f16_to_f32_scalar(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {
        // Subnormal: normalize.
        int e = -1;
        do { man <<= 1; e++; } while (!(man & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3FF) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline uint16_t f32_to_f16_scalar(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7FFFFFFFu;
    if (ax >= 0x7F800000u) return sign | (ax > 0x7F800000u ? (uint16_t)(0x7E00 | ((ax >> 13) & 0x3FF)) : 0x7C00);
    if (ax >= 0x477FF000u) return sign | 0x7C00;  // rounds to infinity
    if (ax < 0x38800000u) {
        // Result is subnormal or zero: value / 2^-24 rounded to nearest even.
        if (ax < 0x33000000u) return sign;  // below half the smallest subnormal
        uint32_t man = (ax & 0x7FFFFF) | 0x800000;
        int shift = 126 - (int)(ax >> 23);  // 14..24
        uint32_t r = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return sign | (uint16_t)r;
    }
    uint32_t r = ax + 0xFFF + ((ax >> 13) & 1);
    return sign | (uint16_t)((r - 0x38000000u) >> 13);
}

static inline uint16_t f32_to_bf16_scalar(uint32_t b) {
    if ((b & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((b >> 16) | 0x0040);
    return (uint16_t)((b + 0x7FFF + ((b >> 16) & 1)) >> 16);
}

#ifdef CK_X86
CK_F16C static void f16_to_f32_vec(const uint16_t *x, float *y, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++) y[i] = f16_to_f32_scalar(x[i]);
}

CK_F16C static void f32_to_f16_vec(const float *x, uint16_t *y, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) y[i] = f32_to_f16_scalar(x[i]);
}

CK_F16C static void f32_round_f16_vec(const float *x, float *y, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT)));
    for (; i < n; i++) y[i] = f16_to_f32_scalar(f32_to_f16_scalar(x[i]));
}

CK_F16C static void bf16_to_f32_vec(const uint16_t *x, float *y, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(x + i)));
        _mm256_storeu_si256((__m256i *)(y + i), _mm256_slli_epi32(w, 16));
    }
    for (; i < n; i++) {
        uint32_t b = (uint32_t)x[i] << 16;
        memcpy(y + i, &b, 4);
    }
}

/// Eight floats rounded to bfloat16, as 32-bit lanes holding the 16 bits.
CK_F16C static inline __m256i bf16_lanes(__m256 v) {
    __m256i b = _mm256_castps_si256(v);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(b, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF))), 16);
    __m256i q = _mm256_or_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(0x0040));
    __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    return _mm256_blendv_epi8(r, q, nan);
}

CK_F16C static void f32_to_bf16_vec(const float *x, uint16_t *y, long n) {
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i lo = bf16_lanes(_mm256_loadu_ps(x + i)), hi = bf16_lanes(_mm256_loadu_ps(x + i + 8));
        __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xD8);
        _mm256_storeu_si256((__m256i *)(y + i), p);
    }
    for (; i < n; i++) {
        uint32_t b;
        memcpy(&b, x + i, 4);
        y[i] = f32_to_bf16_scalar(b);
    }
}

CK_F16C static void f32_round_bf16_vec(const float *x, float *y, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i r = _mm256_slli_epi32(bf16_lanes(_mm256_loadu_ps(x + i)), 16);
        _mm256_storeu_si256((__m256i *)(y + i), r);
    }
    for (; i < n; i++) {
        uint32_t b;
        memcpy(&b, x + i, 4);
        b = (uint32_t)f32_to_bf16_scalar(b) << 16;
        memcpy(y + i, &b, 4);
    }
}
#define CK_DISPATCH(call) if (half_vector()) { call; return; }
#else
#define CK_DISPATCH(call)
#endif

void ck_f16_to_f32(const uint16_t *x, float *y, long n) {
    CK_DISPATCH(f16_to_f32_vec(x, y, n))
    for (long i = 0; i < n; i++) y[i] = f16_to_f32_scalar(x[i]);
}

void ck_f32_to_f16(const float *x, uint16_t *y, long n) {
    CK_DISPATCH(f32_to_f16_vec(x, y, n))
    for (long i = 0; i < n; i++) y[i] = f32_to_f16_scalar(x[i]);
}

void ck_f32_round_f16(const float *x, float *y, long n) {
    CK_DISPATCH(f32_round_f16_vec(x, y, n))
    for (long i = 0; i < n; i++) y[i] = f16_to_f32_scalar(f32_to_f16_scalar(x[i]));
}

void ck_bf16_to_f32(const uint16_t *x, float *y, long n) {
    CK_DISPATCH(bf16_to_f32_vec(x, y, n))
    for (long i = 0; i < n; i++) {
        uint32_t b = (uint32_t)x[i] << 16;
        memcpy(y + i, &b, 4);
    }
}

void ck_f32_to_bf16(const float *x, uint16_t *y, long n) {
    CK_DISPATCH(f32_to_bf16_vec(x, y, n))
    for (long i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, x + i, 4);
        y[i] = f32_to_bf16_scalar(b);
    }
}

void ck_f32_round_bf16(const float *x, float *y, long n) {
    CK_DISPATCH(f32_round_bf16_vec(x, y, n))
    for (long i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, x + i, 4);
        b = (uint32_t)f32_to_bf16_scalar(b) << 16;
        memcpy(y + i, &b, 4);
    }
}
