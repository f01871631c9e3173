#include "CKernels.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

// The worker pool behind KernelContext.parallelFor.
//
// Why not Dispatch: concurrentPerform wakes pool threads that sleep in the kernel, which costs
// tens of microseconds per call, more than most kernels of a small model take. Here workers spin
// for a short while after each job (a model's next op usually follows within microseconds), then
// sleep on a condition variable. One job runs at a time: a parallel loop started while another is
// running (from inside its body, or from another interpreter's thread) runs on its caller alone.
//
// A job is a heap object with a reference count: a worker that wakes late holds its own
// reference, and claims chunks with atomic counters, so it can never run a chunk of another job
// nor touch a job its caller has returned from (claims past the end call nothing).

#define CK_MAX_WORKERS 256
// How long an idle worker spins before it sleeps: long enough to span the gaps between the
// parallel steps of one model run (a sleeping worker costs a futex wake-up, several microseconds).
#define CK_SPIN_NS 1000000L

typedef struct ck_job {
    ck_task_fn fn;
    void *ctx;
    long count, chunk;
    int helpers;  // workers 0..<helpers may take chunks (the caller always does)
    _Atomic long pending;
    _Atomic int refs;
    // Participant s (0: the caller, s: worker s - 1) owns chunks part[s].first..<part[s + 1].first,
    // claimed through part[s].next; it then takes what is left of the others' ranges.
    struct {
        long first;
        _Atomic long next;
    } part[];
} ck_job;

static pthread_mutex_t ck_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ck_wake = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t ck_busy = PTHREAD_MUTEX_INITIALIZER;
static ck_job *ck_current;              // under ck_lock
static _Atomic unsigned long ck_generation;
static int ck_workers;                  // under ck_lock
static int ck_sleepers;                 // under ck_lock

static inline void ck_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static long ck_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void ck_release(ck_job *j) {
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) == 1) free(j);
}

static void ck_run_chunks(ck_job *j, int slot) {
    int parts = j->helpers + 1;
    for (int t = 0; t < parts; t++) {
        int s = (slot + t) % parts;
        for (;;) {
            long i = atomic_fetch_add_explicit(&j->part[s].next, 1, memory_order_relaxed);
            if (i >= j->part[s + 1].first) break;
            long lo = i * j->chunk;
            long hi = lo + j->chunk < j->count ? lo + j->chunk : j->count;
            j->fn(j->ctx, lo, hi);
            atomic_fetch_sub_explicit(&j->pending, 1, memory_order_release);
        }
    }
}

static void *ck_worker(void *arg) {
    int index = (int)(intptr_t)arg;
    unsigned long seen = atomic_load_explicit(&ck_generation, memory_order_acquire);
    for (;;) {
        long start = 0;
        int spins = 0;
        while (atomic_load_explicit(&ck_generation, memory_order_acquire) == seen) {
            ck_relax();
            if (++spins % 256 != 0) continue;
            long now = ck_now_ns();
            if (start == 0) start = now;
            if (now - start < CK_SPIN_NS) continue;
            pthread_mutex_lock(&ck_lock);
            ck_sleepers++;
            while (atomic_load_explicit(&ck_generation, memory_order_acquire) == seen)
                pthread_cond_wait(&ck_wake, &ck_lock);
            ck_sleepers--;
            pthread_mutex_unlock(&ck_lock);
            break;
        }
        pthread_mutex_lock(&ck_lock);
        seen = atomic_load_explicit(&ck_generation, memory_order_acquire);
        ck_job *j = ck_current;
        if (j && index < j->helpers) atomic_fetch_add_explicit(&j->refs, 1, memory_order_relaxed);
        else j = NULL;
        pthread_mutex_unlock(&ck_lock);
        if (j) {
            ck_run_chunks(j, index + 1);
            ck_release(j);
        }
    }
    return NULL;
}

void ck_parallel_for(int threads, long count, long chunk, ck_task_fn fn, void *ctx) {
    if (count <= 0) return;
    if (chunk < 1) chunk = 1;
    long chunks = (count + chunk - 1) / chunk;
    int helpers = threads - 1;
    if (helpers > CK_MAX_WORKERS) helpers = CK_MAX_WORKERS;
    if (helpers > chunks - 1) helpers = (int)(chunks - 1);
    if (helpers <= 0 || pthread_mutex_trylock(&ck_busy) != 0) {
        fn(ctx, 0, count);
        return;
    }
    // One slot per participant, and one past the last for its range's end.
    ck_job *j = malloc(sizeof(ck_job) + (size_t)(helpers + 2) * sizeof(j->part[0]));
    if (!j) {
        pthread_mutex_unlock(&ck_busy);
        fn(ctx, 0, count);
        return;
    }
    j->fn = fn;
    j->ctx = ctx;
    j->count = count;
    j->chunk = chunk;
    j->helpers = helpers;
    atomic_init(&j->pending, chunks);
    atomic_init(&j->refs, 1);

    pthread_mutex_lock(&ck_lock);
    while (ck_workers < helpers) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, ck_worker, (void *)(intptr_t)ck_workers);
        pthread_attr_destroy(&attr);
        if (rc != 0) break;
        ck_workers++;
    }
    if (j->helpers > ck_workers) j->helpers = ck_workers;
    // Contiguous ranges, not chunks handed out in turn: a thread then works on the same part of
    // each layer's map, the part it wrote itself in the layer before (in its own cache), where
    // the splits match.
    int parts = j->helpers + 1;
    for (int s = 0; s <= parts; s++) j->part[s].first = chunks * s / parts;
    for (int s = 0; s < parts; s++) atomic_init(&j->part[s].next, j->part[s].first);
    ck_current = j;
    atomic_fetch_add_explicit(&ck_generation, 1, memory_order_release);
    if (ck_sleepers > 0) pthread_cond_broadcast(&ck_wake);
    pthread_mutex_unlock(&ck_lock);

    ck_run_chunks(j, 0);
    while (atomic_load_explicit(&j->pending, memory_order_acquire) > 0) ck_relax();

    pthread_mutex_lock(&ck_lock);
    if (ck_current == j) ck_current = NULL;
    pthread_mutex_unlock(&ck_lock);
    ck_release(j);
    pthread_mutex_unlock(&ck_busy);
}
