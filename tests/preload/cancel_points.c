// Mutex lock and unlock are not cancellation points (POSIX, glibc), and must
// not become ones through what parklock does inside them -- here, sending a
// signal postponed out of a parking-lot section back to the thread (it once
// used glibc's sigtimedwait, a cancellation point: a reviewer's program had
// the worker cancelled inside pthread_mutex_unlock in 3 runs of 3).
//
// A worker locks and unlocks a mutex that three other threads contend for,
// while a fifth thread sends it SIGUSR1 (a handler with SA_RESTART) as fast
// as it can; the main thread cancels the worker (deferred) meanwhile. The
// worker's loop has no cancellation point, so it must finish normally.
#include <signal.h>

#include "check.h"

#define WORKER_ROUNDS 2000000L

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static atomic_long hits;
static atomic_int stop;
static pthread_t worker_thread;

static void on_usr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&hits, 1);
}

static void *worker(void *arg)
{
    (void)arg;
    for (long i = 0; i < WORKER_ROUNDS; i++) {
        CHECK_EQ(pthread_mutex_lock(&m), 0);
        CHECK_EQ(pthread_mutex_unlock(&m), 0);
    }
    return (void *)1;
}

static void *contender(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        pthread_mutex_lock(&m);
        pthread_mutex_unlock(&m);
    }
    return NULL;
}

static void *signaller(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop))
        pthread_kill(worker_thread, SIGUSR1);
    return NULL;
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    CHECK_EQ(sigaction(SIGUSR1, &sa, NULL), 0);

    pthread_t others[3], sender;
    for (int i = 0; i < 3; i++)
        CHECK_EQ(pthread_create(&others[i], NULL, contender, NULL), 0);
    CHECK_EQ(pthread_create(&worker_thread, NULL, worker, NULL), 0);
    CHECK_EQ(pthread_create(&sender, NULL, signaller, NULL), 0);
    struct timespec pause = { 0, 100 * 1000 * 1000 };
    nanosleep(&pause, NULL);
    CHECK_EQ(pthread_cancel(worker_thread), 0);
    void *result = NULL;
    CHECK_EQ(pthread_join(worker_thread, &result), 0);
    atomic_store(&stop, 1);
    CHECK_EQ(pthread_join(sender, NULL), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(pthread_join(others[i], NULL), 0);
    check_context = "worker cancelled inside mutex lock/unlock";
    CHECK(result == (void *)1);
    CHECK(atomic_load(&hits) > 0);
    return check_finish();
}
