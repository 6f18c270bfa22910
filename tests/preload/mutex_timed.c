// pthread_mutex_timedlock and pthread_mutex_clocklock against glibc:
//   - a free mutex is taken whatever the timeout says (invalid tv_nsec too);
//   - a held one: negative tv_sec -> ETIMEDOUT (even with an invalid
//     tv_nsec), otherwise invalid tv_nsec -> EINVAL, otherwise a timeout never
//     earlier than the deadline, on both clocks; a deadline beyond what
//     nanoseconds can express waits like no deadline;
//   - clocklock with any clock but REALTIME/MONOTONIC -> EINVAL, even free;
//   - owner relocks: errorcheck EDEADLK, recursive +1, normal/adaptive time out;
//   - success when another thread releases before the deadline.
#include <limits.h>

#include "check.h"

enum { NORMAL, ERRORCHECK, RECURSIVE, ADAPTIVE, N_TYPES };
static const char *const type_names[N_TYPES] = { "normal", "errorcheck", "recursive",
                                                 "adaptive" };
static const int attr_type[N_TYPES] = { PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_ERRORCHECK,
                                        PTHREAD_MUTEX_RECURSIVE,
                                        PTHREAD_MUTEX_ADAPTIVE_NP };

static void init_type(pthread_mutex_t *m, int type)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, attr_type[type]);
    CHECK_EQ(pthread_mutex_init(m, &a), 0);
    pthread_mutexattr_destroy(&a);
}

// Timed lock through one entry point: 0 timedlock, else clocklock(clock).
struct timed_call {
    const char *name;
    bool clocklock;
    clockid_t clock;
};

static const struct timed_call calls[] = {
    { "timedlock", false, CLOCK_REALTIME },
    { "clocklock(REALTIME)", true, CLOCK_REALTIME },
    { "clocklock(MONOTONIC)", true, CLOCK_MONOTONIC },
};
#define N_CALLS (sizeof calls / sizeof *calls)

static int timed(const struct timed_call *c, pthread_mutex_t *m, const struct timespec *t)
{
    return c->clocklock ? pthread_mutex_clocklock(m, c->clock, t)
                        : pthread_mutex_timedlock(m, t);
}

static const struct timespec bad_nsec[] = {
    { 0, -1 }, { 0, 1000000000 }, { 1, -1 }, { 0, 2000000000 },
};

// The invalid-timeout cases on a free mutex: all succeed.
static void free_mutex(int type)
{
    pthread_mutex_t m;
    init_type(&m, type);
    for (size_t c = 0; c < N_CALLS; c++) {
        for (size_t i = 0; i < sizeof bad_nsec / sizeof *bad_nsec; i++) {
            CHECK_EQ(timed(&calls[c], &m, &bad_nsec[i]), 0);
            CHECK_EQ(m.__data.__owner, gettid());
            CHECK_EQ(pthread_mutex_unlock(&m), 0);
        }
        struct timespec past = { -1, 0 }, zero = { 0, 0 };
        CHECK_EQ(timed(&calls[c], &m, &past), 0);
        CHECK_EQ(pthread_mutex_unlock(&m), 0);
        CHECK_EQ(timed(&calls[c], &m, &zero), 0);
        CHECK_EQ(pthread_mutex_unlock(&m), 0);
    }
    // Unsupported clocks are refused before anything else.
    static const clockid_t bad_clocks[] = { CLOCK_PROCESS_CPUTIME_ID,
                                            CLOCK_THREAD_CPUTIME_ID,
                                            CLOCK_MONOTONIC_RAW,
                                            CLOCK_REALTIME_COARSE,
                                            CLOCK_BOOTTIME,
                                            12345,
                                            -1 };
    struct timespec d = deadline_after_ms(CLOCK_MONOTONIC, 10);
    for (size_t i = 0; i < sizeof bad_clocks / sizeof *bad_clocks; i++) {
        CHECK_EQ(pthread_mutex_clocklock(&m, bad_clocks[i], &d), EINVAL);
        CHECK_EQ(pthread_mutex_clocklock(&m, bad_clocks[i], &bad_nsec[0]), EINVAL);
        CHECK_EQ(m.__data.__lock, 0);
    }
    CHECK_EQ(pthread_mutex_destroy(&m), 0);
}

/* A mutex held by another thread for the duration of a scenario. */

struct holder {
    pthread_mutex_t *m;
    atomic_int state; // 1: holding; 2: releasing (or asked to); 3: released
    long release_after_ms; // >0: release on its own after this long
};

static void *hold_thread(void *arg)
{
    struct holder *h = arg;
    CHECK_EQ(pthread_mutex_lock(h->m), 0);
    atomic_store(&h->state, 1);
    if (h->release_after_ms > 0) {
        sleep_ms(h->release_after_ms);
        atomic_store(&h->state, 2); // about to release
    } else {
        WAIT_UNTIL(atomic_load(&h->state) == 2, 30000);
    }
    CHECK_EQ(pthread_mutex_unlock(h->m), 0);
    atomic_store(&h->state, 3);
    return NULL;
}

static void held_by_other(int type)
{
    pthread_mutex_t m;
    init_type(&m, type);
    struct holder h = { .m = &m };
    pthread_t t = start_thread(hold_thread, &h);
    WAIT_UNTIL(atomic_load(&h.state) == 1, 10000);

    for (size_t c = 0; c < N_CALLS; c++) {
        check_context = calls[c].name;
        for (size_t i = 0; i < sizeof bad_nsec / sizeof *bad_nsec; i++)
            CHECK_EQ(timed(&calls[c], &m, &bad_nsec[i]), EINVAL);
        // A negative tv_sec is checked before tv_nsec: ETIMEDOUT even when
        // tv_nsec is invalid too.
        static const struct timespec negative[] = { { -1, 0 }, { -1000, 999999999 },
                                                    { 0, 0 }, { 1, 0 }, { -1, -1 },
                                                    { -5, 1000000000 } };
        for (size_t i = 0; i < sizeof negative / sizeof *negative; i++)
            CHECK_EQ(timed(&calls[c], &m, &negative[i]), ETIMEDOUT);
        struct timespec d = deadline_after_ms(calls[c].clock, 60);
        CHECK_EQ(timed(&calls[c], &m, &d), ETIMEDOUT);
        CHECK(reached(calls[c].clock, &d));
        CHECK(m.__data.__owner != gettid());
    }
    check_context = type_names[type];
    atomic_store(&h.state, 2);
    join_thread(t);
    CHECK_EQ(m.__data.__owner, 0);

    // Released by its owner before the deadline: acquired.
    for (size_t c = 0; c < N_CALLS; c++) {
        check_context = calls[c].name;
        struct holder h2 = { .m = &m, .release_after_ms = 50 };
        t = start_thread(hold_thread, &h2);
        WAIT_UNTIL(atomic_load(&h2.state) == 1, 10000);
        struct timespec d = deadline_after_ms(calls[c].clock, 20000);
        CHECK_EQ(timed(&calls[c], &m, &d), 0);
        CHECK(atomic_load(&h2.state) >= 2); // not before the release
        CHECK_EQ(m.__data.__owner, gettid());
        CHECK_EQ(m.__data.__nusers, 1);
        CHECK_EQ(pthread_mutex_unlock(&m), 0);
        join_thread(t);
    }
    // A deadline too far away to express in nanoseconds: just "forever".
    static const struct timespec huge[] = { { LONG_MAX, 999999999 },
                                            { LONG_MAX / 1000000000 + 1, 0 } };
    for (size_t c = 0; c < N_CALLS; c++) {
        for (size_t i = 0; i < 2; i++) {
            check_context = calls[c].name;
            struct holder h3 = { .m = &m, .release_after_ms = 30 };
            t = start_thread(hold_thread, &h3);
            WAIT_UNTIL(atomic_load(&h3.state) == 1, 10000);
            CHECK_EQ(timed(&calls[c], &m, &huge[i]), 0);
            CHECK(atomic_load(&h3.state) >= 2);
            CHECK_EQ(pthread_mutex_unlock(&m), 0);
            join_thread(t);
        }
    }
    check_context = type_names[type];
    CHECK_EQ(pthread_mutex_destroy(&m), 0);
}

static void owner_relock(int type)
{
    pthread_mutex_t m;
    init_type(&m, type);
    CHECK_EQ(pthread_mutex_lock(&m), 0);
    for (size_t c = 0; c < N_CALLS; c++) {
        check_context = calls[c].name;
        struct timespec d = deadline_after_ms(calls[c].clock, 40);
        switch (type) {
        case ERRORCHECK:
            // The owner check comes before the timeout is looked at.
            CHECK_EQ(timed(&calls[c], &m, &d), EDEADLK);
            CHECK_EQ(timed(&calls[c], &m, &bad_nsec[0]), EDEADLK);
            break;
        case RECURSIVE:
            CHECK_EQ(timed(&calls[c], &m, &d), 0);
            CHECK_EQ(timed(&calls[c], &m, &bad_nsec[1]), 0);
            CHECK_EQ(m.__data.__count, 3);
            CHECK_EQ(pthread_mutex_unlock(&m), 0);
            CHECK_EQ(pthread_mutex_unlock(&m), 0);
            break;
        default:
            CHECK_EQ(timed(&calls[c], &m, &d), ETIMEDOUT);
            CHECK(reached(calls[c].clock, &d));
            CHECK_EQ(timed(&calls[c], &m, &bad_nsec[0]), EINVAL);
            break;
        }
        CHECK_EQ(m.__data.__owner, gettid());
    }
    check_context = type_names[type];
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    CHECK_EQ(pthread_mutex_destroy(&m), 0);
}

/* Many timed lockers at once: every call returns 0 or ETIMEDOUT, and the
 * mutex stays consistent. */

static pthread_mutex_t busy = PTHREAD_MUTEX_INITIALIZER;
static long busy_count;
static atomic_long busy_timeouts;

static void *timed_hammer(void *arg)
{
    long id = (long)arg;
    for (int i = 0; i < 3000; i++) {
        clockid_t clock = (i + id) & 1 ? CLOCK_MONOTONIC : CLOCK_REALTIME;
        struct timespec d = deadline_after_ms(clock, i % 3);
        int r = (i & 2) ? pthread_mutex_clocklock(&busy, clock, &d)
                        : clock == CLOCK_REALTIME ? pthread_mutex_timedlock(&busy, &d)
                                                  : pthread_mutex_clocklock(&busy, clock, &d);
        if (r == 0) {
            busy_count++;
            CHECK_EQ(pthread_mutex_unlock(&busy), 0);
        } else {
            CHECK_EQ(r, ETIMEDOUT);
            atomic_fetch_add(&busy_timeouts, 1);
        }
    }
    return NULL;
}

static void *plain_hammer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3000; i++) {
        CHECK_EQ(pthread_mutex_lock(&busy), 0);
        busy_count++;
        for (volatile int k = 0; k < 200; k++) {
        }
        CHECK_EQ(pthread_mutex_unlock(&busy), 0);
    }
    return NULL;
}

static void timed_contention(void)
{
    check_context = "timed contention";
    pthread_t t[4];
    t[0] = start_thread(plain_hammer, NULL);
    for (long i = 1; i < 4; i++)
        t[i] = start_thread(timed_hammer, (void *)i);
    for (int i = 0; i < 4; i++)
        join_thread(t[i]);
    CHECK_EQ(busy_count + atomic_load(&busy_timeouts), 4 * 3000);
    CHECK_EQ(busy.__data.__lock, 0);
    CHECK_EQ(busy.__data.__owner, 0);
    CHECK_EQ(pthread_mutex_trylock(&busy), 0);
    CHECK_EQ(pthread_mutex_unlock(&busy), 0);
}

int main(void)
{
    for (int type = 0; type < N_TYPES; type++) {
        check_context = type_names[type];
        free_mutex(type);
        held_by_other(type);
        owner_relock(type);
    }
    timed_contention();
    return check_finish();
}
