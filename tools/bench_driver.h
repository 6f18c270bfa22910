// bench_driver.h: a benchmark that is one ordinary pthread program, run on
// plain glibc and under LD_PRELOAD=libparklock.so in the same run. Shared by
// plk_bench_preload (bench_preload.c) and parklock-bench (bench_suite.c),
// which differ only in their workloads and defaults.
//
// The program uses only pthread_* (no parklock header), so what it measures
// is what any dynamically linked program gets from the preload: the PLT call
// into the interposer, its bookkeeping of glibc's mutex fields and the core.
//
// It is its own driver. For every measurement the driver re-executes itself
// (/proc/self/exe) as a worker in a fresh process, with an environment built
// for one engine:
//
//   glibc      no LD_PRELOAD: glibc's own pthread_mutex_* / pthread_cond_*
//   parklock   LD_PRELOAD=libparklock.so (PARKLOCK_ENGINE=parkinglot)
//   fwd-glibc  the same preload with PARKLOCK_ENGINE=glibc: every call is
//              forwarded to glibc, so its gap to "glibc" is the interposer's
//              own cost
//
// The worker first checks that its environment is what the driver intended
// (dlsym(RTLD_DEFAULT, "parklock_engine") absent, or present and naming the
// engine, and pthread_mutex_lock / pthread_cond_* bound to the object that
// defines it) and exits with a message on stderr otherwise; then it runs a
// warm-up of a quarter of the measurement and the measurement itself, and
// writes one line "result ENGINE FIGURE..." to its stdout, a pipe to the
// driver. The driver alone prints. Every repetition runs each engine once,
// the order rotating from one repetition to the next, so drift in CPU
// frequency or background load hits every engine alike; the table shows
// medians. This is a benchmark: it reports figures and never judges them.
// The only checks are for correctness (exact counts, in the workloads) and
// for the environment; a failure of either stops the run with a message.
//
// libparklock.so is found relative to the executable: ../libparklock.so (the
// build tree: build/tools/X and build/libparklock.so), then ../lib/,
// ../lib/x86_64-linux-gnu/ and ../<CMAKE_INSTALL_LIBDIR>/ (an install:
// P/bin/X and P/lib/libparklock.so), unless --lib or $PARKLOCK_LIB names it.
//
// Before including this header, a program defines BENCH_PROG; after it, it
// defines its workload table and calls driver_main().
#ifndef PLK_BENCH_DRIVER_H
#define PLK_BENCH_DRIVER_H

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define WATCHDOG_SLACK_S 60 // a worker still running after this is hung

// ---------------------------------------------------------------------------
// Engines: how the driver sets up a worker's environment, and what the worker
// must then find.

enum engine {
    ENGINE_GLIBC,
    ENGINE_PLK,
    ENGINE_FWD,
    ENGINE_PLK_PROF,
    ENGINE_FWD_PROF,
    ENGINE_COUNT
};

struct engine_desc {
    const char *name;
    // PARKLOCK_ENGINE for the preloaded run, and what parklock_engine() must
    // then answer; NULL: no preload at all.
    const char *plk_engine;
    // Runs with the contention profiler on (PARKLOCK_PROFILE=1, report to
    // /dev/null) whatever the caller's environment says.
    bool profiled;
};

static const struct engine_desc engines[ENGINE_COUNT] = {
    [ENGINE_GLIBC] = { "glibc", NULL, false },
    [ENGINE_PLK] = { "parklock", "parkinglot", false },
    [ENGINE_FWD] = { "fwd-glibc", "glibc", false },
    [ENGINE_PLK_PROF] = { "parklock+prof", "parkinglot", true },
    [ENGINE_FWD_PROF] = { "glibc+prof", "glibc", true },
};

static int engine_by_name(const char *name)
{
    for (int e = 0; e < ENGINE_COUNT; e++)
        if (!strcmp(engines[e].name, name))
            return e;
    return -1;
}

// ---------------------------------------------------------------------------
// Mutexes and conds: plain pthread calls, whichever library defines them. A
// worker runs one engine, so the engine layer of bench_common.h ignores it.

struct bench_mutex {
    pthread_mutex_t pt;
};

struct bench_cond {
    pthread_cond_t pt;
};

#include "bench_common.h"

static const char *engine_name(enum engine e)
{
    return engines[e].name;
}

// Every mutex follows --adaptive (adaptive_mutexes).
static void bm_init(enum engine e, struct bench_mutex *m)
{
    (void)e;
    memset(m, 0, sizeof(*m));
    pt_mutex_init(&m->pt);
}

static void bm_destroy(enum engine e, struct bench_mutex *m)
{
    (void)e;
    pt_mutex_destroy(&m->pt);
}

static inline void bm_lock(enum engine e, struct bench_mutex *m)
{
    (void)e;
    pt_lock(&m->pt);
}

static inline void bm_unlock(enum engine e, struct bench_mutex *m)
{
    (void)e;
    pt_unlock(&m->pt);
}

static void bc_init(enum engine e, struct bench_cond *c)
{
    (void)e;
    memset(c, 0, sizeof(*c));
    pt_cond_init(&c->pt);
}

static void bc_destroy(enum engine e, struct bench_cond *c)
{
    (void)e;
    pt_cond_destroy(&c->pt);
}

static inline void bc_wait(enum engine e, struct bench_cond *c,
                           struct bench_mutex *m)
{
    (void)e;
    pt_cond_wait(&c->pt, &m->pt);
}

static inline void bc_signal(enum engine e, struct bench_cond *c)
{
    (void)e;
    pt_cond_signal(&c->pt);
}

static inline void bc_broadcast(enum engine e, struct bench_cond *c)
{
    (void)e;
    pt_cond_broadcast(&c->pt);
}

// ---------------------------------------------------------------------------
// The program: what a driver_main() caller supplies.

struct driver_program {
    const char *name;   // BENCH_PROG: argv[0] of workers, error prefix
    const char *title;  // the table's first line, before the library's path
    const char *usage;  // the program's own lines of --help, or ""
    const struct workload *workloads;
    int nworkloads;
    double seconds;     // defaults
    int reps;
    bool forward;       // measure fwd-glibc unless told otherwise
};

// ---------------------------------------------------------------------------
// Worker: check the environment, run one workload, report on stdout.

typedef const char *(*engine_query_fn)(void);

// The file of the object defining the code at `addr`, or "?".
static const char *object_of(void *addr)
{
    Dl_info info;
    if (!addr || !dladdr(addr, &info) || !info.dli_fname)
        return "?";
    return info.dli_fname;
}

// Exits unless this process runs on engine `e`: parklock_engine is absent
// without the preload; with it, it names the intended engine, and the
// pthread functions this program calls are the ones of the same object.
static void verify_environment(enum engine e)
{
    const char *want = engines[e].plk_engine;
    const char *preload = getenv("LD_PRELOAD");
    void *query = dlsym(RTLD_DEFAULT, "parklock_engine");
    if (!want) {
        if (query)
            die("meant to run on plain glibc, but parklock is loaded (%s, "
                "parklock_engine() = \"%s\", LD_PRELOAD=%s)", object_of(query),
                ((engine_query_fn)query)(), preload ? preload : "(unset)");
        return;
    }
    if (!query)
        die("meant to run under libparklock.so, but parklock_engine is not "
            "defined: the preload did not take effect (LD_PRELOAD=%s)",
            preload ? preload : "(unset)");
    const char *got = ((engine_query_fn)query)();
    if (!got || strcmp(got, want))
        die("meant to run on parklock's \"%s\" engine, but parklock_engine() "
            "= \"%s\" (PARKLOCK_ENGINE=%s)", want, got ? got : "(null)",
            getenv("PARKLOCK_ENGINE") ? getenv("PARKLOCK_ENGINE") : "(unset)");
    // The addresses this (PIE) program uses, as the dynamic linker bound them.
    const struct { const char *name; void *addr; } used[] = {
        { "pthread_mutex_lock", (void *)pthread_mutex_lock },
        { "pthread_mutex_unlock", (void *)pthread_mutex_unlock },
        { "pthread_cond_wait", (void *)pthread_cond_wait },
        { "pthread_cond_signal", (void *)pthread_cond_signal },
        { "pthread_cond_broadcast", (void *)pthread_cond_broadcast },
    };
    const char *lib = object_of(query);
    for (size_t i = 0; i < sizeof(used) / sizeof(used[0]); i++) {
        const char *def = object_of(used[i].addr);
        if (strcmp(def, lib))
            die("%s is bound to %s, not to the preloaded %s", used[i].name,
                def, lib);
    }
}

static void worker_alarm(int sig)
{
    static const char msg[] =
        "benchmark worker: still running long after its measurement should "
        "have ended: hung (watchdog)\n";
    (void)sig;
    ssize_t r = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)r;
    _exit(3);
}

// argv: --worker ENGINE WORKLOAD THREADS SECONDS [--adaptive]; THREADS
// replaces the workload's thread count if it scales.
static int worker_main(const struct driver_program *prog, int argc, char **argv)
{
    static char role[128];
    if (argc < 6)
        die("worker: usage: --worker ENGINE WORKLOAD THREADS SECONDS [--adaptive]");
    snprintf(role, sizeof(role), "%s worker (%s, %s)", prog->name, argv[2],
             argv[3]);
    prog_role = role;
    int e = engine_by_name(argv[2]);
    const struct workload *w =
        workload_by_key(prog->workloads, prog->nworkloads, argv[3]);
    char *end, *end2;
    long threads = strtol(argv[4], &end2, 10);
    double seconds = strtod(argv[5], &end);
    if (e < 0 || !w || *end || !(seconds > 0 && seconds <= 3600) || *end2 ||
        threads < 0 || threads > MAX_BENCH_THREADS)
        die("bad worker arguments");
    for (int i = 6; i < argc; i++) {
        if (!strcmp(argv[i], "--adaptive"))
            adaptive_mutexes = true;
        else
            die("bad worker argument '%s'", argv[i]);
    }
    verify_environment((enum engine)e);
    struct wl_params p = w->p;
    if (w->scale)
        p.threads = (int)threads;

    signal(SIGALRM, worker_alarm);
    alarm((unsigned)(seconds * 1.25) + WATCHDOG_SLACK_S);
    const int64_t duration_ns = (int64_t)(seconds * 1e9);
    double fig[MAX_FIGURES];
    // warm-up: page faults, lazy binding, thread stacks
    w->run((enum engine)e, &p, duration_ns / 4, fig);
    w->run((enum engine)e, &p, duration_ns, fig);
    alarm(0);
    printf("result %s", engines[e].name);
    for (int i = 0; i < w->nmetrics; i++)
        printf(" %.17g", fig[i]);
    printf("\n");
    if (fflush(stdout) || ferror(stdout))
        die("cannot write the result: %s", strerror(errno));
    return EXIT_SUCCESS;
}

// ---------------------------------------------------------------------------
// Driver

struct config {
    const struct driver_program *prog;
    struct bench_opts o;
    bool forward;    // also run ENGINE_FWD
    bool profiled;   // also run the profiled engines
    const char *lib; // absolute path of libparklock.so (while parsing: --lib)
    struct bench_engines measured; // glibc, parklock and (forward) fwd-glibc
    char **env[ENGINE_COUNT];
};

static bool has_prefix(const char *s, const char *prefix)
{
    return !strncmp(s, prefix, strlen(prefix));
}

static char *xstrdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xstrdup_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        die("out of memory");
    return s;
}

// The driver's environment without LD_PRELOAD and PARKLOCK_ENGINE, plus the
// two set for engine `e`, and PARKLOCK_PROFILE=0 unless it is set (other
// PARKLOCK_* settings pass through): the figures are the locks', without
// the contention profiler's bookkeeping and its report on stderr.
static char **engine_environment(const struct config *cfg, enum engine e)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = xcalloc(n + 6, sizeof(env[0]));
    size_t k = 0;
    bool profiled = engines[e].profiled;
    for (size_t i = 0; i < n; i++)
        if (!has_prefix(environ[i], "LD_PRELOAD=") &&
            !has_prefix(environ[i], "PARKLOCK_ENGINE=") &&
            !(profiled && (has_prefix(environ[i], "PARKLOCK_PROFILE=") ||
                           has_prefix(environ[i], "PARKLOCK_OUTPUT="))))
            env[k++] = environ[i];
    if (engines[e].plk_engine) {
        env[k++] = xstrdup_printf("LD_PRELOAD=%s", cfg->lib);
        env[k++] = xstrdup_printf("PARKLOCK_ENGINE=%s", engines[e].plk_engine);
        if (profiled) {
            env[k++] = "PARKLOCK_PROFILE=1";
            env[k++] = "PARKLOCK_OUTPUT=/dev/null";
        } else if (!getenv("PARKLOCK_PROFILE")) {
            env[k++] = "PARKLOCK_PROFILE=0";
        }
    }
    env[k] = NULL;
    return env;
}

// Runs one worker and stores its figures in fig[]; exits if it fails in any
// way.
static void run_worker(const struct config *cfg, enum engine e,
                       const struct bench_item *it, double *fig)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC))
        die("pipe2: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    check_pthread(posix_spawn_file_actions_init(&fa), "posix_spawn_file_actions_init");
    check_pthread(posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO),
                  "posix_spawn_file_actions_adddup2");
    char seconds[32], threads[16];
    snprintf(seconds, sizeof(seconds), "%.9g", cfg->o.seconds);
    snprintf(threads, sizeof(threads), "%d", it->p.threads);
    char *argv[] = { (char *)cfg->prog->name, "--worker",
                     (char *)engines[e].name, (char *)it->w->key, threads,
                     seconds, adaptive_mutexes ? "--adaptive" : NULL, NULL };
    pid_t pid;
    int rc = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, cfg->env[e]);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc)
        die("cannot start a worker from /proc/self/exe: %s", strerror(rc));

    char out[1024];
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fds[0], out + len, sizeof(out) - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            die("reading from the worker: %s", strerror(errno));
        if (r == 0 || (len += (size_t)r) == sizeof(out) - 1)
            break;
    }
    out[len] = '\0';
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            die("waitpid: %s", strerror(errno));
    if (WIFSIGNALED(status))
        die("the %s worker for '%s' was killed by signal %d (%s)",
            engines[e].name, it->name, WTERMSIG(status),
            strsignal(WTERMSIG(status)));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("the %s worker for '%s' failed (exit status %d; its message is "
            "above)", engines[e].name, it->name, WEXITSTATUS(status));

    // "result ENGINE F0 F1 ...\n": every figure finite, >= 0, the first > 0.
    char name[32];
    int consumed = 0;
    bool ok = sscanf(out, "result %31s%n", name, &consumed) == 1 &&
              !strcmp(name, engines[e].name);
    const char *p = out + consumed;
    for (int i = 0; ok && i < it->w->nmetrics; i++) {
        char *end;
        fig[i] = strtod(p, &end);
        ok = end != p && isfinite(fig[i]) && fig[i] >= 0 && (i > 0 || fig[i] > 0);
        p = end;
    }
    if (!ok || strcmp(p, "\n"))
        die("the %s worker for '%s' wrote unexpected output: '%s'",
            engines[e].name, it->name, out);
}

struct job {
    const struct config *cfg;
    const struct bench_item *it;
};

static void measure(enum engine e, void *arg, double *fig)
{
    const struct job *job = arg;
    run_worker(job->cfg, e, job->it, fig);
}

// ../libparklock.so, ../lib/libparklock.so, ... relative to this executable:
// the first that exists, or (for the message) the first tried.
static char *default_lib(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n < 0)
        die("readlink /proc/self/exe: %s", strerror(errno));
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    const char *dirs[] = {
        "..", "../lib", "../lib/x86_64-linux-gnu",
#ifdef PLK_INSTALL_LIBDIR
        "../" PLK_INSTALL_LIBDIR,
#endif
    };
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        char *path = xstrdup_printf("%s/%s/libparklock.so", exe, dirs[i]);
        if (!access(path, R_OK))
            return path;
        free(path);
    }
    die("libparklock.so not found next to %s (tried ../, ../lib/, "
        "../lib/x86_64-linux-gnu/%s): build target 'parklock' or pass "
        "--lib PATH", exe,
#ifdef PLK_INSTALL_LIBDIR
        ", ../" PLK_INSTALL_LIBDIR "/"
#else
        ""
#endif
    );
}

static const char *resolve_lib(const char *path)
{
    char *abs = realpath(path, NULL);
    if (!abs)
        die("libparklock.so not found at %s (%s): build target 'parklock' or "
            "pass --lib PATH", path, strerror(errno));
    if (strpbrk(abs, " :\t"))
        die("%s: LD_PRELOAD cannot carry a path with a space or colon", abs);
    if (access(abs, R_OK))
        die("%s: %s", abs, strerror(errno));
    return abs;
}

static const struct driver_program *usage_prog;

static void usage(FILE *f)
{
    const struct driver_program *prog = usage_prog;
    fprintf(f, "usage: %s [OPTION]...\n", prog->name);
    usage_common(f, prog->seconds, prog->reps);
    fprintf(f,
            "  --lib PATH       libparklock.so to preload (default:\n"
            "                   $PARKLOCK_LIB, else found from this\n"
            "                   executable: ../libparklock.so,\n"
            "                   ../lib/libparklock.so, ...)\n"
            "  --forward        also run the preload with PARKLOCK_ENGINE=glibc\n"
            "                   (fwd-glibc: the interposer's own cost)%s\n"
            "  --no-forward     leave fwd-glibc out%s\n"
            "  --profile        also run the preload with the contention\n"
            "                   profiler on (parklock+prof, glibc+prof; the\n"
            "                   report goes to /dev/null): its cost\n"
            "  --adaptive       PTHREAD_MUTEX_ADAPTIVE_NP mutexes on every engine\n"
            "%s"
            "Other PARKLOCK_* variables (e.g. PARKLOCK_SPIN_NS) pass through "
            "to the preloaded runs.\n",
            prog->forward ? " (default)" : "", prog->forward ? "" : " (default)",
            prog->usage);
}

// The options of the driver alone, for bench_parse_args.
static bool more_option(int argc, char **argv, int *i, void *ctx)
{
    struct config *cfg = ctx;
    const char *a = argv[*i], *v;
    if (!strcmp(a, "--forward")) {
        cfg->forward = true;
    } else if (!strcmp(a, "--no-forward")) {
        cfg->forward = false;
    } else if (!strcmp(a, "--profile")) {
        cfg->profiled = true;
    } else if (!strcmp(a, "--adaptive")) {
        adaptive_mutexes = true;
    } else if ((v = opt_value(argc, argv, i, "--lib"))) {
        cfg->lib = v;
    } else {
        return false;
    }
    return true;
}

// The whole program: a worker if argv says so, else the driver.
static int driver_main(const struct driver_program *prog, int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--worker"))
        return worker_main(prog, argc, argv);

    struct config cfg = { .prog = prog,
                          .o = { .seconds = prog->seconds, .reps = prog->reps },
                          .forward = prog->forward };
    usage_prog = prog;
    bench_parse_args(argc, argv, &cfg.o, more_option, &cfg, usage);
    int nitems;
    struct bench_item *items = bench_items(prog->workloads, prog->nworkloads,
                                           &cfg.o, &nitems);
    if (cfg.o.list) {
        list_items(items, nitems);
        return EXIT_SUCCESS;
    }
    if (!cfg.lib && getenv("PARKLOCK_LIB") && *getenv("PARKLOCK_LIB"))
        cfg.lib = getenv("PARKLOCK_LIB"); // as the parklock command does
    if (cfg.lib) {
        cfg.lib = resolve_lib(cfg.lib);
    } else {
        char *guess = default_lib();
        cfg.lib = resolve_lib(guess);
        free(guess);
    }
    for (int e = 0; e < ENGINE_COUNT; e++)
        if ((e != ENGINE_FWD || cfg.forward) && (!engines[e].profiled || cfg.profiled))
            cfg.measured.id[cfg.measured.n++] = (enum engine)e;
    const char *inherited = getenv("LD_PRELOAD");
    if (inherited && *inherited)
        fprintf(stderr, "%s: note: LD_PRELOAD=%s is not passed to the "
                "workers; each gets the preload of its engine only\n",
                prog->name, inherited);
    for (int e = 0; e < ENGINE_COUNT; e++)
        cfg.env[e] = engine_environment(&cfg, (enum engine)e);

    char *line1 = xstrdup_printf("%s, plain glibc vs LD_PRELOAD=%s (%s "
                                 "mutexes): one process per measurement, "
                                 "engines interleaved", prog->title, cfg.lib,
                                 adaptive_mutexes ? "ADAPTIVE_NP" : "default");
    // Every PARKLOCK_* setting the preloaded runs get from here.
    char *line3 = xstrdup_printf("PARKLOCK_* settings of the preloaded runs:%s",
                                 getenv("PARKLOCK_PROFILE") ? "" :
                                 " PARKLOCK_PROFILE=0 (profiler off)");
    for (char **v = environ; *v; v++)
        if (has_prefix(*v, "PARKLOCK_") && !has_prefix(*v, "PARKLOCK_ENGINE=")) {
            char *more = xstrdup_printf("%s %s", line3, *v);
            free(line3);
            line3 = more;
        }
    const char *notes[] = {
        line1,
        cfg.forward ? "glibc: no preload; parklock: the preload; fwd-glibc: the "
                      "preload with PARKLOCK_ENGINE=glibc (forwards every call: "
                      "the interposer's own cost)"
                    : "glibc: no preload; parklock: the preload",
        line3,
        cfg.profiled ? "parklock+prof, glibc+prof: parklock and fwd-glibc with "
                       "PARKLOCK_PROFILE=1 (stacks on, report to /dev/null)"
                     : NULL,
        NULL,
    };
    struct bench_output out;
    output_open(&out, &cfg.measured, &cfg.o, items, nitems);
    output_header(&out, prog->name, cfg.lib, notes);
    for (int i = 0; i < nitems; i++) {
        struct bench_result r;
        struct job job = { &cfg, &items[i] };
        bench_repeat(&cfg.measured, cfg.o.reps, items[i].w->nmetrics, measure,
                     &job, &r);
        output_item(&out, &items[i], &r);
    }
    output_close(&out);
    free(items);
    free(line1);
    free(line3);
    return EXIT_SUCCESS;
}

#endif
