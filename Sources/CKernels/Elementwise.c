// Elementwise programs: the instructions of a fused elementwise region (ElementwiseFusion.swift)
// run over one block of floats, each as a plain loop the compiler vectorizes, in one call.
//
// Each instruction writes its own block-sized register (the last one writes the output), so
// every loop reads and writes arrays that stay in L1. The formulas are the unfused kernels'
// (`x < 0 ? 0 : x` keeps NaN, a cube is (x x) x), so fusing does not change a result.

#include "CKernels.h"

#define CK_INLINE static inline __attribute__((always_inline))

// x op z for each element, over an operand pair of arrays or an array and a constant.
#define CK_EW_BINARY(EXPR)                                                                       \
    do {                                                                                         \
        if (a && b) { for (long i = 0; i < count; i++) { float x = a[i], z = b[i]; y[i] = EXPR; } } \
        else if (a) { for (long i = 0; i < count; i++) { float x = a[i], z = cb; y[i] = EXPR; } }   \
        else if (b) { for (long i = 0; i < count; i++) { float x = ca, z = b[i]; y[i] = EXPR; } }   \
        else { float x = ca, z = cb; float v = EXPR; for (long i = 0; i < count; i++) y[i] = v; } \
    } while (0)

#define CK_EW_UNARY(EXPR)                                                                        \
    do {                                                                                         \
        if (a) { for (long i = 0; i < count; i++) { float x = a[i]; y[i] = EXPR; } }             \
        else { float x = ca; float v = EXPR; for (long i = 0; i < count; i++) y[i] = v; }       \
    } while (0)

// sqrtf without errno, so the loop vectorizes (a negative x gives NaN either way).
CK_INLINE float ew_sqrt(float x) {
#if __has_builtin(__builtin_elementwise_sqrt)
    return __builtin_elementwise_sqrt(x);
#else
    return __builtin_sqrtf(x);
#endif
}

CK_INLINE const float *ew_operand(int kind, int index, const float *const *inputs, float *regs, long block) {
    switch (kind) {
    case CK_EW_INPUT: return inputs[index];
    case CK_EW_REGISTER: return regs + (long)index * block;
    default: return 0;
    }
}

CK_INLINE void ew_run_body(const ck_ew_ins *program, int n, const float *const *inputs, float *regs, long block,
                           float *dst, long count) {
    for (int k = 0; k < n; k++) {
        const ck_ew_ins *p = &program[k];
        float *y = k == n - 1 ? dst : regs + (long)k * block;
        const float *a = ew_operand(p->a_kind, p->a, inputs, regs, block);
        const float *b = ew_operand(p->b_kind, p->b, inputs, regs, block);
        float ca = p->ca, cb = p->cb;
        switch (p->op) {
        case CK_EW_ADD: CK_EW_BINARY(x + z); break;
        case CK_EW_SUB: CK_EW_BINARY(x - z); break;
        case CK_EW_MUL: CK_EW_BINARY(x * z); break;
        case CK_EW_DIV: CK_EW_BINARY(x / z); break;
        case CK_EW_SQUARE: CK_EW_UNARY(x * x); break;
        case CK_EW_CUBE: CK_EW_UNARY(x * x * x); break;
        case CK_EW_RELU: CK_EW_UNARY(x < 0 ? 0 : x); break;
        case CK_EW_NEG: CK_EW_UNARY(-x); break;
        case CK_EW_ABS: CK_EW_UNARY(__builtin_fabsf(x)); break;
        case CK_EW_SQRT: CK_EW_UNARY(ew_sqrt(x)); break;
        case CK_EW_RECIPROCAL: CK_EW_UNARY(1 / x); break;
        default: {
            // The transcendental functions run their own vector code, in place over a constant.
            if (!a) {
                for (long i = 0; i < count; i++) y[i] = ca;
                a = y;
            }
            switch (p->op) {
            case CK_EW_EXP: ck_exp_f32(a, y, count); break;
            case CK_EW_SIGMOID: ck_sigmoid_f32(a, y, count); break;
            case CK_EW_TANH: ck_tanh_f32(a, y, count); break;
            case CK_EW_ERF: ck_erf_f32(a, y, count); break;
            default: break;
            }
        }
        }
    }
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx2,fma"))) static void ew_run_avx2(const ck_ew_ins *program, int n, const float *const *inputs,
                                                           float *regs, long block, float *dst, long count) {
    ew_run_body(program, n, inputs, regs, block, dst, count);
}
static void ew_run_base(const ck_ew_ins *program, int n, const float *const *inputs, float *regs, long block,
                        float *dst, long count) {
    ew_run_body(program, n, inputs, regs, block, dst, count);
}
void ck_ew_run(const ck_ew_ins *program, int n, const float *const *inputs, float *regs, long block, float *dst,
               long count) {
    if (ck_uses_avx2()) ew_run_avx2(program, n, inputs, regs, block, dst, count);
    else ew_run_base(program, n, inputs, regs, block, dst, count);
}
#else
void ck_ew_run(const ck_ew_ins *program, int n, const float *const *inputs, float *regs, long block, float *dst,
               long count) {
    ew_run_body(program, n, inputs, regs, block, dst, count);
}
#endif
