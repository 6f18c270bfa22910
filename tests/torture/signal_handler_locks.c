// Signal handlers that lock mutexes (regression).
//
// Worker threads lock and unlock "main" mutexes under contention while a
// signal storm hits them; the handler locks and unlocks "handler" mutexes
// that only handlers ever take (contended among the handlers of different
// threads). pthread_mutex_lock is not async-signal-safe in POSIX, but glibc
// tolerates it as long as the handler never needs a lock its interrupted
// thread holds, and real programs rely on that. With glibc this program
// never deadlocks: no thread ever holds a handler mutex outside a handler.
//
// parklock (before a fix) deadlocks: its slow paths hold a parking-lot bucket
// lock (a word lock that is not reentrant) for a few dozen instructions. A
// signal landing there runs a handler whose lock or unlock needs the same
// bucket -- different mutexes share buckets -- and the thread waits for
// itself forever; the others pile up behind it. To make the collision likely
// rather than a 1-in-64 chance, the handler mutexes are picked (from a large
// array) to hash to the same bucket as the main ones under parklock's
// Fibonacci hash, for every table size up to 1024 buckets. On glibc the
// choice means nothing.
//
// Checked: no hang (the watchdog reports one), exact counters.
#include "torture.h"

#define POOL 16384
#define N_MAIN 4
#define N_HANDLER 2
#define N_WORKERS 4

static pthread_mutex_t pool[POOL];
static pthread_mutex_t *main_m[N_MAIN], *handler_m[N_HANDLER];
static long main_count[N_MAIN], handler_count[N_HANDLER];
static atomic_long main_expected[N_MAIN], handler_expected[N_HANDLER];
static atomic_int stop;

static void pick_colliding(void)
{
    pthread_mutex_t *m[N_MAIN + N_HANDLER];
    unsigned bits;
    pick_one_bucket(pool, m, N_MAIN + N_HANDLER, NULL, NULL, 0, POOL, &bits);
    for (int i = 0; i < N_MAIN; i++)
        main_m[i] = m[i];
    for (int i = 0; i < N_HANDLER; i++)
        handler_m[i] = m[N_MAIN + i];
}

static _Thread_local unsigned handler_rounds;

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    int k = (int)(handler_rounds++ % N_HANDLER);
    CHECK_EQ(pthread_mutex_lock(handler_m[k]), 0);
    handler_count[k]++;
    for (volatile int i = 0; i < 2000; i++) {
    }
    CHECK_EQ(pthread_mutex_unlock(handler_m[k]), 0);
    atomic_fetch_add(&handler_expected[k], 1);
    tick();
    errno = saved;
}

static void *worker(void *arg)
{
    long id = (long)arg;
    for (long i = 0; !atomic_load(&stop); i++) {
        int k = (int)((i + id) % N_MAIN);
        CHECK_EQ(pthread_mutex_lock(main_m[k]), 0);
        main_count[k]++;
        CHECK_EQ(pthread_mutex_unlock(main_m[k]), 0);
        atomic_fetch_add(&main_expected[k], 1);
        tick();
    }
    return NULL;
}

int main(void)
{
    torture_init("signal_handler_locks");
    for (int i = 0; i < POOL; i++)
        CHECK_EQ(pthread_mutex_init(&pool[i], NULL), 0);
    pick_colliding();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);

    pthread_t t[N_WORKERS];
    for (long i = 0; i < N_WORKERS; i++)
        t[i] = start_thread(worker, (void *)i);
    struct phase p = phase_start("handlers lock mutexes", torture_seconds(4));
    long sent = 0;
    while (phase_time_left(&p)) {
        for (int i = 0; i < N_WORKERS; i++, sent++)
            pthread_kill(t[i], SIGUSR1);
        struct timespec ts = { 0, 50000 };
        nanosleep(&ts, NULL);
        progress(&p, "%ld signals sent", sent);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < N_WORKERS; i++)
        join_thread(t[i]);
    long total_main = 0, total_handler = 0;
    for (int k = 0; k < N_MAIN; k++) {
        CHECK_EQ(main_count[k], atomic_load(&main_expected[k]));
        total_main += main_count[k];
    }
    for (int k = 0; k < N_HANDLER; k++) {
        CHECK_EQ(handler_count[k], atomic_load(&handler_expected[k]));
        total_handler += handler_count[k];
    }
    summary("%ld signals sent; %ld main and %ld handler critical sections", sent,
            total_main, total_handler);
    return check_finish();
}
