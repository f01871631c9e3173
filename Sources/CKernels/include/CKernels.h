#ifndef CKERNELS_H
#define CKERNELS_H

// CKernels: hand-vectorized float32 kernels for PruneRuntime, in these files:
// ThreadPool.c (the workers behind parallel loops), Transcendental.c (exp, sigmoid, tanh, erf, gelu, swish, softmax rows) and ConvGEMM.c (the
// row-pointer GEMM behind stride-1 convolutions), plus HalfConvert.c (float16/bfloat16 arrays) and Elementwise.c (fused
// elementwise programs). Vector code sits in functions marked
// `__attribute__((target(...)))` and is picked at run time from the CPU's features, so the
// package needs no compiler flags; portable builds of the same formulas run elsewhere.
// Arrays may be unaligned; for the elementwise functions `x` and `y` may be the same array.
// Only Sources/PruneRuntime/Core/VectorKernels.swift imports this module; kernels call its typed
// Swift functions.

#include <stddef.h>
#include <stdint.h>

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

/// Instructions of an elementwise program (`ck_ew_run`).
enum {
    CK_EW_ADD, CK_EW_SUB, CK_EW_MUL, CK_EW_DIV, CK_EW_SQUARE, CK_EW_CUBE, CK_EW_RELU, CK_EW_NEG, CK_EW_ABS,
    CK_EW_SQRT, CK_EW_RECIPROCAL, CK_EW_EXP, CK_EW_SIGMOID, CK_EW_TANH, CK_EW_ERF
};
/// Where an operand comes from: an input array, an earlier instruction's register, a constant.
enum { CK_EW_INPUT, CK_EW_REGISTER, CK_EW_CONSTANT };

/// One instruction: `op` of operand a (and b for the binary ops). An operand is input `a` (or
/// `b`), the register of instruction `a`, or the constant `ca` (or `cb`), by its kind.
typedef struct {
    int op;
    int a_kind, a, b_kind, b;
    float ca, cb;
} ck_ew_ins;

/// Runs `n` instructions over `count` (at most `block`) elements: instruction k writes
/// `regs + k * block` (`regs` holds n - 1 blocks), the last one `dst`. `inputs[i]` points at the
/// block's elements of input i.
void ck_ew_run(const ck_ew_ins *program, int n, const float *const *inputs, float *regs, long block, float *dst,
               long count);

/// Softmax (log_softmax when `log` is nonzero) of `rows` contiguous rows of `n` floats.
/// Returns the index of the first row whose maximum is not finite (left unwritten, for the
/// caller's exact path), or `rows` when all rows were done.
long ck_softmax_rows_f32(const float *x, float *y, long rows, long n, int log);

/// 1 when the AVX2+FMA builds are in use.
int ck_uses_avx2(void);

/// The vector kernels this CPU can run: 0 none, 2 AVX2+FMA, 3 AVX-512F (ConvGEMM.c).
/// PRUNEC_CKERNELS_LEVEL=0..3 lowers it, to test the narrower paths on a wider CPU.
int ck_vector_level(void);

/// row[x] = max(row[x], src[x * stride]) for x in 0..<n, as `src >= row ? src : row` (a NaN in
/// the row stays; a NaN in src leaves the row as it was) (Pool.c).
void ck_max_into_f32(float *row, const float *src, long n, long stride);

// Convolution GEMM (ConvGEMM.c). Callers must check `ck_conv_gemm_available()` first; where it
// returns 0 they use their portable path.

/// 1 when the CPU has AVX2 and FMA (the "row-pointer GEMM" below can run), else 0.
int ck_conv_gemm_available(void);

/// Floats `ck_pack_weights` writes for an M x K weight matrix.
size_t ck_packed_weights_count(int m, int k);

/// Packs the row-major M x K matrix `w` (row stride `ldw`) into the panel layout
/// `ck_gemm_rows` reads (`ck_packed_weights_count(m, k)` floats at `packed`).
void ck_pack_weights(int m, int k, const float *w, int ldw, float *packed);

/// The right-hand matrix (K x N) of `ck_gemm`: one pointer per row (`rows`), or, where `rows` is
/// NULL, a 2-D convolution's input `x` ([channels][ih][iw]) read through its window: row
/// (channel, kh, kw), column (oh, ow) in row-major order, element x[channel][oh sh - ph + kh dh]
/// [ow sw - pw + kw dw], zero outside the input (im2col without the buffer).
///
/// `phased` 1: `x` is that input split by `ck_phase_split` (a strided window then reads it as a
/// stride-1 one; only where `ck_gemm_direct` says so).
typedef struct {
    const float *const *rows;
    const float *x;
    int ih, iw, oh, ow, kh, kw, sh, sw, dh, dw, ph, pw;
    int phased;
} ck_gemm_source;

/// 1 when `ck_gemm` reads the window source `src` of an M-row product in place, without packing
/// its panels: a 2-D window whose output is as wide as its input (stride 1) or as one phase of
/// it (a stride: `x` must then be split by `ck_phase_split`, and `phased` set), for M under 128,
/// on AVX-512. Else 0.
int ck_gemm_direct(int m, const ck_gemm_source *src);

/// Floats per channel of `ck_phase_split`'s output for the window `src`: sh sw phases of
/// ceil(ih / sh) x ceil(iw / sw).
size_t ck_phase_split_count(const ck_gemm_source *src);

/// Splits channels c0..<c1 of the input `x` ([channels][ih][iw]) of the window `src` by its
/// strides: phase (a, b) of a channel is x[a + sh i][b + sw j], zero past the input. Only the
/// phases the window's taps read are written. `dst` holds `ck_phase_split_count` floats per channel.
void ck_phase_split(const ck_gemm_source *src, const float *x, int c0, int c1, float *dst);

/// What `ck_gemm` does to Y after the product: add `residual` (laid out as Y, same row stride;
/// NULL: none), then clamp at 0 when `relu` is 1. On AVX-512 with a packed source this happens
/// while a tile is still in registers.
typedef struct {
    const float *residual;
    int relu;
} ck_gemm_epilogue;

/// Y[i][p] = bias[i] + sum_k W[i][k] * B[k][p] for i in r0..<r1 and p in p0..<p1, where W
/// (M x K) was packed by `ck_pack_weights` and B is `src`. `r0` is a multiple of 8. `bias`
/// (M floats) may be NULL (zero); Y has row stride `ldy`, and `y` and `bias` point at row 0
/// whatever r0 is; then `epilogue` (may be NULL). A row source is read only at columns p0..<p1. Needs
/// `ck_conv_gemm_available()` for a row source, `ck_gemm_window_available()` for a window.
void ck_gemm(int m, int k, const float *packed, int r0, int r1, const ck_gemm_source *src, int p0, int p1,
             float *y, int ldy, const float *bias, const ck_gemm_epilogue *epilogue);

/// 1 when `ck_gemm` takes a window source on this CPU (AVX-512), else 0.
int ck_gemm_window_available(void);

/// 1 when `ck_gemm` copies the right-hand matrix into panels for an M-row matrix and this kind
/// of source (`window` 1 for a window), else 0: AVX-512 only; a window always, a row source
/// from 64 rows (fewer are read in place: the copy would cost more than it saves).
int ck_gemm_packs(int m, int window);

/// Columns per block of the kernel `ck_gemm` runs for an M-row matrix and this kind of source
/// (`window` 1 for a window): callers that split the columns among threads cut them at multiples
/// of this.
int ck_gemm_column_block(int m, int window);

// float16 / bfloat16 arrays (HalfConvert.c). Rounding to the narrow type is to nearest even;
// NaN stays NaN. `x` and `y` may be the same array for the round functions only.

/// y[i] = float(x[i]) for float16 bits x.
void ck_f16_to_f32(const uint16_t *x, float *y, long n);
/// y[i] = float16 bits of x[i].
void ck_f32_to_f16(const float *x, uint16_t *y, long n);
/// y[i] = x[i] rounded to float16 and widened back.
void ck_f32_round_f16(const float *x, float *y, long n);
/// y[i] = float(x[i]) for bfloat16 bits x.
void ck_bf16_to_f32(const uint16_t *x, float *y, long n);
/// y[i] = bfloat16 bits of x[i].
void ck_f32_to_bf16(const float *x, uint16_t *y, long n);
/// y[i] = x[i] rounded to bfloat16 and widened back.
void ck_f32_round_bf16(const float *x, float *y, long n);

/// A chunk of a parallel loop: runs iterations [lo, hi).
typedef void (*ck_task_fn)(void *ctx, long lo, long hi);

/// Runs fn over [0, count) in chunks of `chunk` iterations on the caller and up to threads - 1
/// pool workers (ThreadPool.c); returns when every chunk has run. A loop started while another
/// is running (nested, or from another thread) runs on its caller alone.
void ck_parallel_for(int threads, long count, long chunk, ck_task_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif

#endif
