// CBLAS: the project's one door to OpenBLAS.
//
// Why a shim: Swift imports <cblas.h> directly, but OpenBLAS's extras (the kernel name, the
// thread count) are declared with macros and types that differ between OpenBLAS builds. This
// header includes <cblas.h> and declares the few things Swift cannot call cleanly as
// `prunec_cblas_*`. Only Sources/PruneRuntime/Core/BLAS.swift may import this module.
//
// Assumptions: Debian's libopenblas0-pthread (32-bit integers, LP64 interface: blasint == int).
#ifndef PRUNEC_CBLAS_H
#define PRUNEC_CBLAS_H

#include <cblas.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The name of the kernel OpenBLAS picked for this CPU ("Haswell", "Cooperlake", ...).
/// The returned string is static; do not free it.
const char *prunec_cblas_corename(void);

/// The OpenBLAS build configuration string.
const char *prunec_cblas_config(void);

/// Sets the number of threads OpenBLAS uses.
void prunec_cblas_set_threads(int threads);

/// The OpenBLAS kernel set that matches this CPU's features and the state the OS saves
/// ("Cooperlake" for AVX-512 with BF16, "SkylakeX" for AVX-512, "Haswell" for AVX2+FMA), or ""
/// when none of those applies (not x86, or an older CPU).
const char *prunec_cpu_best_core(void);

/// Makes OpenBLAS choose its kernels again as if OPENBLAS_CORETYPE were `name` (the environment
/// is restored afterwards). Must run before any BLAS call is in flight. Returns 0 when this
/// OpenBLAS cannot re-choose (a build without DYNAMIC_ARCH).
int prunec_cblas_reselect_core(const char *name);

/// Solves A X = B for a symmetric positive definite n×n A (LAPACK dposv, lower triangle, column
/// major; OpenBLAS ships LAPACK). B holds nrhs columns of n; both are overwritten (A by its
/// Cholesky factor, B by X). Returns LAPACK's info: 0 on success, k > 0 when A is not positive
/// definite at order k.
int prunec_lapack_dposv(int n, int nrhs, double *a, int lda, double *b, int ldb);

#ifdef __cplusplus
}
#endif

#endif
