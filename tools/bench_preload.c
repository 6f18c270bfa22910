// plk_bench_preload: one ordinary pthread program, run on plain glibc and
// under LD_PRELOAD=libparklock.so in the same run.
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
//              own cost (--no-forward leaves it out)
//
// The worker first checks that its environment is what the driver intended
// (dlsym(RTLD_DEFAULT, "parklock_engine") absent, or present and naming the
// engine, and pthread_mutex_lock / pthread_cond_* bound to the object that
// defines it) and exits with a message on stderr otherwise; then it runs a
// warm-up of a quarter of the measurement and the measurement itself, and
// writes one line "result ENGINE VALUE" to its stdout, a pipe to the driver.
// The driver alone prints. Every repetition runs each engine once, the order
// rotating from one repetition to the next, so drift in CPU frequency or
// background load hits every engine alike; the table shows medians. This is
// a benchmark: it reports figures and never judges them. The only checks are
// for correctness (an exact shared counter) and for the environment.
//
// Usage: plk_bench_preload [--quick] [--seconds S] [--reps N] [--csv]
//                          [--lib PATH] [--no-forward] [--adaptive]
//                          [--workload W]...
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

#define BENCH_PROG "plk_bench_preload"
#define WATCHDOG_SLACK_S 60  // a worker still running after this is hung

// ---------------------------------------------------------------------------
// Engines: how the driver sets up a worker's environment, and what the worker
// must then find.

enum engine { ENGINE_GLIBC, ENGINE_PLK, ENGINE_FWD, ENGINE_COUNT };

struct engine_desc {
    const char *name;
    // PARKLOCK_ENGINE for the preloaded run, and what parklock_engine() must
    // then answer; NULL: no preload at all.
    const char *plk_engine;
};

static const struct engine_desc engines[ENGINE_COUNT] = {
    [ENGINE_GLIBC] = { "glibc", NULL },
    [ENGINE_PLK] = { "parklock", "parkinglot" },
    [ENGINE_FWD] = { "fwd-glibc", "glibc" },
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
        "plk_bench_preload worker: still running long after its measurement "
        "should have ended: hung (watchdog)\n";
    (void)sig;
    ssize_t r = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)r;
    _exit(3);
}

// argv: --worker ENGINE WORKLOAD SECONDS [--adaptive]
static int worker_main(int argc, char **argv)
{
    static char role[96];
    if (argc < 5)
        die("worker: usage: --worker ENGINE WORKLOAD SECONDS [--adaptive]");
    snprintf(role, sizeof(role), "plk_bench_preload worker (%s, %s)", argv[2],
             argv[3]);
    prog_role = role;
    int e = engine_by_name(argv[2]);
    const struct workload *w = workload_by_key(argv[3]);
    char *end;
    double seconds = strtod(argv[4], &end);
    if (e < 0 || !w || *end || !(seconds > 0 && seconds <= 3600))
        die("bad worker arguments");
    for (int i = 5; i < argc; i++) {
        if (!strcmp(argv[i], "--adaptive"))
            adaptive_mutexes = true;
        else
            die("bad worker argument '%s'", argv[i]);
    }
    verify_environment((enum engine)e);

    signal(SIGALRM, worker_alarm);
    alarm((unsigned)(seconds * 1.25) + WATCHDOG_SLACK_S);
    const int64_t duration_ns = (int64_t)(seconds * 1e9);
    // warm-up: page faults, lazy binding
    w->run((enum engine)e, w->param, duration_ns / 4);
    double v = w->run((enum engine)e, w->param, duration_ns);
    alarm(0);
    printf("result %s %.17g\n", engines[e].name, v);
    if (fflush(stdout) || ferror(stdout))
        die("cannot write the result: %s", strerror(errno));
    return EXIT_SUCCESS;
}

// ---------------------------------------------------------------------------
// Driver

struct config {
    struct bench_opts o;
    bool forward;   // also run ENGINE_FWD
    const char *lib; // absolute path of libparklock.so (while parsing: --lib)
    bool selected[WORKLOAD_COUNT]; // all if none
    bool any_selected;
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
// two set for engine `e` (other PARKLOCK_* settings pass through).
static char **engine_environment(const struct config *cfg, enum engine e)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 3, sizeof(env[0]));
    if (!env)
        die("out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!has_prefix(environ[i], "LD_PRELOAD=") &&
            !has_prefix(environ[i], "PARKLOCK_ENGINE="))
            env[k++] = environ[i];
    if (engines[e].plk_engine) {
        env[k++] = xstrdup_printf("LD_PRELOAD=%s", cfg->lib);
        env[k++] = xstrdup_printf("PARKLOCK_ENGINE=%s", engines[e].plk_engine);
    }
    env[k] = NULL;
    return env;
}

// Runs one worker and returns its figure; exits if it fails in any way.
static double run_worker(const struct config *cfg, enum engine e,
                         const struct workload *w)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC))
        die("pipe2: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    check_pthread(posix_spawn_file_actions_init(&fa), "posix_spawn_file_actions_init");
    check_pthread(posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO),
                  "posix_spawn_file_actions_adddup2");
    char seconds[32];
    snprintf(seconds, sizeof(seconds), "%.9g", cfg->o.seconds);
    char *argv[] = { "plk_bench_preload", "--worker", (char *)engines[e].name,
                     (char *)w->key, seconds,
                     adaptive_mutexes ? "--adaptive" : NULL, NULL };
    pid_t pid;
    int rc = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, cfg->env[e]);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc)
        die("cannot start a worker from /proc/self/exe: %s", strerror(rc));

    char out[512];
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
            engines[e].name, w->name, WTERMSIG(status),
            strsignal(WTERMSIG(status)));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("the %s worker for '%s' failed (exit status %d; its message is "
            "above)", engines[e].name, w->name, WEXITSTATUS(status));

    char name[32];
    double v;
    int consumed = 0;
    if (sscanf(out, "result %31s %lf\n%n", name, &v, &consumed) != 2 ||
        strcmp(name, engines[e].name) || out[consumed] != '\0' || !(v > 0))
        die("the %s worker for '%s' wrote unexpected output: '%s'",
            engines[e].name, w->name, out);
    return v;
}

struct job {
    const struct config *cfg;
    const struct workload *w;
};

static double measure(enum engine e, void *arg)
{
    const struct job *job = arg;
    return run_worker(job->cfg, e, job->w);
}

// Runs one workload: `reps` repetitions of every measured engine, the order
// rotating per repetition.
static void run_workload(const struct workload *w, const struct config *cfg,
                         struct summary out[ENGINE_COUNT])
{
    struct job job = { cfg, w };
    bench_repeat(&cfg->measured, cfg->o.reps, measure, &job, out);
}

static void print_header(const struct config *cfg)
{
    const struct bench_engines *en = &cfg->measured;
    if (cfg->o.csv) {
        printf("workload,unit");
        for (int k = 0; k < en->n; k++)
            printf(",%s,%s_min,%s_max", engine_name(en->id[k]),
                   engine_name(en->id[k]), engine_name(en->id[k]));
        for (int k = 1; k < en->n; k++)
            printf(",%s_ratio", engine_name(en->id[k]));
        printf(",reps,seconds\n");
        return;
    }
    printf("one pthread program, plain glibc vs LD_PRELOAD=%s (%s mutexes): "
           "median of %d reps of %.2f s each, one process per measurement, "
           "engines interleaved\n",
           cfg->lib, adaptive_mutexes ? "ADAPTIVE_NP" : "default", cfg->o.reps,
           cfg->o.seconds);
    printf("glibc: no preload; parklock: the preload%s\n",
           cfg->forward ? "; fwd-glibc: the preload with PARKLOCK_ENGINE=glibc "
                          "(forwards every call: the interposer's own cost)"
                        : "");
    printf("ratio > 1 means the preloaded run is better than plain glibc "
           "(glibc/x for times, x/glibc for throughput); "
           "spread = (max-min)/median\n");
    const char *spin = getenv("PARKLOCK_SPIN_NS");
    if (spin)
        printf("PARKLOCK_SPIN_NS=%s passed to the preloaded runs\n", spin);
    printf("\n");
    table_header(en);
}

static void print_row(const struct workload *w, const struct config *cfg,
                      const struct summary s[ENGINE_COUNT])
{
    const struct bench_engines *en = &cfg->measured;
    if (!cfg->o.csv) {
        table_row(w, en, s);
        return;
    }
    printf("%s,%s", w->name, w->unit);
    for (int k = 0; k < en->n; k++) {
        const struct summary *x = &s[en->id[k]];
        printf(",%.4f,%.4f,%.4f", x->median, x->min, x->max);
    }
    for (int k = 1; k < en->n; k++)
        printf(",%.4f", ratio(w, s, en->id[k]));
    printf(",%d,%.3f\n", cfg->o.reps, cfg->o.seconds);
    fflush(stdout);
}

// libparklock.so next to the build tree's tools/ directory: ../libparklock.so
// relative to this executable.
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
    return xstrdup_printf("%s/../libparklock.so", exe);
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

static void usage(FILE *f)
{
    fprintf(f,
            "usage: plk_bench_preload [--quick] [--seconds S] [--reps N] [--csv]\n"
            "                         [--lib PATH] [--no-forward] [--adaptive]\n"
            "                         [--workload W]...\n"
            "  --quick       short run for smoke tests (0.05 s, 3 reps)\n"
            "  --seconds S   seconds per measurement (default 0.4; each worker\n"
            "                also warms up for S/4)\n"
            "  --reps N      repetitions per engine, 1..%d (default 7)\n"
            "  --csv         print CSV instead of a table\n"
            "  --lib PATH    libparklock.so to preload (default: "
            "../libparklock.so\n"
            "                next to this executable)\n"
            "  --no-forward  skip the preload with PARKLOCK_ENGINE=glibc\n"
            "  --adaptive    PTHREAD_MUTEX_ADAPTIVE_NP mutexes on every engine\n"
            "  --workload W  run only workload W (repeatable): uncontended,\n"
            "                counter2, counter8, pingpong, broadcast\n"
            "Other PARKLOCK_* variables (e.g. PARKLOCK_SPIN_NS) pass through "
            "to the preloaded runs.\n",
            MAX_REPS);
}

// The options of this program alone, for bench_parse_args.
static bool more_option(int argc, char **argv, int *i, void *ctx)
{
    struct config *cfg = ctx;
    const char *a = argv[*i];
    if (!strcmp(a, "--no-forward")) {
        cfg->forward = false;
    } else if (!strcmp(a, "--adaptive")) {
        adaptive_mutexes = true;
    } else if (!strcmp(a, "--lib") && *i + 1 < argc) {
        cfg->lib = argv[++*i];
    } else if (!strcmp(a, "--workload") && *i + 1 < argc) {
        const struct workload *w = workload_by_key(argv[++*i]);
        if (!w)
            die("--workload: no workload '%s' (see --help)", argv[*i]);
        cfg->selected[w - workloads] = true;
        cfg->any_selected = true;
    } else {
        return false;
    }
    return true;
}

static void parse_args(int argc, char **argv, struct config *cfg)
{
    bench_parse_args(argc, argv, &cfg->o, more_option, cfg, usage);
    if (cfg->lib) {
        cfg->lib = resolve_lib(cfg->lib);
    } else {
        char *guess = default_lib();
        cfg->lib = resolve_lib(guess);
        free(guess);
    }
    for (int e = 0; e < ENGINE_COUNT; e++)
        if (e != ENGINE_FWD || cfg->forward)
            cfg->measured.id[cfg->measured.n++] = (enum engine)e;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--worker"))
        return worker_main(argc, argv);

    struct config cfg = { .o = { .seconds = 0.4, .reps = 7 }, .forward = true };
    parse_args(argc, argv, &cfg);
    const char *inherited = getenv("LD_PRELOAD");
    if (inherited && *inherited)
        fprintf(stderr, "plk_bench_preload: note: LD_PRELOAD=%s is not passed "
                "to the workers; each gets the preload of its engine only\n",
                inherited);
    for (int e = 0; e < ENGINE_COUNT; e++)
        cfg.env[e] = engine_environment(&cfg, (enum engine)e);
    print_header(&cfg);
    for (int i = 0; i < WORKLOAD_COUNT; i++) {
        if (cfg.any_selected && !cfg.selected[i])
            continue;
        struct summary s[ENGINE_COUNT];
        run_workload(&workloads[i], &cfg, s);
        print_row(&workloads[i], &cfg, s);
    }
    return EXIT_SUCCESS;
}
