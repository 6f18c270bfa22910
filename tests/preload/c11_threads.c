// C11 <threads.h> mutexes and condition variables, against glibc:
//   - mtx_init with mtx_plain, mtx_timed, mtx_plain|mtx_recursive,
//     mtx_timed|mtx_recursive and invalid types (glibc: a plain mutex);
//   - mtx_lock/trylock (thrd_busy)/timedlock (thrd_timedout)/unlock, the
//     recursive depth, errors mapped to thrd_error;
//   - cnd_signal/broadcast/wait/timedwait (thrd_timedout) with thrd_create
//     threads and exact totals;
//   - a fingerprint that mtx_* and cnd_* really go through parklock under
//     the preload (glibc's own would bypass a preloaded pthread_mutex_lock):
//     a contended mtx_t's lock word is 3, and a waited-on cnd_t holds the
//     address of its mutex.
#include <threads.h>

#include "check.h"

static pthread_mutex_t *as_pthread(mtx_t *m)
{
    return (pthread_mutex_t *)m;
}

static void init_types(void)
{
    check_context = "mtx_init";
    static const struct {
        int type;
        int kind; // glibc's __kind: normal (512 = no-elision) or recursive
    } cases[] = {
        { mtx_plain, 512 },
        { mtx_timed, 512 },
        { mtx_plain | mtx_recursive, 1 },
        { mtx_timed | mtx_recursive, 1 },
        { 4, 512 },
        { 12345, 512 },
        { -1, 512 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        mtx_t m;
        memset(&m, 0x5a, sizeof m);
        CHECK_EQ(mtx_init(&m, cases[i].type), thrd_success);
        CHECK_EQ(as_pthread(&m)->__data.__kind, cases[i].kind);
        CHECK_EQ(as_pthread(&m)->__data.__lock, 0);
        CHECK_EQ(mtx_lock(&m), thrd_success);
        CHECK_EQ(as_pthread(&m)->__data.__owner, gettid());
        CHECK_EQ(mtx_trylock(&m), cases[i].kind == 1 ? thrd_success : thrd_busy);
        if (cases[i].kind == 1)
            CHECK_EQ(mtx_unlock(&m), thrd_success);
        CHECK_EQ(mtx_unlock(&m), thrd_success);
        CHECK_EQ(as_pthread(&m)->__data.__owner, 0);
        mtx_destroy(&m);
        CHECK_EQ(as_pthread(&m)->__data.__kind, -1);
    }
}

/* Calls from another thread. */

struct call {
    mtx_t *m;
    int op; // 0 trylock, 1 timedlock 50 ms, 2 unlock, 3 lock+unlock
    int result;
};

static int call_thread(void *arg)
{
    struct call *c = arg;
    struct timespec d;
    switch (c->op) {
    case 0:
        c->result = mtx_trylock(c->m);
        break;
    case 1:
        d = deadline_after_ms(CLOCK_REALTIME, 50);
        c->result = mtx_timedlock(c->m, &d);
        if (c->result == thrd_timedout)
            CHECK(reached(CLOCK_REALTIME, &d));
        break;
    case 2:
        c->result = mtx_unlock(c->m);
        break;
    default:
        c->result = mtx_lock(c->m);
        if (c->result == thrd_success)
            c->result = mtx_unlock(c->m);
    }
    return 7;
}

static int other_thread(mtx_t *m, int op)
{
    struct call c = { m, op, -100 };
    thrd_t t;
    CHECK_EQ(thrd_create(&t, call_thread, &c), thrd_success);
    int res = 0;
    CHECK_EQ(thrd_join(t, &res), thrd_success);
    CHECK_EQ(res, 7);
    return c.result;
}

static void plain_and_timed(void)
{
    check_context = "mtx plain/timed";
    mtx_t m;
    CHECK_EQ(mtx_init(&m, mtx_timed), thrd_success);
    CHECK_EQ(mtx_lock(&m), thrd_success);
    CHECK_EQ(mtx_trylock(&m), thrd_busy);
    struct timespec d = deadline_after_ms(CLOCK_REALTIME, 40);
    CHECK_EQ(mtx_timedlock(&m, &d), thrd_timedout); // plain relock: times out
    CHECK(reached(CLOCK_REALTIME, &d));
    CHECK_EQ(other_thread(&m, 0), thrd_busy);
    CHECK_EQ(other_thread(&m, 1), thrd_timedout);
    struct timespec bad = { 0, -1 };
    CHECK_EQ(mtx_timedlock(&m, &bad), thrd_error); // EINVAL: held, bad timeout
    struct timespec past = { -1, 0 };
    CHECK_EQ(mtx_timedlock(&m, &past), thrd_timedout);
    CHECK_EQ(mtx_unlock(&m), thrd_success);
    CHECK_EQ(mtx_timedlock(&m, &bad), thrd_success); // free: taken
    CHECK_EQ(mtx_unlock(&m), thrd_success);
    CHECK_EQ(other_thread(&m, 3), thrd_success);
    // Unchecked: unlocking an unlocked plain mutex "succeeds".
    CHECK_EQ(mtx_lock(&m), thrd_success);
    CHECK_EQ(other_thread(&m, 2), thrd_success);
    CHECK_EQ(mtx_trylock(&m), thrd_success);
    CHECK_EQ(mtx_unlock(&m), thrd_success);
    mtx_destroy(&m);
    CHECK_EQ(mtx_lock(&m), thrd_error); // EINVAL after destroy
    CHECK_EQ(mtx_trylock(&m), thrd_error);
    CHECK_EQ(mtx_unlock(&m), thrd_error);
}

static void recursive(void)
{
    check_context = "mtx recursive";
    mtx_t m;
    CHECK_EQ(mtx_init(&m, mtx_plain | mtx_recursive), thrd_success);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(mtx_lock(&m), thrd_success);
    CHECK_EQ(mtx_trylock(&m), thrd_success);
    struct timespec d = deadline_after_ms(CLOCK_REALTIME, 10);
    CHECK_EQ(mtx_timedlock(&m, &d), thrd_success);
    CHECK_EQ(as_pthread(&m)->__data.__count, 7);
    CHECK_EQ(other_thread(&m, 0), thrd_busy);
    CHECK_EQ(other_thread(&m, 1), thrd_timedout);
    CHECK_EQ(other_thread(&m, 2), thrd_error); // EPERM
    for (int i = 0; i < 7; i++)
        CHECK_EQ(mtx_unlock(&m), thrd_success);
    CHECK_EQ(mtx_unlock(&m), thrd_error); // EPERM
    CHECK_EQ(other_thread(&m, 3), thrd_success);
    as_pthread(&m)->__data.__count = 0;
    CHECK_EQ(mtx_lock(&m), thrd_success);
    as_pthread(&m)->__data.__count = UINT32_MAX;
    CHECK_EQ(mtx_lock(&m), thrd_error); // EAGAIN
    as_pthread(&m)->__data.__count = 1;
    CHECK_EQ(mtx_unlock(&m), thrd_success);
    mtx_destroy(&m);
}

/* Condition variables. */

static void cnd_basics(void)
{
    check_context = "cnd basics";
    cnd_t c;
    mtx_t m;
    CHECK_EQ(cnd_init(&c), thrd_success);
    CHECK_EQ(mtx_init(&m, mtx_plain), thrd_success);
    CHECK_EQ(cnd_signal(&c), thrd_success);
    CHECK_EQ(cnd_broadcast(&c), thrd_success);
    CHECK_EQ(mtx_lock(&m), thrd_success);
    struct timespec d = deadline_after_ms(CLOCK_REALTIME, 40);
    CHECK_EQ(cnd_timedwait(&c, &m, &d), thrd_timedout);
    CHECK(reached(CLOCK_REALTIME, &d));
    CHECK_EQ(as_pthread(&m)->__data.__owner, gettid());
    struct timespec bad = { 0, 1000000000 };
    CHECK_EQ(cnd_timedwait(&c, &m, &bad), thrd_error);
    struct timespec past = { -1, 0 };
    CHECK_EQ(cnd_timedwait(&c, &m, &past), thrd_timedout);
    CHECK_EQ(mtx_unlock(&m), thrd_success);
    // A recursive mtx not owned: EPERM -> thrd_error.
    mtx_t r;
    CHECK_EQ(mtx_init(&r, mtx_timed | mtx_recursive), thrd_success);
    CHECK_EQ(cnd_timedwait(&c, &r, &d), thrd_error);
    mtx_destroy(&r);
    cnd_destroy(&c);
    mtx_destroy(&m);
}

#define N_PROD 2
#define N_CONS 2
#define PER_PROD 3000

static mtx_t qm;
static cnd_t not_empty, not_full;
static int qlen, producers_left;
static long consumed_n, consumed_sum;

static int producer(void *arg)
{
    (void)arg;
    for (long i = 1; i <= PER_PROD; i++) {
        CHECK_EQ(mtx_lock(&qm), thrd_success);
        while (qlen >= 4)
            CHECK_EQ(cnd_wait(&not_full, &qm), thrd_success);
        qlen++;
        consumed_sum += i; // the value travels with the count
        CHECK_EQ(cnd_signal(&not_empty), thrd_success);
        CHECK_EQ(mtx_unlock(&qm), thrd_success);
    }
    CHECK_EQ(mtx_lock(&qm), thrd_success);
    if (--producers_left == 0)
        CHECK_EQ(cnd_broadcast(&not_empty), thrd_success);
    CHECK_EQ(mtx_unlock(&qm), thrd_success);
    return 0;
}

static int consumer(void *arg)
{
    (void)arg;
    CHECK_EQ(mtx_lock(&qm), thrd_success);
    for (long n = 0;; n++) {
        while (qlen == 0 && producers_left > 0) {
            if (n & 1) {
                CHECK_EQ(cnd_wait(&not_empty, &qm), thrd_success);
            } else {
                struct timespec d = deadline_after_ms(CLOCK_REALTIME, 3);
                int r = cnd_timedwait(&not_empty, &qm, &d);
                if (r != thrd_timedout)
                    CHECK_EQ(r, thrd_success);
            }
        }
        if (qlen == 0)
            break;
        qlen--;
        consumed_n++;
        CHECK_EQ(cnd_broadcast(&not_full), thrd_success);
    }
    CHECK_EQ(mtx_unlock(&qm), thrd_success);
    return 0;
}

static void producer_consumer(void)
{
    check_context = "cnd producer/consumer";
    CHECK_EQ(mtx_init(&qm, mtx_timed), thrd_success);
    CHECK_EQ(cnd_init(&not_empty), thrd_success);
    CHECK_EQ(cnd_init(&not_full), thrd_success);
    producers_left = N_PROD;
    thrd_t t[N_PROD + N_CONS];
    for (int i = 0; i < N_CONS; i++)
        CHECK_EQ(thrd_create(&t[i], consumer, NULL), thrd_success);
    for (int i = 0; i < N_PROD; i++)
        CHECK_EQ(thrd_create(&t[N_CONS + i], producer, NULL), thrd_success);
    for (int i = 0; i < N_PROD + N_CONS; i++)
        CHECK_EQ(thrd_join(t[i], NULL), thrd_success);
    CHECK_EQ(consumed_n, (long)N_PROD * PER_PROD);
    CHECK_EQ(consumed_sum, (long)N_PROD * PER_PROD * (PER_PROD + 1) / 2);
    CHECK_EQ(qlen, 0);
    cnd_destroy(&not_empty);
    cnd_destroy(&not_full);
    mtx_destroy(&qm);
}

/* Fingerprints. */

static mtx_t fm;
static cnd_t fc;
static atomic_int f_tid, f_waiting;
static int f_ready;

static int fp_locker(void *arg)
{
    (void)arg;
    atomic_store(&f_tid, gettid());
    CHECK_EQ(mtx_lock(&fm), thrd_success);
    CHECK_EQ(mtx_unlock(&fm), thrd_success);
    return 0;
}

static int fp_waiter(void *arg)
{
    (void)arg;
    atomic_store(&f_tid, gettid());
    CHECK_EQ(mtx_lock(&fm), thrd_success);
    atomic_store(&f_waiting, 1);
    while (!f_ready)
        CHECK_EQ(cnd_wait(&fc, &fm), thrd_success);
    CHECK_EQ(mtx_unlock(&fm), thrd_success);
    return 0;
}

static void fingerprints(void)
{
    check_context = "fingerprint";
    CHECK_EQ(mtx_init(&fm, mtx_plain), thrd_success);
    CHECK_EQ(cnd_init(&fc), thrd_success);

    // A contended mtx_t.
    CHECK_EQ(mtx_lock(&fm), thrd_success);
    thrd_t t;
    CHECK_EQ(thrd_create(&t, fp_locker, NULL), thrd_success);
    pid_t tid = wait_tid(&f_tid);
    CHECK(WAIT_UNTIL(as_pthread(&fm)->__data.__lock != 1 && thread_state(tid) == 'S',
                     10000));
    CHECK_EQ(as_pthread(&fm)->__data.__lock, contended_word());
    CHECK_EQ(mtx_unlock(&fm), thrd_success);
    CHECK_EQ(thrd_join(t, NULL), thrd_success);

    // A cnd_t with a waiter: parklock keeps the waiters' mutex in its first
    // word; glibc keeps a sequence counter there.
    atomic_store(&f_tid, 0);
    CHECK_EQ(thrd_create(&t, fp_waiter, NULL), thrd_success);
    WAIT_UNTIL(atomic_load(&f_waiting) == 1, 10000);
    CHECK_EQ(mtx_lock(&fm), thrd_success);
    uintptr_t first = *(volatile uintptr_t *)&fc;
    if (expect_parkinglot())
        CHECK_EQ(first, (uintptr_t)&fm);
    else
        CHECK(first != (uintptr_t)&fm);
    f_ready = 1;
    CHECK_EQ(cnd_signal(&fc), thrd_success);
    CHECK_EQ(mtx_unlock(&fm), thrd_success);
    CHECK_EQ(thrd_join(t, NULL), thrd_success);
    cnd_destroy(&fc);
    mtx_destroy(&fm);
}

int main(void)
{
    init_types();
    plain_and_timed();
    recursive();
    cnd_basics();
    producer_consumer();
    fingerprints();
    return check_finish();
}
