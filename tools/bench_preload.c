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
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define CACHE_LINE 64
#define MAX_REPS 99
#define BCAST_WAITERS 32
#define COUNTER_INCREMENTS 4 // increments of the shared counter per op
#define OUTSIDE_WORK_STEPS 8 // LCG steps between ops, outside the lock
#define THREAD_STACK (256 * 1024)
#define WATCHDOG_SLACK_S 60  // a worker still running after this is hung

// ---------------------------------------------------------------------------
// Helpers

static const char *prog_role = "plk_bench_preload";

__attribute__((format(printf, 1, 2), noreturn))
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog_role);
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
// Mutexes and conds: plain pthread calls, whichever library defines them.

// Use PTHREAD_MUTEX_ADAPTIVE_NP (glibc spins) instead of the default type.
static bool use_adaptive;

static void mutex_init(pthread_mutex_t *m)
{
    pthread_mutexattr_t attr;
    check_pthread(pthread_mutexattr_init(&attr), "pthread_mutexattr_init");
    if (use_adaptive)
        check_pthread(pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP),
                      "pthread_mutexattr_settype");
    check_pthread(pthread_mutex_init(m, &attr), "pthread_mutex_init");
    pthread_mutexattr_destroy(&attr);
}

static inline void lock(pthread_mutex_t *m)
{
    check_pthread(pthread_mutex_lock(m), "pthread_mutex_lock");
}

static inline void unlock(pthread_mutex_t *m)
{
    check_pthread(pthread_mutex_unlock(m), "pthread_mutex_unlock");
}

static inline void wait_cond(pthread_cond_t *c, pthread_mutex_t *m)
{
    check_pthread(pthread_cond_wait(c, m), "pthread_cond_wait");
}

// ---------------------------------------------------------------------------
// Workloads. Each runs one measurement of `duration_ns` with parameter
// `param` and returns its figure in the workload's unit.

// 1. Uncontended lock+unlock pairs on one thread: ns per pair. A second
// thread sleeps meanwhile, so the process is multi-threaded as any program
// that needs a mutex is: a single-threaded glibc process takes a shortcut
// that skips the atomic instructions (SINGLE_THREAD_P, glibc >= 2.34).
static void *bystander_main(void *arg)
{
    pthread_barrier_wait(arg);
    return NULL;
}

static double wl_uncontended(int param, int64_t duration_ns)
{
    (void)param;
    enum { BATCH = 4096 };
    pthread_barrier_t done;
    pthread_t bystander;
    check_pthread(pthread_barrier_init(&done, NULL, 2), "pthread_barrier_init");
    start_threads(&bystander, 1, bystander_main, &done, 0);
    pthread_mutex_t m;
    mutex_init(&m);
    uint64_t pairs = 0;
    int64_t start = now_ns(), elapsed;
    do {
        for (int i = 0; i < BATCH; i++) {
            lock(&m);
            unlock(&m);
        }
        pairs += BATCH;
        elapsed = now_ns() - start;
    } while (elapsed < duration_ns);
    check_pthread(pthread_mutex_destroy(&m), "pthread_mutex_destroy");
    pthread_barrier_wait(&done);
    join_threads(&bystander, 1);
    pthread_barrier_destroy(&done);
    return (double)elapsed / (double)pairs;
}

// 2. N threads incrementing a shared counter under the mutex (a short
// critical section, a little work outside it): M ops/s. The final counter
// must be exactly COUNTER_INCREMENTS per op.
struct counter_shared {
    _Alignas(CACHE_LINE) pthread_mutex_t m;
    _Alignas(CACHE_LINE) volatile uint64_t counter; // guarded by m
    _Alignas(CACHE_LINE) atomic_bool stop;
    pthread_barrier_t start;
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
    uint64_t ops = 0;
    uint32_t x = (uint32_t)(uintptr_t)t;
    pthread_barrier_wait(&s->start);
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        lock(&s->m);
        for (int i = 0; i < COUNTER_INCREMENTS; i++)
            s->counter++;
        unlock(&s->m);
        for (int i = 0; i < OUTSIDE_WORK_STEPS; i++)
            x = x * 1664525u + 1013904223u;
        ops++;
    }
    t->ops = ops;
    t->sink = x;
    return NULL;
}

static double wl_counter(int nthreads, int64_t duration_ns)
{
    struct counter_shared s;
    memset(&s, 0, sizeof(s));
    struct counter_thread threads[nthreads];
    pthread_t tids[nthreads];
    mutex_init(&s.m);
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
        die("counter with %d threads is %llu, expected %llu: the mutex does "
            "not exclude", nthreads, (unsigned long long)s.counter,
            (unsigned long long)(ops * COUNTER_INCREMENTS));
    pthread_barrier_destroy(&s.start);
    check_pthread(pthread_mutex_destroy(&s.m), "pthread_mutex_destroy");
    return (double)ops / ((double)elapsed / 1e9) / 1e6;
}

// 3. Two threads passing a turn back and forth, each waiting for its turn on
// its own cond: ns per round trip (two hand-overs).
struct pingpong_shared {
    pthread_mutex_t m;
    pthread_cond_t turn_cv[2];
    int turn;         // guarded by m
    bool stop;        // guarded by m
    uint64_t rounds;  // guarded by m
    pthread_barrier_t start;
};

struct pingpong_thread {
    struct pingpong_shared *s;
    int me;
};

static void *pingpong_main(void *arg)
{
    struct pingpong_thread *t = arg;
    struct pingpong_shared *s = t->s;
    const int me = t->me, other = 1 - me;
    pthread_barrier_wait(&s->start);
    for (;;) {
        lock(&s->m);
        while (s->turn != me && !s->stop)
            wait_cond(&s->turn_cv[me], &s->m);
        if (s->stop) {
            unlock(&s->m);
            return NULL;
        }
        s->turn = other;
        if (me == 0)
            s->rounds++;
        check_pthread(pthread_cond_signal(&s->turn_cv[other]),
                      "pthread_cond_signal");
        unlock(&s->m);
    }
}

static double wl_pingpong(int param, int64_t duration_ns)
{
    (void)param;
    struct pingpong_shared s;
    memset(&s, 0, sizeof(s));
    struct pingpong_thread threads[2];
    pthread_t tids[2];
    mutex_init(&s.m);
    for (int i = 0; i < 2; i++)
        check_pthread(pthread_cond_init(&s.turn_cv[i], NULL), "pthread_cond_init");
    check_pthread(pthread_barrier_init(&s.start, NULL, 3), "pthread_barrier_init");
    for (int i = 0; i < 2; i++)
        threads[i] = (struct pingpong_thread){ .s = &s, .me = i };
    start_threads(tids, 2, pingpong_main, threads, sizeof(threads[0]));

    pthread_barrier_wait(&s.start);
    int64_t start = now_ns();
    sleep_ns(duration_ns);
    lock(&s.m);
    s.stop = true;
    uint64_t rounds = s.rounds;
    int64_t elapsed = now_ns() - start;
    for (int i = 0; i < 2; i++)
        check_pthread(pthread_cond_broadcast(&s.turn_cv[i]),
                      "pthread_cond_broadcast");
    unlock(&s.m);
    join_threads(tids, 2);

    pthread_barrier_destroy(&s.start);
    for (int i = 0; i < 2; i++)
        check_pthread(pthread_cond_destroy(&s.turn_cv[i]), "pthread_cond_destroy");
    check_pthread(pthread_mutex_destroy(&s.m), "pthread_mutex_destroy");
    if (rounds == 0)
        die("ping-pong made no round trip in %.3f s", (double)elapsed / 1e9);
    return (double)elapsed / (double)rounds;
}

// 4. Broadcast to BCAST_WAITERS threads waiting on one cond: µs per round,
// from the broadcast until the last waiter has re-acquired the mutex (every
// other waiter has by then re-acquired and released it). Waiters hold the
// mutex from waking until their next wait, like a typical worker loop; the
// broadcaster holds it while broadcasting and releases it by waiting for the
// round's end.
struct bcast_shared {
    pthread_mutex_t m;
    pthread_cond_t work_cv; // waiters wait here for a new generation
    pthread_cond_t done_cv; // the broadcaster waits here for the round's end
    uint64_t gen;           // guarded by m
    int waiting;            // guarded by m: waiters done with this round
    bool stop;              // guarded by m
    int64_t round_end_ns;   // guarded by m
};

static void *bcast_main(void *arg)
{
    struct bcast_shared *s = arg;
    lock(&s->m);
    for (;;) {
        if (++s->waiting == BCAST_WAITERS) {
            s->round_end_ns = now_ns();
            check_pthread(pthread_cond_signal(&s->done_cv), "pthread_cond_signal");
        }
        uint64_t gen = s->gen;
        while (s->gen == gen && !s->stop)
            wait_cond(&s->work_cv, &s->m);
        if (s->stop)
            break;
    }
    unlock(&s->m);
    return NULL;
}

static double wl_broadcast(int param, int64_t duration_ns)
{
    (void)param;
    struct bcast_shared s;
    memset(&s, 0, sizeof(s));
    pthread_t tids[BCAST_WAITERS];
    mutex_init(&s.m);
    check_pthread(pthread_cond_init(&s.work_cv, NULL), "pthread_cond_init");
    check_pthread(pthread_cond_init(&s.done_cv, NULL), "pthread_cond_init");
    start_threads(tids, BCAST_WAITERS, bcast_main, &s, 0);

    int64_t total_ns = 0;
    uint64_t rounds = 0;
    lock(&s.m);
    while (s.waiting < BCAST_WAITERS)
        wait_cond(&s.done_cv, &s.m);
    int64_t start = now_ns();
    do {
        s.waiting = 0;
        s.gen++;
        int64_t round_start = now_ns();
        check_pthread(pthread_cond_broadcast(&s.work_cv), "pthread_cond_broadcast");
        while (s.waiting < BCAST_WAITERS)
            wait_cond(&s.done_cv, &s.m);
        total_ns += s.round_end_ns - round_start;
        rounds++;
    } while (now_ns() - start < duration_ns);
    s.stop = true;
    check_pthread(pthread_cond_broadcast(&s.work_cv), "pthread_cond_broadcast");
    unlock(&s.m);
    join_threads(tids, BCAST_WAITERS);

    check_pthread(pthread_cond_destroy(&s.work_cv), "pthread_cond_destroy");
    check_pthread(pthread_cond_destroy(&s.done_cv), "pthread_cond_destroy");
    check_pthread(pthread_mutex_destroy(&s.m), "pthread_mutex_destroy");
    return (double)total_ns / (double)rounds / 1e3;
}

struct workload {
    const char *key; // names the workload on a worker's command line
    const char *name;
    const char *unit;
    bool higher_is_better; // throughput (true) or time (false)
    double (*run)(int param, int64_t duration_ns);
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

static const struct workload *workload_by_key(const char *key)
{
    for (int i = 0; i < WORKLOAD_COUNT; i++)
        if (!strcmp(workloads[i].key, key))
            return &workloads[i];
    return NULL;
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
            use_adaptive = true;
        else
            die("bad worker argument '%s'", argv[i]);
    }
    verify_environment((enum engine)e);

    signal(SIGALRM, worker_alarm);
    alarm((unsigned)(seconds * 1.25) + WATCHDOG_SLACK_S);
    const int64_t duration_ns = (int64_t)(seconds * 1e9);
    w->run(w->param, duration_ns / 4); // warm-up: page faults, lazy binding
    double v = w->run(w->param, duration_ns);
    alarm(0);
    printf("result %s %.17g\n", engines[e].name, v);
    if (fflush(stdout) || ferror(stdout))
        die("cannot write the result: %s", strerror(errno));
    return EXIT_SUCCESS;
}

// ---------------------------------------------------------------------------
// Driver

struct config {
    double seconds; // per measurement
    int reps;
    bool csv;
    bool forward;   // also run ENGINE_FWD
    const char *lib; // absolute path of libparklock.so
    bool selected[sizeof(workloads) / sizeof(workloads[0])]; // all if none
    bool any_selected;
    char **env[ENGINE_COUNT];
};

static bool engine_enabled(const struct config *cfg, int e)
{
    return e != ENGINE_FWD || cfg->forward;
}

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
    snprintf(seconds, sizeof(seconds), "%.9g", cfg->seconds);
    char *argv[] = { "plk_bench_preload", "--worker", (char *)engines[e].name,
                     (char *)w->key, seconds,
                     use_adaptive ? "--adaptive" : NULL, NULL };
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

// Runs one workload: `reps` repetitions of every enabled engine, the order
// rotating per repetition.
static void run_workload(const struct workload *w, const struct config *cfg,
                         struct summary out[ENGINE_COUNT])
{
    static double samples[ENGINE_COUNT][MAX_REPS];
    int order[ENGINE_COUNT], n = 0;
    for (int e = 0; e < ENGINE_COUNT; e++)
        if (engine_enabled(cfg, e))
            order[n++] = e;
    for (int r = 0; r < cfg->reps; r++)
        for (int k = 0; k < n; k++) {
            int e = order[(r + k) % n];
            samples[e][r] = run_worker(cfg, (enum engine)e, w);
        }
    for (int k = 0; k < n; k++)
        out[order[k]] = summarize(samples[order[k]], cfg->reps);
}

// Engine `e` against plain glibc; > 1 means `e` is better.
static double ratio(const struct workload *w, const struct summary s[ENGINE_COUNT],
                    int e)
{
    double g = s[ENGINE_GLIBC].median, x = s[e].median;
    return w->higher_is_better ? x / g : g / x;
}

static double spread_pct(const struct summary *s)
{
    return s->median > 0 ? (s->max - s->min) / s->median * 100 : 0;
}

static void print_header(const struct config *cfg)
{
    if (cfg->csv) {
        printf("workload,unit");
        for (int e = 0; e < ENGINE_COUNT; e++)
            if (engine_enabled(cfg, e))
                printf(",%s,%s_min,%s_max", engines[e].name, engines[e].name,
                       engines[e].name);
        for (int e = 1; e < ENGINE_COUNT; e++)
            if (engine_enabled(cfg, e))
                printf(",%s_ratio", engines[e].name);
        printf(",reps,seconds\n");
        return;
    }
    printf("one pthread program, plain glibc vs LD_PRELOAD=%s (%s mutexes): "
           "median of %d reps of %.2f s each, one process per measurement, "
           "engines interleaved\n",
           cfg->lib, use_adaptive ? "ADAPTIVE_NP" : "default", cfg->reps,
           cfg->seconds);
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
    printf("\n%-27s %-9s", "workload", "unit");
    for (int e = 0; e < ENGINE_COUNT; e++)
        if (engine_enabled(cfg, e))
            printf(" %11s %7s%s", engines[e].name, "spread",
                   e == ENGINE_GLIBC ? "" : "   ratio");
    printf("\n");
    fflush(stdout);
}

static void print_row(const struct workload *w, const struct config *cfg,
                      const struct summary s[ENGINE_COUNT])
{
    if (cfg->csv) {
        printf("%s,%s", w->name, w->unit);
        for (int e = 0; e < ENGINE_COUNT; e++)
            if (engine_enabled(cfg, e))
                printf(",%.4f,%.4f,%.4f", s[e].median, s[e].min, s[e].max);
        for (int e = 1; e < ENGINE_COUNT; e++)
            if (engine_enabled(cfg, e))
                printf(",%.4f", ratio(w, s, e));
        printf(",%d,%.3f\n", cfg->reps, cfg->seconds);
    } else {
        printf("%-27s %-9s", w->name, w->unit);
        for (int e = 0; e < ENGINE_COUNT; e++) {
            if (!engine_enabled(cfg, e))
                continue;
            printf(" %11.2f %6.1f%%", s[e].median, spread_pct(&s[e]));
            if (e != ENGINE_GLIBC)
                printf(" %7.2f", ratio(w, s, e));
        }
        printf("\n");
    }
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

static void parse_args(int argc, char **argv, struct config *cfg)
{
    bool seconds_set = false, reps_set = false;
    bool quick = false;
    const char *lib = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char *end;
        if (!strcmp(a, "--quick")) {
            quick = true;
        } else if (!strcmp(a, "--csv")) {
            cfg->csv = true;
        } else if (!strcmp(a, "--no-forward")) {
            cfg->forward = false;
        } else if (!strcmp(a, "--adaptive")) {
            use_adaptive = true;
        } else if (!strcmp(a, "--lib") && i + 1 < argc) {
            lib = argv[++i];
        } else if (!strcmp(a, "--workload") && i + 1 < argc) {
            const struct workload *w = workload_by_key(argv[++i]);
            if (!w)
                die("--workload: no workload '%s' (see --help)", argv[i]);
            cfg->selected[w - workloads] = true;
            cfg->any_selected = true;
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
    if (lib) {
        cfg->lib = resolve_lib(lib);
    } else {
        char *guess = default_lib();
        cfg->lib = resolve_lib(guess);
        free(guess);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--worker"))
        return worker_main(argc, argv);

    struct config cfg = { .seconds = 0.4, .reps = 7, .forward = true };
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
