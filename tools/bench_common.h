// bench_common.h: what the benchmarks share: error exits, time, threads,
// pthread wrappers, the workloads, the repetitions and their statistics, the
// output (table, CSV, JSON) and the common command line options. Every
// function is static: each program compiles its own copy, and no library
// comes between them. plk_bench_preload and parklock-bench also share the
// driver and workers of bench_driver.h, which includes this header.
//
// The workloads are written once against a small engine layer that each
// program defines. Before including this header, a program defines:
//
//   BENCH_PROG            its name, the prefix of every error message
//   BENCH_ONE_PROCESS     1 if one process runs every engine (so a workload's
//                         error names its engine); 0 or undefined otherwise
//   enum engine           its engines, with ENGINE_GLIBC (plain glibc, the
//                         baseline of every ratio) and ENGINE_COUNT
//   struct bench_mutex    a mutex and a condition variable of any engine
//   struct bench_cond
//
// and after it, the functions declared under "Engine layer" below. They
// should be static inline, so a lock in a workload costs what the engine's
// own lock costs.
#ifndef PLK_BENCH_COMMON_H
#define PLK_BENCH_COMMON_H

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef BENCH_ONE_PROCESS
#define BENCH_ONE_PROCESS 0
#endif

#define CACHE_LINE 64
#define MAX_REPS 99
#define MAX_FIGURES 4     // figures one measurement of a workload reports
#define MAX_THREAD_COUNTS 16
#define MAX_PATTERNS 32
#define MAX_BENCH_THREADS 1024
#define THREAD_STACK (256 * 1024)

// Work, in steps of a 32-bit LCG (about 1.3 ns each on a 2.5 GHz Xeon): a
// multiply-add chain the compiler can neither vectorize nor fold.
#define WORK_SHORT 40   // about 50 ns
#define WORK_LONG 750   // about 1 µs
#define QUEUE_CAPACITY 16

// ---------------------------------------------------------------------------
// Engine layer: defined by the program.

static const char *engine_name(enum engine e);
static void bm_init(enum engine e, struct bench_mutex *m);
static void bm_destroy(enum engine e, struct bench_mutex *m);
static inline void bm_lock(enum engine e, struct bench_mutex *m);
static inline void bm_unlock(enum engine e, struct bench_mutex *m);
static void bc_init(enum engine e, struct bench_cond *c);
static void bc_destroy(enum engine e, struct bench_cond *c);
static inline void bc_wait(enum engine e, struct bench_cond *c,
                           struct bench_mutex *m);
static inline void bc_signal(enum engine e, struct bench_cond *c);
static inline void bc_broadcast(enum engine e, struct bench_cond *c);

// ---------------------------------------------------------------------------
// Helpers

// The prefix of error messages; a program may make it more precise.
static const char *prog_role = BENCH_PROG;

__attribute__((format(printf, 2, 0), noreturn))
static void vdie(const char *engine, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: ", prog_role);
    if (engine)
        fprintf(stderr, "%s: ", engine);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    exit(EXIT_FAILURE);
}

__attribute__((format(printf, 1, 2), noreturn))
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdie(NULL, fmt, ap);
}

// die() for a workload on engine `e`: the message names the engine where one
// process runs them all.
__attribute__((format(printf, 2, 3), noreturn))
static void die_on(enum engine e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vdie(BENCH_ONE_PROCESS ? engine_name(e) : NULL, fmt, ap);
}

static void check_pthread(int rc, const char *what)
{
    if (__builtin_expect(rc != 0, 0))
        die("%s: %s", what, strerror(rc));
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p)
        die("out of memory");
    return p;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = { .tv_sec = ns / 1000000000LL,
                           .tv_nsec = (long)(ns % 1000000000LL) };
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
        ;
}

static inline uint32_t lcg(uint32_t x)
{
    return x * 1664525u + 1013904223u;
}

// `n` steps of work.
static inline uint32_t work(uint32_t x, int n)
{
    for (int i = 0; i < n; i++)
        x = lcg(x);
    return x;
}

// Starts `n` threads running fn(arg + i * size), with a small stack.
static void start_threads(pthread_t *tids, int n, void *(*fn)(void *),
                          void *args, size_t size)
{
    pthread_attr_t attr;
    check_pthread(pthread_attr_init(&attr), "pthread_attr_init");
    check_pthread(pthread_attr_setstacksize(&attr, THREAD_STACK),
                  "pthread_attr_setstacksize");
    for (int i = 0; i < n; i++)
        check_pthread(pthread_create(&tids[i], &attr, fn,
                                     (char *)args + (size_t)i * size),
                      "pthread_create");
    pthread_attr_destroy(&attr);
}

static void join_threads(pthread_t *tids, int n)
{
    for (int i = 0; i < n; i++)
        check_pthread(pthread_join(tids[i], NULL), "pthread_join");
}

// ---------------------------------------------------------------------------
// pthread mutexes and conds, checked: whichever library defines them.

// Make pthread mutexes PTHREAD_MUTEX_ADAPTIVE_NP (glibc spins) instead of
// the default type.
static bool adaptive_mutexes;

static void pt_mutex_init(pthread_mutex_t *m)
{
    pthread_mutexattr_t attr;
    check_pthread(pthread_mutexattr_init(&attr), "pthread_mutexattr_init");
    if (adaptive_mutexes)
        check_pthread(pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP),
                      "pthread_mutexattr_settype");
    check_pthread(pthread_mutex_init(m, &attr), "pthread_mutex_init");
    pthread_mutexattr_destroy(&attr);
}

static void pt_mutex_destroy(pthread_mutex_t *m)
{
    check_pthread(pthread_mutex_destroy(m), "pthread_mutex_destroy");
}

static inline void pt_lock(pthread_mutex_t *m)
{
    check_pthread(pthread_mutex_lock(m), "pthread_mutex_lock");
}

static inline void pt_unlock(pthread_mutex_t *m)
{
    check_pthread(pthread_mutex_unlock(m), "pthread_mutex_unlock");
}

static void pt_cond_init(pthread_cond_t *c)
{
    check_pthread(pthread_cond_init(c, NULL), "pthread_cond_init");
}

static void pt_cond_destroy(pthread_cond_t *c)
{
    check_pthread(pthread_cond_destroy(c), "pthread_cond_destroy");
}

static inline void pt_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    check_pthread(pthread_cond_wait(c, m), "pthread_cond_wait");
}

static inline void pt_cond_signal(pthread_cond_t *c)
{
    check_pthread(pthread_cond_signal(c), "pthread_cond_signal");
}

static inline void pt_cond_broadcast(pthread_cond_t *c)
{
    check_pthread(pthread_cond_broadcast(c), "pthread_cond_broadcast");
}

// ---------------------------------------------------------------------------
// Workloads. Each runs one measurement of `duration_ns` on engine `e` with
// parameters `p` and stores its figures, in the units of its metrics, in
// fig[0..]. Each checks what it can count exactly and exits on a wrong count.

struct wl_params {
    int threads;      // threads taking the locks; producers; waiters
    int consumers;    // queue: consumer threads
    int locks;        // counter: mutexes (a power of two), each op picks one
    int cs_work;      // work steps inside the critical section
    int outside_work; // work steps between critical sections
};

// 1. Uncontended lock+unlock pairs on one thread: ns per pair. A second
// thread sleeps meanwhile, so the process is multi-threaded as any program
// that needs a mutex is: a single-threaded glibc process takes a shortcut
// that skips the atomic instructions (SINGLE_THREAD_P, glibc >= 2.34).
static void *bystander_main(void *arg)
{
    pthread_barrier_wait(arg);
    return NULL;
}

static void wl_uncontended(enum engine e, const struct wl_params *p,
                           int64_t duration_ns, double *fig)
{
    (void)p;
    enum { BATCH = 4096 };
    pthread_barrier_t done;
    pthread_t bystander;
    check_pthread(pthread_barrier_init(&done, NULL, 2), "pthread_barrier_init");
    start_threads(&bystander, 1, bystander_main, &done, 0);
    struct bench_mutex m;
    bm_init(e, &m);
    uint64_t pairs = 0;
    int64_t start = now_ns(), elapsed;
    do {
        for (int i = 0; i < BATCH; i++) {
            bm_lock(e, &m);
            bm_unlock(e, &m);
        }
        pairs += BATCH;
        elapsed = now_ns() - start;
    } while (elapsed < duration_ns);
    bm_destroy(e, &m);
    pthread_barrier_wait(&done);
    join_threads(&bystander, 1);
    pthread_barrier_destroy(&done);
    fig[0] = (double)elapsed / (double)pairs;
}

// 2. N threads in a loop: pick one of `locks` mutexes (pseudo-randomly, if
// more than one), lock it, increment its counter and do cs_work steps on its
// data, unlock, do outside_work steps. Each counter must end up exactly at
// the number of ops that picked its lock. wl_counter reports M ops/s;
// wl_fairness (one lock) also times every lock call and reports how evenly
// the threads got the lock and the longest a lock call waited.
struct stripe {
    _Alignas(CACHE_LINE) struct bench_mutex m;
    volatile uint64_t counter; // guarded by m
    uint32_t state;            // guarded by m: the critical section's work
};

struct counter_shared {
    struct stripe *stripes;
    uint32_t mask; // locks - 1
    int cs_work, outside_work;
    bool timed;    // time each lock call
    enum engine e;
    pthread_barrier_t start;
    _Alignas(CACHE_LINE) atomic_bool stop;
};

struct counter_thread {
    _Alignas(CACHE_LINE) struct counter_shared *s;
    uint64_t ops;
    int64_t max_wait_ns; // timed: the longest lock call
    uint32_t sink;       // keeps the outside work alive
};

static void *counter_main(void *arg)
{
    struct counter_thread *t = arg;
    struct counter_shared *s = t->s;
    const enum engine e = s->e;
    const uint32_t mask = s->mask;
    const int cs_work = s->cs_work, outside_work = s->outside_work;
    const bool timed = s->timed;
    uint64_t ops = 0;
    int64_t max_wait = 0;
    uint32_t x = (uint32_t)(uintptr_t)t;
    pthread_barrier_wait(&s->start);
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        struct stripe *st = s->stripes;
        if (mask) {
            x = lcg(x);
            st += (x >> 16) & mask;
        }
        if (timed) {
            int64_t t0 = now_ns();
            bm_lock(e, &st->m);
            int64_t waited = now_ns() - t0;
            if (waited > max_wait)
                max_wait = waited;
        } else {
            bm_lock(e, &st->m);
        }
        st->counter++;
        if (cs_work)
            st->state = work(st->state, cs_work);
        bm_unlock(e, &st->m);
        x = work(x, outside_work);
        ops++;
    }
    t->ops = ops;
    t->max_wait_ns = max_wait;
    t->sink = x;
    return NULL;
}

// Runs the counter loop on p->threads threads (threads[] receives their
// counts) and returns the seconds it ran.
static double counter_run(enum engine e, const struct wl_params *p,
                          int64_t duration_ns, bool timed,
                          struct counter_thread *threads)
{
    const int n = p->threads, locks = p->locks > 0 ? p->locks : 1;
    if (locks & (locks - 1))
        die("counter: %d locks is not a power of two", locks);
    struct counter_shared s = { .mask = (uint32_t)locks - 1,
                                .cs_work = p->cs_work,
                                .outside_work = p->outside_work,
                                .timed = timed, .e = e };
    s.stripes = aligned_alloc(CACHE_LINE, sizeof(struct stripe) * (size_t)locks);
    if (!s.stripes)
        die("out of memory");
    memset(s.stripes, 0, sizeof(struct stripe) * (size_t)locks);
    for (int i = 0; i < locks; i++)
        bm_init(e, &s.stripes[i].m);
    atomic_init(&s.stop, false);
    check_pthread(pthread_barrier_init(&s.start, NULL, (unsigned)n + 1),
                  "pthread_barrier_init");
    pthread_t *tids = xcalloc((size_t)n, sizeof(tids[0]));
    for (int i = 0; i < n; i++)
        threads[i] = (struct counter_thread){ .s = &s };
    start_threads(tids, n, counter_main, threads, sizeof(threads[0]));

    pthread_barrier_wait(&s.start);
    int64_t start = now_ns();
    sleep_ns(duration_ns);
    atomic_store_explicit(&s.stop, true, memory_order_relaxed);
    int64_t elapsed = now_ns() - start;
    join_threads(tids, n);

    uint64_t ops = 0, counted = 0;
    for (int i = 0; i < n; i++)
        ops += threads[i].ops;
    for (int i = 0; i < locks; i++) {
        counted += s.stripes[i].counter;
        bm_destroy(e, &s.stripes[i].m);
    }
    if (counted != ops)
        die_on(e, "counter with %d threads on %d lock(s): the counters add up "
               "to %llu, expected %llu: a mutex does not exclude", n, locks,
               (unsigned long long)counted, (unsigned long long)ops);
    pthread_barrier_destroy(&s.start);
    free(tids);
    free(s.stripes);
    return (double)elapsed / 1e9;
}

static void wl_counter(enum engine e, const struct wl_params *p,
                       int64_t duration_ns, double *fig)
{
    struct counter_thread *threads =
        aligned_alloc(CACHE_LINE, sizeof(threads[0]) * (size_t)p->threads);
    if (!threads)
        die("out of memory");
    double seconds = counter_run(e, p, duration_ns, false, threads);
    uint64_t ops = 0;
    for (int i = 0; i < p->threads; i++)
        ops += threads[i].ops;
    free(threads);
    fig[0] = (double)ops / seconds / 1e6;
}

// Figures: M ops/s, the coefficient of variation of the threads' op counts
// (%), the smallest count over the largest (%), the longest lock call (µs).
__attribute__((unused)) // only parklock-bench runs it
static void wl_fairness(enum engine e, const struct wl_params *p,
                        int64_t duration_ns, double *fig)
{
    const int n = p->threads;
    struct counter_thread *threads =
        aligned_alloc(CACHE_LINE, sizeof(threads[0]) * (size_t)n);
    if (!threads)
        die("out of memory");
    double seconds = counter_run(e, p, duration_ns, true, threads);
    double sum = 0, sum_sq = 0, lo = INFINITY, hi = 0;
    int64_t max_wait = 0;
    for (int i = 0; i < n; i++) {
        double v = (double)threads[i].ops;
        sum += v;
        sum_sq += v * v;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        if (threads[i].max_wait_ns > max_wait)
            max_wait = threads[i].max_wait_ns;
    }
    free(threads);
    double mean = sum / n, var = sum_sq / n - mean * mean;
    fig[0] = sum / seconds / 1e6;
    fig[1] = mean > 0 ? sqrt(var > 0 ? var : 0) / mean * 100 : 0;
    fig[2] = hi > 0 ? lo / hi * 100 : 0;
    fig[3] = (double)max_wait / 1e3;
}

// 3. Two threads passing a turn back and forth, each waiting for its turn on
// its own cond: ns per round trip (two hand-overs). The two threads' turn
// counts must match the round trips.
struct pingpong_shared {
    struct bench_mutex m;
    struct bench_cond turn_cv[2];
    int turn;           // guarded by m
    bool stop;          // guarded by m
    uint64_t turns[2];  // guarded by m: turns each thread took
    pthread_barrier_t start;
    enum engine e;
};

struct pingpong_thread {
    struct pingpong_shared *s;
    int me;
};

static void *pingpong_main(void *arg)
{
    struct pingpong_thread *t = arg;
    struct pingpong_shared *s = t->s;
    const enum engine e = s->e;
    const int me = t->me, other = 1 - me;
    pthread_barrier_wait(&s->start);
    for (;;) {
        bm_lock(e, &s->m);
        while (s->turn != me && !s->stop)
            bc_wait(e, &s->turn_cv[me], &s->m);
        if (s->stop) {
            bm_unlock(e, &s->m);
            return NULL;
        }
        s->turn = other;
        s->turns[me]++;
        bc_signal(e, &s->turn_cv[other]);
        bm_unlock(e, &s->m);
    }
}

static void wl_pingpong(enum engine e, const struct wl_params *p,
                        int64_t duration_ns, double *fig)
{
    (void)p;
    struct pingpong_shared s = { .e = e };
    struct pingpong_thread threads[2];
    pthread_t tids[2];
    bm_init(e, &s.m);
    bc_init(e, &s.turn_cv[0]);
    bc_init(e, &s.turn_cv[1]);
    check_pthread(pthread_barrier_init(&s.start, NULL, 3), "pthread_barrier_init");
    for (int i = 0; i < 2; i++)
        threads[i] = (struct pingpong_thread){ .s = &s, .me = i };
    start_threads(tids, 2, pingpong_main, threads, sizeof(threads[0]));

    pthread_barrier_wait(&s.start);
    int64_t start = now_ns();
    sleep_ns(duration_ns);
    bm_lock(e, &s.m);
    s.stop = true;
    uint64_t rounds = s.turns[0];
    int64_t elapsed = now_ns() - start;
    bc_broadcast(e, &s.turn_cv[0]);
    bc_broadcast(e, &s.turn_cv[1]);
    bm_unlock(e, &s.m);
    join_threads(tids, 2);

    if (s.turns[1] != s.turns[0] - (uint64_t)s.turn)
        die_on(e, "ping-pong: thread 0 took %llu turns and thread 1 %llu, "
               "but the turn is now %d's", (unsigned long long)s.turns[0],
               (unsigned long long)s.turns[1], s.turn);
    pthread_barrier_destroy(&s.start);
    bc_destroy(e, &s.turn_cv[0]);
    bc_destroy(e, &s.turn_cv[1]);
    bm_destroy(e, &s.m);
    if (rounds == 0)
        die_on(e, "ping-pong made no round trip in %.3f s",
               (double)elapsed / 1e9);
    fig[0] = (double)elapsed / (double)rounds;
}

// 4. A bounded queue (QUEUE_CAPACITY items, a mutex, a cond for "not full"
// and one for "not empty", signalled once per item) between p->threads
// producers and p->consumers consumers, each doing outside_work steps per
// item: M items/s through the queue. Every item produced must be consumed
// once: counts and sums must match.
struct queue_shared {
    struct bench_mutex m;
    struct bench_cond not_full, not_empty;
    uint64_t items[QUEUE_CAPACITY]; // guarded by m
    unsigned head, count;           // guarded by m
    bool stop;                      // guarded by m
    int outside_work;
    pthread_barrier_t start;
    enum engine e;
};

struct queue_thread {
    _Alignas(CACHE_LINE) struct queue_shared *s;
    uint64_t id;
    bool producer;
    uint64_t items, sum; // produced or consumed
    uint32_t sink;
};

// Puts `v` in the queue; false if the queue is stopped.
static bool queue_put(struct queue_shared *s, uint64_t v)
{
    const enum engine e = s->e;
    bm_lock(e, &s->m);
    while (s->count == QUEUE_CAPACITY && !s->stop)
        bc_wait(e, &s->not_full, &s->m);
    bool ok = !s->stop;
    if (ok) {
        s->items[(s->head + s->count++) % QUEUE_CAPACITY] = v;
        bc_signal(e, &s->not_empty);
    }
    bm_unlock(e, &s->m);
    return ok;
}

// Takes an item from the queue into *v; false if the queue is stopped and
// empty (consumers drain it after the stop).
static bool queue_take(struct queue_shared *s, uint64_t *v)
{
    const enum engine e = s->e;
    bm_lock(e, &s->m);
    while (s->count == 0 && !s->stop)
        bc_wait(e, &s->not_empty, &s->m);
    bool ok = s->count > 0;
    if (ok) {
        *v = s->items[s->head];
        s->head = (s->head + 1) % QUEUE_CAPACITY;
        s->count--;
        bc_signal(e, &s->not_full);
    }
    bm_unlock(e, &s->m);
    return ok;
}

// A producer or a consumer: outside_work steps, then one item.
static void *queue_main(void *arg)
{
    struct queue_thread *t = arg;
    struct queue_shared *s = t->s;
    uint64_t items = 0, sum = 0;
    uint32_t x = (uint32_t)t->id;
    pthread_barrier_wait(&s->start);
    for (;;) {
        uint64_t v = t->id << 40 | items;
        x = work(x, s->outside_work);
        if (!(t->producer ? queue_put(s, v) : queue_take(s, &v)))
            break;
        items++;
        sum += v;
    }
    t->items = items;
    t->sum = sum;
    t->sink = x;
    return NULL;
}

__attribute__((unused)) // only parklock-bench runs it
static void wl_queue(enum engine e, const struct wl_params *p,
                     int64_t duration_ns, double *fig)
{
    const int np = p->threads, nc = p->consumers, n = np + nc;
    struct queue_shared s = { .outside_work = p->outside_work, .e = e };
    struct queue_thread *threads =
        aligned_alloc(CACHE_LINE, sizeof(threads[0]) * (size_t)n);
    pthread_t *tids = xcalloc((size_t)n, sizeof(tids[0]));
    if (!threads)
        die("out of memory");
    bm_init(e, &s.m);
    bc_init(e, &s.not_full);
    bc_init(e, &s.not_empty);
    check_pthread(pthread_barrier_init(&s.start, NULL, (unsigned)n + 1),
                  "pthread_barrier_init");
    for (int i = 0; i < n; i++)
        threads[i] = (struct queue_thread){ .s = &s, .id = (uint64_t)i + 1,
                                            .producer = i < np };
    start_threads(tids, n, queue_main, threads, sizeof(threads[0]));

    pthread_barrier_wait(&s.start);
    int64_t start = now_ns();
    sleep_ns(duration_ns);
    bm_lock(e, &s.m);
    s.stop = true;
    int64_t elapsed = now_ns() - start;
    bc_broadcast(e, &s.not_full);
    bc_broadcast(e, &s.not_empty);
    bm_unlock(e, &s.m);
    join_threads(tids, n);

    uint64_t produced = 0, consumed = 0, sum_in = 0, sum_out = 0;
    for (int i = 0; i < np; i++) {
        produced += threads[i].items;
        sum_in += threads[i].sum;
    }
    for (int i = np; i < n; i++) {
        consumed += threads[i].items;
        sum_out += threads[i].sum;
    }
    if (produced != consumed || sum_in != sum_out || s.count != 0)
        die_on(e, "queue %dp+%dc: %llu items produced, %llu consumed, %u "
               "left, sums %s: items lost or duplicated", np, nc,
               (unsigned long long)produced, (unsigned long long)consumed,
               s.count, sum_in == sum_out ? "equal" : "differ");
    pthread_barrier_destroy(&s.start);
    bc_destroy(e, &s.not_full);
    bc_destroy(e, &s.not_empty);
    bm_destroy(e, &s.m);
    free(tids);
    free(threads);
    fig[0] = (double)consumed / ((double)elapsed / 1e9) / 1e6;
}

// 5. Broadcast to p->threads threads waiting on one cond: µs per round, from
// the broadcast until the last waiter has re-acquired the mutex (every other
// waiter has by then re-acquired and released it). Waiters hold the mutex
// from waking until their next wait, like a typical worker loop; the
// broadcaster holds it while broadcasting and releases it by waiting for the
// round's end. A round ends only when every waiter has counted itself in it.
struct bcast_shared {
    struct bench_mutex m;
    struct bench_cond work_cv; // waiters wait here for a new generation
    struct bench_cond done_cv; // the broadcaster waits here for the round's end
    uint64_t gen;              // guarded by m
    int waiting;               // guarded by m: waiters done with this round
    int waiters;
    bool stop;                 // guarded by m
    int64_t round_end_ns;      // guarded by m
    enum engine e;
};

static void *bcast_main(void *arg)
{
    struct bcast_shared *s = arg;
    const enum engine e = s->e;
    bm_lock(e, &s->m);
    for (;;) {
        if (++s->waiting == s->waiters) {
            s->round_end_ns = now_ns();
            bc_signal(e, &s->done_cv);
        }
        uint64_t gen = s->gen;
        while (s->gen == gen && !s->stop)
            bc_wait(e, &s->work_cv, &s->m);
        if (s->stop)
            break;
    }
    bm_unlock(e, &s->m);
    return NULL;
}

static void wl_broadcast(enum engine e, const struct wl_params *p,
                         int64_t duration_ns, double *fig)
{
    const int n = p->threads;
    struct bcast_shared s = { .waiters = n, .e = e };
    pthread_t *tids = xcalloc((size_t)n, sizeof(tids[0]));
    bm_init(e, &s.m);
    bc_init(e, &s.work_cv);
    bc_init(e, &s.done_cv);
    start_threads(tids, n, bcast_main, &s, 0);

    int64_t total_ns = 0;
    uint64_t rounds = 0;
    bm_lock(e, &s.m);
    while (s.waiting < n)
        bc_wait(e, &s.done_cv, &s.m);
    int64_t start = now_ns();
    do {
        s.waiting = 0;
        s.gen++;
        int64_t round_start = now_ns();
        bc_broadcast(e, &s.work_cv);
        while (s.waiting < n)
            bc_wait(e, &s.done_cv, &s.m);
        total_ns += s.round_end_ns - round_start;
        rounds++;
    } while (now_ns() - start < duration_ns);
    s.stop = true;
    bc_broadcast(e, &s.work_cv);
    bm_unlock(e, &s.m);
    join_threads(tids, n);

    bc_destroy(e, &s.work_cv);
    bc_destroy(e, &s.done_cv);
    bm_destroy(e, &s.m);
    free(tids);
    fig[0] = (double)total_ns / (double)rounds / 1e3;
}

// ---------------------------------------------------------------------------
// Workload tables

struct metric {
    const char *key;   // names it in CSV and JSON
    const char *label; // appended to the workload's name in the table, or NULL
    const char *unit;
    bool higher_is_better; // throughput (true) or time (false)
};

struct workload {
    const char *key;  // names the workload on a command line
    const char *name;
    void (*run)(enum engine e, const struct wl_params *p, int64_t duration_ns,
                double *fig);
    struct wl_params p;
    // Thread counts the workload runs at (0-terminated): each is an item
    // KEY-N with p.threads = N, and --threads replaces them. NULL: one item
    // with p.threads as given.
    const int *scale;
    const struct metric *metrics; // one per figure
    int nmetrics;
};

#define METRICS(...) (const struct metric[]){ __VA_ARGS__ },                  \
    (int)(sizeof((const struct metric[]){ __VA_ARGS__ }) / sizeof(struct metric))

#define M_NS_PAIR METRICS({ "time", NULL, "ns/pair", false })
#define M_MOPS METRICS({ "throughput", NULL, "Mops/s", true })
#define M_ROUND_NS METRICS({ "time", NULL, "ns", false })
#define M_ROUND_US METRICS({ "time", NULL, "us/round", false })
#define M_MITEMS METRICS({ "throughput", NULL, "Mitems/s", true })
#define M_FAIRNESS METRICS({ "throughput", NULL, "Mops/s", true },          \
                           { "acq_cv", "acq. CV", "%", false },             \
                           { "acq_min_max", "acq. min/max", "%", true },   \
                           { "max_wait", "max wait", "us", false })

// The set plk_bench_core and plk_bench_preload run: short, and the same in
// both, so their figures compare.
static const struct workload classic_workloads[] = {
    { "uncontended", "uncontended lock+unlock", wl_uncontended, { 0 }, NULL,
      M_NS_PAIR },
    { "counter2", "counter 2 threads", wl_counter,
      { .threads = 2, .cs_work = 3, .outside_work = 8 }, NULL, M_MOPS },
    { "counter8", "counter 8 threads", wl_counter,
      { .threads = 8, .cs_work = 3, .outside_work = 8 }, NULL, M_MOPS },
    { "pingpong", "cond ping-pong round trip", wl_pingpong, { 0 }, NULL,
      M_ROUND_NS },
    { "broadcast", "broadcast to 32 waiters", wl_broadcast, { .threads = 32 },
      NULL, M_ROUND_US },
};

#define CLASSIC_WORKLOAD_COUNT \
    (int)(sizeof(classic_workloads) / sizeof(classic_workloads[0]))

__attribute__((unused)) // not every program names workloads
static const struct workload *workload_by_key(const struct workload *table,
                                              int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(table[i].key, key))
            return &table[i];
    return NULL;
}

// ---------------------------------------------------------------------------
// Command line

struct bench_opts {
    double seconds; // per measurement
    int reps;
    const char *csv;  // CSV to this file, or "-": stdout; NULL: none
    const char *json; // likewise
    bool list;        // list the workloads and exit
    const char *patterns[MAX_PATTERNS]; // --workload: run only these
    int npatterns;
    int threads[MAX_THREAD_COUNTS]; // --threads: replaces every scale
    int nthreads;
};

static void parse_threads(struct bench_opts *o, const char *list)
{
    char *copy = strdup(list), *save = NULL;
    if (!copy)
        die("out of memory");
    o->nthreads = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *end;
        long n = strtol(t, &end, 10);
        if (*end || n < 1 || n > MAX_BENCH_THREADS)
            die("--threads wants thread counts in [1, %d], not '%s'",
                MAX_BENCH_THREADS, t);
        if (o->nthreads == MAX_THREAD_COUNTS)
            die("--threads takes at most %d counts", MAX_THREAD_COUNTS);
        o->threads[o->nthreads++] = (int)n;
    }
    free(copy);
    if (o->nthreads == 0)
        die("--threads wants a list such as 1,2,8");
}

static void add_patterns(struct bench_opts *o, const char *list)
{
    char *copy = strdup(list), *save = NULL;
    if (!copy)
        die("out of memory");
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (o->npatterns == MAX_PATTERNS)
            die("--workload takes at most %d names", MAX_PATTERNS);
        o->patterns[o->npatterns++] = t; // `copy` lives as long as the program
    }
}

// The value of "--name=VALUE" or of "--name VALUE", or NULL if argv[*i] is
// neither.
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
    size_t len = strlen(name);
    if (strncmp(argv[*i], name, len))
        return NULL;
    if (argv[*i][len] == '=')
        return argv[*i] + len + 1;
    if (argv[*i][len] == '\0' && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

// Parses the command line into `o`, which holds the defaults. Takes the
// options every program has: --quick (0.05 s and 3 reps unless given),
// --seconds S, --reps N, --csv[=FILE], --json[=FILE], --workload W,
// --threads LIST, --list and --help; hands any other argument to
// more(argc, argv, &i, ctx), which takes it (moving i past its value) and
// returns true, or returns false for a usage error.
static void bench_parse_args(int argc, char **argv, struct bench_opts *o,
                             bool (*more)(int argc, char **argv, int *i, void *ctx),
                             void *ctx, void (*usage)(FILE *f))
{
    bool seconds_set = false, reps_set = false;
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        char *end;
        if (!strcmp(a, "--quick")) {
            quick = true;
        } else if (!strcmp(a, "--csv") || !strcmp(a, "--json")) {
            *(a[2] == 'c' ? &o->csv : &o->json) = "-";
        } else if (!strncmp(a, "--csv=", 6) || !strncmp(a, "--json=", 7)) {
            *(a[2] == 'c' ? &o->csv : &o->json) = strchr(a, '=') + 1;
        } else if (!strcmp(a, "--list")) {
            o->list = true;
        } else if ((v = opt_value(argc, argv, &i, "--seconds"))) {
            o->seconds = strtod(v, &end);
            if (*end || !(o->seconds >= 0.001 && o->seconds <= 3600))
                die("--seconds wants a number in [0.001, 3600], not '%s'", v);
            seconds_set = true;
        } else if ((v = opt_value(argc, argv, &i, "--reps"))) {
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > MAX_REPS)
                die("--reps wants an integer in [1, %d], not '%s'", MAX_REPS, v);
            o->reps = (int)n;
            reps_set = true;
        } else if ((v = opt_value(argc, argv, &i, "--workload"))) {
            add_patterns(o, v);
        } else if ((v = opt_value(argc, argv, &i, "--threads"))) {
            parse_threads(o, v);
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(EXIT_SUCCESS);
        } else if (!more(argc, argv, &i, ctx)) {
            usage(stderr);
            exit(EXIT_FAILURE);
        }
    }
    if (o->csv && o->json && !strcmp(o->csv, "-") && !strcmp(o->json, "-"))
        die("--csv and --json cannot both go to stdout: give one a file");
    if (quick) {
        if (!seconds_set)
            o->seconds = 0.05;
        if (!reps_set)
            o->reps = 3;
    }
}

// The usage lines of the options bench_parse_args takes.
static void usage_common(FILE *f, double seconds, int reps)
{
    fprintf(f,
            "  --quick          short run (0.05 s, 3 reps, unless given)\n"
            "  --seconds S      seconds per measurement (default %g; each\n"
            "                   measurement is preceded by a warm-up of S/4)\n"
            "  --reps N         repetitions per engine, 1..%d (default %d)\n"
            "  --csv[=FILE]     CSV instead of the table, or to FILE as well\n"
            "  --json[=FILE]    JSON instead of the table, or to FILE as well\n"
            "  --workload W     run only the workloads W names (repeatable,\n"
            "                   comma-separated): a key, a shell pattern, or\n"
            "                   a key without its -THREADS suffix\n"
            "  --threads LIST   thread counts of the scaling workloads, e.g.\n"
            "                   1,2,8 (replaces each one's default counts)\n"
            "  --list           list the workloads (after --threads) and exit\n",
            seconds, MAX_REPS, reps);
}

// ---------------------------------------------------------------------------
// Items: the workloads at their thread counts, as selected.

struct bench_item {
    const struct workload *w;
    struct wl_params p;
    char key[48];
    char name[64];
};

// Whether `key`, the key of an item of workload `base`, is what pattern
// `pat` names: the key itself, a shell pattern, or the workload's key.
static bool item_matches(const char *pat, const char *key, const char *base)
{
    return !fnmatch(pat, key, 0) || !strcmp(pat, base);
}

static void add_item(struct bench_item **items, int *n, const struct bench_opts *o,
                     const struct workload *w, int threads)
{
    struct bench_item it = { .w = w, .p = w->p };
    if (w->scale) {
        it.p.threads = threads;
        snprintf(it.key, sizeof(it.key), "%s-%d", w->key, threads);
        snprintf(it.name, sizeof(it.name), "%s, %d thr", w->name, threads);
    } else {
        snprintf(it.key, sizeof(it.key), "%s", w->key);
        snprintf(it.name, sizeof(it.name), "%s", w->name);
    }
    bool selected = o->npatterns == 0;
    for (int i = 0; i < o->npatterns && !selected; i++)
        selected = item_matches(o->patterns[i], it.key, w->key);
    if (!selected)
        return;
    *items = realloc(*items, sizeof(**items) * (size_t)(*n + 1));
    if (!*items)
        die("out of memory");
    (*items)[(*n)++] = it;
}

// The items of `table` that the options select, in table order; exits if a
// pattern selects nothing.
static struct bench_item *bench_items(const struct workload *table, int ntable,
                                      const struct bench_opts *o, int *nitems)
{
    struct bench_item *items = NULL;
    int n = 0;
    for (int i = 0; i < ntable; i++) {
        const struct workload *w = &table[i];
        if (!w->scale) {
            add_item(&items, &n, o, w, 0);
        } else if (o->nthreads) {
            for (int k = 0; k < o->nthreads; k++)
                add_item(&items, &n, o, w, o->threads[k]);
        } else {
            for (const int *t = w->scale; *t; t++)
                add_item(&items, &n, o, w, *t);
        }
    }
    for (int k = 0; k < o->npatterns; k++) {
        bool used = false;
        for (int i = 0; i < n && !used; i++)
            used = item_matches(o->patterns[k], items[i].key, items[i].w->key);
        if (!used)
            die("--workload: nothing matches '%s' (see --list)", o->patterns[k]);
    }
    *nitems = n;
    return items;
}

static void list_items(const struct bench_item *items, int n)
{
    for (int i = 0; i < n; i++) {
        printf("%-22s %s (", items[i].key, items[i].name);
        for (int m = 0; m < items[i].w->nmetrics; m++)
            printf("%s%s", m ? ", " : "", items[i].w->metrics[m].unit);
        printf(")\n");
    }
}

// ---------------------------------------------------------------------------
// Repetitions and statistics

// The engines a run measures, in table order; id[0] is ENGINE_GLIBC.
struct bench_engines {
    int n;
    enum engine id[ENGINE_COUNT];
};

struct summary {
    double median, min, max;
};

// One item's figures: every sample, in repetition order, and summaries.
struct bench_result {
    double samples[MAX_FIGURES][ENGINE_COUNT][MAX_REPS];
    struct summary s[MAX_FIGURES][ENGINE_COUNT];
    int reps;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static struct summary summarize(const double *samples, int n)
{
    double v[MAX_REPS];
    memcpy(v, samples, sizeof(v[0]) * (size_t)n);
    qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
    double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    return (struct summary){ median, v[0], v[n - 1] };
}

// Takes `reps` samples of every engine in `en` from measure(e, ctx, fig),
// which stores `nfig` figures, the order rotating by one engine per
// repetition so that drift in CPU frequency or background load hits every
// engine alike, and summarizes them.
static void bench_repeat(const struct bench_engines *en, int reps, int nfig,
                         void (*measure)(enum engine e, void *ctx, double *fig),
                         void *ctx, struct bench_result *r)
{
    r->reps = reps;
    for (int i = 0; i < reps; i++)
        for (int k = 0; k < en->n; k++) {
            enum engine e = en->id[(i + k) % en->n];
            double fig[MAX_FIGURES];
            measure(e, ctx, fig);
            for (int f = 0; f < nfig; f++)
                r->samples[f][e][i] = fig[f];
        }
    for (int f = 0; f < nfig; f++)
        for (int k = 0; k < en->n; k++)
            r->s[f][en->id[k]] = summarize(r->samples[f][en->id[k]], reps);
}

// Engine `e` against plain glibc; > 1 means `e` is better. NAN where a
// median is zero.
static double ratio(const struct metric *m, const struct summary *s,
                    enum engine e)
{
    double g = s[ENGINE_GLIBC].median, x = s[e].median;
    if (!(g > 0 && x > 0))
        return NAN;
    return m->higher_is_better ? x / g : g / x;
}

static double spread_pct(const struct summary *s)
{
    return s->median > 0 ? (s->max - s->min) / s->median * 100 : 0;
}

// ---------------------------------------------------------------------------
// Output: a table, CSV and JSON, each to its own stream (or none).

struct bench_output {
    const struct bench_engines *en;
    const struct bench_opts *o;
    FILE *table, *csv, *json;
    int name_width;
    int json_rows;
};

static FILE *open_output(const char *path)
{
    if (!path)
        return NULL;
    if (!strcmp(path, "-"))
        return stdout;
    FILE *f = fopen(path, "w");
    if (!f)
        die("cannot write %s: %s", path, strerror(errno));
    return f;
}

// The table goes to stdout unless CSV or JSON does.
static void output_open(struct bench_output *out, const struct bench_engines *en,
                        const struct bench_opts *o, const struct bench_item *items,
                        int nitems)
{
    *out = (struct bench_output){ .en = en, .o = o };
    out->csv = open_output(o->csv);
    out->json = open_output(o->json);
    if (out->csv != stdout && out->json != stdout)
        out->table = stdout;
    out->name_width = 8;
    for (int i = 0; i < nitems; i++)
        for (int m = 0; m < items[i].w->nmetrics; m++) {
            const char *label = items[i].w->metrics[m].label;
            int len = (int)strlen(items[i].name) + (label ? 2 + (int)strlen(label) : 0);
            if (len > out->name_width)
                out->name_width = len;
        }
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_number(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.6g", v);
    else
        fputs("null", f);
}

// A figure for the table: about four significant digits, no exponent.
static void table_figure(FILE *f, int width, double v)
{
    if (!isfinite(v))
        fprintf(f, " %*s", width, "n/a");
    else
        fprintf(f, " %*.*f", width, fabs(v) >= 1000 ? 0 : fabs(v) >= 100 ? 1
                                    : fabs(v) >= 1 ? 2 : 3, v);
}

// Starts every output: `notes` (NULL-terminated) head the table; the JSON
// gets the program's name, the preloaded library (NULL if none) and the
// settings.
static void output_header(struct bench_output *out, const char *program,
                          const char *lib, const char *const *notes)
{
    const struct bench_engines *en = out->en;
    double load[1] = { 0 };
    if (getloadavg(load, 1) < 1)
        load[0] = NAN;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (out->table) {
        FILE *f = out->table;
        for (const char *const *n = notes; *n; n++)
            fprintf(f, "%s\n", *n);
        fprintf(f, "median of %d reps of %.2f s each; ratio = engine vs glibc, "
                "> 1 means the engine (parklock) is BETTER than glibc, < 1 "
                "worse\n(glibc/x for times, x/glibc for throughput and "
                "min/max); spread = (max-min)/median; %ld CPUs, load %.2f at "
                "start\n\n", out->o->reps, out->o->seconds, cpus, load[0]);
        fprintf(f, "%-*s %-9s", out->name_width, "workload", "unit");
        for (int k = 0; k < en->n; k++)
            fprintf(f, " %11s %7s%s", engine_name(en->id[k]), "spread",
                    en->id[k] == ENGINE_GLIBC ? "" : "   ratio");
        fprintf(f, "\n");
        fflush(f);
    }
    if (out->csv) {
        FILE *f = out->csv;
        fprintf(f, "workload,name,metric,unit,higher_is_better");
        for (int k = 0; k < en->n; k++) {
            const char *e = engine_name(en->id[k]);
            fprintf(f, ",%s,%s_min,%s_max", e, e, e);
        }
        for (int k = 1; k < en->n; k++)
            fprintf(f, ",%s_ratio", engine_name(en->id[k]));
        fprintf(f, ",reps,seconds\n");
        fflush(f);
    }
    if (out->json) {
        FILE *f = out->json;
        fprintf(f, "{\n  \"program\": ");
        json_string(f, program);
        fprintf(f, ",\n  \"lib\": ");
        if (lib)
            json_string(f, lib);
        else
            fputs("null", f);
        fprintf(f, ",\n  \"engines\": [");
        for (int k = 0; k < en->n; k++) {
            fputs(k ? ", " : "", f);
            json_string(f, engine_name(en->id[k]));
        }
        fprintf(f, "],\n  \"mutex_type\": \"%s\",\n  \"reps\": %d,\n"
                "  \"seconds\": %g,\n  \"cpus\": %ld,\n  \"loadavg_start\": ",
                adaptive_mutexes ? "adaptive" : "default", out->o->reps,
                out->o->seconds, cpus);
        json_number(f, load[0]);
        fprintf(f, ",\n  \"notes\": [");
        for (const char *const *n = notes; *n; n++) {
            fputs(n > notes ? ", " : "", f);
            json_string(f, *n);
        }
        fprintf(f, "],\n  \"ratio\": \"engine vs glibc: > 1 means the engine "
                "is better (glibc/x for lower-is-better metrics, x/glibc "
                "otherwise)\",\n  \"results\": [");
        fflush(f);
    }
}

// One row per metric of the item.
static void output_item(struct bench_output *out, const struct bench_item *it,
                        const struct bench_result *r)
{
    const struct bench_engines *en = out->en;
    for (int m = 0; m < it->w->nmetrics; m++) {
        const struct metric *mt = &it->w->metrics[m];
        const struct summary *s = r->s[m];
        if (out->table) {
            FILE *f = out->table;
            char name[128];
            snprintf(name, sizeof(name), "%s%s%s", it->name,
                     mt->label ? ", " : "", mt->label ? mt->label : "");
            fprintf(f, "%-*s %-9s", out->name_width, name, mt->unit);
            for (int k = 0; k < en->n; k++) {
                enum engine e = en->id[k];
                table_figure(f, 11, s[e].median);
                fprintf(f, " %6.1f%%", spread_pct(&s[e]));
                if (e != ENGINE_GLIBC) {
                    double x = ratio(mt, s, e);
                    if (isfinite(x))
                        fprintf(f, " %7.2f", x);
                    else
                        fprintf(f, " %7s", "n/a");
                }
            }
            fprintf(f, "\n");
            fflush(f);
        }
        if (out->csv) {
            FILE *f = out->csv;
            fprintf(f, "%s,\"%s\",%s,%s,%d", it->key, it->name, mt->key,
                    mt->unit, mt->higher_is_better);
            for (int k = 0; k < en->n; k++) {
                const struct summary *x = &s[en->id[k]];
                fprintf(f, ",%.6g,%.6g,%.6g", x->median, x->min, x->max);
            }
            for (int k = 1; k < en->n; k++)
                fprintf(f, ",%.4f", ratio(mt, s, en->id[k]));
            fprintf(f, ",%d,%.3f\n", r->reps, out->o->seconds);
            fflush(f);
        }
        if (out->json) {
            FILE *f = out->json;
            fprintf(f, "%s\n    {\"workload\": ", out->json_rows++ ? "," : "");
            json_string(f, it->key);
            fprintf(f, ", \"name\": ");
            json_string(f, it->name);
            fprintf(f, ", \"metric\": \"%s\", \"unit\": \"%s\", "
                    "\"higher_is_better\": %s, \"threads\": %d,\n     "
                    "\"engines\": {", mt->key, mt->unit,
                    mt->higher_is_better ? "true" : "false", it->p.threads);
            for (int k = 0; k < en->n; k++) {
                enum engine e = en->id[k];
                fprintf(f, "%s\"%s\": {\"median\": ", k ? ",\n                 " : "",
                        engine_name(e));
                json_number(f, s[e].median);
                fprintf(f, ", \"min\": ");
                json_number(f, s[e].min);
                fprintf(f, ", \"max\": ");
                json_number(f, s[e].max);
                fprintf(f, ", \"samples\": [");
                for (int i = 0; i < r->reps; i++) {
                    fputs(i ? ", " : "", f);
                    json_number(f, r->samples[m][e][i]);
                }
                fprintf(f, "]}");
            }
            fprintf(f, "},\n     \"ratio\": {");
            for (int k = 1; k < en->n; k++) {
                fprintf(f, "%s\"%s\": ", k > 1 ? ", " : "", engine_name(en->id[k]));
                json_number(f, ratio(mt, s, en->id[k]));
            }
            fprintf(f, "}}");
            fflush(f);
        }
    }
}

static void close_output(FILE *f)
{
    if (!f)
        return;
    if (fflush(f) || ferror(f) || (f != stdout && fclose(f)))
        die("cannot write the results: %s", strerror(errno));
}

static void output_close(struct bench_output *out)
{
    if (out->json)
        fprintf(out->json, "\n  ]\n}\n");
    close_output(out->table);
    close_output(out->csv);
    close_output(out->json);
}

#endif
