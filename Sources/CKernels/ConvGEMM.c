#include "CKernels.h"

#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// The GEMM: weights are packed in panels of MR = 8 rows ([m/8][k][8], zero rows at the end),
// the right-hand matrix is read through one pointer per row, and the K dimension is cut in
// chunks of KC so that a KC x NR block of it stays in L1 while every weight panel passes over it.

#define MR 8
#define KC 256

static int ck_level = -1;  // 0: none, 2: AVX2+FMA, 3: AVX-512F

int ck_vector_level(void) {
    int l = __atomic_load_n(&ck_level, __ATOMIC_RELAXED);
    if (l >= 0) return l;
    __builtin_cpu_init();
    l = 0;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) l = 2;
    if (l == 2 && __builtin_cpu_supports("avx512f")) l = 3;
    const char *force = getenv("PRUNEC_CKERNELS_LEVEL");
    if (force && force[0] >= '0' && force[0] <= '3' && force[0] - '0' < l) l = force[0] - '0';
    __atomic_store_n(&ck_level, l, __ATOMIC_RELAXED);
    return l;
}

int ck_conv_gemm_available(void) { return ck_vector_level() >= 2; }

size_t ck_packed_weights_count(int m, int k) { return (size_t)((m + MR - 1) / MR) * MR * (size_t)k; }

void ck_pack_weights(int m, int k, const float *w, int ldw, float *packed) {
    int panels = (m + MR - 1) / MR;
    for (int pb = 0; pb < panels; pb++) {
        float *dst = packed + (size_t)pb * MR * k;
        for (int kk = 0; kk < k; kk++) {
            for (int i = 0; i < MR; i++) {
                int row = pb * MR + i;
                dst[kk * MR + i] = row < m ? w[(size_t)row * ldw + kk] : 0.0f;
            }
        }
    }
}

// MARK: AVX-512: 8 rows x 32 columns (16 zmm accumulators).

__attribute__((target("avx512f,fma")))
static void gemm_avx512(int m, int k, const float *packed, const float *const *rows, int p0, int p1,
                        float *y, int ldy, const float *bias) {
    int panels = (m + MR - 1) / MR;
    for (int k0 = 0; k0 < k; k0 += KC) {
        int kc = k - k0 < KC ? k - k0 : KC;
        int first = k0 == 0;
        const float *const *rk = rows + k0;
        for (int p = p0; p < p1; p += 32) {
            int nr = p1 - p < 32 ? p1 - p : 32;
            __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
            __mmask16 m1 = nr >= 32 ? (__mmask16)0xFFFF : nr <= 16 ? (__mmask16)0 : (__mmask16)((1u << (nr - 16)) - 1);
            for (int pb = 0; pb < panels; pb++) {
                const float *w = packed + (size_t)pb * MR * k + (size_t)k0 * MR;
                int mr = m - pb * MR < MR ? m - pb * MR : MR;
                float *yb = y + (size_t)pb * MR * ldy + p;
                __m512 c0[MR], c1[MR];
                if (first) {
#pragma clang loop unroll(full)
                    for (int i = 0; i < MR; i++) {
                        float b = (bias && i < mr) ? bias[pb * MR + i] : 0.0f;
                        c0[i] = _mm512_set1_ps(b);
                        c1[i] = c0[i];
                    }
                } else {
#pragma clang loop unroll(full)
                    for (int i = 0; i < MR; i++) {
                        if (i < mr) {
                            c0[i] = _mm512_maskz_loadu_ps(m0, yb + (size_t)i * ldy);
                            c1[i] = _mm512_maskz_loadu_ps(m1, yb + (size_t)i * ldy + 16);
                        } else {
                            c0[i] = _mm512_setzero_ps();
                            c1[i] = c0[i];
                        }
                    }
                }
                if (nr == 32) {
                    for (int kk = 0; kk < kc; kk++) {
                        const float *b = rk[kk] + p;
                        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
                        const float *wk = w + kk * MR;
#pragma clang loop unroll(full)
                        for (int i = 0; i < MR; i++) {
                            __m512 a = _mm512_set1_ps(wk[i]);
                            c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
                            c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
                        }
                    }
                } else {
                    for (int kk = 0; kk < kc; kk++) {
                        const float *b = rk[kk] + p;
                        __m512 b0 = _mm512_maskz_loadu_ps(m0, b), b1 = _mm512_maskz_loadu_ps(m1, b + 16);
                        const float *wk = w + kk * MR;
#pragma clang loop unroll(full)
                        for (int i = 0; i < MR; i++) {
                            __m512 a = _mm512_set1_ps(wk[i]);
                            c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
                            c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
                        }
                    }
                }
#pragma clang loop unroll(full)
                for (int i = 0; i < MR; i++) {
                    if (i < mr) {
                        _mm512_mask_storeu_ps(yb + (size_t)i * ldy, m0, c0[i]);
                        _mm512_mask_storeu_ps(yb + (size_t)i * ldy + 16, m1, c1[i]);
                    }
                }
            }
        }
    }
}

// MARK: AVX2: 4 rows x 16 columns (8 ymm accumulators), each 8-row panel in two halves.

__attribute__((target("avx2,fma")))
static inline __m256i mask8(int n) {
    // Lanes 0..<n set (n clamped to 0...8).
    n = n < 0 ? 0 : n > 8 ? 8 : n;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

__attribute__((target("avx2,fma")))
static void gemm_avx2(int m, int k, const float *packed, const float *const *rows, int p0, int p1,
                      float *y, int ldy, const float *bias) {
    int panels = (m + MR - 1) / MR;
    for (int k0 = 0; k0 < k; k0 += KC) {
        int kc = k - k0 < KC ? k - k0 : KC;
        int first = k0 == 0;
        const float *const *rk = rows + k0;
        for (int p = p0; p < p1; p += 16) {
            int nr = p1 - p < 16 ? p1 - p : 16;
            __m256i q0 = mask8(nr), q1 = mask8(nr - 8);
            for (int half = 0; half < panels * 2; half++) {
                int pb = half / 2, h = half % 2;
                int r0 = pb * MR + h * 4;
                if (r0 >= m) continue;
                int mr = m - r0 < 4 ? m - r0 : 4;
                const float *w = packed + (size_t)pb * MR * k + (size_t)k0 * MR + h * 4;
                float *yb = y + (size_t)r0 * ldy + p;
                __m256 c0[4], c1[4];
#pragma clang loop unroll(full)
                for (int i = 0; i < 4; i++) {
                    if (i < mr && !first) {
                        c0[i] = _mm256_maskload_ps(yb + (size_t)i * ldy, q0);
                        c1[i] = _mm256_maskload_ps(yb + (size_t)i * ldy + 8, q1);
                    } else {
                        float b = (first && bias && i < mr) ? bias[r0 + i] : 0.0f;
                        c0[i] = _mm256_set1_ps(b);
                        c1[i] = c0[i];
                    }
                }
                if (nr == 16) {
                    for (int kk = 0; kk < kc; kk++) {
                        const float *b = rk[kk] + p;
                        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
                        const float *wk = w + kk * MR;
#pragma clang loop unroll(full)
                        for (int i = 0; i < 4; i++) {
                            __m256 a = _mm256_broadcast_ss(wk + i);
                            c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
                            c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
                        }
                    }
                } else {
                    for (int kk = 0; kk < kc; kk++) {
                        const float *b = rk[kk] + p;
                        __m256 b0 = _mm256_maskload_ps(b, q0), b1 = _mm256_maskload_ps(b + 8, q1);
                        const float *wk = w + kk * MR;
#pragma clang loop unroll(full)
                        for (int i = 0; i < 4; i++) {
                            __m256 a = _mm256_broadcast_ss(wk + i);
                            c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
                            c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
                        }
                    }
                }
#pragma clang loop unroll(full)
                for (int i = 0; i < 4; i++) {
                    if (i < mr) {
                        if (nr == 16) {
                            _mm256_storeu_ps(yb + (size_t)i * ldy, c0[i]);
                            _mm256_storeu_ps(yb + (size_t)i * ldy + 8, c1[i]);
                        } else {
                            _mm256_maskstore_ps(yb + (size_t)i * ldy, q0, c0[i]);
                            _mm256_maskstore_ps(yb + (size_t)i * ldy + 8, q1, c1[i]);
                        }
                    }
                }
            }
        }
    }
}

void ck_gemm_rows(int m, int k, const float *packed, const float *const *rows, int p0, int p1,
                  float *y, int ldy, const float *bias) {
    if (m <= 0 || p1 <= p0) return;
    if (k <= 0) {
        for (int i = 0; i < m; i++)
            for (int p = p0; p < p1; p++) y[(size_t)i * ldy + p] = bias ? bias[i] : 0.0f;
        return;
    }
    switch (ck_vector_level()) {
    case 3: gemm_avx512(m, k, packed, rows, p0, p1, y, ldy, bias); break;
    case 2: gemm_avx2(m, k, packed, rows, p0, p1, y, ldy, bias); break;
    default: abort();  // callers check ck_conv_gemm_available()
    }
}
