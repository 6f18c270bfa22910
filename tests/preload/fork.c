// fork() from a multithreaded process whose other threads keep hammering
// mutexes and condition variables (some of them parked at the moment of the
// fork). In the child:
//   - the mutex the forking thread held is unlocked and used normally, and
//     its cond (on which parent threads were waiting) signals, broadcasts and
//     times out as if new;
//   - every hammered mutex that was free at the fork locks, unlocks and
//     times out normally (one held by a vanished thread stays EBUSY, as in
//     glibc);
//   - new threads contend on those objects with exact totals;
// and it exits 0. Repeated a few dozen times. Also _Fork(), which runs no
// atfork handlers: the child's mutex calls must still know its new tid.
#include <sys/wait.h>

#include "check.h"

#define N_FORKS 30

// Hammered by parent threads.
static pthread_mutex_t hm[4] = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP,
    PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP, PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP,
};
static long hm_count[4];
// The forking thread takes fm around fork(); parent threads lock it and wait
// on fc with it, so both have parked threads at the fork.
static pthread_mutex_t fm = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fc = PTHREAD_COND_INITIALIZER;
static long f_count;
static atomic_int stop;

static void *hammer(void *arg)
{
    long id = (long)arg;
    for (long i = 0; !atomic_load(&stop); i++) {
        pthread_mutex_t *m = &hm[(i + id) & 3];
        CHECK_EQ(pthread_mutex_lock(m), 0);
        hm_count[(i + id) & 3]++;
        CHECK_EQ(pthread_mutex_unlock(m), 0);
        if (i % 64 == 0) {
            CHECK_EQ(pthread_mutex_lock(&fm), 0);
            f_count++;
            if (f_count & 1) {
                CHECK_EQ(pthread_cond_broadcast(&fc), 0);
            } else {
                struct timespec d = deadline_after_ms(CLOCK_REALTIME, 1);
                int r = pthread_cond_timedwait(&fc, &fm, &d);
                if (r && r != ETIMEDOUT)
                    CHECK_EQ(r, 0);
            }
            CHECK_EQ(pthread_mutex_unlock(&fm), 0);
        }
    }
    return NULL;
}

// Parent threads parked on fc (with fm) at every fork.
static void *sleeper(void *arg)
{
    (void)arg;
    CHECK_EQ(pthread_mutex_lock(&fm), 0);
    while (!atomic_load(&stop)) {
        struct timespec d = deadline_after_ms(CLOCK_MONOTONIC, 50);
        int r = pthread_cond_clockwait(&fc, &fm, CLOCK_MONOTONIC, &d);
        if (r && r != ETIMEDOUT)
            CHECK_EQ(r, 0);
    }
    CHECK_EQ(pthread_mutex_unlock(&fm), 0);
    return NULL;
}

/* The child. */

static long child_count;
static int child_turn;
static pthread_cond_t child_cond = PTHREAD_COND_INITIALIZER; // unused by the parent

static void *child_contender(void *arg)
{
    long id = (long)arg;
    for (int i = 0; i < 2000; i++) {
        pthread_mutex_t *m = &hm[(i + id) & 3];
        int r = pthread_mutex_trylock(m);
        if (r == 0) // a mutex that was free at the fork
            CHECK_EQ(pthread_mutex_unlock(m), 0);
        CHECK_EQ(pthread_mutex_lock(&fm), 0);
        child_count++;
        CHECK_EQ(pthread_mutex_unlock(&fm), 0);
    }
    // Ping-pong on fc: turns alternate between the two contenders.
    for (int i = 0; i < 100; i++) {
        CHECK_EQ(pthread_mutex_lock(&fm), 0);
        while (child_turn % 2 != id % 2) {
            int r = pthread_cond_wait(&child_cond, &fm);
            if (r)
                CHECK_EQ(r, 0);
        }
        child_turn++;
        CHECK_EQ(pthread_cond_broadcast(&child_cond), 0);
        CHECK_EQ(pthread_mutex_unlock(&fm), 0);
    }
    return NULL;
}

static int child(void)
{
    atomic_store(&check_failures, 0); // count the child's own
    // fm is held by us (the forking thread's copy); parent threads that were
    // parked on it do not exist here.
    CHECK_EQ(pthread_cond_signal(&child_cond), 0);
    CHECK_EQ(pthread_cond_broadcast(&child_cond), 0);
    struct timespec d = deadline_after_ms(CLOCK_REALTIME, 5);
    CHECK_EQ(pthread_cond_timedwait(&child_cond, &fm, &d), ETIMEDOUT);
    CHECK(reached(CLOCK_REALTIME, &d));
    CHECK_EQ(pthread_mutex_unlock(&fm), 0);
    CHECK_EQ(pthread_mutex_lock(&fm), 0);
    CHECK_EQ(fm.__data.__owner, gettid());
    CHECK_EQ(pthread_mutex_unlock(&fm), 0);

    for (int i = 0; i < 4; i++) {
        int r = pthread_mutex_trylock(&hm[i]);
        if (r == EBUSY)
            continue; // held by a thread that did not survive the fork
        CHECK_EQ(r, 0);
        CHECK_EQ(hm[i].__data.__owner, gettid());
        CHECK_EQ(pthread_mutex_unlock(&hm[i]), 0);
        CHECK_EQ(pthread_mutex_lock(&hm[i]), 0);
        if (i == 2)
            CHECK_EQ(pthread_mutex_lock(&hm[i]), EDEADLK);
        CHECK_EQ(pthread_mutex_unlock(&hm[i]), 0);
        d = deadline_after_ms(CLOCK_MONOTONIC, 5);
        CHECK_EQ(pthread_mutex_clocklock(&hm[i], CLOCK_MONOTONIC, &d), 0);
        CHECK_EQ(pthread_mutex_unlock(&hm[i]), 0);
        if (i == 1 || i == 2) // checked types: no longer ours
            CHECK_EQ(pthread_mutex_unlock(&hm[i]), EPERM);
    }

    pthread_t t[2];
    for (long i = 0; i < 2; i++)
        t[i] = start_thread(child_contender, (void *)i);
    for (int i = 0; i < 2; i++)
        join_thread(t[i]);
    CHECK_EQ(child_count, 4000);
    CHECK_EQ(child_turn, 200);
    return check_finish();
}

/* _Fork: no atfork handlers run, yet the child is a new thread with a new
 * tid. glibc's mutexes use the new tid at once (THREAD_SELF->tid is set by
 * the kernel). Done while the parent is still single-threaded. */

static void underscore_fork(void)
{
    check_context = "_Fork";
    pthread_mutex_t e = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
    pthread_mutex_t r = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
    CHECK_EQ(pthread_mutex_lock(&e), 0);
    CHECK_EQ(pthread_mutex_lock(&r), 0);
    CHECK_EQ(e.__data.__owner, gettid());
    pid_t pid = _Fork();
    if (pid == 0) {
        atomic_store(&check_failures, 0);
        // Held by the parent's thread, not by this one.
        CHECK_EQ(pthread_mutex_unlock(&e), EPERM);
        CHECK_EQ(pthread_mutex_unlock(&r), EPERM);
        CHECK_EQ(pthread_mutex_trylock(&r), EBUSY);
        CHECK_EQ(pthread_mutex_trylock(&e), EBUSY);
        struct timespec d = deadline_after_ms(CLOCK_MONOTONIC, 20);
        CHECK_EQ(pthread_mutex_clocklock(&e, CLOCK_MONOTONIC, &d), ETIMEDOUT);
        // A fresh mutex records the child's tid.
        pthread_mutex_t f = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
        CHECK_EQ(pthread_mutex_lock(&f), 0);
        CHECK_EQ(f.__data.__owner, gettid());
        CHECK_EQ(pthread_mutex_lock(&f), EDEADLK);
        CHECK_EQ(pthread_mutex_unlock(&f), 0);
        fflush(stderr);
        _exit(check_finish());
    }
    CHECK(pid > 0);
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK_EQ(pthread_mutex_unlock(&e), 0);
    CHECK_EQ(pthread_mutex_unlock(&r), 0);
    check_context = NULL;
}

int main(void)
{
    underscore_fork();
    pthread_t t[5];
    for (long i = 0; i < 3; i++)
        t[i] = start_thread(hammer, (void *)i);
    for (int i = 3; i < 5; i++)
        t[i] = start_thread(sleeper, NULL);

    for (int n = 0; n < N_FORKS; n++) {
        sleep_ms(2);
        CHECK_EQ(pthread_mutex_lock(&fm), 0);
        // Give parent threads a moment to park on fm, so that the child
        // inherits a contended lock word with no waiter behind it.
        WAIT_UNTIL(fm.__data.__lock >= 2, 50);
        pid_t pid = fork();
        if (pid == 0) {
            fflush(stderr);
            _exit(child());
        }
        CHECK_EQ(pthread_mutex_unlock(&fm), 0);
        CHECK(pid > 0);
        if (pid < 0)
            break;
        int status = 0;
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status));
        if (WIFSIGNALED(status))
            fprintf(stderr, "child %d: killed by signal %d\n", n, WTERMSIG(status));
        CHECK_EQ(WEXITSTATUS(status), 0);
    }
    atomic_store(&stop, 1);
    CHECK_EQ(pthread_mutex_lock(&fm), 0);
    CHECK_EQ(pthread_cond_broadcast(&fc), 0);
    CHECK_EQ(pthread_mutex_unlock(&fm), 0);
    for (int i = 0; i < 5; i++)
        join_thread(t[i]);
    // The parent's objects survived the forks intact.
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(pthread_mutex_trylock(&hm[i]), 0);
        CHECK_EQ(pthread_mutex_unlock(&hm[i]), 0);
    }
    return check_finish();
}
