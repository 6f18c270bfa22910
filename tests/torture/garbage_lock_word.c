// Regression: mutexes whose fields hold values no library writes (corrupted
// memory, uninitialised objects), where glibc returns an error and parklock
// (before a fix) did not:
//   - a lock word with bits other than LOCKED (1) and PARKED (2) set and
//     LOCKED set (5, 7, 0x80000001, 0xffffffff): pthread_mutex_timedlock and
//     clocklock spin forever at full CPU, ignoring the deadline, because the
//     slow path sets PARKED and parks with validate "word == LOCKED|PARKED",
//     which can never hold, so every park returns AGAIN and the loop never
//     looks at the deadline. glibc: ETIMEDOUT at the deadline. (Found by
//     garbage.c; the watchdog reports the hang here.)
//   - such a word with LOCKED clear (4, 6, 0x80000000): glibc calls any
//     nonzero word held (trylock EBUSY, timedlock ETIMEDOUT); parklock takes
//     the mutex. (Word 2 is excluded: "free, waiters parked" to parklock.)
//   - __kind 258 and 259 (errorcheck or adaptive with the elision bit, which
//     glibc sets only on normal mutexes): glibc's trylock, timedlock and
//     clocklock answer EINVAL; parklock runs them as ordinary mutexes.
//   - an errorcheck mutex whose __owner is the caller (kind 2 with lock word
//     0, and kind 258): glibc's lock answers EDEADLK. Where parklock hands a
//     mutex to glibc while profiling (PARKLOCK_ENGINE=glibc, or kinds glibc
//     runs), it tries glibc's trylock first: that one takes the kind-2 mutex
//     (0) and refuses kind 258 (EINVAL), and the answer is returned as the
//     lock's. (Also run with PARKLOCK_ENGINE=glibc.)
#include "torture.h"

static struct timespec soon(clockid_t clk)
{
    return deadline_after_ns(clk, 5000000);
}

int main(void)
{
    torture_init("garbage_lock_word");
    static char ctx[128];
    check_context = ctx;

    static const int kinds[] = { 258, 259 };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        snprintf(ctx, sizeof ctx, "__kind %d", kinds[i]);
        pthread_mutex_t m0 = PTHREAD_MUTEX_INITIALIZER;
        m0.__data.__kind = kinds[i];
        pthread_mutex_t m = m0;
        CHECK_EQ(pthread_mutex_trylock(&m), EINVAL);
        struct timespec past = { 0, 0 };
        m = m0;
        CHECK_EQ(pthread_mutex_timedlock(&m, &past), EINVAL);
        m = m0;
        CHECK_EQ(pthread_mutex_clocklock(&m, CLOCK_MONOTONIC, &past), EINVAL);
        tick();
    }

    static const int owned_kinds[] = { PTHREAD_MUTEX_ERRORCHECK, 258 };
    for (size_t i = 0; i < 2; i++) {
        snprintf(ctx, sizeof ctx, "errorcheck kind %d owned by the caller", owned_kinds[i]);
        pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
        m.__data.__kind = owned_kinds[i];
        m.__data.__owner = gettid();
        m.__data.__nusers = 1;
        CHECK_EQ(pthread_mutex_lock(&m), EDEADLK);
        tick();
    }

    // LOCKED clear first, then LOCKED set (the livelock: the watchdog names
    // the case if it hangs).
    static const uint32_t words[] = { 4, 0x80000000u, 5, 0xffffffffu };
    static const int types[] = { PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_ERRORCHECK };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        for (size_t t = 0; t < 2; t++) {
            snprintf(ctx, sizeof ctx, "lock word %#x, type %d", words[i], types[t]);
            pthread_mutex_t m0 = PTHREAD_MUTEX_INITIALIZER;
            m0.__data.__kind = types[t];
            m0.__data.__lock = (int)words[i];
            pthread_mutex_t m = m0;
            CHECK_EQ(pthread_mutex_trylock(&m), EBUSY);
            m = m0;
            struct timespec d = soon(CLOCK_REALTIME);
            int r = pthread_mutex_timedlock(&m, &d);
            CHECK_EQ(r, ETIMEDOUT);
            if (r == ETIMEDOUT)
                CHECK(reached(CLOCK_REALTIME, &d));
            m = m0;
            d = soon(CLOCK_MONOTONIC);
            CHECK_EQ(pthread_mutex_clocklock(&m, CLOCK_MONOTONIC, &d), ETIMEDOUT);
            tick();
        }
    }
    return check_finish();
}
