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
// never judges them. The only checks are for correctness (exact counts),
// and a failure there exits with a message on stderr.
//
// Usage: plk_bench_core [--quick] [--seconds S] [--reps N] [--csv[=FILE]]
//                       [--json[=FILE]] [--workload W]... [--list]
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
    const struct bench_item *it;
    int64_t duration_ns;
};

static void measure(enum engine e, void *arg, double *fig)
{
    const struct measurement *m = arg;
    m->it->w->run(e, &m->it->p, m->duration_ns, fig);
}

// Runs one item: a short warm-up per engine, then `reps` repetitions of
// both engines, their order alternating per repetition.
static void run_item(const struct bench_item *it, const struct bench_opts *o,
                     struct bench_result *r)
{
    struct measurement m = { it, (int64_t)(o->seconds * 1e9) };
    double fig[MAX_FIGURES];
    for (int e = 0; e < ENGINE_COUNT; e++)
        it->w->run((enum engine)e, &it->p, m.duration_ns / 4, fig);
    bench_repeat(&all_engines, o->reps, it->w->nmetrics, measure, &m, r);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: plk_bench_core [OPTION]...\n");
    usage_common(f, 0.4, 5);
    fprintf(f, "  --glibc-adaptive  use PTHREAD_MUTEX_ADAPTIVE_NP for glibc\n");
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
    struct bench_opts o = { .seconds = 0.4, .reps = 5 };
    bench_parse_args(argc, argv, &o, more_option, NULL, usage);
    int nitems;
    struct bench_item *items = bench_items(classic_workloads,
                                           CLASSIC_WORKLOAD_COUNT, &o, &nitems);
    if (o.list) {
        list_items(items, nitems);
        return EXIT_SUCCESS;
    }
    char title[160];
    snprintf(title, sizeof(title), "parklock core vs glibc %s pthread "
             "mutex/cond, linked directly: engines interleaved",
             adaptive_mutexes ? "(ADAPTIVE_NP)" : "(default)");
    const char *notes[] = { title, NULL };
    struct bench_output out;
    output_open(&out, &all_engines, &o, items, nitems);
    output_header(&out, BENCH_PROG, NULL, notes);
    for (int i = 0; i < nitems; i++) {
        struct bench_result r;
        run_item(&items[i], &o, &r);
        output_item(&out, &items[i], &r);
    }
    output_close(&out);
    free(items);
    return EXIT_SUCCESS;
}
