// Condition variables and mutexes that parklock runs on different engines:
//   - a process-shared cond (glibc's) with private normal, errorcheck and
//     recursive mutexes (parklock's);
//   - a private cond (parklock's) with robust, process-shared and
//     priority-inheritance mutexes (glibc's);
// each with: signal/broadcast without waiters, timeouts never early and with
// the mutex held after, wake-ups by signal and broadcast, a producer/consumer
// with exact totals, and glibc's error cases (EPERM when not owned, EBUSY
// when the mutex is destroyed while a thread waits with it);
//   - EOWNERDEAD from a cond wait and from lock, with a robust mutex whose
//     owner thread died;
//   - a process-shared mutex and cond in MAP_SHARED memory used by a parent
//     and a forked child (glibc's entirely).
#include <sys/mman.h>
#include <sys/wait.h>

#include "check.h"

enum mutex_flavour { M_NORMAL, M_ERRORCHECK, M_RECURSIVE, M_ROBUST, M_PSHARED, M_PI,
                     M_ROBUST_ERRORCHECK, N_FLAVOURS };
static const char *const flavour_names[N_FLAVOURS] = {
    "normal", "errorcheck", "recursive", "robust", "pshared", "prio-inherit",
    "robust errorcheck",
};

static void init_mutex(pthread_mutex_t *m, enum mutex_flavour f)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    switch (f) {
    case M_ERRORCHECK:
        pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
        break;
    case M_RECURSIVE:
        pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
        break;
    case M_ROBUST:
        CHECK_EQ(pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST), 0);
        break;
    case M_ROBUST_ERRORCHECK:
        CHECK_EQ(pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST), 0);
        pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
        break;
    case M_PSHARED:
        CHECK_EQ(pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED), 0);
        break;
    case M_PI:
        CHECK_EQ(pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT), 0);
        break;
    default:
        break;
    }
    CHECK_EQ(pthread_mutex_init(m, &a), 0);
    pthread_mutexattr_destroy(&a);
}

static void init_cond(pthread_cond_t *c, bool pshared)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    if (pshared)
        CHECK_EQ(pthread_condattr_setpshared(&a, PTHREAD_PROCESS_SHARED), 0);
    CHECK_EQ(pthread_cond_init(c, &a), 0);
    pthread_condattr_destroy(&a);
}

/* One pairing of a cond and a mutex. */

struct pair {
    pthread_cond_t c;
    pthread_mutex_t m;
    enum mutex_flavour flavour;
    int ready;
    atomic_int waiting;
    int qlen, producers_left;
    long consumed_n, sum;
};

static void timeouts(struct pair *p)
{
    CHECK_EQ(pthread_cond_signal(&p->c), 0);
    CHECK_EQ(pthread_cond_broadcast(&p->c), 0);
    CHECK_EQ(pthread_mutex_lock(&p->m), 0);
    struct timespec d = deadline_after_ms(CLOCK_REALTIME, 30);
    CHECK_EQ(pthread_cond_timedwait(&p->c, &p->m, &d), ETIMEDOUT);
    CHECK(reached(CLOCK_REALTIME, &d));
    CHECK_EQ(p->m.__data.__owner, gettid());
    d = deadline_after_ms(CLOCK_MONOTONIC, 30);
    CHECK_EQ(pthread_cond_clockwait(&p->c, &p->m, CLOCK_MONOTONIC, &d), ETIMEDOUT);
    CHECK(reached(CLOCK_MONOTONIC, &d));
    CHECK_EQ(p->m.__data.__owner, gettid());
    struct timespec past = { -1, 0 };
    CHECK_EQ(pthread_cond_timedwait(&p->c, &p->m, &past), ETIMEDOUT);
    struct timespec bad = { 0, -1 };
    CHECK_EQ(pthread_cond_timedwait(&p->c, &p->m, &bad), EINVAL);
    CHECK_EQ(pthread_cond_clockwait(&p->c, &p->m, CLOCK_BOOTTIME, &d), EINVAL);
    CHECK_EQ(p->m.__data.__owner, gettid());
    CHECK_EQ(pthread_mutex_unlock(&p->m), 0);
    CHECK_EQ(pthread_mutex_trylock(&p->m), 0);
    CHECK_EQ(pthread_mutex_unlock(&p->m), 0);
}

static void *pair_waiter(void *arg)
{
    struct pair *p = arg;
    CHECK_EQ(pthread_mutex_lock(&p->m), 0);
    atomic_fetch_add(&p->waiting, 1);
    while (!p->ready) {
        struct timespec d = deadline_after_ms(CLOCK_REALTIME, 20000);
        int r = pthread_cond_timedwait(&p->c, &p->m, &d);
        if (r) {
            CHECK_EQ(r, 0);
            break;
        }
    }
    CHECK_EQ(p->m.__data.__owner, gettid());
    CHECK_EQ(pthread_mutex_unlock(&p->m), 0);
    return NULL;
}

static void wakeups(struct pair *p)
{
    // Signal: one waiter.
    p->ready = 0;
    atomic_store(&p->waiting, 0);
    pthread_t t = start_thread(pair_waiter, p);
    WAIT_UNTIL(atomic_load(&p->waiting) == 1, 10000);
    CHECK_EQ(pthread_mutex_lock(&p->m), 0);
    p->ready = 1;
    CHECK_EQ(pthread_cond_signal(&p->c), 0);
    CHECK_EQ(pthread_mutex_unlock(&p->m), 0);
    join_thread(t);

    // Broadcast: three.
    p->ready = 0;
    atomic_store(&p->waiting, 0);
    pthread_t ts[3];
    for (int i = 0; i < 3; i++)
        ts[i] = start_thread(pair_waiter, p);
    WAIT_UNTIL(atomic_load(&p->waiting) == 3, 10000);
    CHECK_EQ(pthread_mutex_lock(&p->m), 0);
    p->ready = 1;
    CHECK_EQ(pthread_cond_broadcast(&p->c), 0);
    CHECK_EQ(pthread_mutex_unlock(&p->m), 0);
    for (int i = 0; i < 3; i++)
        join_thread(ts[i]);
}

#define PER_PROD 1500

static void *pair_producer(void *arg)
{
    struct pair *p = arg;
    for (long i = 1; i <= PER_PROD; i++) {
        CHECK_EQ(pthread_mutex_lock(&p->m), 0);
        while (p->qlen >= 4) {
            struct timespec d = deadline_after_ms(CLOCK_REALTIME, 5);
            int r = pthread_cond_timedwait(&p->c, &p->m, &d);
            if (r && r != ETIMEDOUT)
                CHECK_EQ(r, 0);
        }
        p->qlen++;
        p->sum += i;
        CHECK_EQ(pthread_cond_broadcast(&p->c), 0);
        CHECK_EQ(pthread_mutex_unlock(&p->m), 0);
    }
    CHECK_EQ(pthread_mutex_lock(&p->m), 0);
    p->producers_left--;
    CHECK_EQ(pthread_cond_broadcast(&p->c), 0);
    CHECK_EQ(pthread_mutex_unlock(&p->m), 0);
    return NULL;
}

static void *pair_consumer(void *arg)
{
    struct pair *p = arg;
    CHECK_EQ(pthread_mutex_lock(&p->m), 0);
    for (;;) {
        while (p->qlen == 0 && p->producers_left > 0) {
            int r = pthread_cond_wait(&p->c, &p->m);
            if (r)
                CHECK_EQ(r, 0);
        }
        if (p->qlen == 0)
            break;
        p->qlen--;
        p->consumed_n++;
        CHECK_EQ(pthread_cond_signal(&p->c), 0);
    }
    CHECK_EQ(pthread_mutex_unlock(&p->m), 0);
    return NULL;
}

static void producer_consumer(struct pair *p)
{
    p->qlen = 0;
    p->consumed_n = p->sum = 0;
    p->producers_left = 2;
    pthread_t t[4];
    for (int i = 0; i < 2; i++)
        t[i] = start_thread(pair_consumer, p);
    for (int i = 2; i < 4; i++)
        t[i] = start_thread(pair_producer, p);
    for (int i = 0; i < 4; i++)
        join_thread(t[i]);
    CHECK_EQ(p->consumed_n, 2L * PER_PROD);
    CHECK_EQ(p->sum, 2L * PER_PROD * (PER_PROD + 1) / 2);
}

static void not_owner(struct pair *p)
{
    struct timespec d = deadline_after_ms(CLOCK_REALTIME, 2000);
    int64_t start = now_ns(CLOCK_MONOTONIC);
    CHECK_EQ(pthread_cond_timedwait(&p->c, &p->m, &d), EPERM);
    CHECK(now_ns(CLOCK_MONOTONIC) - start < 1000000000);
    CHECK_EQ(pthread_mutex_trylock(&p->m), 0);
    CHECK_EQ(pthread_mutex_unlock(&p->m), 0);
}

static void destroy_while_waiting(struct pair *p)
{
    p->ready = 0;
    atomic_store(&p->waiting, 0);
    pthread_t t = start_thread(pair_waiter, p);
    WAIT_UNTIL(atomic_load(&p->waiting) == 1, 10000);
    CHECK_EQ(pthread_mutex_lock(&p->m), 0); // the waiter is in its wait
    CHECK_EQ(pthread_mutex_unlock(&p->m), 0);
    int r = pthread_mutex_destroy(&p->m);
    CHECK_EQ(r, EBUSY);
    if (r == 0) // keep the waiter's relock working
        init_mutex(&p->m, p->flavour);
    CHECK_EQ(pthread_mutex_lock(&p->m), 0);
    p->ready = 1;
    CHECK_EQ(pthread_cond_signal(&p->c), 0);
    CHECK_EQ(pthread_mutex_unlock(&p->m), 0);
    join_thread(t);
}

// A recursive mutex locked twice stays locked during the wait.
struct probe {
    pthread_mutex_t *m;
    int result;
};

static void *probe_thread(void *arg)
{
    struct probe *pr = arg;
    sleep_ms(20);
    pr->result = pthread_mutex_trylock(pr->m);
    if (pr->result == 0)
        CHECK_EQ(pthread_mutex_unlock(pr->m), 0);
    return NULL;
}

static void recursive_depth(struct pair *p)
{
    CHECK_EQ(pthread_mutex_lock(&p->m), 0);
    CHECK_EQ(pthread_mutex_lock(&p->m), 0);
    struct probe pr = { &p->m, -1 };
    pthread_t t = start_thread(probe_thread, &pr);
    struct timespec d = deadline_after_ms(CLOCK_REALTIME, 100);
    CHECK_EQ(pthread_cond_timedwait(&p->c, &p->m, &d), ETIMEDOUT);
    join_thread(t);
    CHECK_EQ(pr.result, EBUSY);
    CHECK_EQ(p->m.__data.__count, 2);
    CHECK_EQ(pthread_mutex_unlock(&p->m), 0);
    CHECK_EQ(pthread_mutex_unlock(&p->m), 0);
}

static void run_pair(bool pshared_cond, enum mutex_flavour f)
{
    static char context[96];
    snprintf(context, sizeof context, "%s cond, %s mutex",
             pshared_cond ? "pshared" : "private", flavour_names[f]);
    check_context = context;
    static struct pair p;
    memset(&p, 0, sizeof p);
    p.flavour = f;
    init_cond(&p.c, pshared_cond);
    init_mutex(&p.m, f);
    timeouts(&p);
    wakeups(&p);
    producer_consumer(&p);
    if (f == M_ERRORCHECK || f == M_RECURSIVE || f == M_ROBUST ||
        f == M_ROBUST_ERRORCHECK)
        not_owner(&p);
    if (f == M_RECURSIVE)
        recursive_depth(&p);
    // glibc's destroy ignores __nusers for robust mutexes (it would succeed).
    if (f != M_ROBUST && f != M_ROBUST_ERRORCHECK)
        destroy_while_waiting(&p);
    CHECK_EQ(pthread_cond_destroy(&p.c), 0);
    CHECK_EQ(pthread_mutex_destroy(&p.m), 0);
}

/* Robust mutex whose owner died. */

static pthread_mutex_t rm;
static pthread_cond_t rc = PTHREAD_COND_INITIALIZER;
static int r_ready;
static atomic_int r_waiting;
static int r_wait_result = -1;

static void *dying_owner(void *arg)
{
    bool signal = arg != NULL;
    CHECK_EQ(pthread_mutex_lock(&rm), 0);
    if (signal) {
        r_ready = 1;
        CHECK_EQ(pthread_cond_signal(&rc), 0);
    }
    return NULL; // exits holding rm
}

static void *robust_waiter(void *arg)
{
    (void)arg;
    CHECK_EQ(pthread_mutex_lock(&rm), 0);
    atomic_store(&r_waiting, 1);
    int r = 0;
    while (!r_ready && r == 0)
        r = pthread_cond_wait(&rc, &rm);
    r_wait_result = r;
    if (r == EOWNERDEAD)
        CHECK_EQ(pthread_mutex_consistent(&rm), 0);
    CHECK_EQ(rm.__data.__owner, gettid());
    CHECK_EQ(pthread_mutex_unlock(&rm), 0);
    return NULL;
}

static void owner_died(void)
{
    check_context = "robust owner died";
    init_mutex(&rm, M_ROBUST);
    // In a cond wait: the waiter is woken, then finds the owner dead.
    pthread_t w = start_thread(robust_waiter, NULL);
    WAIT_UNTIL(atomic_load(&r_waiting) == 1, 10000);
    CHECK_EQ(pthread_mutex_lock(&rm), 0);
    CHECK_EQ(pthread_mutex_unlock(&rm), 0);
    join_thread(start_thread(dying_owner, (void *)1));
    join_thread(w);
    CHECK_EQ(r_wait_result, EOWNERDEAD);

    // In lock, recovered.
    join_thread(start_thread(dying_owner, NULL));
    CHECK_EQ(pthread_mutex_lock(&rm), EOWNERDEAD);
    CHECK_EQ(pthread_mutex_consistent(&rm), 0);
    CHECK_EQ(pthread_mutex_unlock(&rm), 0);
    CHECK_EQ(pthread_mutex_lock(&rm), 0);
    CHECK_EQ(pthread_mutex_unlock(&rm), 0);
    // Through trylock and timedlock, not recovered: unrecoverable.
    join_thread(start_thread(dying_owner, NULL));
    CHECK_EQ(pthread_mutex_trylock(&rm), EOWNERDEAD);
    CHECK_EQ(pthread_mutex_unlock(&rm), 0);
    struct timespec d = deadline_after_ms(CLOCK_REALTIME, 20);
    CHECK_EQ(pthread_mutex_timedlock(&rm, &d), ENOTRECOVERABLE);
    CHECK_EQ(pthread_mutex_lock(&rm), ENOTRECOVERABLE);
    CHECK_EQ(pthread_mutex_destroy(&rm), 0);
    // consistent on a mutex parklock runs: glibc says EINVAL.
    pthread_mutex_t plain = PTHREAD_MUTEX_INITIALIZER;
    CHECK_EQ(pthread_mutex_lock(&plain), 0);
    CHECK_EQ(pthread_mutex_consistent(&plain), EINVAL);
    CHECK_EQ(pthread_mutex_unlock(&plain), 0);
}

/* Process-shared objects in shared memory, across fork. */

struct shared {
    pthread_mutex_t m;
    pthread_cond_t c;
    pthread_mutex_t robust;
    int turn;
    long count;
};

static int shared_child(struct shared *s)
{
    atomic_store(&check_failures, 0);
    for (int i = 0; i < 200; i++) {
        CHECK_EQ(pthread_mutex_lock(&s->m), 0);
        while (s->turn % 2 != 1)
            CHECK_EQ(pthread_cond_wait(&s->c, &s->m), 0);
        s->turn++;
        s->count++;
        CHECK_EQ(pthread_cond_broadcast(&s->c), 0);
        CHECK_EQ(pthread_mutex_unlock(&s->m), 0);
    }
    CHECK_EQ(pthread_mutex_lock(&s->m), 0);
    struct timespec d = deadline_after_ms(CLOCK_REALTIME, 20);
    CHECK_EQ(pthread_cond_timedwait(&s->c, &s->m, &d), ETIMEDOUT);
    CHECK(reached(CLOCK_REALTIME, &d));
    CHECK_EQ(pthread_mutex_unlock(&s->m), 0);
    CHECK_EQ(pthread_mutex_lock(&s->robust), 0);
    return check_finish(); // exits holding s->robust
}

static void shared_memory(void)
{
    check_context = "shared memory";
    struct shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(s != MAP_FAILED);
    if (s == MAP_FAILED)
        return;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    CHECK_EQ(pthread_mutex_init(&s->m, &a), 0);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    CHECK_EQ(pthread_mutex_init(&s->robust, &a), 0);
    pthread_mutexattr_destroy(&a);
    init_cond(&s->c, true);

    pid_t pid = fork();
    if (pid == 0)
        _exit(shared_child(s));
    CHECK(pid > 0);
    for (int i = 0; i < 200; i++) {
        CHECK_EQ(pthread_mutex_lock(&s->m), 0);
        while (s->turn % 2 != 0) {
            struct timespec d = deadline_after_ms(CLOCK_REALTIME, 20000);
            int r = pthread_cond_timedwait(&s->c, &s->m, &d);
            if (r) {
                CHECK_EQ(r, 0);
                break;
            }
        }
        s->turn++;
        s->count++;
        CHECK_EQ(pthread_cond_broadcast(&s->c), 0);
        CHECK_EQ(pthread_mutex_unlock(&s->m), 0);
    }
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK_EQ(s->count, 400);
    CHECK_EQ(pthread_mutex_lock(&s->robust), EOWNERDEAD); // the child died holding it
    CHECK_EQ(pthread_mutex_consistent(&s->robust), 0);
    CHECK_EQ(pthread_mutex_unlock(&s->robust), 0);
    CHECK_EQ(pthread_cond_destroy(&s->c), 0);
    CHECK_EQ(pthread_mutex_destroy(&s->m), 0);
    CHECK_EQ(pthread_mutex_destroy(&s->robust), 0);
    munmap(s, sizeof *s);
}

int main(void)
{
    run_pair(true, M_NORMAL);
    run_pair(true, M_ERRORCHECK);
    run_pair(true, M_RECURSIVE);
    run_pair(true, M_PSHARED);
    run_pair(false, M_ROBUST);
    run_pair(false, M_ROBUST_ERRORCHECK);
    run_pair(false, M_PSHARED);
    run_pair(false, M_PI);
    owner_died();
    shared_memory();
    return check_finish();
}
