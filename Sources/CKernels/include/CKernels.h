// CKernels: a few hand-vectorized float32 kernels (AVX-512 / AVX2+FMA) for PruneRuntime.
//
// Every function here is compiled for the baseline target; the vector code sits in functions
// marked `__attribute__((target(...)))` and is picked at run time from the CPU's features.
// Callers must check `ck_conv_gemm_available()` before calling the GEMM functions; where it
// returns 0 they use their portable path.
#ifndef PRUNEC_CKERNELS_H
#define PRUNEC_CKERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when the CPU has AVX2 and FMA (the "row-pointer GEMM" below can run), else 0.
int ck_conv_gemm_available(void);

/// Floats `ck_pack_weights` writes for an M x K weight matrix.
size_t ck_packed_weights_count(int m, int k);

/// Packs the row-major M x K matrix `w` (row stride `ldw`) into the panel layout
/// `ck_gemm_rows` reads (`ck_packed_weights_count(m, k)` floats at `packed`).
void ck_pack_weights(int m, int k, const float *w, int ldw, float *packed);

/// Y[i][p] = bias[i] + sum_k W[i][k] * rows[k][p] for i in 0..<m and p in p0..<p1, where W was
/// packed by `ck_pack_weights` and `rows` holds k pointers (the implicit K x N right-hand
/// matrix, one pointer per row). `bias` may be NULL (zero). Y has row stride `ldy`.
/// Elements rows[k][p] are read only for p in p0..<p1.
void ck_gemm_rows(int m, int k, const float *packed, const float *const *rows, int p0, int p1,
                  float *y, int ldy, const float *bias);

#ifdef __cplusplus
}
#endif

#endif
