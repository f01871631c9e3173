#include "CBLAS.h"

// OpenBLAS declares these in <cblas.h> (openblas_config.h) with `char*` returns.
_Static_assert(sizeof(blasint) == sizeof(int), "prunec assumes OpenBLAS's 32-bit integer interface");

const char *prunec_cblas_corename(void) { return openblas_get_corename(); }

const char *prunec_cblas_config(void) { return openblas_get_config(); }

void prunec_cblas_set_threads(int threads) { openblas_set_num_threads(threads); }

// LAPACK's Fortran symbol; Debian's libopenblas exports it, and <cblas.h> does not declare it.
extern void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda, double *b,
                   const int *ldb, int *info);

int prunec_lapack_dposv(int n, int nrhs, double *a, int lda, double *b, int ldb) {
    int info = 0;
    dposv_("L", &n, &nrhs, a, &lda, b, &ldb, &info);
    return info;
}
