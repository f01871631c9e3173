// Small AVX-512 helpers shared by the kernels of this target (not part of its public header).
#ifndef CK_LANES512_H
#define CK_LANES512_H

#include <immintrin.h>

/// The mask of lanes 0..<n (n clamped to 0...16).
static inline __mmask16 ck_lanes16(long n) {
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/// src[0], src[2], ..., src[2(n-1)] in lanes 0..<n (n clamped to 0...16, zero above): two masked
/// loads compacted by one permute, reading no element past src[2(n-1)].
__attribute__((target("avx512f")))
static inline __m512 ck_load_even16(const float *src, long n) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    long need = n <= 0 ? 0 : 2 * (n < 16 ? n : 16) - 1;
    __m512 a = _mm512_maskz_loadu_ps(ck_lanes16(need), src);
    __m512 b = _mm512_maskz_loadu_ps(ck_lanes16(need - 16), src + 16);
    return _mm512_permutex2var_ps(a, even, b);
}

#endif
