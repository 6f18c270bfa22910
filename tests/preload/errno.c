// No mutex, cond, mtx or cnd call changes errno: neither on success nor when
// it returns an error code, and not on the contended paths (sleeping, being
// woken, timing out, being interrupted by a signal).
#include <signal.h>
#include <threads.h>

#include "check.h"

#define MAGIC 1234

// Evaluates `call` with errno set to MAGIC, checks its result and that errno
// is untouched.
#define CHECK_KEEPS_ERRNO(call, expected)                                      \
    do {                                                                       \
        errno = MAGIC;                                                         \
        long keeps_r_ = (long)(call);                                          \
        int keeps_e_ = errno;                                                  \
        CHECK_EQ(keeps_r_, expected);                                          \
        if (keeps_e_ != MAGIC)                                                 \
            check_fail(__FILE__, __LINE__, "errno after " #call, keeps_e_,     \
                       MAGIC);                                                 \
    } while (0)

static void on_usr1(int sig)
{
    (void)sig;
    int saved = errno; // a well-behaved handler whose syscall fails
    if (write(-1, "", 0) == 0)
        saved = 0;
    errno = saved;
}

static void single_thread(void)
{
    check_context = "single thread";
    pthread_mutex_t m, e, r;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    CHECK_KEEPS_ERRNO(pthread_mutex_init(&m, NULL), 0);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    CHECK_KEEPS_ERRNO(pthread_mutex_init(&e, &a), 0);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    CHECK_KEEPS_ERRNO(pthread_mutex_init(&r, &a), 0);

    struct timespec d = deadline_after_ms(CLOCK_REALTIME, 10);
    struct timespec bad = { 0, -1 };
    CHECK_KEEPS_ERRNO(pthread_mutex_lock(&m), 0);
    CHECK_KEEPS_ERRNO(pthread_mutex_trylock(&m), EBUSY);
    CHECK_KEEPS_ERRNO(pthread_mutex_timedlock(&m, &d), ETIMEDOUT);
    CHECK_KEEPS_ERRNO(pthread_mutex_timedlock(&m, &bad), EINVAL);
    CHECK_KEEPS_ERRNO(pthread_mutex_clocklock(&m, 12345, &d), EINVAL);
    CHECK_KEEPS_ERRNO(pthread_mutex_destroy(&m), EBUSY);
    CHECK_KEEPS_ERRNO(pthread_mutex_unlock(&m), 0);
    CHECK_KEEPS_ERRNO(pthread_mutex_lock(&e), 0);
    CHECK_KEEPS_ERRNO(pthread_mutex_lock(&e), EDEADLK);
    CHECK_KEEPS_ERRNO(pthread_mutex_unlock(&e), 0);
    CHECK_KEEPS_ERRNO(pthread_mutex_unlock(&e), EPERM);
    CHECK_KEEPS_ERRNO(pthread_mutex_lock(&r), 0);
    CHECK_KEEPS_ERRNO(pthread_mutex_lock(&r), 0);
    r.__data.__count = UINT32_MAX;
    CHECK_KEEPS_ERRNO(pthread_mutex_lock(&r), EAGAIN);
    r.__data.__count = 1;
    CHECK_KEEPS_ERRNO(pthread_mutex_unlock(&r), 0);
    CHECK_KEEPS_ERRNO(pthread_mutex_unlock(&r), EPERM);

    pthread_cond_t c, mono;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    CHECK_KEEPS_ERRNO(pthread_cond_init(&c, NULL), 0);
    CHECK_KEEPS_ERRNO(pthread_cond_init(&mono, &ca), 0);
    CHECK_KEEPS_ERRNO(pthread_cond_signal(&c), 0);
    CHECK_KEEPS_ERRNO(pthread_cond_broadcast(&c), 0);
    CHECK_KEEPS_ERRNO(pthread_mutex_lock(&m), 0);
    d = deadline_after_ms(CLOCK_REALTIME, 10);
    CHECK_KEEPS_ERRNO(pthread_cond_timedwait(&c, &m, &d), ETIMEDOUT);
    d = deadline_after_ms(CLOCK_MONOTONIC, 10);
    CHECK_KEEPS_ERRNO(pthread_cond_timedwait(&mono, &m, &d), ETIMEDOUT);
    CHECK_KEEPS_ERRNO(pthread_cond_clockwait(&c, &m, CLOCK_MONOTONIC, &d), ETIMEDOUT);
    CHECK_KEEPS_ERRNO(pthread_cond_clockwait(&c, &m, 12345, &d), EINVAL);
    CHECK_KEEPS_ERRNO(pthread_cond_timedwait(&c, &m, &bad), EINVAL);
    CHECK_KEEPS_ERRNO(pthread_mutex_unlock(&m), 0);
    CHECK_KEEPS_ERRNO(pthread_cond_timedwait(&c, &e, &d), EPERM);
    CHECK_KEEPS_ERRNO(pthread_cond_destroy(&c), 0);
    CHECK_KEEPS_ERRNO(pthread_cond_destroy(&mono), 0);

    CHECK_KEEPS_ERRNO(pthread_mutex_destroy(&m), 0);
    CHECK_KEEPS_ERRNO(pthread_mutex_lock(&m), EINVAL);
    CHECK_KEEPS_ERRNO(pthread_mutex_destroy(&e), 0);
    CHECK_KEEPS_ERRNO(pthread_mutex_destroy(&r), 0);

    // C11.
    mtx_t x;
    cnd_t y;
    CHECK_KEEPS_ERRNO(mtx_init(&x, mtx_timed), thrd_success);
    CHECK_KEEPS_ERRNO(cnd_init(&y), thrd_success);
    CHECK_KEEPS_ERRNO(mtx_lock(&x), thrd_success);
    CHECK_KEEPS_ERRNO(mtx_trylock(&x), thrd_busy);
    d = deadline_after_ms(CLOCK_REALTIME, 10);
    CHECK_KEEPS_ERRNO(mtx_timedlock(&x, &d), thrd_timedout);
    d = deadline_after_ms(CLOCK_REALTIME, 10);
    CHECK_KEEPS_ERRNO(cnd_timedwait(&y, &x, &d), thrd_timedout);
    CHECK_KEEPS_ERRNO(cnd_signal(&y), thrd_success);
    CHECK_KEEPS_ERRNO(cnd_broadcast(&y), thrd_success);
    CHECK_KEEPS_ERRNO(mtx_unlock(&x), thrd_success);
    errno = MAGIC;
    cnd_destroy(&y);
    mtx_destroy(&x);
    CHECK_EQ(errno, MAGIC);
}

/* Contended: every thread keeps its own errno value across its calls. */

static pthread_mutex_t cm = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t cr = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static pthread_cond_t cc = PTHREAD_COND_INITIALIZER;
static pthread_cond_t shared_cond; // process-shared, with the private cm
static long shared_counter;
static int turn;

static void keep(int mine, int line)
{
    if (errno != mine) {
        check_fail(__FILE__, line, "errno kept by a contended call", errno, mine);
        errno = mine;
    }
}

static void *contender(void *arg)
{
    long id = (long)arg;
    int mine = MAGIC + (int)id;
    errno = mine;
    for (int i = 0; i < 3000; i++) {
        pthread_mutex_lock(&cm);
        keep(mine, __LINE__);
        shared_counter++;
        if (i % 50 == 0) {
            // Hand the turn around: waits and wake-ups on both conds.
            pthread_cond_t *c = (i / 50) % 2 ? &cc : &shared_cond;
            turn = (int)id;
            pthread_cond_broadcast(c);
            keep(mine, __LINE__);
            struct timespec d = deadline_after_ms(CLOCK_REALTIME, 1);
            pthread_cond_timedwait(c, &cm, &d);
            keep(mine, __LINE__);
        }
        pthread_mutex_unlock(&cm);
        keep(mine, __LINE__);
        pthread_mutex_lock(&cr);
        pthread_mutex_lock(&cr);
        keep(mine, __LINE__);
        pthread_mutex_unlock(&cr);
        pthread_mutex_unlock(&cr);
        keep(mine, __LINE__);
        if (pthread_mutex_trylock(&cm) == 0)
            pthread_mutex_unlock(&cm);
        keep(mine, __LINE__);
    }
    return NULL;
}

// Blocked in lock and in a cond wait while signals arrive.
static atomic_int blocked_tid;
static void *blocked(void *arg)
{
    int how = (int)(long)arg;
    errno = MAGIC;
    atomic_store(&blocked_tid, gettid());
    pthread_mutex_lock(&cm);
    keep(MAGIC, __LINE__);
    if (how == 1) {
        struct timespec d = deadline_after_ms(CLOCK_MONOTONIC, 100);
        while (pthread_cond_clockwait(&cc, &cm, CLOCK_MONOTONIC, &d) == 0) {
        }
        keep(MAGIC, __LINE__);
    }
    pthread_mutex_unlock(&cm);
    keep(MAGIC, __LINE__);
    return NULL;
}

static void contended(void)
{
    check_context = "contended";
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    CHECK_EQ(pthread_cond_init(&shared_cond, &a), 0);
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        t[i] = start_thread(contender, (void *)i);
    for (int i = 0; i < 4; i++)
        join_thread(t[i]);
    CHECK_EQ(shared_counter, 4 * 3000);

    check_context = "signals";
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    for (long how = 0; how < 2; how++) {
        atomic_store(&blocked_tid, 0);
        if (how == 0)
            pthread_mutex_lock(&cm);
        pthread_t b = start_thread(blocked, (void *)how);
        pid_t tid = wait_tid(&blocked_tid);
        wait_blocked(tid);
        for (int i = 0; i < 50; i++) {
            pthread_kill(b, SIGUSR1);
            sleep_ms(1);
        }
        if (how == 0)
            pthread_mutex_unlock(&cm);
        join_thread(b);
    }
    CHECK_EQ(pthread_cond_destroy(&shared_cond), 0);
}

int main(void)
{
    single_thread();
    contended();
    return check_finish();
}
