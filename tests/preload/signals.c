// Signals delivered to threads blocked in the lock and wait calls (a SIGUSR1
// handler installed without SA_RESTART, so every interrupted futex wait
// returns EINTR to its caller inside the library):
//   - no call ever returns EINTR;
//   - lock/timedlock/clocklock return 0 once the mutex is released;
//   - a timed lock or wait that expires says ETIMEDOUT, never early;
//   - cond waits may wake spuriously, but predicate loops finish with exact
//     totals under a storm of signals;
//   - a handler that blocks on another mutex while its thread is blocked in
//     lock or in a cond wait gets it, and the interrupted call completes.
#include <signal.h>

#include "check.h"

static atomic_long handled;

static void on_usr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&handled, 1);
}

// Sends `n` SIGUSR1 to `t`, one every ~200 us.
static void pepper(pthread_t t, int n)
{
    for (int i = 0; i < n; i++) {
        pthread_kill(t, SIGUSR1);
        struct timespec ts = { 0, 200000 };
        nanosleep(&ts, NULL);
    }
}

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t rm = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static pthread_cond_t c = PTHREAD_COND_INITIALIZER;

/* Blocked lockers. */

struct blocked {
    pthread_mutex_t *m;
    int how; // 0 lock, 1 timedlock, 2 clocklock, 3 timedlock that expires
    atomic_int tid;
    int result;
    struct timespec deadline;
};

static void *blocked_locker(void *arg)
{
    struct blocked *b = arg;
    atomic_store(&b->tid, gettid());
    switch (b->how) {
    case 1:
        b->deadline = deadline_after_ms(CLOCK_REALTIME, 30000);
        b->result = pthread_mutex_timedlock(b->m, &b->deadline);
        break;
    case 2:
        b->deadline = deadline_after_ms(CLOCK_MONOTONIC, 30000);
        b->result = pthread_mutex_clocklock(b->m, CLOCK_MONOTONIC, &b->deadline);
        break;
    case 3:
        b->deadline = deadline_after_ms(CLOCK_MONOTONIC, 150);
        b->result = pthread_mutex_clocklock(b->m, CLOCK_MONOTONIC, &b->deadline);
        if (b->result == ETIMEDOUT)
            CHECK(reached(CLOCK_MONOTONIC, &b->deadline));
        return NULL;
    default:
        b->result = pthread_mutex_lock(b->m);
    }
    if (b->result == 0) {
        CHECK_EQ(b->m->__data.__owner, gettid());
        CHECK_EQ(pthread_mutex_unlock(b->m), 0);
    }
    return NULL;
}

static void blocked_lockers(pthread_mutex_t *mx)
{
    CHECK_EQ(pthread_mutex_lock(mx), 0);
    struct blocked b[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        b[i] = (struct blocked){ .m = mx, .how = i, .result = -1 };
        t[i] = start_thread(blocked_locker, &b[i]);
    }
    for (int i = 0; i < 4; i++)
        CHECK(wait_blocked(wait_tid(&b[i].tid)));
    long before = atomic_load(&handled);
    for (int round = 0; round < 100; round++)
        for (int i = 0; i < 4; i++)
            pepper(t[i], 1);
    join_thread(t[3]); // the expiring one
    CHECK_EQ(b[3].result, ETIMEDOUT);
    CHECK(atomic_load(&handled) - before >= 300); // the signals did arrive
    CHECK_EQ(pthread_mutex_unlock(mx), 0);
    for (int i = 0; i < 3; i++) {
        join_thread(t[i]);
        CHECK_EQ(b[i].result, 0);
    }
}

/* Cond waiters with a predicate. */

static int ready;

struct cwaiter {
    int how; // 0 wait, 1 timedwait, 2 clockwait, 3 timedwait that expires
    atomic_int tid;
    atomic_int waiting;
    int result;
    long spurious;
};

static void *cond_waiter(void *arg)
{
    struct cwaiter *w = arg;
    atomic_store(&w->tid, gettid());
    CHECK_EQ(pthread_mutex_lock(&m), 0);
    atomic_store(&w->waiting, 1);
    struct timespec d;
    if (w->how == 3) {
        d = deadline_after_ms(CLOCK_REALTIME, 150);
        do {
            w->result = pthread_cond_timedwait(&c, &m, &d);
        } while (w->result == 0); // spurious wake-ups allowed, never EINTR
        CHECK_EQ(w->result, ETIMEDOUT);
        CHECK(reached(CLOCK_REALTIME, &d));
        CHECK_EQ(pthread_mutex_unlock(&m), 0);
        return NULL;
    }
    d = deadline_after_ms(w->how == 2 ? CLOCK_MONOTONIC : CLOCK_REALTIME, 30000);
    w->result = 0;
    while (!ready) {
        switch (w->how) {
        case 1:
            w->result = pthread_cond_timedwait(&c, &m, &d);
            break;
        case 2:
            w->result = pthread_cond_clockwait(&c, &m, CLOCK_MONOTONIC, &d);
            break;
        default:
            w->result = pthread_cond_wait(&c, &m);
        }
        if (w->result != 0)
            break;
        if (!ready)
            w->spurious++;
    }
    CHECK_EQ(m.__data.__owner, gettid());
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    return NULL;
}

static void blocked_waiters(void)
{
    check_context = "cond waiters";
    struct cwaiter w[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct cwaiter){ .how = i, .result = -1 };
        t[i] = start_thread(cond_waiter, &w[i]);
        WAIT_UNTIL(atomic_load(&w[i].waiting) == 1, 10000);
    }
    CHECK_EQ(pthread_mutex_lock(&m), 0);
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    for (int round = 0; round < 100; round++)
        for (int i = 0; i < 4; i++)
            pepper(t[i], 1);
    join_thread(t[3]);
    CHECK_EQ(pthread_mutex_lock(&m), 0);
    ready = 1;
    CHECK_EQ(pthread_cond_broadcast(&c), 0);
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    for (int i = 0; i < 3; i++) {
        join_thread(t[i]);
        CHECK_EQ(w[i].result, 0);
    }
}

/* A storm: producers, consumers and a thread that keeps signalling all of
 * them. */

#define N_ITEMS 20000
static int queue_len;
static long produced, consumed_n;
static bool producers_done;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
static atomic_int storm_over;
static long counter;

static void *storm_producer(void *arg)
{
    (void)arg;
    for (int i = 0; i < N_ITEMS / 2; i++) {
        CHECK_EQ(pthread_mutex_lock(&m), 0);
        while (queue_len >= 8) {
            int r = pthread_cond_wait(&not_full, &m);
            if (r)
                CHECK_EQ(r, 0);
        }
        queue_len++;
        produced++;
        CHECK_EQ(pthread_cond_signal(&not_empty), 0);
        CHECK_EQ(pthread_mutex_unlock(&m), 0);
    }
    return NULL;
}

static void *storm_consumer(void *arg)
{
    (void)arg;
    CHECK_EQ(pthread_mutex_lock(&m), 0);
    for (;;) {
        while (queue_len == 0 && !producers_done) {
            struct timespec d = deadline_after_ms(CLOCK_REALTIME, 5);
            int r = pthread_cond_timedwait(&not_empty, &m, &d);
            if (r && r != ETIMEDOUT)
                CHECK_EQ(r, 0);
        }
        if (queue_len == 0)
            break;
        queue_len--;
        consumed_n++;
        CHECK_EQ(pthread_cond_signal(&not_full), 0);
    }
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    return NULL;
}

static void *storm_counter(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        CHECK_EQ(pthread_mutex_lock(&rm), 0);
        CHECK_EQ(pthread_mutex_lock(&rm), 0);
        counter++;
        CHECK_EQ(pthread_mutex_unlock(&rm), 0);
        CHECK_EQ(pthread_mutex_unlock(&rm), 0);
    }
    return NULL;
}

static void storm(void)
{
    check_context = "storm";
    pthread_t t[6];
    t[0] = start_thread(storm_producer, NULL);
    t[1] = start_thread(storm_producer, NULL);
    t[2] = start_thread(storm_consumer, NULL);
    t[3] = start_thread(storm_consumer, NULL);
    t[4] = start_thread(storm_counter, NULL);
    t[5] = start_thread(storm_counter, NULL);
    long before = atomic_load(&handled);
    // Until the producers and counters finish, signal everyone.
    int rounds = 0;
    while (!atomic_load(&storm_over)) {
        for (int i = 0; i < 6; i++)
            pthread_kill(t[i], SIGUSR1); // ESRCH once a thread is gone: fine
        struct timespec ts = { 0, 300000 };
        nanosleep(&ts, NULL);
        if (++rounds % 16 == 0 &&
            ({
                CHECK_EQ(pthread_mutex_lock(&m), 0);
                bool done = produced == N_ITEMS;
                CHECK_EQ(pthread_mutex_unlock(&m), 0);
                done;
            }))
            atomic_store(&storm_over, 1);
    }
    join_thread(t[0]);
    join_thread(t[1]);
    CHECK_EQ(pthread_mutex_lock(&m), 0);
    producers_done = true;
    CHECK_EQ(pthread_cond_broadcast(&not_empty), 0);
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    for (int i = 2; i < 6; i++)
        join_thread(t[i]);
    CHECK_EQ(produced, N_ITEMS);
    CHECK_EQ(consumed_n, N_ITEMS);
    CHECK_EQ(queue_len, 0);
    CHECK_EQ(counter, 40000);
    CHECK(atomic_load(&handled) > before);
}

/* A handler that takes another (contended) mutex while its thread is
 * blocked in lock or in a cond wait: the nested block and the interrupted
 * one both complete. */

static pthread_mutex_t outer = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t inner = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t outer_c = PTHREAD_COND_INITIALIZER;
static atomic_int nested_in, nested_done, nested_tid, nested_stage;

static void on_usr2(int sig)
{
    (void)sig;
    int saved = errno;
    atomic_store(&nested_in, 1);
    CHECK_EQ(pthread_mutex_lock(&inner), 0);
    CHECK_EQ(inner.__data.__owner, gettid());
    CHECK_EQ(pthread_mutex_unlock(&inner), 0);
    atomic_store(&nested_done, 1);
    errno = saved;
}

static void *nested_victim(void *arg)
{
    bool in_cond = arg != NULL;
    atomic_store(&nested_tid, gettid());
    CHECK_EQ(pthread_mutex_lock(&outer), 0);
    if (in_cond) {
        atomic_store(&nested_stage, 1);
        while (atomic_load(&nested_stage) != 2)
            CHECK_EQ(pthread_cond_wait(&outer_c, &outer), 0);
    }
    CHECK_EQ(outer.__data.__owner, gettid());
    CHECK_EQ(pthread_mutex_unlock(&outer), 0);
    return NULL;
}

static void nested_in_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, NULL);
    for (long in_cond = 0; in_cond < 2; in_cond++) {
        check_context = in_cond ? "handler locks while its thread waits on a cond"
                                : "handler locks while its thread waits in lock";
        atomic_store(&nested_in, 0);
        atomic_store(&nested_done, 0);
        atomic_store(&nested_tid, 0);
        atomic_store(&nested_stage, 0);
        if (!in_cond)
            CHECK_EQ(pthread_mutex_lock(&outer), 0);
        CHECK_EQ(pthread_mutex_lock(&inner), 0);
        pthread_t t = start_thread(nested_victim, (void *)in_cond);
        pid_t tid = wait_tid(&nested_tid);
        if (in_cond) {
            WAIT_UNTIL(atomic_load(&nested_stage) == 1, 10000);
            CHECK_EQ(pthread_mutex_lock(&outer), 0); // it is in its wait now
            CHECK_EQ(pthread_mutex_unlock(&outer), 0);
        }
        CHECK(wait_blocked(tid));
        pthread_kill(t, SIGUSR2);
        CHECK(WAIT_UNTIL(atomic_load(&nested_in) == 1, 10000));
        // The handler now sleeps on `inner`, on top of the outer wait.
        CHECK(WAIT_UNTIL(inner.__data.__lock >= 2 && thread_state(tid) == 'S', 10000));
        CHECK_EQ(pthread_mutex_unlock(&inner), 0);
        CHECK(WAIT_UNTIL(atomic_load(&nested_done) == 1, 10000));
        if (in_cond) {
            CHECK_EQ(pthread_mutex_lock(&outer), 0);
            atomic_store(&nested_stage, 2);
            CHECK_EQ(pthread_cond_signal(&outer_c), 0);
        }
        CHECK_EQ(pthread_mutex_unlock(&outer), 0);
        join_thread(t);
    }
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; // no SA_RESTART: interrupted waits see EINTR
    sigaction(SIGUSR1, &sa, NULL);

    check_context = "normal mutex";
    blocked_lockers(&m);
    check_context = "recursive mutex";
    blocked_lockers(&rm);
    blocked_waiters();
    nested_in_handler();
    storm();
    return check_finish();
}
