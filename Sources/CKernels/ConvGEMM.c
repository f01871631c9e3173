#include "CKernels.h"
#include "Lanes512.h"

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// The GEMM: weights are packed in panels of MR = 8 rows, chunk-major ([k/kc][m/8][kc][8], zero
// rows at the end; kc from kc_step), so the weights one K chunk needs are one sequential stream.
// The right-hand matrix is read through one pointer per row, and the K dimension is cut in chunks
// of KC (kernels that pack) so that a KC x NR block of it stays in L1 while the weight panels pass
// over it. KC = 128: with 48 columns per block, 256 filled L1 (48 KiB) with the block alone and
// ran 5-10% slower on ResNet-50's convolutions.

#define MR 8
#define KC 128
#define KC_DIRECT 512
#define DIRECT_MAX_ROWS 128  // output rows from this pack their panels

// The K chunk of an M-row product (the packed weights' layout and every kernel's loop): KC for
// the kernels that pack their panels; equal chunks of at most KC_DIRECT for those that read the
// right-hand matrix in place (fewer rows: no panel to keep in L1), so that the accumulators stay
// in registers longer and no short last chunk reloads them (k = 144 cut 128 + 16 cost 5% on a
// 16-channel 3x3 layer).
static int kc_step(int m, int k) {
    if (m >= DIRECT_MAX_ROWS || k <= 0) return KC;
    int n = (k + KC_DIRECT - 1) / KC_DIRECT;
    return (k + n - 1) / n;
}

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

// Where panel pb of the K chunk starting at k0 (kc rows) lies in the packed weights of `panels`
// panels: the chunk-major layout of ck_pack_weights.
static inline size_t panel_offset(int panels, int k0, int kc, int pb) {
    return (size_t)k0 * panels * MR + (size_t)pb * kc * MR;
}

size_t ck_packed_weights_count(int m, int k) { return (size_t)((m + MR - 1) / MR) * MR * (size_t)k; }

void ck_pack_weights(int m, int k, const float *w, int ldw, float *packed) {
    // Chunk-major: [k / kc][panel][kc][MR], so that the weights one K chunk needs are one
    // sequential stream for the hardware prefetcher.
    int panels = (m + MR - 1) / MR;
    int step = kc_step(m, k);
    for (int k0 = 0; k0 < k; k0 += step) {
        int kc = k - k0 < step ? k - k0 : step;
        for (int pb = 0; pb < panels; pb++) {
            float *dst = packed + panel_offset(panels, k0, kc, pb);
            for (int kk = 0; kk < kc; kk++) {
                for (int i = 0; i < MR; i++) {
                    int row = pb * MR + i;
                    dst[kk * MR + i] = row < m ? w[(size_t)row * ldw + k0 + kk] : 0.0f;
                }
            }
        }
    }
}

// The epilogue as a pass over the block just written (the kernels that do not apply it in
// registers).
static void epilogue_pass(int r0, int r1, int p0, int p1, float *y, int ldy, const ck_gemm_epilogue *ep) {
    if (!ep->residual && !ep->relu) return;
    for (int i = r0; i < r1; i++) {
        float *row = y + (size_t)i * ldy;
        const float *res = ep->residual ? ep->residual + (size_t)i * ldy : 0;
        if (res) for (int p = p0; p < p1; p++) row[p] += res[p];
        if (ep->relu) for (int p = p0; p < p1; p++) row[p] = row[p] > 0 ? row[p] : 0.0f;
    }
}

// MARK: AVX-512, unpacked: 8 rows x 32 columns (16 zmm accumulators) read through the row pointers.
//
// For few output rows: packing a panel costs about what 8 to 16 rows of tiles compute on it, so
// a 16-channel convolution over a 32x32 map ran 1.6x slower packed.

__attribute__((target("avx512f,fma")))
static void gemm_avx512_unpacked(int m, int k, const float *packed, int r0, int r1, const float *const *rows, int p0, int p1,
                                 float *y, int ldy, const float *bias) {
    int panels = (m + MR - 1) / MR;
    int step = kc_step(m, k);
    for (int k0 = 0; k0 < k; k0 += step) {
        int kc = k - k0 < step ? k - k0 : step;
        int first = k0 == 0;
        const float *const *rk = rows + k0;
        for (int p = p0; p < p1; p += 32) {
            int nr = p1 - p < 32 ? p1 - p : 32;
            __mmask16 m0 = ck_lanes16(nr), m1 = ck_lanes16(nr - 16);
            for (int pb = r0 / MR; pb < (r1 + MR - 1) / MR; pb++) {
                const float *w = packed + panel_offset(panels, k0, kc, pb);
                int mr = r1 - pb * MR < MR ? r1 - pb * MR : MR;
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

// MARK: AVX-512: 8 rows x 48 columns (24 zmm accumulators; 16 or 32 columns for the last block).
//
// The right-hand matrix is first copied, KC rows x 48 columns at a time, into a contiguous,
// aligned panel (zero past the last column): the kernel then reads it with aligned loads and no
// row pointers, and rows whose addresses are a multiple of 4 KiB apart (a 1x1 convolution over a
// 56x56 map: 12,544 bytes) no longer evict each other from L1. Three vectors per row give 24
// multiply-adds per 8 weight broadcasts (16 with two). Rows of weights are taken MC at a time so
// the weights of one block stay in L2 while every column panel passes over them, and a 7x7 map's
// few panels no longer stream a 512-channel layer's weights from memory once each.

#define NR512 48
#define MC512 256
#define PACK_MIN_ROWS 64  // fewer output rows read row pointers unpacked
#define NCB512 960  // columns packed per block (a multiple of NR512): KC x NCB floats < 1 MiB

static __thread float *pack_buf;
static __thread size_t pack_cap;

static float *pack_scratch(size_t floats) {
    if (floats > pack_cap) {
        free(pack_buf);
        pack_buf = aligned_alloc(64, floats * sizeof(float));
        pack_cap = pack_buf ? floats : 0;
    }
    return pack_buf;
}

// Copies columns p..<p+nr of kc rows into dst, NV vectors (16 floats each) per row, zero past nr.
__attribute__((target("avx512f,fma")))
static void pack_panel512(const float *const *rk, int kc, int p, int nr, int nv, float *dst) {
    __mmask16 q[3] = {ck_lanes16(nr), ck_lanes16(nr - 16), ck_lanes16(nr - 32)};
    for (int kk = 0; kk < kc; kk++) {
        const float *b = rk[kk] + p;
        for (int v = 0; v < nv; v++) _mm512_store_ps(dst + (kk * nv + v) * 16, _mm512_maskz_loadu_ps(q[v], b + v * 16));
    }
}

// Copies n floats (n <= 48) with masked vector moves.
__attribute__((target("avx512f,fma")))
static inline void copy_floats512(float *dst, const float *src, int n) {
    for (int i = 0; i < n; i += 16) {
        __mmask16 q = ck_lanes16(n - i);
        _mm512_mask_storeu_ps(dst + i, q, _mm512_maskz_loadu_ps(q, src + i));
    }
}

// dst[t] = src[2t] for t < n (no element past src[2(n-1)] is read).
__attribute__((target("avx512f,fma")))
static inline void copy_even_floats512(float *dst, const float *src, int n) {
    for (int i = 0; i < n; i += 16)
        _mm512_mask_storeu_ps(dst + i, ck_lanes16(n - i), ck_load_even16(src + 2 * i, n - i));
}

// dst[t] = src[t sw] for t < n: one run of a panel row's columns.
__attribute__((target("avx512f,fma")))
static inline void copy_run512(float *dst, const float *src, int n, int sw) {
    if (sw == 1) copy_floats512(dst, src, n);
    else if (sw == 2) copy_even_floats512(dst, src, n);
    else for (int t = 0; t < n; t++) dst[t] = src[(size_t)t * sw];
}

// The columns t of a segment starting at input column x0 with 0 <= x0 + t sw < iw, clipped to
// 0..<n (empty when hi <= lo).
static inline void window_columns(int x0, int sw, int iw, int n, int *lo, int *hi) {
    int l, h;
    if (sw == 1) {
        l = x0 >= 0 ? 0 : -x0;
        h = iw - x0;
    } else {
        l = x0 >= 0 ? 0 : (-x0 + sw - 1) / sw;
        h = iw - x0 <= 0 ? 0 : (iw - x0 + sw - 1) / sw;
    }
    *lo = l;
    *hi = h < n ? h : n;
}

#define WINDOW_TABLE_KW 16  // kernel heights and widths up to this may take lane masks
#define LANES_WINDOW_OW 16  // strided maps narrower than this gather their panels

#define WINDOW_OPS 512  // (kernel offset, segment) copies listed per panel, at most

// The segment path's copies listed once per panel: for each kernel offset (kh, kw), the runs of
// columns that lie inside the input, as (panel column, offset in the channel's plane, length).
// Every channel repeats the same list, so the bounds are worked out kh kw times per panel
// instead of once per panel row (a stride-2 layer over a 16-wide map spent 40% of its time
// packing, mostly on them).
__attribute__((target("avx512f,fma")))
static void pack_window_ops512(const ck_gemm_source *g, int k0, int kc, int nv, int nseg, const int *segJ,
                               const int *segX, const int *segY, const int *segN, float *dst) {
    int opJ[WINDOW_OPS], opS[WINDOW_OPS], opN[WINDOW_OPS], first[WINDOW_OPS + 1];
    int ks = g->kh * g->kw, count = 0;
    for (int c = 0; c < ks; c++) {
        int kh = c / g->kw, kw = c % g->kw;
        first[c] = count;
        for (int s = 0; s < nseg; s++) {
            int yi = segY[s] + kh * g->dh;
            if ((unsigned)yi >= (unsigned)g->ih) continue;
            int x0 = segX[s] + kw * g->dw, lo, hi;
            window_columns(x0, g->sw, g->iw, segN[s], &lo, &hi);
            if (hi <= lo) continue;
            opJ[count] = segJ[s] + lo;
            opS[count] = yi * g->iw + x0 + lo * g->sw;
            opN[count] = hi - lo;
            count++;
        }
    }
    first[ks] = count;
    int plane = g->ih * g->iw, width = nv * 16;
    int ch = k0 / ks, c = k0 % ks;
    const __m512 zero = _mm512_setzero_ps();
    for (int kk = 0; kk < kc; kk++) {
        float *d = dst + (size_t)kk * width;
        for (int v = 0; v < nv; v++) _mm512_store_ps(d + 16 * v, zero);
        const float *pl = g->x + (size_t)ch * plane;
        for (int o = first[c]; o < first[c + 1]; o++) copy_run512(d + opJ[o], pl + opS[o], opN[o], g->sw);
        if (++c == ks) { c = 0; ch++; }
    }
}

// The output rows and columns of the 16 consecutive output positions from col0 (row-major over
// an ow-wide map).
__attribute__((target("avx512f,fma")))
static inline void output_positions16(const ck_gemm_source *g, int col0, __m512i *oh, __m512i *ow) {
    int r[16], c[16];
    for (int t = 0; t < 16; t++) {
        r[t] = (col0 + t) / g->ow;
        c[t] = (col0 + t) % g->ow;
    }
    *oh = _mm512_loadu_si512(r);
    *ow = _mm512_loadu_si512(c);
}

// The panel of a window source by lane masks: row (channel, kh, kw) of the panel is one masked
// load (stride 1 over a map as wide as the input: the element of column q lies at a fixed offset
// from x[q]) or one gather (any other stride) per vector, its mask the lanes whose input row and
// column are inside the input. Per-segment copies spend more on bookkeeping than on moving
// floats when the output rows are short (an 8 x 8 map: six 8-float segments per panel row).
__attribute__((target("avx512f,fma")))
static void pack_window_lanes512(const ck_gemm_source *g, int k0, int kc, int p, int nr, int nv, float *dst) {
    int flat = g->sh == 1 && g->sw == 1 && g->ow == g->iw;
    __m512i rowIn[3], colIn[3], idx[3];
    __mmask16 live[3];
    for (int v = 0; v < nv; v++) {
        __m512i ohv, owv;
        output_positions16(g, p + 16 * v, &ohv, &owv);
        rowIn[v] = _mm512_sub_epi32(_mm512_mullo_epi32(ohv, _mm512_set1_epi32(g->sh)), _mm512_set1_epi32(g->ph));
        colIn[v] = _mm512_sub_epi32(_mm512_mullo_epi32(owv, _mm512_set1_epi32(g->sw)), _mm512_set1_epi32(g->pw));
        idx[v] = _mm512_add_epi32(_mm512_mullo_epi32(rowIn[v], _mm512_set1_epi32(g->iw)), colIn[v]);
        live[v] = ck_lanes16(nr - 16 * v);
    }
    __mmask16 rowOk[WINDOW_TABLE_KW][3], colOk[WINDOW_TABLE_KW][3];
    const __m512i ihv = _mm512_set1_epi32(g->ih), iwv = _mm512_set1_epi32(g->iw);
    for (int v = 0; v < nv; v++) {
        for (int kh = 0; kh < g->kh; kh++)
            rowOk[kh][v] = _mm512_mask_cmplt_epu32_mask(live[v], _mm512_add_epi32(rowIn[v], _mm512_set1_epi32(kh * g->dh)), ihv);
        for (int kw = 0; kw < g->kw; kw++)
            colOk[kw][v] = _mm512_cmplt_epu32_mask(_mm512_add_epi32(colIn[v], _mm512_set1_epi32(kw * g->dw)), iwv);
    }
    int ks = g->kh * g->kw, plane = g->ih * g->iw, width = nv * 16;
    int ch = k0 / ks, kh = k0 % ks / g->kw, kw = k0 % g->kw;
    for (int kk = 0; kk < kc; kk++) {
        float *d = dst + (size_t)kk * width;
        // Only unmasked lanes are read, so the base may lie outside the input.
        const float *pl = g->x + (size_t)ch * plane;
        ptrdiff_t off = (ptrdiff_t)kh * g->dh * g->iw + (ptrdiff_t)kw * g->dw;
        for (int v = 0; v < nv; v++) {
            __mmask16 q = rowOk[kh][v] & colOk[kw][v];
            __m512 e = flat ? _mm512_maskz_loadu_ps(q, (const float *)((uintptr_t)pl + (uintptr_t)((p + 16 * v - g->ph * g->iw - g->pw + off) * 4)))
                            : _mm512_mask_i32gather_ps(_mm512_setzero_ps(), q, idx[v], (const float *)((uintptr_t)pl + (uintptr_t)(off * 4)), 4);
            _mm512_store_ps(d + 16 * v, e);
        }
        if (++kw == g->kw) {
            kw = 0;
            if (++kh == g->kh) { kh = 0; ch++; }
        }
    }
}

// The panel of a 2-D window source: row k0 + kk is (channel, kh, kw), column p + j the output
// position (oh, ow) in row-major order; the element is the input at (oh sh - ph + kh dh,
// ow sw - pw + kw dw), zero outside the input. This is im2col for 48 columns at a time, in L1:
// by lane masks where the map is narrow or the offset fixed, else by runs of columns per output
// row (segments), listed once per panel where the list is short, worked out per row otherwise.
__attribute__((target("avx512f,fma")))
static void pack_window512(const ck_gemm_source *g, int k0, int kc, int p, int nr, int nv, float *dst) {
    if (g->kh <= WINDOW_TABLE_KW && g->kw <= WINDOW_TABLE_KW &&
        ((g->sh == 1 && g->sw == 1 && g->ow == g->iw) || g->ow < LANES_WINDOW_OW)) {
        pack_window_lanes512(g, k0, kc, p, nr, nv, dst);
        return;
    }
    // The output rows the panel's columns lie in (a 7-wide map: seven rows per 48 columns).
    int segJ[NR512], segX[NR512], segY[NR512], segN[NR512], nseg = 0;
    for (int j = 0; j < nr;) {
        int q = p + j, oh = q / g->ow, ow = q % g->ow;
        int cnt = g->ow - ow < nr - j ? g->ow - ow : nr - j;
        segJ[nseg] = j;
        segY[nseg] = oh * g->sh - g->ph;
        segX[nseg] = ow * g->sw - g->pw;
        segN[nseg] = cnt;
        nseg++;
        j += cnt;
    }
    int ks = g->kh * g->kw, plane = g->ih * g->iw, width = nv * 16;
    if (ks * nseg <= WINDOW_OPS) {
        pack_window_ops512(g, k0, kc, nv, nseg, segJ, segX, segY, segN, dst);
        return;
    }
    int ch = k0 / ks, kh = k0 % ks / g->kw, kw = k0 % g->kw;
    const __m512 zero = _mm512_setzero_ps();
    for (int kk = 0; kk < kc; kk++) {
        float *d = dst + (size_t)kk * width;
        for (int v = 0; v < nv; v++) _mm512_store_ps(d + 16 * v, zero);
        const float *pl = g->x + (size_t)ch * plane;
        int dy = kh * g->dh, dx = kw * g->dw;
        for (int s = 0; s < nseg; s++) {
            int yi = segY[s] + dy;
            if ((unsigned)yi >= (unsigned)g->ih) continue;
            int x0 = segX[s] + dx, lo, hi;
            window_columns(x0, g->sw, g->iw, segN[s], &lo, &hi);
            if (hi <= lo) continue;
            copy_run512(d + segJ[s] + lo, pl + (size_t)yi * g->iw + x0 + (ptrdiff_t)lo * g->sw, hi - lo, g->sw);
        }
        if (++kw == g->kw) {
            kw = 0;
            if (++kh == g->kh) { kh = 0; ch++; }
        }
    }
}

// A tile's accumulators at the start of a K chunk: the bias (first chunk; zero rows past mr) or
// the partial sums already in y.
__attribute__((target("avx512f,fma")))
static inline __attribute__((always_inline)) void tile_start512(const int NV, __m512 (*c)[3], const __mmask16 *q, const float *yb,
                                                                int ldy, int mr, int first, const float *bias) {
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
#pragma clang loop unroll(full)
        for (int v = 0; v < NV; v++) {
            if (first) c[i][v] = _mm512_set1_ps((bias && i < mr) ? bias[i] : 0.0f);
            else c[i][v] = i < mr ? _mm512_maskz_loadu_ps(q[v], yb + (size_t)i * ldy + v * 16) : _mm512_setzero_ps();
        }
    }
}

// One row of K: c[i] += w[i] b for the tile's MR rows.
__attribute__((target("avx512f,fma")))
static inline __attribute__((always_inline)) void tile_step512(const int NV, __m512 (*c)[3], const __m512 *b, const float *wk) {
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
        __m512 a = _mm512_set1_ps(wk[i]);
#pragma clang loop unroll(full)
        for (int v = 0; v < NV; v++) c[i][v] = _mm512_fmadd_ps(a, b[v], c[i][v]);
    }
}

// Writes a tile's mr rows to y, adding the residual (laid out as y) and clamping at 0 when asked.
__attribute__((target("avx512f,fma")))
static inline __attribute__((always_inline)) void tile_store512(const int NV, __m512 (*c)[3], const __mmask16 *q, float *yb, int ldy,
                                                                int mr, const float *res, int relu) {
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
        if (i < mr) {
#pragma clang loop unroll(full)
            for (int v = 0; v < NV; v++) {
                __m512 t = c[i][v];
                if (res) t = _mm512_add_ps(t, _mm512_maskz_loadu_ps(q[v], res + (size_t)i * ldy + v * 16));
                if (relu) t = _mm512_max_ps(t, _mm512_setzero_ps());
                _mm512_mask_storeu_ps(yb + (size_t)i * ldy + v * 16, q[v], t);
            }
        }
    }
}

// What the tile of 8-row panel pb at column p reads and writes in K chunk (k0, kc): its packed
// weights, output, rows (mr), bias, and on the last chunk the epilogue's residual and clamp.
typedef struct {
    const float *w, *bias, *res;
    float *y;
    int mr, relu;
} tile_target;

static inline tile_target tile_at(int panels, const float *packed, int k0, int kc, int pb, int r1, float *y, int ldy, int p,
                                  const float *bias, const ck_gemm_epilogue *ep, int last) {
    tile_target t;
    t.w = packed + panel_offset(panels, k0, kc, pb);
    t.mr = r1 - pb * MR < MR ? r1 - pb * MR : MR;
    t.y = y + (size_t)pb * MR * ldy + p;
    t.bias = bias ? bias + pb * MR : 0;
    t.res = last && ep->residual ? ep->residual + (size_t)pb * MR * ldy + p : 0;
    t.relu = last && ep->relu;
    return t;
}

// An MR x (16 NV) tile over kc rows: y (row stride ldy) = bias (first chunk) or y, plus W x B;
// on the last chunk, plus the residual (laid out as y) and clamped at 0 when asked, before the
// tile leaves the registers.
__attribute__((target("avx512f,fma")))
static inline __attribute__((always_inline)) void tile512(const int NV, int kc, const float *w, const float *bp, float *yb, int ldy,
                                                           int mr, int nr, int first, const float *bias,
                                                           const float *res, int relu) {
    __m512 c[MR][3];
    __mmask16 q[3] = {ck_lanes16(nr), ck_lanes16(nr - 16), ck_lanes16(nr - 32)};
    tile_start512(NV, c, q, yb, ldy, mr, first, bias);
    for (int kk = 0; kk < kc; kk++) {
        __m512 b[3];
#pragma clang loop unroll(full)
        for (int v = 0; v < NV; v++) b[v] = _mm512_load_ps(bp + (kk * NV + v) * 16);
        tile_step512(NV, c, b, w + kk * MR);
    }
    tile_store512(NV, c, q, yb, ldy, mr, res, relu);
}

// MARK: AVX-512, direct: a window read in place, as a stride-1 window over one plane per phase.
//
// Where the output is as wide as the input (stride 1, "same" pads), column q of row (channel,
// kh, kw) is the input at q + (kh dh - ph) iw + (kw dw - pw) of the channel's plane, inside the
// input where the lane's output row and column are: one masked load per vector, its mask fixed
// per (kh, kw) and column block. A stride s becomes stride 1 once the input is split into its
// s x s phases (ck_phase_split): tap (kh, kw) reads phase ((kh dh - ph) mod sh, (kw dw - pw) mod sw)
// at a fixed offset. Few output rows do not pay for a packed panel; a padded copy computed on a
// grid wastes (iw + pads) / iw of the work and needs a copy out (a 32-channel 16x16 layer: an
// eighth); a strided panel gathered through the window cost a quarter of the layer.

#define FLAT_KS 64  // kernel sizes (kh kw) up to this read in place
static inline int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// The phase planes' height and width.
static inline int phase_rows(const ck_gemm_source *g) { return (g->ih + g->sh - 1) / g->sh; }
static inline int phase_cols(const ck_gemm_source *g) { return (g->iw + g->sw - 1) / g->sw; }

int ck_gemm_direct(int m, const ck_gemm_source *g) {
    if (ck_vector_level() < 3 || g->rows || m >= DIRECT_MAX_ROWS || g->kh * g->kw > FLAT_KS) return 0;
    if (g->sh < 1 || g->sw < 1 || phase_cols(g) != g->ow) return 0;
    // A 1x1 strided window reads one phase: gathering its panel costs less than splitting.
    return (g->sh == 1 && g->sw == 1) || (g->phased && g->kh * g->kw > 1);
}

size_t ck_phase_split_count(const ck_gemm_source *g) {
    return (size_t)g->sh * g->sw * phase_rows(g) * phase_cols(g);
}

// Tap (kh, kw)'s phase and offset in phase rows and columns.
static inline void tap_phase(const ck_gemm_source *g, int kh, int kw, int *phase, int *dy, int *dx) {
    int ry = kh * g->dh - g->ph, rx = kw * g->dw - g->pw;
    *dy = floor_div(ry, g->sh);
    *dx = floor_div(rx, g->sw);
    *phase = (ry - *dy * g->sh) * g->sw + (rx - *dx * g->sw);
}

__attribute__((target("avx512f,fma")))
void ck_phase_split(const ck_gemm_source *g, const float *x, int c0, int c1, float *dst) {
    int PH = phase_rows(g), PW = phase_cols(g), phases = g->sh * g->sw;
    size_t per = ck_phase_split_count(g);
    unsigned char used[64 * 64] = {0};
    int many = phases > 64 * 64;
    for (int kh = 0; kh < g->kh && !many; kh++)
        for (int kw = 0; kw < g->kw; kw++) {
            int ph, dy, dx;
            tap_phase(g, kh, kw, &ph, &dy, &dx);
            used[ph] = 1;
        }
    for (int c = c0; c < c1; c++) {
        const float *xc = x + (size_t)c * g->ih * g->iw;
        float *dc = dst + (size_t)c * per;
        for (int a = 0; a < g->sh; a++) {
            for (int b = 0; b < g->sw; b++) {
                if (!many && !used[a * g->sw + b]) continue;
                float *d = dc + (size_t)(a * g->sw + b) * PH * PW;
                for (int i = 0; i < PH; i++) {
                    int row = a + g->sh * i;
                    float *dr = d + (size_t)i * PW;
                    if (row >= g->ih) {
                        memset(dr, 0, sizeof(float) * PW);
                        continue;
                    }
                    const float *src = xc + (size_t)row * g->iw + b;
                    int n = (g->iw - b + g->sw - 1) / g->sw;  // columns of this phase inside the input
                    if (g->sw == 2) {
                        for (int j = 0; j < n; j += 16)
                            _mm512_mask_storeu_ps(dr + j, ck_lanes16(n - j), ck_load_even16(src + 2 * j, n - j));
                    } else if (g->sw == 1) {
                        memcpy(dr, src, sizeof(float) * n);
                    } else {
                        for (int j = 0; j < n; j++) dr[j] = src[(size_t)j * g->sw];
                    }
                    for (int j = n; j < PW; j++) dr[j] = 0.0f;
                }
            }
        }
    }
}

__attribute__((target("avx512f,fma")))
static inline __attribute__((always_inline)) void tile_flat512(const int NV, int kc, int k0, int ks, size_t plane, const float *w,
                                                               const float *base, const ptrdiff_t *offs, const __mmask16 (*ok)[3],
                                                               float *yb, int ldy, int mr, int nr, int first, const float *bias,
                                                               const float *res, int relu) {
    __m512 c[MR][3];
    __mmask16 q[3] = {ck_lanes16(nr), ck_lanes16(nr - 16), ck_lanes16(nr - 32)};
    tile_start512(NV, c, q, yb, ldy, mr, first, bias);
    int t = k0 % ks;
    const float *pl = base + (size_t)(k0 / ks) * plane;
    for (int kk = 0; kk < kc; kk++) {
        __m512 b[3];
        // Only unmasked lanes are read, so the address may lie outside the input.
        const float *src = (const float *)((uintptr_t)pl + (uintptr_t)(offs[t] * 4));
#pragma clang loop unroll(full)
        for (int v = 0; v < NV; v++) b[v] = _mm512_maskz_loadu_ps(ok[t][v], src + v * 16);
        tile_step512(NV, c, b, w + kk * MR);
        if (++t == ks) {
            t = 0;
            pl += plane;
        }
    }
    tile_store512(NV, c, q, yb, ldy, mr, res, relu);
}

__attribute__((target("avx512f,fma")))
static void gemm_direct512(int m, int k, const float *packed, int r0, int r1, const ck_gemm_source *g, int p0, int p1,
                           float *y, int ldy, const float *bias, const ck_gemm_epilogue *ep) {
    int panels = (m + MR - 1) / MR;
    int ks = g->kh * g->kw, step = kc_step(m, k);
    // An unsplit input is read only at stride 1: one phase, the input itself.
    int PH = phase_rows(g), PW = phase_cols(g);
    size_t plane = ck_phase_split_count(g);
    ptrdiff_t offs[FLAT_KS];
    int dys[FLAT_KS], dxs[FLAT_KS];
    __mmask16 ok[FLAT_KS][3];
    for (int t = 0; t < ks; t++) {
        int phase;
        tap_phase(g, t / g->kw, t % g->kw, &phase, &dys[t], &dxs[t]);
        offs[t] = (ptrdiff_t)phase * PH * PW + (ptrdiff_t)dys[t] * PW + dxs[t];
    }
    const __m512i rowsv = _mm512_set1_epi32(PH), colsv = _mm512_set1_epi32(PW);
    for (int p = p0; p < p1; p += NR512) {
        int nr = p1 - p < NR512 ? p1 - p : NR512;
        int nv = (nr + 15) / 16;
        for (int v = 0; v < nv; v++) {
            __m512i ohv, owv;
            output_positions16(g, p + 16 * v, &ohv, &owv);
            __mmask16 live = ck_lanes16(nr - 16 * v);
            for (int t = 0; t < ks; t++) {
                __mmask16 r = _mm512_mask_cmplt_epu32_mask(live, _mm512_add_epi32(ohv, _mm512_set1_epi32(dys[t])), rowsv);
                __mmask16 c = _mm512_cmplt_epu32_mask(_mm512_add_epi32(owv, _mm512_set1_epi32(dxs[t])), colsv);
                ok[t][v] = r & c;
            }
        }
        const float *base = g->x + p;
        for (int k0 = 0; k0 < k; k0 += step) {
            int kc = k - k0 < step ? k - k0 : step;
            int first = k0 == 0, last = k0 + kc >= k;
            for (int pb = r0 / MR; pb < (r1 + MR - 1) / MR; pb++) {
                tile_target t = tile_at(panels, packed, k0, kc, pb, r1, y, ldy, p, bias, ep, last);
                if (nv == 3) tile_flat512(3, kc, k0, ks, plane, t.w, base, offs, ok, t.y, ldy, t.mr, nr, first, t.bias, t.res, t.relu);
                else if (nv == 2) tile_flat512(2, kc, k0, ks, plane, t.w, base, offs, ok, t.y, ldy, t.mr, nr, first, t.bias, t.res, t.relu);
                else tile_flat512(1, kc, k0, ks, plane, t.w, base, offs, ok, t.y, ldy, t.mr, nr, first, t.bias, t.res, t.relu);
            }
        }
    }
}

__attribute__((target("avx512f,fma")))
static void gemm_avx512(int m, int k, const float *packed, int r0, int r1, const ck_gemm_source *src, int p0, int p1,
                        float *y, int ldy, const float *bias, const ck_gemm_epilogue *ep) {
    int panels = (m + MR - 1) / MR;
    int pbFirst = r0 / MR, pbEnd = (r1 + MR - 1) / MR;
    int mcPanels = MC512 / MR;
    if (ck_gemm_direct(m, src)) {
        gemm_direct512(m, k, packed, r0, r1, src, p0, p1, y, ldy, bias, ep);
        return;
    }
    if (!ck_gemm_packs(m, !src->rows)) {
        gemm_avx512_unpacked(m, k, packed, r0, r1, src->rows, p0, p1, y, ldy, bias);
        epilogue_pass(r0, r1, p0, p1, y, ldy, ep);
        return;
    }
    float *buf = pack_scratch((size_t)KC * NCB512);
    if (!buf) abort();
    int step = kc_step(m, k);
    int ncb = (int)((size_t)KC * NCB512 / step / NR512 * NR512);
    if (ncb < NR512) ncb = NR512;
    for (int j0 = p0; j0 < p1; j0 += ncb) {
        int j1 = p1 - j0 < ncb ? p1 : j0 + ncb;
        for (int k0 = 0; k0 < k; k0 += step) {
            int kc = k - k0 < step ? k - k0 : step;
            int first = k0 == 0, last = k0 + kc >= k;
            for (int ib = pbFirst; ib < pbEnd; ib += mcPanels) {
                int ie = ib + mcPanels < pbEnd ? ib + mcPanels : pbEnd;
                for (int p = j0; p < j1; p += NR512) {
                    int nr = j1 - p < NR512 ? j1 - p : NR512;
                    int nv = (nr + 15) / 16;
                    float *bp = buf + (size_t)(p - j0) * step;
                    if (ib == pbFirst) {
                        if (src->rows) pack_panel512(src->rows + k0, kc, p, nr, nv, bp);
                        else pack_window512(src, k0, kc, p, nr, nv, bp);
                    }
                    for (int pb = ib; pb < ie; pb++) {
                        tile_target t = tile_at(panels, packed, k0, kc, pb, r1, y, ldy, p, bias, ep, last);
                        if (nv == 3) tile512(3, kc, t.w, bp, t.y, ldy, t.mr, nr, first, t.bias, t.res, t.relu);
                        else if (nv == 2) tile512(2, kc, t.w, bp, t.y, ldy, t.mr, nr, first, t.bias, t.res, t.relu);
                        else tile512(1, kc, t.w, bp, t.y, ldy, t.mr, nr, first, t.bias, t.res, t.relu);
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
static void gemm_avx2(int m, int k, const float *packed, int r0, int r1, const float *const *rows, int p0, int p1,
                      float *y, int ldy, const float *bias) {
    int panels = (m + MR - 1) / MR;
    int step = kc_step(m, k);
    for (int k0 = 0; k0 < k; k0 += step) {
        int kc = k - k0 < step ? k - k0 : step;
        int first = k0 == 0;
        const float *const *rk = rows + k0;
        for (int p = p0; p < p1; p += 16) {
            int nr = p1 - p < 16 ? p1 - p : 16;
            __m256i q0 = mask8(nr), q1 = mask8(nr - 8);
            for (int half = r0 / MR * 2; half < (r1 + MR - 1) / MR * 2; half++) {
                int pb = half / 2, h = half % 2;
                int q0r = pb * MR + h * 4;
                if (q0r >= r1) continue;
                int mr = r1 - q0r < 4 ? r1 - q0r : 4;
                const float *w = packed + panel_offset(panels, k0, kc, pb) + h * 4;
                float *yb = y + (size_t)q0r * ldy + p;
                __m256 c0[4], c1[4];
#pragma clang loop unroll(full)
                for (int i = 0; i < 4; i++) {
                    if (i < mr && !first) {
                        c0[i] = _mm256_maskload_ps(yb + (size_t)i * ldy, q0);
                        c1[i] = _mm256_maskload_ps(yb + (size_t)i * ldy + 8, q1);
                    } else {
                        float b = (first && bias && i < mr) ? bias[q0r + i] : 0.0f;
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

void ck_gemm(int m, int k, const float *packed, int r0, int r1, const ck_gemm_source *src, int p0, int p1,
             float *y, int ldy, const float *bias, const ck_gemm_epilogue *epilogue) {
    static const ck_gemm_epilogue none = {0, 0};
    const ck_gemm_epilogue *ep = epilogue ? epilogue : &none;
    if (r1 > m) r1 = m;
    if (r0 >= r1 || p1 <= p0) return;
    if (k <= 0) {
        for (int i = r0; i < r1; i++)
            for (int p = p0; p < p1; p++) y[(size_t)i * ldy + p] = bias ? bias[i] : 0.0f;
        epilogue_pass(r0, r1, p0, p1, y, ldy, ep);
        return;
    }
    int level = ck_vector_level();
    if (level == 3) {
        gemm_avx512(m, k, packed, r0, r1, src, p0, p1, y, ldy, bias, ep);
    } else if (level == 2 && src->rows) {
        gemm_avx2(m, k, packed, r0, r1, src->rows, p0, p1, y, ldy, bias);
        epilogue_pass(r0, r1, p0, p1, y, ldy, ep);
    } else {
        abort();  // callers check ck_conv_gemm_available() / ck_gemm_window_available()
    }
}

int ck_gemm_window_available(void) { return ck_vector_level() >= 3; }

int ck_gemm_column_block(int m, int window) {
    if (ck_vector_level() < 3) return 16;
    return ck_gemm_packs(m, window) ? NR512 : 32;
}

int ck_gemm_packs(int m, int window) { return ck_vector_level() >= 3 && (window || m >= PACK_MIN_ROWS); }
