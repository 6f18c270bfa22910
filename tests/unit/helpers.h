// Helpers shared by the unit suites: sanitizer slowdown, time units and
// deadlines, sleeping, starting and joining threads, the mutex word, and
// waiting until threads are parked and asleep. All static inline, so each
// suite compiles only what it uses.
#ifndef PLK_TEST_HELPERS_H
#define PLK_TEST_HELPERS_H

#include <check.h>
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "futex.h"
#include "mutex.h"
#include "parking_lot.h"

/* ---- sanitizer builds --------------------------------------------------- */

// Sanitizers slow every access down by an order of magnitude or more, so
// stress loops divide their counts by SANITIZER_SLOWDOWN(n): n in an ASan or
// TSan build, 1 otherwise.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_SLOWDOWN(n) (n)
#else
#define SANITIZER_SLOWDOWN(n) 1
#endif

// The divisor of the mutex and cond suites.
#define SCALE SANITIZER_SLOWDOWN(5)

/* ---- time --------------------------------------------------------------- */

#define US (1000LL)
#define MS (1000 * 1000LL)

// Generous bound for anything we wait for: only a hang should exceed it.
#define PATIENCE_NS (10 * PLK_NS_PER_SEC)

// The two clocks a deadline may use; loop tests index this table.
static const clockid_t clocks[] = { CLOCK_MONOTONIC, CLOCK_REALTIME };
#define N_CLOCKS ((int)(sizeof clocks / sizeof clocks[0]))

static inline int64_t ts_ns(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * PLK_NS_PER_SEC + ts->tv_nsec;
}

// A deadline `ns` from now on `clock`.
static inline struct plk_deadline deadline_in(clockid_t clock, int64_t ns)
{
    int64_t t = plk_clock_now_ns_on(clock) + ns;
    struct plk_deadline d = {
        .when = { .tv_sec = t / PLK_NS_PER_SEC, .tv_nsec = t % PLK_NS_PER_SEC },
        .clock = clock,
    };
    return d;
}

// Sleeps `ns` (at least 0), resuming after any signal handler.
static inline void sleep_ns(int64_t ns)
{
    struct timespec ts = { .tv_sec = ns / PLK_NS_PER_SEC,
                           .tv_nsec = ns % PLK_NS_PER_SEC };
    while (nanosleep(&ts, &ts) != 0)
        ;
}

// A wait on `d` that timed out at `now` (on d's clock) returned neither
// before the deadline nor more than 5 s after it.
static inline void check_timed_out_in_time(const struct plk_deadline *d,
                                           int64_t now)
{
    ck_assert_msg(now >= ts_ns(&d->when), "returned %lld ns early",
                  (long long)(ts_ns(&d->when) - now));
    ck_assert_msg(now < ts_ns(&d->when) + 5000 * MS, "returned %lld ns late",
                  (long long)(now - ts_ns(&d->when)));
}

/* ---- threads ------------------------------------------------------------ */

typedef void *(*thread_fn)(void *);

// Starts n threads; thread i gets (char *)args + i * stride.
static inline void spawn(pthread_t *t, size_t n, thread_fn fn, void *args,
                         size_t stride)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, fn,
                                        (char *)args + i * stride), 0);
}

static inline void join(pthread_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
}

/* ---- the mutex word ----------------------------------------------------- */

#define LOCKED_PARKED (PLK_MUTEX_LOCKED | PLK_MUTEX_PARKED)

static inline uint32_t word_of(struct plk_mutex *m)
{
    return atomic_load(&m->word);
}

/* ---- parked and asleep -------------------------------------------------- */

// Whether every thread of the process but the caller is blocked (no thread
// running or runnable), from /proc/self/task/*/stat.
static inline bool others_blocked(void)
{
    char self[32];
    snprintf(self, sizeof self, "%d", (int)gettid());
    DIR *dir = opendir("/proc/self/task");
    ck_assert_ptr_nonnull(dir);
    bool blocked = true;
    for (struct dirent *e; blocked && (e = readdir(dir));) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, self) == 0)
            continue;
        char path[300], stat[512];
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue; // it has just exited
        size_t len = fread(stat, 1, sizeof stat - 1, f);
        fclose(f);
        stat[len] = '\0';
        const char *state = strrchr(stat, ')'); // the name may hold spaces
        blocked = !state || state[1] != ' ' || state[2] != 'R';
    }
    closedir(dir);
    return blocked;
}

// Whether, before `end_ns`, exactly n threads are parked and all the others
// are asleep (and, unless `entered` is NULL, it counts n too). The lot counts
// a thread from its entry into plk_park_ex, before it is queued: only once it
// blocks is it surely in the queue.
static inline bool parked_and_asleep_by(atomic_size_t *entered, size_t n,
                                        int64_t end_ns)
{
    while ((entered && atomic_load(entered) != n) ||
           plk_parking_lot_parked_threads() != n || !others_blocked()) {
        if (plk_clock_now_ns() >= end_ns)
            return false;
        sleep_ns(100 * 1000);
    }
    return true;
}

// Polls `flag` until it is non-zero; false after 20 s.
static inline bool await_flag(_Atomic uint32_t *flag)
{
    int64_t end = plk_clock_now_ns() + 20000 * MS;
    while (atomic_load(flag) == 0) {
        if (plk_clock_now_ns() >= end)
            return false;
        sleep_ns(100 * 1000);
    }
    return true;
}

/*
 * A stuck holder: a thread parked on an address whose validate callback
 * blocks until the test lets go, holding that address's bucket lock
 * meanwhile -- as a thread does whose signal handler waits for a mutex. Tests
 * stand in for that handler's announcement with
 * plk_parking_lot_nested_wait_begin/end (see parking_lot.h, "Signal
 * handlers").
 */
struct stuck {
    pthread_t thread;
    const void *address;
    _Atomic uint32_t in;     // validate is blocking: the bucket lock is held
    _Atomic uint32_t let_go; // 1: validate returns (false: never queued)
    enum plk_park_result result;
};

static inline bool stuck_block_in_validate(void *ctx)
{
    struct stuck *s = ctx;
    atomic_store(&s->in, 1);
    while (atomic_load(&s->let_go) == 0)
        plk_futex_wait(&s->let_go, 0, NULL);
    return false;
}

static inline void *stuck_main(void *arg)
{
    struct stuck *s = arg;
    const struct plk_park_ops ops = { .validate = stuck_block_in_validate, .ctx = s };
    s->result = plk_park_ex(s->address, &ops, NULL, NULL, NULL);
    return NULL;
}

// Returns once a thread holds the bucket lock of `address` and waits.
static inline void stuck_start(struct stuck *s, const void *address)
{
    *s = (struct stuck){ .address = address };
    spawn(&s->thread, 1, stuck_main, s, 0);
    ck_assert_msg(await_flag(&s->in), "the holder never got the bucket");
}

// Lets the holder go (its park returns AGAIN, never queued) and joins it.
static inline void stuck_release(struct stuck *s)
{
    atomic_store(&s->let_go, 1);
    plk_futex_wake(&s->let_go, 1);
    join(&s->thread, 1);
    ck_assert_int_eq(s->result, PLK_PARK_AGAIN);
}

#endif
