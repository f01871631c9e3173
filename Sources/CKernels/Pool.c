#include "CKernels.h"

#include <immintrin.h>

// Max pooling's inner loop: one input row folded into one output row.

__attribute__((target("avx512f")))
static void max_into_avx512(float *row, const float *src, long n, long stride) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (long i = 0; i < n; i += 16) {
        long left = n - i;
        __mmask16 q = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        __m512 s;
        if (stride == 1) {
            s = _mm512_maskz_loadu_ps(q, src + i);
        } else {
            // src[2i .. 2i + 2(left - 1)]: two masked loads, the even lanes compacted.
            long need = 2 * left - 1;
            __mmask16 qa = need >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << need) - 1);
            __mmask16 qb = need >= 32 ? (__mmask16)0xFFFF : need <= 16 ? (__mmask16)0 : (__mmask16)((1u << (need - 16)) - 1);
            __m512 a = _mm512_maskz_loadu_ps(qa, src + 2 * i), b = _mm512_maskz_loadu_ps(qb, src + 2 * i + 16);
            s = _mm512_permutex2var_ps(a, even, b);
        }
        __m512 r = _mm512_maskz_loadu_ps(q, row + i);
        // max(s, r) returns r when either is NaN: the row keeps a NaN, and a NaN input leaves
        // the row as it was, as `src >= row ? src : row` does.
        _mm512_mask_storeu_ps(row + i, q, _mm512_max_ps(s, r));
    }
}

void ck_max_into_f32(float *row, const float *src, long n, long stride) {
    if (n <= 0) return;
    if ((stride == 1 || stride == 2) && ck_vector_level() >= 3) {
        max_into_avx512(row, src, n, stride);
        return;
    }
    for (long x = 0; x < n; x++) {
        float v = src[x * stride];
        row[x] = v >= row[x] ? v : row[x];
    }
}
