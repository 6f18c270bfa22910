// bench_common.h: what plk_bench_core and plk_bench_preload share: error
// exits, time, threads, pthread wrappers, the workloads, the repetitions and
// their statistics, the table and the common command line options. Every
// function is static: each program compiles its own copy, and no library
// comes between them.
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
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef BENCH_ONE_PROCESS
#define BENCH_ONE_PROCESS 0
#endif

#define CACHE_LINE 64
#define MAX_REPS 99
#define BCAST_WAITERS 32
#define COUNTER_INCREMENTS 4 // increments of the shared counter per op
#define OUTSIDE_WORK_STEPS 8 // LCG steps between ops, outside the lock
#define THREAD_STACK (256 * 1024)

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
// parameter `param` and returns its figure in the workload's unit.

// 1. Uncontended lock+unlock pairs on one thread: ns per pair. A second
// thread sleeps meanwhile, so the process is multi-threaded as any program
// that needs a mutex is: a single-threaded glibc process takes a shortcut
// that skips the atomic instructions (SINGLE_THREAD_P, glibc >= 2.34).
static void *bystander_main(void *arg)
{
    pthread_barrier_wait(arg);
    return NULL;
}

static double wl_uncontended(enum engine e, int param, int64_t duration_ns)
{
    (void)param;
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
    return (double)elapsed / (double)pairs;
}

// 2. N threads incrementing a shared counter under the mutex (a short
// critical section, a little work outside it): M ops/s. The final counter
// must be exactly COUNTER_INCREMENTS per op.
struct counter_shared {
    _Alignas(CACHE_LINE) struct bench_mutex m;
    _Alignas(CACHE_LINE) volatile uint64_t counter; // guarded by m
    _Alignas(CACHE_LINE) atomic_bool stop;
    pthread_barrier_t start;
    enum engine e;
};

struct counter_thread {
    _Alignas(CACHE_LINE) struct counter_shared *s;
    uint64_t ops;
    uint32_t sink; // keeps the outside work alive
};

static void *counter_main(void *arg)
{
    struct counter_thread *t = arg;
    struct counter_shared *s = t->s;
    const enum engine e = s->e;
    uint64_t ops = 0;
    uint32_t x = (uint32_t)(uintptr_t)t;
    pthread_barrier_wait(&s->start);
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        bm_lock(e, &s->m);
        for (int i = 0; i < COUNTER_INCREMENTS; i++)
            s->counter++;
        bm_unlock(e, &s->m);
        for (int i = 0; i < OUTSIDE_WORK_STEPS; i++)
            x = x * 1664525u + 1013904223u;
        ops++;
    }
    t->ops = ops;
    t->sink = x;
    return NULL;
}

static double wl_counter(enum engine e, int nthreads, int64_t duration_ns)
{
    struct counter_shared s = { .e = e };
    struct counter_thread threads[nthreads];
    pthread_t tids[nthreads];
    bm_init(e, &s.m);
    atomic_init(&s.stop, false);
    check_pthread(pthread_barrier_init(&s.start, NULL, (unsigned)nthreads + 1),
                  "pthread_barrier_init");
    for (int i = 0; i < nthreads; i++)
        threads[i] = (struct counter_thread){ .s = &s };
    start_threads(tids, nthreads, counter_main, threads, sizeof(threads[0]));

    pthread_barrier_wait(&s.start);
    int64_t start = now_ns();
    sleep_ns(duration_ns);
    atomic_store_explicit(&s.stop, true, memory_order_relaxed);
    int64_t elapsed = now_ns() - start;
    join_threads(tids, nthreads);

    uint64_t ops = 0;
    for (int i = 0; i < nthreads; i++)
        ops += threads[i].ops;
    if (s.counter != ops * COUNTER_INCREMENTS)
        die_on(e, "counter with %d threads is %llu, expected %llu: the mutex "
               "does not exclude", nthreads, (unsigned long long)s.counter,
               (unsigned long long)(ops * COUNTER_INCREMENTS));
    pthread_barrier_destroy(&s.start);
    bm_destroy(e, &s.m);
    return (double)ops / ((double)elapsed / 1e9) / 1e6;
}

// 3. Two threads passing a turn back and forth, each waiting for its turn on
// its own cond: ns per round trip (two hand-overs).
struct pingpong_shared {
    struct bench_mutex m;
    struct bench_cond turn_cv[2];
    int turn;         // guarded by m
    bool stop;        // guarded by m
    uint64_t rounds;  // guarded by m
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
        if (me == 0)
            s->rounds++;
        bc_signal(e, &s->turn_cv[other]);
        bm_unlock(e, &s->m);
    }
}

static double wl_pingpong(enum engine e, int param, int64_t duration_ns)
{
    (void)param;
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
    uint64_t rounds = s.rounds;
    int64_t elapsed = now_ns() - start;
    bc_broadcast(e, &s.turn_cv[0]);
    bc_broadcast(e, &s.turn_cv[1]);
    bm_unlock(e, &s.m);
    join_threads(tids, 2);

    pthread_barrier_destroy(&s.start);
    bc_destroy(e, &s.turn_cv[0]);
    bc_destroy(e, &s.turn_cv[1]);
    bm_destroy(e, &s.m);
    if (rounds == 0)
        die_on(e, "ping-pong made no round trip in %.3f s",
               (double)elapsed / 1e9);
    return (double)elapsed / (double)rounds;
}

// 4. Broadcast to BCAST_WAITERS threads waiting on one cond: µs per round,
// from the broadcast until the last waiter has re-acquired the mutex (every
// other waiter has by then re-acquired and released it). Waiters hold the
// mutex from waking until their next wait, like a typical worker loop; the
// broadcaster holds it while broadcasting and releases it by waiting for the
// round's end.
struct bcast_shared {
    struct bench_mutex m;
    struct bench_cond work_cv; // waiters wait here for a new generation
    struct bench_cond done_cv; // the broadcaster waits here for the round's end
    uint64_t gen;              // guarded by m
    int waiting;               // guarded by m: waiters done with this round
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
        if (++s->waiting == BCAST_WAITERS) {
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

static double wl_broadcast(enum engine e, int param, int64_t duration_ns)
{
    (void)param;
    struct bcast_shared s = { .e = e };
    pthread_t tids[BCAST_WAITERS];
    bm_init(e, &s.m);
    bc_init(e, &s.work_cv);
    bc_init(e, &s.done_cv);
    start_threads(tids, BCAST_WAITERS, bcast_main, &s, 0);

    int64_t total_ns = 0;
    uint64_t rounds = 0;
    bm_lock(e, &s.m);
    while (s.waiting < BCAST_WAITERS)
        bc_wait(e, &s.done_cv, &s.m);
    int64_t start = now_ns();
    do {
        s.waiting = 0;
        s.gen++;
        int64_t round_start = now_ns();
        bc_broadcast(e, &s.work_cv);
        while (s.waiting < BCAST_WAITERS)
            bc_wait(e, &s.done_cv, &s.m);
        total_ns += s.round_end_ns - round_start;
        rounds++;
    } while (now_ns() - start < duration_ns);
    s.stop = true;
    bc_broadcast(e, &s.work_cv);
    bm_unlock(e, &s.m);
    join_threads(tids, BCAST_WAITERS);

    bc_destroy(e, &s.work_cv);
    bc_destroy(e, &s.done_cv);
    bm_destroy(e, &s.m);
    return (double)total_ns / (double)rounds / 1e3;
}

struct workload {
    const char *key; // names the workload on a command line
    const char *name;
    const char *unit;
    bool higher_is_better; // throughput (true) or time (false)
    double (*run)(enum engine e, int param, int64_t duration_ns);
    int param;
};

static const struct workload workloads[] = {
    { "uncontended", "uncontended lock+unlock", "ns/pair", false, wl_uncontended, 0 },
    { "counter2", "counter 2 threads", "Mops/s", true, wl_counter, 2 },
    { "counter8", "counter 8 threads", "Mops/s", true, wl_counter, 8 },
    { "pingpong", "cond ping-pong round trip", "ns", false, wl_pingpong, 0 },
    { "broadcast", "broadcast to 32 waiters", "us/round", false, wl_broadcast, 0 },
};

#define WORKLOAD_COUNT (int)(sizeof(workloads) / sizeof(workloads[0]))

__attribute__((unused)) // not every program names workloads
static const struct workload *workload_by_key(const char *key)
{
    for (int i = 0; i < WORKLOAD_COUNT; i++)
        if (!strcmp(workloads[i].key, key))
            return &workloads[i];
    return NULL;
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

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static struct summary summarize(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
    double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    return (struct summary){ median, v[0], v[n - 1] };
}

// Takes `reps` samples of every engine in `en` from measure(e, ctx), the
// order rotating by one engine per repetition so that drift in CPU frequency
// or background load hits every engine alike, and summarizes each engine's
// samples into out[e].
static void bench_repeat(const struct bench_engines *en, int reps,
                         double (*measure)(enum engine e, void *ctx), void *ctx,
                         struct summary out[ENGINE_COUNT])
{
    double samples[ENGINE_COUNT][MAX_REPS];
    for (int r = 0; r < reps; r++)
        for (int k = 0; k < en->n; k++) {
            enum engine e = en->id[(r + k) % en->n];
            samples[e][r] = measure(e, ctx);
        }
    for (int k = 0; k < en->n; k++)
        out[en->id[k]] = summarize(samples[en->id[k]], reps);
}

// Engine `e` against plain glibc; > 1 means `e` is better.
static double ratio(const struct workload *w, const struct summary s[ENGINE_COUNT],
                    enum engine e)
{
    double g = s[ENGINE_GLIBC].median, x = s[e].median;
    return w->higher_is_better ? x / g : g / x;
}

static double spread_pct(const struct summary *s)
{
    return s->median > 0 ? (s->max - s->min) / s->median * 100 : 0;
}

// ---------------------------------------------------------------------------
// The table: per engine its median and spread, and but for glibc its ratio.

static void table_header(const struct bench_engines *en)
{
    printf("%-27s %-9s", "workload", "unit");
    for (int k = 0; k < en->n; k++)
        printf(" %11s %7s%s", engine_name(en->id[k]), "spread",
               en->id[k] == ENGINE_GLIBC ? "" : "   ratio");
    printf("\n");
    fflush(stdout);
}

static void table_row(const struct workload *w, const struct bench_engines *en,
                      const struct summary s[ENGINE_COUNT])
{
    printf("%-27s %-9s", w->name, w->unit);
    for (int k = 0; k < en->n; k++) {
        enum engine e = en->id[k];
        printf(" %11.2f %6.1f%%", s[e].median, spread_pct(&s[e]));
        if (e != ENGINE_GLIBC)
            printf(" %7.2f", ratio(w, s, e));
    }
    printf("\n");
    fflush(stdout);
}

// ---------------------------------------------------------------------------
// Command line

struct bench_opts {
    double seconds; // per measurement
    int reps;
    bool csv;
};

// Parses the command line into `o`, which holds the defaults. Takes the
// options of both programs: --quick (0.05 s and 3 reps unless given),
// --seconds S, --reps N, --csv and --help; hands any other argument to
// more(argc, argv, &i, ctx), which takes it (moving i past its value) and
// returns true, or returns false for a usage error.
static void bench_parse_args(int argc, char **argv, struct bench_opts *o,
                             bool (*more)(int argc, char **argv, int *i, void *ctx),
                             void *ctx, void (*usage)(FILE *f))
{
    bool seconds_set = false, reps_set = false;
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char *end;
        if (!strcmp(a, "--quick")) {
            quick = true;
        } else if (!strcmp(a, "--csv")) {
            o->csv = true;
        } else if (!strcmp(a, "--seconds") && i + 1 < argc) {
            o->seconds = strtod(argv[++i], &end);
            if (*end || !(o->seconds >= 0.001 && o->seconds <= 3600))
                die("--seconds wants a number in [0.001, 3600], not '%s'", argv[i]);
            seconds_set = true;
        } else if (!strcmp(a, "--reps") && i + 1 < argc) {
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 1 || n > MAX_REPS)
                die("--reps wants an integer in [1, %d], not '%s'", MAX_REPS,
                    argv[i]);
            o->reps = (int)n;
            reps_set = true;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(EXIT_SUCCESS);
        } else if (!more(argc, argv, &i, ctx)) {
            usage(stderr);
            exit(EXIT_FAILURE);
        }
    }
    if (quick) {
        if (!seconds_set)
            o->seconds = 0.05;
        if (!reps_set)
            o->reps = 3;
    }
}

#endif
