// Shared helpers of the differential preload tests.
//
// Every program in tests/preload/ runs twice: on plain glibc and under
// LD_PRELOAD=libparklock.so. Expected values are glibc's behaviour, hard-coded;
// the plain run proves each expectation. A failed check prints one line to
// stderr (file:line, expression, got vs expected) and the program exits 1 from
// check_finish().
//
// PLK_EXPECT (set by CMake) names the run: "none" (plain glibc), "parkinglot"
// (the preload) or "glibc" (the preload with PARKLOCK_ENGINE=glibc). Only the
// fingerprint checks (lock-word values, cond layout) depend on it.
#ifndef PLK_TEST_CHECK_H
#define PLK_TEST_CHECK_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int check_failures;

// What the program is testing right now, appended to failure lines (may be
// NULL). Set by the main thread between scenarios.
static const char *volatile check_context;

static inline const char *check_errname(long v)
{
    if (v <= 0 || v > 4095)
        return "";
    const char *n = strerrorname_np((int)v);
    return n ? n : "";
}

static inline void check_fail(const char *file, int line, const char *expr,
                              long got, long expected)
{
    atomic_fetch_add(&check_failures, 1);
    const char *ctx = check_context;
    // Return codes print with their errno names; field values do not.
    bool names = !strstr(expr, "__data") &&
                 (strstr(expr, "== E") || strstr(expr, "== 0") || strstr(expr, "errno"));
    fprintf(stderr, "%s:%d: FAILED %s: got %ld%s%s, expected %ld%s%s%s%s%s\n", file,
            line, expr, got, names && *check_errname(got) ? " " : "",
            names ? check_errname(got) : "", expected,
            names && *check_errname(expected) ? " " : "",
            names ? check_errname(expected) : "", ctx ? " [" : "", ctx ? ctx : "",
            ctx ? "]" : "");
}

// CHECK_EQ(got, expected): integers (return codes print with their errno name).
#define CHECK_EQ(got, expected)                                                \
    do {                                                                       \
        long check_g_ = (long)(got), check_e_ = (long)(expected);              \
        if (check_g_ != check_e_)                                              \
            check_fail(__FILE__, __LINE__, #got " == " #expected, check_g_,    \
                       check_e_);                                              \
    } while (0)

static inline void check_fail_bool(const char *file, int line, const char *expr)
{
    atomic_fetch_add(&check_failures, 1);
    const char *ctx = check_context;
    fprintf(stderr, "%s:%d: FAILED %s: got false, expected true%s%s%s\n", file, line,
            expr, ctx ? " [" : "", ctx ? ctx : "", ctx ? "]" : "");
}

// CHECK(cond): a boolean.
#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond))                                                           \
            check_fail_bool(__FILE__, __LINE__, #cond);                        \
    } while (0)

#define CHECK_STR(got, expected)                                               \
    do {                                                                       \
        const char *check_g_ = (got), *check_e_ = (expected);                  \
        if (!check_g_ || strcmp(check_g_, check_e_) != 0) {                    \
            atomic_fetch_add(&check_failures, 1);                              \
            fprintf(stderr, "%s:%d: FAILED %s: got \"%s\", expected \"%s\"\n", \
                    __FILE__, __LINE__, #got " == " #expected,                 \
                    check_g_ ? check_g_ : "(null)", check_e_);                 \
        }                                                                      \
    } while (0)

static inline int check_finish(void)
{
    int n = atomic_load(&check_failures);
    if (n)
        fprintf(stderr, "%d check(s) failed\n", n);
    return n ? 1 : 0;
}

/* The run mode (see the top of the file). */

static inline const char *expect_mode(void)
{
    const char *v = getenv("PLK_EXPECT");
    return v ? v : "none";
}

static inline bool expect_parkinglot(void)
{
    return strcmp(expect_mode(), "parkinglot") == 0;
}

// The __lock word of a normal mutex held by one thread while another sleeps
// in lock: glibc's futex lock says 2, parklock's LOCKED|PARKED 3.
static inline int contended_word(void)
{
    return expect_parkinglot() ? 3 : 2;
}

/* Time. */

static inline void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static inline int64_t now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t ts_ns(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

// An absolute time `ms` from now on `clock`.
static inline struct timespec deadline_after_ms(clockid_t clock, long ms)
{
    int64_t t = now_ns(clock) + (int64_t)ms * 1000000;
    return (struct timespec){ t / 1000000000, t % 1000000000 };
}

// True once `clock` has reached `deadline` (a timed call must never return
// ETIMEDOUT earlier).
static inline bool reached(clockid_t clock, const struct timespec *deadline)
{
    return now_ns(clock) >= ts_ns(deadline);
}

/* Threads. */

static inline pthread_t start_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    int r = pthread_create(&t, NULL, fn, arg);
    if (r != 0) {
        fprintf(stderr, "pthread_create: %s\n", strerror(r));
        exit(2);
    }
    return t;
}

static inline void *join_thread(pthread_t t)
{
    void *ret = NULL;
    int r = pthread_join(t, &ret);
    if (r != 0) {
        fprintf(stderr, "pthread_join: %s\n", strerror(r));
        exit(2);
    }
    return ret;
}

// The scheduler state of thread `tid` of this process ('R', 'S', ...), or 0.
static inline char thread_state(pid_t tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : 0;
}

// Polls `cond` every millisecond for up to `ms`; evaluates to whether it
// became true. Bounds are generous: they only keep a broken run from hanging.
#define WAIT_UNTIL(cond, ms)                                                   \
    ({                                                                         \
        bool wait_ok_ = false;                                                 \
        for (long wait_i_ = 0; wait_i_ <= (ms); wait_i_++) {                   \
            if (cond) {                                                        \
                wait_ok_ = true;                                               \
                break;                                                         \
            }                                                                  \
            sleep_ms(1);                                                       \
        }                                                                      \
        wait_ok_;                                                              \
    })

// Waits (up to 10 s) until thread `tid` sleeps in the kernel, e.g. blocked in
// a futex wait. Evaluates to whether it did.
static inline bool wait_blocked(pid_t tid)
{
    return WAIT_UNTIL(tid != 0 && thread_state(tid) == 'S', 10000);
}

// A thread's tid, published for the main thread.
static inline pid_t wait_tid(atomic_int *slot)
{
    WAIT_UNTIL(atomic_load(slot) != 0, 10000);
    return atomic_load(slot);
}

#endif
