#include "CKernels.h"
#include "Lanes512.h"

#include <immintrin.h>

// Max pooling's inner loop: one input row folded into one output row.

__attribute__((target("avx512f")))
static void max_into_avx512(float *row, const float *src, long n, long stride) {
    for (long i = 0; i < n; i += 16) {
        __mmask16 q = ck_lanes16(n - i);
        __m512 s = stride == 1 ? _mm512_maskz_loadu_ps(q, src + i) : ck_load_even16(src + 2 * i, n - i);
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
