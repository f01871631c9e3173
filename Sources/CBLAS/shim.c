#include "CBLAS.h"

// OpenBLAS declares these in <cblas.h> (openblas_config.h) with `char*` returns.
_Static_assert(sizeof(blasint) == sizeof(int), "prunec assumes OpenBLAS's 32-bit integer interface");

const char *prunec_cblas_corename(void) { return openblas_get_corename(); }

const char *prunec_cblas_config(void) { return openblas_get_config(); }

void prunec_cblas_set_threads(int threads) { openblas_set_num_threads(threads); }
