// plk_bench_core: the core's mutex and condition variable against glibc's
// pthread_mutex_* / pthread_cond_*, in one run.
//
// Every workload is written once, in bench_common.h, which plk_bench_preload
// shares, against a small engine layer defined here (a switch on
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
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cond.h"
#include "mutex.h"

#define BENCH_PROG "plk_bench_core"
#define BENCH_ONE_PROCESS 1

// ---------------------------------------------------------------------------
// Engines

enum engine { ENGINE_GLIBC, ENGINE_PLK, ENGINE_COUNT };

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

#include "bench_common.h"

static const char *const engine_names[ENGINE_COUNT] = { "glibc", "parklock" };

static const struct bench_engines all_engines = {
    ENGINE_COUNT, { ENGINE_GLIBC, ENGINE_PLK }
};

static const char *engine_name(enum engine e)
{
    return engine_names[e];
}

// glibc mutexes follow --glibc-adaptive (adaptive_mutexes); the core's are
// always the same.
static void bm_init(enum engine e, struct bench_mutex *m)
{
    memset(m, 0, sizeof(*m));
    if (e == ENGINE_GLIBC)
        pt_mutex_init(&m->u.pt);
    else
        m->u.plk = (struct plk_mutex)PLK_MUTEX_INIT;
}

static void bm_destroy(enum engine e, struct bench_mutex *m)
{
    if (e == ENGINE_GLIBC)
        pt_mutex_destroy(&m->u.pt);
}

static inline void bm_lock(enum engine e, struct bench_mutex *m)
{
    if (e == ENGINE_GLIBC)
        pt_lock(&m->u.pt);
    else
        plk_mutex_lock(&m->u.plk);
}

static inline void bm_unlock(enum engine e, struct bench_mutex *m)
{
    if (e == ENGINE_GLIBC)
        pt_unlock(&m->u.pt);
    else
        plk_mutex_unlock(&m->u.plk);
}

static void bc_init(enum engine e, struct bench_cond *c)
{
    memset(c, 0, sizeof(*c));
    if (e == ENGINE_GLIBC)
        pt_cond_init(&c->u.pt);
    else
        c->u.plk = (struct plk_cond)PLK_COND_INIT;
}

static void bc_destroy(enum engine e, struct bench_cond *c)
{
    if (e == ENGINE_GLIBC)
        pt_cond_destroy(&c->u.pt);
}

static inline void bc_wait(enum engine e, struct bench_cond *c,
                           struct bench_mutex *m)
{
    if (e == ENGINE_GLIBC)
        pt_cond_wait(&c->u.pt, &m->u.pt);
    else
        plk_cond_wait(&c->u.plk, &m->u.plk, NULL);
}

static inline void bc_signal(enum engine e, struct bench_cond *c)
{
    if (e == ENGINE_GLIBC)
        pt_cond_signal(&c->u.pt);
    else
        plk_cond_signal(&c->u.plk);
}

static inline void bc_broadcast(enum engine e, struct bench_cond *c)
{
    if (e == ENGINE_GLIBC)
        pt_cond_broadcast(&c->u.pt);
    else
        plk_cond_broadcast(&c->u.plk);
}

// ---------------------------------------------------------------------------
// Harness

struct measurement {
    const struct workload *w;
    int64_t duration_ns;
};

static double measure(enum engine e, void *arg)
{
    const struct measurement *m = arg;
    return m->w->run(e, m->w->param, m->duration_ns);
}

// Runs one workload: a short warm-up per engine, then `reps` repetitions of
// both engines, their order alternating per repetition.
static void run_workload(const struct workload *w, const struct bench_opts *cfg,
                         struct summary out[ENGINE_COUNT])
{
    struct measurement m = { w, (int64_t)(cfg->seconds * 1e9) };
    for (int e = 0; e < ENGINE_COUNT; e++)
        w->run((enum engine)e, w->param, m.duration_ns / 4);
    bench_repeat(&all_engines, cfg->reps, measure, &m, out);
}

static void print_header(const struct bench_opts *cfg)
{
    if (cfg->csv) {
        printf("workload,unit,glibc,parklock,ratio,glibc_min,glibc_max,"
               "parklock_min,parklock_max,reps,seconds\n");
        return;
    }
    printf("parklock core vs glibc %s pthread mutex/cond: median of %d reps "
           "of %.2f s each, engines interleaved\n",
           adaptive_mutexes ? "(ADAPTIVE_NP)" : "(default)", cfg->reps,
           cfg->seconds);
    printf("ratio > 1 means parklock is better (glibc/parklock for times, "
           "parklock/glibc for throughput); spread = (max-min)/median\n\n");
    table_header(&all_engines);
}

static void print_row(const struct workload *w, const struct bench_opts *cfg,
                      const struct summary s[ENGINE_COUNT])
{
    const struct summary *g = &s[ENGINE_GLIBC], *p = &s[ENGINE_PLK];
    if (!cfg->csv) {
        table_row(w, &all_engines, s);
        return;
    }
    printf("%s,%s,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%d,%.3f\n", w->name,
           w->unit, g->median, p->median, ratio(w, s, ENGINE_PLK), g->min,
           g->max, p->min, p->max, cfg->reps, cfg->seconds);
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

// The options of this program alone, for bench_parse_args.
static bool more_option(int argc, char **argv, int *i, void *ctx)
{
    (void)argc;
    (void)ctx;
    if (strcmp(argv[*i], "--glibc-adaptive"))
        return false;
    adaptive_mutexes = true;
    return true;
}

int main(int argc, char **argv)
{
    struct bench_opts cfg = { .seconds = 0.4, .reps = 5, .csv = false };
    bench_parse_args(argc, argv, &cfg, more_option, NULL, usage);
    print_header(&cfg);
    for (int i = 0; i < WORKLOAD_COUNT; i++) {
        struct summary s[ENGINE_COUNT];
        run_workload(&workloads[i], &cfg, s);
        print_row(&workloads[i], &cfg, s);
    }
    return EXIT_SUCCESS;
}
