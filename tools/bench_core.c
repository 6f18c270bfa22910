// plk_bench_core: the core's mutex and condition variable against glibc's
// pthread_mutex_* / pthread_cond_*, in one run.
//
// Every workload is written once against a small engine layer (a switch on
// `enum engine`, inlined, so plk_mutex_lock keeps its inline fast path and
// glibc is called as usual). Each measurement runs for a fixed time. After a
// short warm-up, every repetition runs both engines back to back, glibc first
// in even repetitions and parklock first in odd ones, so drift in CPU
// frequency or background load hits both alike; the table shows the median
// of the repetitions. This is a benchmark: it reports figures and
// never judges them. The only checks are for correctness (an exact shared
// counter), and a failure there exits with a message on stderr.
//
// Usage: plk_bench_core [--quick] [--seconds S] [--reps N] [--csv]
//                       [--glibc-adaptive]
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

#include "cond.h"
#include "mutex.h"

#define CACHE_LINE 64
#define MAX_REPS 99
#define BCAST_WAITERS 32
#define COUNTER_INCREMENTS 4 // increments of the shared counter per op
#define OUTSIDE_WORK_STEPS 8 // LCG steps between ops, outside the lock
#define THREAD_STACK (256 * 1024)

// ---------------------------------------------------------------------------
// Helpers

__attribute__((format(printf, 1, 2), noreturn))
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("plk_bench_core: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(EXIT_FAILURE);
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
// Engines

enum engine { ENGINE_GLIBC, ENGINE_PLK, ENGINE_COUNT };

static const char *const engine_name[ENGINE_COUNT] = { "glibc", "parklock" };

// Use PTHREAD_MUTEX_ADAPTIVE_NP (spinning) for glibc instead of the default.
static bool glibc_adaptive;

struct bench_mutex {
    union {
        pthread_mutex_t pt;
        struct plk_mutex plk;
    } u;
};

struct bench_cond {
    union {
        pthread_cond_t pt;
        struct plk_cond plk;
    } u;
};

static void bm_init(enum engine e, struct bench_mutex *m)
{
    memset(m, 0, sizeof(*m));
    if (e == ENGINE_GLIBC) {
        pthread_mutexattr_t attr;
        check_pthread(pthread_mutexattr_init(&attr), "pthread_mutexattr_init");
        if (glibc_adaptive)
            check_pthread(pthread_mutexattr_settype(&attr,
                                                    PTHREAD_MUTEX_ADAPTIVE_NP),
                          "pthread_mutexattr_settype");
        check_pthread(pthread_mutex_init(&m->u.pt, &attr), "pthread_mutex_init");
        pthread_mutexattr_destroy(&attr);
    } else {
        m->u.plk = (struct plk_mutex)PLK_MUTEX_INIT;
    }
}

static void bm_destroy(enum engine e, struct bench_mutex *m)
{
    if (e == ENGINE_GLIBC)
        check_pthread(pthread_mutex_destroy(&m->u.pt), "pthread_mutex_destroy");
}

static inline void bm_lock(enum engine e, struct bench_mutex *m)
{
    if (e == ENGINE_GLIBC)
        check_pthread(pthread_mutex_lock(&m->u.pt), "pthread_mutex_lock");
    else
        plk_mutex_lock(&m->u.plk);
}

static inline void bm_unlock(enum engine e, struct bench_mutex *m)
{
    if (e == ENGINE_GLIBC)
        check_pthread(pthread_mutex_unlock(&m->u.pt), "pthread_mutex_unlock");
    else
        plk_mutex_unlock(&m->u.plk);
}

static void bc_init(enum engine e, struct bench_cond *c)
{
    memset(c, 0, sizeof(*c));
    if (e == ENGINE_GLIBC)
        check_pthread(pthread_cond_init(&c->u.pt, NULL), "pthread_cond_init");
    else
        c->u.plk = (struct plk_cond)PLK_COND_INIT;
}

static void bc_destroy(enum engine e, struct bench_cond *c)
{
    if (e == ENGINE_GLIBC)
        check_pthread(pthread_cond_destroy(&c->u.pt), "pthread_cond_destroy");
}

static inline void bc_wait(enum engine e, struct bench_cond *c,
                           struct bench_mutex *m)
{
    if (e == ENGINE_GLIBC)
        check_pthread(pthread_cond_wait(&c->u.pt, &m->u.pt), "pthread_cond_wait");
    else
        plk_cond_wait(&c->u.plk, &m->u.plk, NULL);
}

static inline void bc_signal(enum engine e, struct bench_cond *c)
{
    if (e == ENGINE_GLIBC)
        check_pthread(pthread_cond_signal(&c->u.pt), "pthread_cond_signal");
    else
        plk_cond_signal(&c->u.plk);
}

static inline void bc_broadcast(enum engine e, struct bench_cond *c)
{
    if (e == ENGINE_GLIBC)
        check_pthread(pthread_cond_broadcast(&c->u.pt), "pthread_cond_broadcast");
    else
        plk_cond_broadcast(&c->u.plk);
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

// 2. N threads incrementing a shared counter under the mutex: M ops/s.
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
        die("%s: counter with %d threads is %llu, expected %llu: the mutex "
            "does not exclude", engine_name[e], nthreads,
            (unsigned long long)s.counter,
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
        die("%s: ping-pong made no round trip in %.3f s", engine_name[e],
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

// ---------------------------------------------------------------------------
// Harness

struct workload {
    const char *name;
    const char *unit;
    bool higher_is_better; // throughput (true) or time (false)
    double (*run)(enum engine e, int param, int64_t duration_ns);
    int param;
};

static const struct workload workloads[] = {
    { "uncontended lock+unlock", "ns/pair", false, wl_uncontended, 0 },
    { "counter 2 threads", "Mops/s", true, wl_counter, 2 },
    { "counter 8 threads", "Mops/s", true, wl_counter, 8 },
    { "cond ping-pong round trip", "ns", false, wl_pingpong, 0 },
    { "broadcast to 32 waiters", "us/round", false, wl_broadcast, 0 },
};

struct config {
    double seconds; // per measurement
    int reps;
    bool csv;
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

// Runs one workload: a short warm-up per engine, then `reps` repetitions of
// both engines, their order alternating per repetition.
static void run_workload(const struct workload *w, const struct config *cfg,
                         struct summary out[ENGINE_COUNT])
{
    const int64_t duration_ns = (int64_t)(cfg->seconds * 1e9);
    double samples[ENGINE_COUNT][MAX_REPS];
    for (int e = 0; e < ENGINE_COUNT; e++)
        w->run((enum engine)e, w->param, duration_ns / 4);
    for (int r = 0; r < cfg->reps; r++) {
        for (int k = 0; k < ENGINE_COUNT; k++) {
            int e = r % 2 ? ENGINE_COUNT - 1 - k : k;
            samples[e][r] = w->run((enum engine)e, w->param, duration_ns);
        }
    }
    for (int e = 0; e < ENGINE_COUNT; e++)
        out[e] = summarize(samples[e], cfg->reps);
}

// > 1 means parklock is better.
static double ratio(const struct workload *w, const struct summary s[ENGINE_COUNT])
{
    double g = s[ENGINE_GLIBC].median, p = s[ENGINE_PLK].median;
    return w->higher_is_better ? p / g : g / p;
}

static double spread_pct(const struct summary *s)
{
    return s->median > 0 ? (s->max - s->min) / s->median * 100 : 0;
}

static void print_header(const struct config *cfg)
{
    if (cfg->csv) {
        printf("workload,unit,glibc,parklock,ratio,glibc_min,glibc_max,"
               "parklock_min,parklock_max,reps,seconds\n");
        return;
    }
    printf("parklock core vs glibc %s pthread mutex/cond: median of %d reps "
           "of %.2f s each, engines interleaved\n",
           glibc_adaptive ? "(ADAPTIVE_NP)" : "(default)", cfg->reps,
           cfg->seconds);
    printf("ratio > 1 means parklock is better (glibc/parklock for times, "
           "parklock/glibc for throughput); spread = (max-min)/median\n\n");
    printf("%-27s %-9s %11s %7s %11s %7s %7s\n", "workload", "unit", "glibc",
           "spread", "parklock", "spread", "ratio");
}

static void print_row(const struct workload *w, const struct config *cfg,
                      const struct summary s[ENGINE_COUNT])
{
    const struct summary *g = &s[ENGINE_GLIBC], *p = &s[ENGINE_PLK];
    if (cfg->csv)
        printf("%s,%s,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%d,%.3f\n", w->name,
               w->unit, g->median, p->median, ratio(w, s), g->min, g->max,
               p->min, p->max, cfg->reps, cfg->seconds);
    else
        printf("%-27s %-9s %11.2f %6.1f%% %11.2f %6.1f%% %7.2f\n", w->name,
               w->unit, g->median, spread_pct(g), p->median, spread_pct(p),
               ratio(w, s));
    fflush(stdout);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: plk_bench_core [--quick] [--seconds S] [--reps N] [--csv]"
            " [--glibc-adaptive]\n"
            "  --quick           short run for smoke tests (0.05 s, 3 reps)\n"
            "  --seconds S       seconds per measurement (default 0.4)\n"
            "  --reps N          repetitions per engine, 1..%d (default 5)\n"
            "  --csv             print CSV instead of a table\n"
            "  --glibc-adaptive  use PTHREAD_MUTEX_ADAPTIVE_NP for glibc\n",
            MAX_REPS);
}

static void parse_args(int argc, char **argv, struct config *cfg)
{
    bool seconds_set = false, reps_set = false;
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char *end;
        if (!strcmp(a, "--quick")) {
            quick = true;
        } else if (!strcmp(a, "--csv")) {
            cfg->csv = true;
        } else if (!strcmp(a, "--glibc-adaptive")) {
            glibc_adaptive = true;
        } else if (!strcmp(a, "--seconds") && i + 1 < argc) {
            cfg->seconds = strtod(argv[++i], &end);
            if (*end || !(cfg->seconds >= 0.001 && cfg->seconds <= 3600))
                die("--seconds wants a number in [0.001, 3600], not '%s'", argv[i]);
            seconds_set = true;
        } else if (!strcmp(a, "--reps") && i + 1 < argc) {
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 1 || n > MAX_REPS)
                die("--reps wants an integer in [1, %d], not '%s'", MAX_REPS,
                    argv[i]);
            cfg->reps = (int)n;
            reps_set = true;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(EXIT_SUCCESS);
        } else {
            usage(stderr);
            exit(EXIT_FAILURE);
        }
    }
    if (quick) {
        if (!seconds_set)
            cfg->seconds = 0.05;
        if (!reps_set)
            cfg->reps = 3;
    }
}

int main(int argc, char **argv)
{
    struct config cfg = { .seconds = 0.4, .reps = 5, .csv = false };
    parse_args(argc, argv, &cfg);
    print_header(&cfg);
    for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++) {
        struct summary s[ENGINE_COUNT];
        run_workload(&workloads[i], &cfg, s);
        print_row(&workloads[i], &cfg, s);
    }
    return EXIT_SUCCESS;
}
