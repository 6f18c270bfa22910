// Condition-variable error cases and mutex bookkeeping around waits, against
// glibc's answers:
//   - invalid tv_nsec -> EINVAL before anything else (mutex not even owned);
//     clockwait with an unsupported clock -> EINVAL, mutex still held;
//   - a wait with an errorcheck/recursive mutex the caller does not own -> EPERM;
//     with an unowned normal mutex glibc just waits and returns with it held;
//   - a recursive mutex locked twice stays locked during the wait (glibc
//     gives back one level only), and keeps its depth;
//   - destroying a mutex while a thread waits on a cond with it -> EBUSY
//     (the waiter still counts in __nusers);
//   - a wait with a destroyed or garbage mutex -> EINVAL, at once.
#include "check.h"

static void init_type(pthread_mutex_t *m, int type)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, type);
    CHECK_EQ(pthread_mutex_init(m, &a), 0);
    pthread_mutexattr_destroy(&a);
}

static const struct timespec bad_nsec[] = { { 0, -1 }, { 0, 1000000000 }, { -1, -1 } };

static void invalid_arguments(void)
{
    check_context = "invalid arguments";
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    static const int types[] = { PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_ERRORCHECK,
                                 PTHREAD_MUTEX_RECURSIVE };
    for (int t = 0; t < 3; t++) {
        pthread_mutex_t m;
        init_type(&m, types[t]);
        // Not locked at all: the timeout is checked first.
        for (int i = 0; i < 3; i++) {
            CHECK_EQ(pthread_cond_timedwait(&c, &m, &bad_nsec[i]), EINVAL);
            CHECK_EQ(pthread_cond_clockwait(&c, &m, CLOCK_MONOTONIC, &bad_nsec[i]), EINVAL);
            CHECK_EQ(pthread_cond_clockwait(&c, &m, CLOCK_REALTIME, &bad_nsec[i]), EINVAL);
            CHECK_EQ(pthread_cond_clockwait(&c, &m, 12345, &bad_nsec[i]), EINVAL);
        }
        CHECK_EQ(m.__data.__lock, 0);
        CHECK_EQ(m.__data.__owner, 0);
        // Locked: same answers, and the mutex stays held.
        CHECK_EQ(pthread_mutex_lock(&m), 0);
        struct timespec d = deadline_after_ms(CLOCK_MONOTONIC, 20);
        static const clockid_t bad_clocks[] = { CLOCK_PROCESS_CPUTIME_ID,
                                                CLOCK_THREAD_CPUTIME_ID, CLOCK_BOOTTIME,
                                                CLOCK_MONOTONIC_RAW, 12345, -1 };
        for (int i = 0; i < 6; i++)
            CHECK_EQ(pthread_cond_clockwait(&c, &m, bad_clocks[i], &d), EINVAL);
        for (int i = 0; i < 3; i++)
            CHECK_EQ(pthread_cond_timedwait(&c, &m, &bad_nsec[i]), EINVAL);
        CHECK_EQ(m.__data.__owner, gettid());
        CHECK_EQ(m.__data.__nusers, 1);
        CHECK_EQ(pthread_mutex_unlock(&m), 0);
        CHECK_EQ(pthread_mutex_destroy(&m), 0);
    }
    CHECK_EQ(pthread_cond_destroy(&c), 0);
}

/* Waits with a mutex the caller does not own. */

struct holder {
    pthread_mutex_t *m;
    atomic_int state; // 1 holding, 2 release
};

static void *hold_thread(void *arg)
{
    struct holder *h = arg;
    CHECK_EQ(pthread_mutex_lock(h->m), 0);
    atomic_store(&h->state, 1);
    WAIT_UNTIL(atomic_load(&h->state) == 2, 30000);
    CHECK_EQ(pthread_mutex_unlock(h->m), 0);
    return NULL;
}

static void not_owner(void)
{
    check_context = "not owner";
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    static const int checked[] = { PTHREAD_MUTEX_ERRORCHECK, PTHREAD_MUTEX_RECURSIVE };
    for (int t = 0; t < 2; t++) {
        pthread_mutex_t m;
        init_type(&m, checked[t]);
        // Unlocked.
        struct timespec d = deadline_after_ms(CLOCK_REALTIME, 2000);
        int64_t start = now_ns(CLOCK_MONOTONIC);
        CHECK_EQ(pthread_cond_timedwait(&c, &m, &d), EPERM);
        CHECK_EQ(pthread_cond_clockwait(&c, &m, CLOCK_REALTIME, &d), EPERM);
        CHECK(now_ns(CLOCK_MONOTONIC) - start < 1000000000); // answered at once
        CHECK_EQ(m.__data.__lock, 0);
        // Held by another thread.
        struct holder h = { &m, 0 };
        pthread_t th = start_thread(hold_thread, &h);
        WAIT_UNTIL(atomic_load(&h.state) == 1, 10000);
        CHECK_EQ(pthread_cond_timedwait(&c, &m, &d), EPERM);
        CHECK_EQ(pthread_cond_clockwait(&c, &m, CLOCK_MONOTONIC, &d), EPERM);
        atomic_store(&h.state, 2);
        join_thread(th);
        CHECK_EQ(pthread_mutex_destroy(&m), 0);
    }

    // A normal mutex is not checked: glibc "unlocks" it, waits, and returns
    // with it locked by the caller.
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    struct timespec d = deadline_after_ms(CLOCK_REALTIME, 30);
    CHECK_EQ(pthread_cond_timedwait(&c, &m, &d), ETIMEDOUT);
    CHECK(reached(CLOCK_REALTIME, &d));
    CHECK_EQ(m.__data.__owner, gettid());
    CHECK_EQ(pthread_mutex_trylock(&m), EBUSY);
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    CHECK_EQ(pthread_mutex_trylock(&m), 0);
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    CHECK_EQ(pthread_cond_destroy(&c), 0);
}

/* A recursive mutex locked twice: the wait does not release it. */

struct probe {
    pthread_mutex_t *m;
    pthread_cond_t *c;
    atomic_int go;
    int trylock_result;
};

static void *probe_thread(void *arg)
{
    struct probe *p = arg;
    WAIT_UNTIL(atomic_load(&p->go) == 1, 10000);
    sleep_ms(20); // let the main thread enter its wait
    p->trylock_result = pthread_mutex_trylock(p->m);
    if (p->trylock_result == 0)
        CHECK_EQ(pthread_mutex_unlock(p->m), 0);
    return NULL;
}

static void *signal_thread(void *arg)
{
    struct probe *p = arg;
    WAIT_UNTIL(atomic_load(&p->go) == 1, 10000);
    sleep_ms(50);
    CHECK_EQ(pthread_cond_signal(p->c), 0);
    return NULL;
}

static void recursive_waits(void)
{
    check_context = "recursive";
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    pthread_mutex_t m;
    init_type(&m, PTHREAD_MUTEX_RECURSIVE);

    // Depth 2, timed out: held throughout, depth preserved.
    CHECK_EQ(pthread_mutex_lock(&m), 0);
    CHECK_EQ(pthread_mutex_lock(&m), 0);
    struct probe p = { &m, &c, 0, -1 };
    pthread_t t = start_thread(probe_thread, &p);
    atomic_store(&p.go, 1);
    struct timespec d = deadline_after_ms(CLOCK_REALTIME, 150);
    CHECK_EQ(pthread_cond_timedwait(&c, &m, &d), ETIMEDOUT);
    CHECK(reached(CLOCK_REALTIME, &d));
    join_thread(t);
    CHECK_EQ(p.trylock_result, EBUSY);
    CHECK_EQ(m.__data.__count, 2);
    CHECK_EQ(m.__data.__owner, gettid());
    CHECK_EQ(m.__data.__nusers, 1);

    // Depth 2, woken by a signal sent without the mutex.
    struct probe s = { &m, &c, 0, -1 };
    t = start_thread(signal_thread, &s);
    atomic_store(&s.go, 1);
    d = deadline_after_ms(CLOCK_MONOTONIC, 20000);
    CHECK_EQ(pthread_cond_clockwait(&c, &m, CLOCK_MONOTONIC, &d), 0);
    join_thread(t);
    CHECK_EQ(m.__data.__count, 2);
    CHECK_EQ(m.__data.__owner, gettid());
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    CHECK_EQ(pthread_mutex_unlock(&m), EPERM);

    // Depth 1: released during the wait like any mutex.
    CHECK_EQ(pthread_mutex_lock(&m), 0);
    struct probe p1 = { &m, &c, 0, -1 };
    t = start_thread(probe_thread, &p1);
    atomic_store(&p1.go, 1);
    d = deadline_after_ms(CLOCK_REALTIME, 150);
    CHECK_EQ(pthread_cond_timedwait(&c, &m, &d), ETIMEDOUT);
    join_thread(t);
    CHECK_EQ(p1.trylock_result, 0);
    CHECK_EQ(m.__data.__count, 1);
    CHECK_EQ(m.__data.__owner, gettid());
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    CHECK_EQ(pthread_mutex_destroy(&m), 0);
    CHECK_EQ(pthread_cond_destroy(&c), 0);
}

/* Destroying a mutex while a thread waits on a cond with it. */

struct cond_waiter {
    pthread_mutex_t *m;
    pthread_cond_t *c;
    int predicate;
    atomic_int waiting;
    int result;
};

static void *cond_waiter_thread(void *arg)
{
    struct cond_waiter *w = arg;
    CHECK_EQ(pthread_mutex_lock(w->m), 0);
    atomic_store(&w->waiting, 1);
    while (!w->predicate) {
        struct timespec d = deadline_after_ms(CLOCK_REALTIME, 20000);
        w->result = pthread_cond_timedwait(w->c, w->m, &d);
        if (w->result != 0)
            break;
    }
    CHECK_EQ(w->m->__data.__owner, gettid());
    CHECK_EQ(pthread_mutex_unlock(w->m), 0);
    return NULL;
}

static void destroy_while_waiting(void)
{
    static const int types[] = { PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_ERRORCHECK,
                                 PTHREAD_MUTEX_RECURSIVE, PTHREAD_MUTEX_ADAPTIVE_NP };
    static const char *const names[] = { "destroy/normal", "destroy/errorcheck",
                                         "destroy/recursive", "destroy/adaptive" };
    for (int i = 0; i < 4; i++) {
        check_context = names[i];
        pthread_cond_t c = PTHREAD_COND_INITIALIZER;
        pthread_mutex_t m;
        init_type(&m, types[i]);
        struct cond_waiter w = { &m, &c, 0, 0, -1 };
        pthread_t t = start_thread(cond_waiter_thread, &w);
        WAIT_UNTIL(atomic_load(&w.waiting) == 1, 10000);
        CHECK_EQ(pthread_mutex_lock(&m), 0); // the waiter released it: waiting
        CHECK_EQ(m.__data.__nusers, 2);
        CHECK_EQ(pthread_mutex_destroy(&m), EBUSY);
        CHECK_EQ(pthread_mutex_unlock(&m), 0);
        CHECK_EQ(m.__data.__nusers, 1);
        CHECK_EQ(m.__data.__owner, 0);
        CHECK_EQ(pthread_mutex_destroy(&m), EBUSY);
        CHECK_EQ(m.__data.__kind, types[i] == PTHREAD_MUTEX_NORMAL ? 512 : types[i]);
        CHECK_EQ(pthread_mutex_lock(&m), 0);
        w.predicate = 1;
        CHECK_EQ(pthread_cond_signal(&c), 0);
        CHECK_EQ(pthread_mutex_unlock(&m), 0);
        join_thread(t);
        CHECK_EQ(w.result, 0);
        CHECK_EQ(m.__data.__nusers, 0);
        CHECK_EQ(pthread_mutex_destroy(&m), 0);
        CHECK_EQ(pthread_cond_destroy(&c), 0);
    }
}

/* Waits with something that is not a valid mutex. */

static void invalid_mutex(void)
{
    check_context = "invalid mutex";
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    CHECK_EQ(pthread_mutex_destroy(&m), 0);
    struct timespec d = deadline_after_ms(CLOCK_REALTIME, 2000);
    int64_t start = now_ns(CLOCK_MONOTONIC);
    CHECK_EQ(pthread_cond_timedwait(&c, &m, &d), EINVAL);
    CHECK_EQ(pthread_cond_clockwait(&c, &m, CLOCK_REALTIME, &d), EINVAL);
    CHECK(now_ns(CLOCK_MONOTONIC) - start < 1000000000);

    static const int kinds[] = { 4, 8, 12345 };
    for (int i = 0; i < 3; i++) {
        memset(&m, 0, sizeof m);
        m.__data.__kind = kinds[i];
        d = deadline_after_ms(CLOCK_REALTIME, 2000);
        start = now_ns(CLOCK_MONOTONIC);
        CHECK_EQ(pthread_cond_timedwait(&c, &m, &d), EINVAL);
        CHECK(now_ns(CLOCK_MONOTONIC) - start < 1000000000); // not after a wait
    }
    // The cond is still usable.
    pthread_mutex_t ok = PTHREAD_MUTEX_INITIALIZER;
    CHECK_EQ(pthread_mutex_lock(&ok), 0);
    d = deadline_after_ms(CLOCK_REALTIME, 20);
    CHECK_EQ(pthread_cond_timedwait(&c, &ok, &d), ETIMEDOUT);
    CHECK_EQ(pthread_mutex_unlock(&ok), 0);
    CHECK_EQ(pthread_cond_signal(&c), 0);
    CHECK_EQ(pthread_cond_destroy(&c), 0);
}

int main(void)
{
    invalid_arguments();
    not_owner();
    recursive_waits();
    destroy_while_waiting();
    invalid_mutex();
    return check_finish();
}
