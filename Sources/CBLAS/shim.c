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

// ---- Kernel choice ------------------------------------------------------------------------------
//
// Debian's OpenBLAS is built with DYNAMIC_ARCH: at load time it maps the CPU's family/model to one
// of its kernel sets, and a CPU newer than the release (e.g. AMD family 1Ah) falls back to an
// older set (Haswell's AVX2 on an AVX-512 machine, Prescott's SSE3 on others). The library reads
// OPENBLAS_CORETYPE only in that load-time constructor, before main. Its exported
// gotoblas_dynamic_quit/gotoblas_dynamic_init pair re-runs the choice in process; both are looked
// up with dlsym, so a build of OpenBLAS without them (no DYNAMIC_ARCH) simply keeps its kernels.

#include <cpuid.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
static unsigned long long xgetbv0(void) {
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif

const char *prunec_cpu_best_core(void) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return "";
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx) return "";
    unsigned long long xcr0 = xgetbv0();
    int ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xe6) == 0xe6;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return "";
    int avx2 = (b >> 5) & 1, f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    unsigned int a1 = 0, b1, c1, d1;
    __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1);
    int bf16 = (a1 >> 5) & 1;
    if (zmm && f && dq && bw && vl && fma) return bf16 ? "Cooperlake" : "SkylakeX";
    if (ymm && avx2 && fma) return "Haswell";
#endif
    return "";
}

int prunec_cblas_reselect_core(const char *name) {
    void (*quit)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit");
    void (*init)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init");
    if (!quit || !init) return 0;
    const char *user = getenv("OPENBLAS_CORETYPE");
    char *saved = user ? strdup(user) : NULL;
    setenv("OPENBLAS_CORETYPE", name, 1);
    quit();
    init();
    // Child processes (the Python oracles) keep whatever the user gave them.
    if (saved) { setenv("OPENBLAS_CORETYPE", saved, 1); free(saved); } else unsetenv("OPENBLAS_CORETYPE");
    return 1;
}
