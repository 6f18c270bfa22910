// Thread cancellation and condition variables, against glibc:
//   - a thread cancelled in pthread_cond_wait/timedwait/clockwait runs its
//     cleanup handler with the mutex held by itself (a recursive one at its
//     full depth), and joins as PTHREAD_CANCELED; also with a process-shared
//     cond and with a robust mutex;
//   - the cond has no stale waiter afterwards: a signal reaches another
//     waiter, a broadcast the rest;
//   - a cancellation pending before the wait is acted upon in the wait;
//   - with cancellation disabled the wait is not interrupted;
//   - a waiter cancelled after a signal was directed at it (it is blocked on
//     the mutex, inside pthread_cond_wait) consumes no signal: glibc's wait
//     returns 0 and the thread is cancelled at its next cancellation point,
//     so the token it was woken for is taken;
//   - pthread_mutex_lock/timedlock/clocklock are not cancellation points.
#include "check.h"

enum wait_kind { PLAIN, TIMED, CLOCKED, N_WAITS };
static const char *const wait_names[N_WAITS] = { "wait", "timedwait", "clockwait" };

static int wait_kind(enum wait_kind k, pthread_cond_t *c, pthread_mutex_t *m)
{
    struct timespec d;
    switch (k) {
    case TIMED:
        d = deadline_after_ms(CLOCK_REALTIME, 30000);
        return pthread_cond_timedwait(c, m, &d);
    case CLOCKED:
        d = deadline_after_ms(CLOCK_MONOTONIC, 30000);
        return pthread_cond_clockwait(c, m, CLOCK_MONOTONIC, &d);
    default:
        return pthread_cond_wait(c, m);
    }
}

static pthread_mutex_t em = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
static pthread_cond_t ec = PTHREAD_COND_INITIALIZER;

/* A waiter cancelled in its wait. */

struct victim {
    enum wait_kind kind;
    pthread_cond_t *c;   // default: ec
    pthread_mutex_t *m;  // default: em (errorcheck)
    int depth;           // times the mutex is locked (recursive: 2)
    atomic_int tid;
    atomic_int waiting;
    atomic_int cancel_sent;
    bool pending_first; // disable cancellation until it has been requested
    int handler_ran;
    pid_t handler_owner;
    pid_t handler_tid;
    unsigned handler_count;
    int handler_unlock;
    int returned;
};

static void victim_cleanup(void *arg)
{
    struct victim *v = arg;
    v->handler_ran = 1;
    v->handler_owner = v->m->__data.__owner;
    v->handler_count = v->m->__data.__count;
    v->handler_tid = gettid();
    // Checked mutexes: EPERM if the mutex were not ours again.
    for (int i = 0; i < v->depth; i++)
        v->handler_unlock |= pthread_mutex_unlock(v->m);
}

static void *victim_thread(void *arg)
{
    struct victim *v = arg;
    atomic_store(&v->tid, gettid());
    if (v->pending_first) {
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
        atomic_store(&v->waiting, 1);
        WAIT_UNTIL(atomic_load(&v->cancel_sent) == 1, 10000);
    }
    for (int i = 0; i < v->depth; i++)
        CHECK_EQ(pthread_mutex_lock(v->m), 0);
    pthread_cleanup_push(victim_cleanup, v);
    if (v->pending_first)
        pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL); // deferred: no action yet
    else
        atomic_store(&v->waiting, 1);
    for (;;)
        wait_kind(v->kind, v->c, v->m);
    v->returned = 1;
    pthread_cleanup_pop(0);
    CHECK_EQ(pthread_mutex_unlock(v->m), 0);
    return NULL;
}

static void victim_defaults(struct victim *v)
{
    if (!v->c)
        v->c = &ec;
    if (!v->m)
        v->m = &em;
    if (!v->depth)
        v->depth = 1;
}

static void check_victim(struct victim *v, pthread_t t)
{
    CHECK(join_thread(t) == PTHREAD_CANCELED);
    CHECK_EQ(v->returned, 0);
    CHECK_EQ(v->handler_ran, 1);
    CHECK_EQ(v->handler_tid, atomic_load(&v->tid));
    CHECK_EQ(v->handler_owner, v->handler_tid); // mutex reacquired first
    if (v->depth > 1)
        CHECK_EQ(v->handler_count, v->depth); // depth restored
    CHECK_EQ(v->handler_unlock, 0);
    // Nobody holds the mutex and the cond works.
    CHECK_EQ(pthread_mutex_trylock(v->m), 0);
    struct timespec d = deadline_after_ms(CLOCK_REALTIME, 10);
    CHECK_EQ(pthread_cond_timedwait(v->c, v->m, &d), ETIMEDOUT);
    CHECK_EQ(pthread_mutex_unlock(v->m), 0);
}

static void cancel_victim(struct victim *v)
{
    victim_defaults(v);
    pthread_t t = start_thread(victim_thread, v);
    WAIT_UNTIL(atomic_load(&v->waiting) == 1, 10000);
    if (v->depth == 1) {
        CHECK_EQ(pthread_mutex_lock(v->m), 0); // the victim is in its wait now
        CHECK_EQ(pthread_mutex_unlock(v->m), 0);
    }
    CHECK(wait_blocked(atomic_load(&v->tid)));
    CHECK_EQ(pthread_cancel(t), 0);
    check_victim(v, t);
}

static void cancel_in_wait(enum wait_kind k)
{
    struct victim v = { .kind = k };
    cancel_victim(&v);
}

static void cancel_pending(enum wait_kind k)
{
    struct victim v = { .kind = k, .pending_first = true };
    victim_defaults(&v);
    pthread_t t = start_thread(victim_thread, &v);
    WAIT_UNTIL(atomic_load(&v.waiting) == 1, 10000);
    CHECK_EQ(pthread_cancel(t), 0);
    atomic_store(&v.cancel_sent, 1);
    check_victim(&v, t);
}

// Other engines and mutex modes: a recursive mutex held twice (kept locked
// during the wait), a process-shared cond, a robust mutex.
static void cancel_variants(void)
{
    pthread_mutex_t rec = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
    pthread_mutex_t robust;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    CHECK_EQ(pthread_mutex_init(&robust, &a), 0);
    pthread_cond_t shared;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
    CHECK_EQ(pthread_cond_init(&shared, &ca), 0);

    for (enum wait_kind k = PLAIN; k < N_WAITS; k++) {
        check_context = "cancel: recursive mutex held twice";
        struct victim v1 = { .kind = k, .m = &rec, .depth = 2 };
        cancel_victim(&v1);
        check_context = "cancel: recursive mutex held once";
        struct victim v2 = { .kind = k, .m = &rec };
        cancel_victim(&v2);
        check_context = "cancel: pshared cond, errorcheck mutex";
        struct victim v3 = { .kind = k, .c = &shared };
        cancel_victim(&v3);
        check_context = "cancel: pshared cond, recursive mutex held twice";
        struct victim v4 = { .kind = k, .c = &shared, .m = &rec, .depth = 2 };
        cancel_victim(&v4);
        check_context = "cancel: robust errorcheck mutex";
        struct victim v5 = { .kind = k, .m = &robust };
        cancel_victim(&v5);
    }
    CHECK_EQ(pthread_cond_destroy(&shared), 0);
    CHECK_EQ(pthread_mutex_destroy(&robust), 0);
}

/* Cancellation disabled: the wait is not interrupted. */

struct shielded {
    int predicate;
    atomic_int waiting;
    atomic_int tid;
    int result;
    int after_testcancel;
};

static void *shielded_thread(void *arg)
{
    struct shielded *s = arg;
    atomic_store(&s->tid, gettid());
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    CHECK_EQ(pthread_mutex_lock(&em), 0);
    atomic_store(&s->waiting, 1);
    while (!s->predicate) {
        s->result = wait_kind(TIMED, &ec, &em);
        if (s->result != 0)
            break;
    }
    CHECK_EQ(pthread_mutex_unlock(&em), 0);
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
    pthread_testcancel();
    s->after_testcancel = 1;
    return NULL;
}

static void cancel_disabled(void)
{
    check_context = "cancel disabled";
    struct shielded s = { .result = -1 };
    pthread_t t = start_thread(shielded_thread, &s);
    WAIT_UNTIL(atomic_load(&s.waiting) == 1, 10000);
    CHECK_EQ(pthread_mutex_lock(&em), 0);
    CHECK_EQ(pthread_mutex_unlock(&em), 0);
    CHECK(wait_blocked(atomic_load(&s.tid)));
    CHECK_EQ(pthread_cancel(t), 0);
    sleep_ms(50);
    CHECK_EQ(thread_state(atomic_load(&s.tid)), 'S'); // still waiting
    CHECK_EQ(pthread_mutex_lock(&em), 0);
    s.predicate = 1;
    CHECK_EQ(pthread_cond_signal(&ec), 0);
    CHECK_EQ(pthread_mutex_unlock(&em), 0);
    CHECK(join_thread(t) == PTHREAD_CANCELED);
    CHECK_EQ(s.result, 0);
    CHECK_EQ(s.after_testcancel, 0);
}

/* Token consumers on a normal mutex: a cancelled one must not leave a
 * stale waiter behind, nor swallow a signal. */

static pthread_mutex_t tm = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tc = PTHREAD_COND_INITIALIZER;
static int tokens, stop;
static atomic_int consumed, waiting;

struct consumer {
    enum wait_kind kind;
    atomic_int tid;
    int cancelled_in_wait;
    int took;
};

static void consumer_cleanup(void *arg)
{
    struct consumer *c = arg;
    c->cancelled_in_wait = 1;
    CHECK_EQ(tm.__data.__owner, gettid());
    CHECK_EQ(pthread_mutex_unlock(&tm), 0);
}

static void *consumer_thread(void *arg)
{
    struct consumer *c = arg;
    atomic_store(&c->tid, gettid());
    CHECK_EQ(pthread_mutex_lock(&tm), 0);
    atomic_fetch_add(&waiting, 1);
    pthread_cleanup_push(consumer_cleanup, c);
    while (tokens == 0 && !stop) {
        int r = wait_kind(c->kind, &tc, &tm);
        if (r != 0)
            CHECK_EQ(r, 0);
    }
    pthread_cleanup_pop(0);
    if (tokens > 0) {
        tokens--;
        c->took = 1;
        atomic_fetch_add(&consumed, 1);
    }
    CHECK_EQ(pthread_mutex_unlock(&tm), 0);
    pthread_testcancel();
    return NULL;
}

// Starts n consumers, one after the other, each in its wait before the next.
static void start_consumers(struct consumer *c, pthread_t *t, int n, enum wait_kind k)
{
    for (int i = 0; i < n; i++) {
        c[i] = (struct consumer){ .kind = k };
        t[i] = start_thread(consumer_thread, &c[i]);
        WAIT_UNTIL(atomic_load(&waiting) == i + 1, 10000);
        CHECK_EQ(pthread_mutex_lock(&tm), 0);
        CHECK_EQ(pthread_mutex_unlock(&tm), 0);
        CHECK(wait_blocked(atomic_load(&c[i].tid)));
    }
}

static void reset_tokens(void)
{
    tokens = 0;
    stop = 0;
    atomic_store(&consumed, 0);
    atomic_store(&waiting, 0);
}

static void stop_consumers(pthread_t *t, int n)
{
    CHECK_EQ(pthread_mutex_lock(&tm), 0);
    stop = 1;
    CHECK_EQ(pthread_cond_broadcast(&tc), 0);
    CHECK_EQ(pthread_mutex_unlock(&tm), 0);
    for (int i = 0; i < n; i++)
        join_thread(t[i]);
}

static void no_stale_waiter(enum wait_kind k)
{
    struct consumer c[4];
    pthread_t t[4];
    reset_tokens();
    start_consumers(c, t, 4, k);
    // Cancel the first and the third waiter.
    CHECK_EQ(pthread_cancel(t[0]), 0);
    CHECK_EQ(pthread_cancel(t[2]), 0);
    CHECK(join_thread(t[0]) == PTHREAD_CANCELED);
    CHECK(join_thread(t[2]) == PTHREAD_CANCELED);
    CHECK_EQ(c[0].cancelled_in_wait, 1);
    CHECK_EQ(c[2].cancelled_in_wait, 1);
    // One signal: one of the two live waiters takes the token.
    CHECK_EQ(pthread_mutex_lock(&tm), 0);
    tokens = 1;
    CHECK_EQ(pthread_cond_signal(&tc), 0);
    CHECK_EQ(pthread_mutex_unlock(&tm), 0);
    CHECK(WAIT_UNTIL(atomic_load(&consumed) == 1, 5000));
    // A broadcast reaches the other.
    CHECK_EQ(pthread_mutex_lock(&tm), 0);
    tokens = 1;
    CHECK_EQ(pthread_cond_broadcast(&tc), 0);
    CHECK_EQ(pthread_mutex_unlock(&tm), 0);
    CHECK(WAIT_UNTIL(atomic_load(&consumed) == 2, 5000));
    pthread_t live[2] = { t[1], t[3] };
    stop_consumers(live, 2);
    CHECK_EQ(c[1].took + c[3].took, 2);
    CHECK_EQ(tokens, 0);
}

static void cancel_after_signal(void)
{
    check_context = "cancel after signal";
    struct consumer c[2];
    pthread_t t[2];
    reset_tokens();
    start_consumers(c, t, 2, PLAIN);
    CHECK_EQ(pthread_mutex_lock(&tm), 0);
    tokens = 1;
    CHECK_EQ(pthread_cond_signal(&tc), 0);
    // The signalled waiter now blocks on the mutex we hold (glibc: it left
    // the cond and sleeps in lock; its word says contended).
    CHECK(WAIT_UNTIL(tm.__data.__lock >= 2 && thread_state(c[0].tid) == 'S' &&
                         thread_state(c[1].tid) == 'S',
                     10000));
    CHECK_EQ(pthread_cancel(t[0]), 0);
    sleep_ms(30);
    CHECK_EQ(pthread_mutex_unlock(&tm), 0);
    // Whoever was signalled, the token is taken: by the first waiter, whose
    // wait returns before its cancellation is acted upon, or by the second.
    CHECK(WAIT_UNTIL(atomic_load(&consumed) == 1, 5000));
    CHECK(join_thread(t[0]) == PTHREAD_CANCELED);
    pthread_t live[1] = { t[1] };
    stop_consumers(live, 1);
    CHECK_EQ(c[0].took + c[1].took, 1);
    CHECK_EQ(c[0].took + c[0].cancelled_in_wait, 1);
}

/* A wait leaves the thread's cancellation state and type as they were. */

static void *type_keeper(void *arg)
{
    (void)arg;
    int old = -1;
    for (int state = 0; state < 2; state++) {
        int want = state ? PTHREAD_CANCEL_DISABLE : PTHREAD_CANCEL_ENABLE;
        pthread_setcancelstate(want, NULL);
        CHECK_EQ(pthread_mutex_lock(&em), 0);
        for (enum wait_kind k = TIMED; k < N_WAITS; k++) {
            struct timespec d = deadline_after_ms(CLOCK_MONOTONIC, 5);
            CHECK_EQ(pthread_cond_clockwait(&ec, &em, CLOCK_MONOTONIC, &d), ETIMEDOUT);
            d = deadline_after_ms(CLOCK_REALTIME, 5);
            CHECK_EQ(pthread_cond_timedwait(&ec, &em, &d), ETIMEDOUT);
            CHECK_EQ(pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, &old), 0);
            CHECK_EQ(old, PTHREAD_CANCEL_DEFERRED);
            CHECK_EQ(pthread_setcancelstate(want, &old), 0);
            CHECK_EQ(old, want);
        }
        CHECK_EQ(pthread_mutex_unlock(&em), 0);
    }
    return NULL;
}

static void cancel_type_kept(void)
{
    check_context = "cancel type and state after waits";
    join_thread(start_thread(type_keeper, NULL));
}

/* Locking is not a cancellation point. */

struct locker {
    int how; // 0 lock, 1 timedlock, 2 clocklock
    atomic_int tid;
    int result;
    int got;
};

static void *locker_thread(void *arg)
{
    struct locker *l = arg;
    atomic_store(&l->tid, gettid());
    struct timespec d;
    switch (l->how) {
    case 1:
        d = deadline_after_ms(CLOCK_REALTIME, 30000);
        l->result = pthread_mutex_timedlock(&tm, &d);
        break;
    case 2:
        d = deadline_after_ms(CLOCK_MONOTONIC, 30000);
        l->result = pthread_mutex_clocklock(&tm, CLOCK_MONOTONIC, &d);
        break;
    default:
        l->result = pthread_mutex_lock(&tm);
    }
    l->got = 1;
    if (l->result == 0)
        CHECK_EQ(pthread_mutex_unlock(&tm), 0);
    pthread_testcancel();
    return NULL;
}

static void lock_not_cancellation_point(void)
{
    static const char *const names[] = { "cancel in lock", "cancel in timedlock",
                                         "cancel in clocklock" };
    for (int how = 0; how < 3; how++) {
        check_context = names[how];
        struct locker l = { .how = how, .result = -1 };
        CHECK_EQ(pthread_mutex_lock(&tm), 0);
        pthread_t t = start_thread(locker_thread, &l);
        CHECK(WAIT_UNTIL(atomic_load(&l.tid) != 0 && tm.__data.__lock >= 2 &&
                             thread_state(atomic_load(&l.tid)) == 'S',
                         10000));
        CHECK_EQ(pthread_cancel(t), 0);
        sleep_ms(30);
        CHECK_EQ(l.got, 0);
        CHECK_EQ(pthread_mutex_unlock(&tm), 0);
        CHECK(join_thread(t) == PTHREAD_CANCELED);
        CHECK_EQ(l.got, 1);
        CHECK_EQ(l.result, 0);
    }
}

int main(void)
{
    for (enum wait_kind k = PLAIN; k < N_WAITS; k++) {
        check_context = wait_names[k];
        cancel_in_wait(k);
        cancel_pending(k);
        no_stale_waiter(k);
    }
    cancel_variants();
    cancel_type_kept();
    cancel_disabled();
    lock_not_cancellation_point();
    cancel_after_signal();
    return check_finish();
}
