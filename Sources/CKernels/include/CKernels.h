#ifndef CKERNELS_H
#define CKERNELS_H

// Vectorized float32 math for PruneRuntime's kernels. Every function picks an AVX2+FMA build at
// run time when the CPU has it and a portable build otherwise; both compute the same formulas.
// Arrays may be unaligned; `x` and `y` may be the same array.

#ifdef __cplusplus
extern "C" {
#endif

/// y[i] = exp(x[i]) (about 1 ulp; below -86.6 gives 0, above 88.72 gives +inf, NaN stays NaN).
void ck_exp_f32(const float *x, float *y, long n);
/// y[i] = 1 / (1 + exp(-x[i])).
void ck_sigmoid_f32(const float *x, float *y, long n);
/// y[i] = tanh(x[i]) (rational approximation, a few ulp).
void ck_tanh_f32(const float *x, float *y, long n);
/// y[i] = erf(x[i]) (rational approximation, a few ulp).
void ck_erf_f32(const float *x, float *y, long n);
/// y[i] = 0.5 x (1 + erf(x / sqrt 2)).
void ck_gelu_f32(const float *x, float *y, long n);
/// y[i] = 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))).
void ck_gelu_tanh_f32(const float *x, float *y, long n);
/// y[i] = x[i] / (1 + exp(-alpha x[i])).
void ck_swish_f32(const float *x, float *y, long n, float alpha);

/// Softmax (log_softmax when `log` is nonzero) of `rows` contiguous rows of `n` floats.
/// Returns the index of the first row whose maximum is not finite (left unwritten, for the
/// caller's exact path), or `rows` when all rows were done.
long ck_softmax_rows_f32(const float *x, float *y, long rows, long n, int log);

/// 1 when the AVX2+FMA builds are in use.
int ck_uses_avx2(void);

#ifdef __cplusplus
}
#endif

#endif
