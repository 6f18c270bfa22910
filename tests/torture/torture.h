// Shared helpers of the torture suite (tests/torture/).
//
// Builds on tests/preload/check.h (CHECK, CHECK_EQ, check_finish, PLK_EXPECT,
// deadlines, thread helpers). Adds what long, bounded runs need:
//
//   PLK_TORTURE_SECONDS  how long each timed phase of a program runs (the
//                        program's own CI default when unset). soak.sh sets
//                        it to run the same binaries for longer.
//   PLK_TORTURE_PROGRESS 1: print a progress line to stdout every few
//                        seconds (soak.sh sets it).
//   PLK_TORTURE_STALL_S  the watchdog's bound on a phase making no progress
//                        at all (default 60 s). Exceeding it is a hang: the
//                        program prints what it was doing and exits 3. This is
//                        a liveness bound, never a timing expectation.
//
// Durations only decide how much work is done; no check depends on time.
#ifndef PLK_TORTURE_H
#define PLK_TORTURE_H

#include <dlfcn.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>

#include "check.h"

/* Duration. */

static double torture_env_double(const char *name, double dflt)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return dflt;
    char *end;
    double d = strtod(v, &end);
    return *end == 0 && d > 0 ? d : dflt;
}

// Seconds each timed phase runs: PLK_TORTURE_SECONDS, or `ci_default`.
static inline double torture_seconds(double ci_default)
{
    return torture_env_double("PLK_TORTURE_SECONDS", ci_default);
}

// Whether this is a soak run (PLK_TORTURE_SECONDS set): programs may then
// scale iteration counts up as well.
static inline bool torture_soak(void)
{
    const char *v = getenv("PLK_TORTURE_SECONDS");
    return v && *v;
}

// A phase: runs until its time is up AND its minimum work is done.
struct phase {
    const char *name;
    int64_t start_ns, end_ns;
};

static inline struct phase phase_start(const char *name, double seconds)
{
    check_context = name;
    int64_t now = now_ns(CLOCK_MONOTONIC);
    return (struct phase){ name, now, now + (int64_t)(seconds * 1e9) };
}

static inline bool phase_time_left(const struct phase *p)
{
    return now_ns(CLOCK_MONOTONIC) < p->end_ns;
}

static inline double phase_elapsed(const struct phase *p)
{
    return (now_ns(CLOCK_MONOTONIC) - p->start_ns) / 1e9;
}

/* Progress and the watchdog. */

static atomic_long torture_ticks;      // any progress at all
static const char *volatile torture_name = "torture";

static inline void tick(void)
{
    atomic_fetch_add_explicit(&torture_ticks, 1, memory_order_relaxed);
}

static bool torture_progress_on(void)
{
    const char *v = getenv("PLK_TORTURE_PROGRESS");
    return v && strcmp(v, "1") == 0;
}

// A progress line (soak runs only), at most one per 5 s per call site class.
static inline void progress(const struct phase *p, const char *fmt, ...)
{
    static _Thread_local int64_t last;
    if (!torture_progress_on())
        return;
    int64_t now = now_ns(CLOCK_MONOTONIC);
    if (last && now - last < 5000000000LL)
        return;
    last = now;
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    printf("[%s %s] %.0fs/%.0fs %s\n", torture_name, p->name, phase_elapsed(p),
           (p->end_ns - p->start_ns) / 1e9, buf);
    fflush(stdout);
}

static void *watchdog(void *arg)
{
    (void)arg;
    double stall = torture_env_double("PLK_TORTURE_STALL_S", 60);
    long last = -1;
    int64_t since = now_ns(CLOCK_MONOTONIC);
    for (;;) {
        struct timespec ts = { 0, 200000000 };
        nanosleep(&ts, NULL);
        long t = atomic_load_explicit(&torture_ticks, memory_order_relaxed);
        int64_t now = now_ns(CLOCK_MONOTONIC);
        if (t != last) {
            last = t;
            since = now;
        } else if (now - since > (int64_t)(stall * 1e9)) {
            const char *ctx = check_context;
            char line[256];
            int n = snprintf(line, sizeof line,
                             "%s: STALL: no progress for %.0f s during [%s] "
                             "(a hang: deadlock or lost wake-up)\n",
                             torture_name, stall, ctx ? ctx : "?");
            ssize_t w = write(STDERR_FILENO, line, (size_t)n);
            (void)w;
            _exit(3);
        }
    }
    return NULL;
}

// Which engine the process runs on, checked against PLK_EXPECT; starts the
// watchdog. Call first thing in main.
static inline void torture_init(const char *name)
{
    torture_name = name;
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *(*engine)(void) =
        (const char *(*)(void))dlsym(RTLD_DEFAULT, "parklock_engine");
    const char *mode = expect_mode();
    if (strcmp(mode, "none") == 0) {
        CHECK(engine == NULL);
    } else {
        CHECK(engine != NULL);
        if (engine)
            CHECK_STR(engine(), mode);
    }
    pthread_t t;
    if (pthread_create(&t, NULL, watchdog, NULL) == 0)
        pthread_detach(t);
}

static inline bool on_glibc(void)
{
    return !expect_parkinglot();
}

// The program's summary line: figures, printed (never asserted).
static inline void summary(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    printf("%s [%s]: %s\n", torture_name, expect_mode(), buf);
    fflush(stdout);
}

/* Per-thread random numbers (xorshift). */

static inline uint32_t rnd(uint32_t *s)
{
    uint32_t x = *s ? *s : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static inline uint32_t seed_for(long id)
{
    return (uint32_t)(now_ns(CLOCK_MONOTONIC) ^ ((uint64_t)id * 0x9e3779b97f4a7c15ull)) | 1;
}

// A deadline `ns` nanoseconds from now on `clock` (ns may be negative: past).
static inline struct timespec deadline_after_ns(clockid_t clock, int64_t ns)
{
    int64_t t = now_ns(clock) + ns;
    return (struct timespec){ t / 1000000000, t % 1000000000 };
}

// Waits for child `pid`; returns its exit status, or 128 + signal number.
static inline int wait_child(pid_t pid)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

/* Objects that share one parking-lot bucket (the signal-handler programs). */

// The top 10 bits of parklock's bucket hash (core/parking_lot.c): objects
// that agree on them share a bucket for every table size up to 1024.
static inline unsigned bucket_bits(const void *p)
{
    return (unsigned)(((uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull) >> 54);
}

// Fills m[0..n_m) from mpool and c[0..n_c) from cpool (n_c may be 0, cpool
// NULL) with objects that all share one bucket, whose bits go to *bits.
// Without parklock the choice means nothing. False if the pools hold no
// such set (then any distinct objects do: the first ones).
static inline bool pick_one_bucket(pthread_mutex_t *mpool, pthread_mutex_t **m, int n_m,
                                   pthread_cond_t *cpool, pthread_cond_t **c, int n_c,
                                   int pool, unsigned *bits)
{
    for (int i = 0; i < pool; i++) {
        unsigned b = bucket_bits(&mpool[i]);
        int nm = 0, nc = 0;
        for (int j = i; j < pool && nm < n_m; j++)
            if (bucket_bits(&mpool[j]) == b)
                m[nm++] = &mpool[j];
        for (int j = 0; j < pool && nc < n_c; j++)
            if (bucket_bits(&cpool[j]) == b)
                c[nc++] = &cpool[j];
        if (nm == n_m && nc == n_c) {
            *bits = b;
            return true;
        }
    }
    for (int j = 0; j < n_m; j++)
        m[j] = &mpool[j];
    for (int j = 0; j < n_c; j++)
        c[j] = &cpool[j];
    *bits = bucket_bits(&mpool[0]);
    return false;
}


#endif
