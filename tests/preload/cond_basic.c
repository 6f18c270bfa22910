// Condition variables that work: signal/broadcast with and without waiters,
// wait/timedwait/clockwait wake-ups, timeouts on the cond's clock
// (CLOCK_REALTIME by default, CLOCK_MONOTONIC by attribute) and on either
// clock for clockwait, never earlier than the deadline and with the mutex
// held on return; pthread_cond_init with attributes; a producer/consumer
// with exact totals on each mutex type.
#include <limits.h>

#include "check.h"

enum wait_kind { PLAIN, TIMED, CLOCK_RT, CLOCK_MONO, N_WAITS };
static const char *const wait_names[N_WAITS] = { "wait", "timedwait",
                                                 "clockwait(REALTIME)",
                                                 "clockwait(MONOTONIC)" };

// One wait of `kind` on c/m; timed kinds give up after `ms` on their clock
// (timedwait uses the clock `cond_clock` of the cond).
static int wait_for(enum wait_kind kind, pthread_cond_t *c, pthread_mutex_t *m,
                    clockid_t cond_clock, long ms, struct timespec *deadline)
{
    switch (kind) {
    case TIMED:
        *deadline = deadline_after_ms(cond_clock, ms);
        return pthread_cond_timedwait(c, m, deadline);
    case CLOCK_RT:
        *deadline = deadline_after_ms(CLOCK_REALTIME, ms);
        return pthread_cond_clockwait(c, m, CLOCK_REALTIME, deadline);
    case CLOCK_MONO:
        *deadline = deadline_after_ms(CLOCK_MONOTONIC, ms);
        return pthread_cond_clockwait(c, m, CLOCK_MONOTONIC, deadline);
    default:
        return pthread_cond_wait(c, m);
    }
}

static clockid_t wait_clock(enum wait_kind kind, clockid_t cond_clock)
{
    return kind == CLOCK_RT ? CLOCK_REALTIME : kind == CLOCK_MONO ? CLOCK_MONOTONIC : cond_clock;
}

static void no_waiters(void)
{
    check_context = "no waiters";
    pthread_cond_t s = PTHREAD_COND_INITIALIZER;
    CHECK_EQ(pthread_cond_signal(&s), 0);
    CHECK_EQ(pthread_cond_broadcast(&s), 0);
    CHECK_EQ(pthread_cond_destroy(&s), 0);

    pthread_cond_t c;
    CHECK_EQ(pthread_cond_init(&c, NULL), 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(pthread_cond_signal(&c), 0);
        CHECK_EQ(pthread_cond_broadcast(&c), 0);
    }
    CHECK_EQ(pthread_cond_destroy(&c), 0);
}

static void attributes(void)
{
    check_context = "attributes";
    pthread_condattr_t a;
    clockid_t clock = -1;
    int pshared = -1;
    CHECK_EQ(pthread_condattr_init(&a), 0);
    CHECK_EQ(pthread_condattr_setclock(&a, CLOCK_PROCESS_CPUTIME_ID), EINVAL);
    CHECK_EQ(pthread_condattr_setclock(&a, CLOCK_MONOTONIC), 0);
    CHECK_EQ(pthread_condattr_setpshared(&a, PTHREAD_PROCESS_SHARED), 0);
    CHECK_EQ(pthread_condattr_getclock(&a, &clock), 0);
    CHECK_EQ(clock, CLOCK_MONOTONIC);
    CHECK_EQ(pthread_condattr_getpshared(&a, &pshared), 0);
    CHECK_EQ(pshared, PTHREAD_PROCESS_SHARED);
    pthread_cond_t c;
    memset(&c, 0x5a, sizeof c);
    CHECK_EQ(pthread_cond_init(&c, &a), 0);
    CHECK_EQ(c.__data.__wrefs, 3); // glibc: bit 0 pshared, bit 1 monotonic
    CHECK_EQ(pthread_cond_signal(&c), 0);
    CHECK_EQ(pthread_cond_broadcast(&c), 0);
    CHECK_EQ(pthread_cond_destroy(&c), 0);
    CHECK_EQ(pthread_condattr_destroy(&a), 0);

    memset(&c, 0x5a, sizeof c);
    CHECK_EQ(pthread_cond_init(&c, NULL), 0);
    pthread_cond_t zero = PTHREAD_COND_INITIALIZER;
    CHECK(memcmp(&c, &zero, sizeof c) == 0);
    CHECK_EQ(pthread_cond_destroy(&c), 0);
}

/* Timeouts. */

static void timeouts_on(pthread_cond_t *c, clockid_t cond_clock, int type)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, type);
    pthread_mutex_t m;
    CHECK_EQ(pthread_mutex_init(&m, &a), 0);
    CHECK_EQ(pthread_mutex_lock(&m), 0);
    for (enum wait_kind k = TIMED; k < N_WAITS; k++) {
        check_context = wait_names[k];
        struct timespec d;
        CHECK_EQ(wait_for(k, c, &m, cond_clock, 50, &d), ETIMEDOUT);
        CHECK(reached(wait_clock(k, cond_clock), &d));
        CHECK_EQ(m.__data.__owner, gettid());
        CHECK_EQ(m.__data.__nusers, 1);
        CHECK_EQ(m.__data.__count, type == PTHREAD_MUTEX_RECURSIVE ? 1 : 0);
        // A deadline in the past, or before the epoch: ETIMEDOUT, mutex held.
        struct timespec past[] = { { 0, 0 }, { -1, 0 }, { -5, 999999999 } };
        for (int i = 0; i < 3; i++) {
            int r = k == TIMED ? pthread_cond_timedwait(c, &m, &past[i])
                               : pthread_cond_clockwait(c, &m, wait_clock(k, cond_clock),
                                                        &past[i]);
            CHECK_EQ(r, ETIMEDOUT);
            CHECK_EQ(m.__data.__owner, gettid());
        }
    }
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    CHECK_EQ(pthread_mutex_destroy(&m), 0);
}

static void timeouts(void)
{
    pthread_cond_t rt = PTHREAD_COND_INITIALIZER, mono;
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    CHECK_EQ(pthread_cond_init(&mono, &a), 0);
    timeouts_on(&rt, CLOCK_REALTIME, PTHREAD_MUTEX_NORMAL);
    timeouts_on(&mono, CLOCK_MONOTONIC, PTHREAD_MUTEX_ERRORCHECK);
    timeouts_on(&rt, CLOCK_REALTIME, PTHREAD_MUTEX_RECURSIVE);
    CHECK_EQ(pthread_cond_destroy(&rt), 0);
    CHECK_EQ(pthread_cond_destroy(&mono), 0);
}

/* Wake-ups: one waiter per wait kind, woken by signal; then several by
 * broadcast. */

struct waiter_ctx {
    pthread_cond_t *c;
    pthread_mutex_t *m;
    clockid_t cond_clock;
    enum wait_kind kind;
    int *predicate;
    atomic_int *waiting; // incremented under the mutex before waiting
    atomic_int done;
    int result;
};

static void *waiter(void *arg)
{
    struct waiter_ctx *w = arg;
    CHECK_EQ(pthread_mutex_lock(w->m), 0);
    atomic_fetch_add(w->waiting, 1);
    w->result = 0;
    while (!*w->predicate && w->result == 0) {
        struct timespec d;
        w->result = wait_for(w->kind, w->c, w->m, w->cond_clock, 20000, &d);
    }
    CHECK_EQ(w->m->__data.__owner, gettid());
    CHECK_EQ(pthread_mutex_unlock(w->m), 0);
    atomic_store(&w->done, 1);
    return NULL;
}

static void wakeups(int type)
{
    pthread_mutex_t m;
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, type);
    CHECK_EQ(pthread_mutex_init(&m, &ma), 0);
    pthread_cond_t rt = PTHREAD_COND_INITIALIZER, mono;
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    CHECK_EQ(pthread_cond_init(&mono, &a), 0);

    for (int use_mono = 0; use_mono < 2; use_mono++) {
        pthread_cond_t *c = use_mono ? &mono : &rt;
        clockid_t cc = use_mono ? CLOCK_MONOTONIC : CLOCK_REALTIME;
        for (enum wait_kind k = PLAIN; k < N_WAITS; k++) {
            check_context = wait_names[k];
            int predicate = 0;
            atomic_int waiting = 0;
            struct waiter_ctx w = { c, &m, cc, k, &predicate, &waiting, 0, -1 };
            pthread_t t = start_thread(waiter, &w);
            WAIT_UNTIL(atomic_load(&waiting) == 1, 10000);
            CHECK_EQ(pthread_mutex_lock(&m), 0); // the waiter is in its wait now
            predicate = 1;
            CHECK_EQ(pthread_cond_signal(c), 0);
            CHECK_EQ(pthread_mutex_unlock(&m), 0);
            join_thread(t);
            CHECK_EQ(w.result, 0);
        }

        // Broadcast wakes every waiter, of every kind at once.
        check_context = "broadcast";
        int predicate = 0;
        atomic_int waiting = 0;
        struct waiter_ctx ws[8];
        pthread_t ts[8];
        for (int i = 0; i < 8; i++) {
            ws[i] = (struct waiter_ctx){ c, &m, cc, (enum wait_kind)(i % N_WAITS),
                                         &predicate, &waiting, 0, -1 };
            ts[i] = start_thread(waiter, &ws[i]);
        }
        WAIT_UNTIL(atomic_load(&waiting) == 8, 10000);
        CHECK_EQ(pthread_mutex_lock(&m), 0);
        predicate = 1;
        CHECK_EQ(pthread_cond_broadcast(c), 0);
        CHECK_EQ(pthread_mutex_unlock(&m), 0);
        for (int i = 0; i < 8; i++) {
            join_thread(ts[i]);
            CHECK_EQ(ws[i].result, 0);
        }
        // Signalled without the mutex held, and a broadcast after the
        // waiters left: no effect on later waits.
        CHECK_EQ(pthread_cond_broadcast(c), 0);
        predicate = 0;
        waiting = 0;
        struct waiter_ctx w = { c, &m, cc, TIMED, &predicate, &waiting, 0, -1 };
        pthread_t t = start_thread(waiter, &w);
        WAIT_UNTIL(atomic_load(&waiting) == 1, 10000);
        CHECK_EQ(pthread_mutex_lock(&m), 0);
        predicate = 1;
        CHECK_EQ(pthread_mutex_unlock(&m), 0);
        CHECK_EQ(pthread_cond_signal(c), 0);
        join_thread(t);
        CHECK_EQ(w.result, 0);
    }
    CHECK_EQ(pthread_cond_destroy(&rt), 0);
    CHECK_EQ(pthread_cond_destroy(&mono), 0);
    CHECK_EQ(pthread_mutex_destroy(&m), 0);
}

/* Producer/consumer through a bounded queue, on each mutex type. */

#define QCAP 4
#define PER_PRODUCER 4000
#define N_PROD 2
#define N_CONS 3

struct queue {
    pthread_mutex_t m;
    pthread_cond_t not_empty, not_full;
    long items[QCAP];
    int head, len;
    int producers_left;
    long consumed_sum, consumed_n;
};

static void *producer(void *arg)
{
    struct queue *q = arg;
    for (long i = 1; i <= PER_PRODUCER; i++) {
        CHECK_EQ(pthread_mutex_lock(&q->m), 0);
        while (q->len == QCAP) {
            int r = (i & 1) ? pthread_cond_wait(&q->not_full, &q->m)
                            : ({
                                  struct timespec d = deadline_after_ms(CLOCK_MONOTONIC, 2);
                                  pthread_cond_clockwait(&q->not_full, &q->m,
                                                         CLOCK_MONOTONIC, &d);
                              });
            if (r != 0 && r != ETIMEDOUT)
                CHECK_EQ(r, 0);
        }
        q->items[(q->head + q->len++) % QCAP] = i;
        CHECK_EQ(pthread_cond_signal(&q->not_empty), 0);
        CHECK_EQ(pthread_mutex_unlock(&q->m), 0);
    }
    CHECK_EQ(pthread_mutex_lock(&q->m), 0);
    if (--q->producers_left == 0)
        CHECK_EQ(pthread_cond_broadcast(&q->not_empty), 0);
    CHECK_EQ(pthread_mutex_unlock(&q->m), 0);
    return NULL;
}

static void *consumer(void *arg)
{
    struct queue *q = arg;
    CHECK_EQ(pthread_mutex_lock(&q->m), 0);
    for (long n = 0;; n++) {
        while (q->len == 0 && q->producers_left > 0) {
            int r;
            if (n % 3 == 0) {
                r = pthread_cond_wait(&q->not_empty, &q->m);
            } else {
                struct timespec d = deadline_after_ms(CLOCK_REALTIME, 3);
                r = pthread_cond_timedwait(&q->not_empty, &q->m, &d);
            }
            if (r != 0 && r != ETIMEDOUT)
                CHECK_EQ(r, 0);
        }
        if (q->len == 0)
            break;
        q->consumed_sum += q->items[q->head];
        q->head = (q->head + 1) % QCAP;
        q->len--;
        q->consumed_n++;
        CHECK_EQ(pthread_cond_signal(&q->not_full), 0);
        if (n % 5 == 0) {
            CHECK_EQ(pthread_mutex_unlock(&q->m), 0);
            sched_yield();
            CHECK_EQ(pthread_mutex_lock(&q->m), 0);
        }
    }
    CHECK_EQ(pthread_mutex_unlock(&q->m), 0);
    return NULL;
}

static void producer_consumer(int type)
{
    static struct queue q;
    memset(&q, 0, sizeof q);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, type);
    CHECK_EQ(pthread_mutex_init(&q.m, &a), 0);
    CHECK_EQ(pthread_cond_init(&q.not_empty, NULL), 0);
    CHECK_EQ(pthread_cond_init(&q.not_full, NULL), 0);
    q.producers_left = N_PROD;
    pthread_t t[N_PROD + N_CONS];
    for (int i = 0; i < N_CONS; i++)
        t[i] = start_thread(consumer, &q);
    for (int i = 0; i < N_PROD; i++)
        t[N_CONS + i] = start_thread(producer, &q);
    for (int i = 0; i < N_PROD + N_CONS; i++)
        join_thread(t[i]);
    CHECK_EQ(q.consumed_n, (long)N_PROD * PER_PRODUCER);
    CHECK_EQ(q.consumed_sum, (long)N_PROD * PER_PRODUCER * (PER_PRODUCER + 1) / 2);
    CHECK_EQ(pthread_cond_destroy(&q.not_empty), 0);
    CHECK_EQ(pthread_cond_destroy(&q.not_full), 0);
    CHECK_EQ(pthread_mutex_destroy(&q.m), 0);
}

/* Two waiters with different mutexes on one cond (POSIX leaves it
 * undefined; glibc wakes each with its own mutex). */

static void two_mutexes(void)
{
    check_context = "two mutexes";
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    pthread_mutex_t m1 = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_t m2 = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
    for (int use_broadcast = 0; use_broadcast < 2; use_broadcast++) {
        int p1 = 0, p2 = 0;
        atomic_int w1 = 0, w2 = 0;
        struct waiter_ctx a = { &c, &m1, CLOCK_REALTIME, TIMED, &p1, &w1, 0, -1 };
        struct waiter_ctx b = { &c, &m2, CLOCK_REALTIME, PLAIN, &p2, &w2, 0, -1 };
        pthread_t ta = start_thread(waiter, &a);
        WAIT_UNTIL(atomic_load(&w1) == 1, 10000);
        pthread_t tb = start_thread(waiter, &b);
        WAIT_UNTIL(atomic_load(&w2) == 1, 10000);
        CHECK_EQ(pthread_mutex_lock(&m1), 0);
        CHECK_EQ(pthread_mutex_lock(&m2), 0);
        p1 = p2 = 1;
        if (use_broadcast) {
            CHECK_EQ(pthread_cond_broadcast(&c), 0);
        } else {
            CHECK_EQ(pthread_cond_signal(&c), 0);
            CHECK_EQ(pthread_cond_signal(&c), 0);
        }
        CHECK_EQ(pthread_mutex_unlock(&m2), 0);
        CHECK_EQ(pthread_mutex_unlock(&m1), 0);
        join_thread(ta);
        join_thread(tb);
        CHECK_EQ(a.result, 0);
        CHECK_EQ(b.result, 0);
    }
    // Afterwards the cond serves a single mutex again.
    CHECK_EQ(pthread_mutex_lock(&m2), 0);
    struct timespec d = deadline_after_ms(CLOCK_REALTIME, 10);
    CHECK_EQ(pthread_cond_timedwait(&c, &m2, &d), ETIMEDOUT);
    CHECK_EQ(pthread_mutex_unlock(&m2), 0);
    CHECK_EQ(pthread_cond_destroy(&c), 0);
}

/* A timed waiter that was signalled, then blocked on the mutex past its
 * deadline: the signal counts, the wait returns 0. */

struct late {
    pthread_mutex_t *m;
    pthread_cond_t *c;
    atomic_int waiting;
    int result;
    bool clockwait;
};

static void *late_waiter(void *arg)
{
    struct late *l = arg;
    CHECK_EQ(pthread_mutex_lock(l->m), 0);
    atomic_store(&l->waiting, 1);
    struct timespec d = deadline_after_ms(CLOCK_MONOTONIC, 150);
    l->result = pthread_cond_clockwait(l->c, l->m, CLOCK_MONOTONIC, &d);
    CHECK(reached(CLOCK_MONOTONIC, &d)); // it could not have the mutex sooner
    CHECK_EQ(l->m->__data.__owner, gettid());
    CHECK_EQ(pthread_mutex_unlock(l->m), 0);
    return NULL;
}

static void signalled_then_late(void)
{
    check_context = "signalled, then deadline passes on the mutex";
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    for (int use_broadcast = 0; use_broadcast < 2; use_broadcast++) {
        struct late l = { &m, &c, 0, -1, false };
        pthread_t t = start_thread(late_waiter, &l);
        WAIT_UNTIL(atomic_load(&l.waiting) == 1, 10000);
        CHECK_EQ(pthread_mutex_lock(&m), 0);
        if (use_broadcast)
            CHECK_EQ(pthread_cond_broadcast(&c), 0);
        else
            CHECK_EQ(pthread_cond_signal(&c), 0);
        sleep_ms(300); // well past the waiter's deadline, holding the mutex
        CHECK_EQ(pthread_mutex_unlock(&m), 0);
        join_thread(t);
        CHECK_EQ(l.result, 0);
    }
    CHECK_EQ(pthread_cond_destroy(&c), 0);
}

/* Deadlines beyond what nanoseconds can express wait like no deadline. */

static void *huge_waiter(void *arg)
{
    struct late *l = arg;
    static const struct timespec huge = { LONG_MAX, 999999999 };
    CHECK_EQ(pthread_mutex_lock(l->m), 0);
    atomic_fetch_add(&l->waiting, 1);
    l->result = l->clockwait
                    ? pthread_cond_clockwait(l->c, l->m, CLOCK_MONOTONIC, &huge)
                    : pthread_cond_timedwait(l->c, l->m, &huge);
    CHECK_EQ(pthread_mutex_unlock(l->m), 0);
    return NULL;
}

static void huge_deadlines(void)
{
    check_context = "huge deadline";
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    struct late l[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        l[i] = (struct late){ &m, &c, 0, -1, i == 1 };
        t[i] = start_thread(huge_waiter, &l[i]);
        WAIT_UNTIL(atomic_load(&l[i].waiting) == 1, 10000);
    }
    sleep_ms(30); // they must still be waiting
    CHECK_EQ(pthread_mutex_lock(&m), 0);
    CHECK_EQ(l[0].result, -1);
    CHECK_EQ(l[1].result, -1);
    CHECK_EQ(pthread_cond_broadcast(&c), 0);
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    for (int i = 0; i < 2; i++) {
        join_thread(t[i]);
        CHECK_EQ(l[i].result, 0);
    }
}

int main(void)
{
    no_waiters();
    attributes();
    timeouts();
    static const int wake_types[] = { PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_ERRORCHECK,
                                      PTHREAD_MUTEX_RECURSIVE };
    for (int i = 0; i < 3; i++)
        wakeups(wake_types[i]);
    two_mutexes();
    signalled_then_late();
    huge_deadlines();
    static const int types[] = { PTHREAD_MUTEX_DEFAULT, PTHREAD_MUTEX_ERRORCHECK,
                                 PTHREAD_MUTEX_RECURSIVE, PTHREAD_MUTEX_ADAPTIVE_NP };
    static const char *const names[] = { "queue/default", "queue/errorcheck",
                                         "queue/recursive", "queue/adaptive" };
    for (int i = 0; i < 4; i++) {
        check_context = names[i];
        producer_consumer(types[i]);
    }
    return check_finish();
}
