// Oversubscription: 64, then 256 threads on a machine with a couple of
// cores, mixing mutex and cond traffic in rounds separated by a barrier
// (mutex + cond + broadcast). Per round every thread does a few lock/unlock
// pairs on shared mutexes of all four types, and either produces or consumes
// one item through a bounded queue (signal, broadcast, untimed and short
// timed waits on both clocks). Equal numbers of producers and consumers per
// round mean nobody can be left waiting.
//
// Checked: exact counters, produced == consumed == rounds x threads / 2,
// every barrier generation seen by every thread; nothing hangs.
#include "torture.h"

#define N_MUTEX 8
#define LOCKS_PER_ROUND 10
#define QUEUE_CAP 4
#define MIN_ROUNDS 5

static pthread_mutex_t mx[N_MUTEX];
static long mx_count[N_MUTEX];

static pthread_mutex_t qm = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_not_empty, q_not_full; // not_full: monotonic attribute
static int qlen;
static long produced, consumed, timeouts;

static pthread_mutex_t bm = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
static pthread_cond_t bc = PTHREAD_COND_INITIALIZER;
static int b_count, b_gen, n_threads;
static bool b_finish;
static atomic_int stop;
static atomic_long rounds_seen;

// Returns whether the run is over (decided by the last thread to arrive).
static bool barrier(void)
{
    CHECK_EQ(pthread_mutex_lock(&bm), 0);
    int gen = b_gen;
    bool finish;
    if (++b_count == n_threads) {
        b_count = 0;
        b_gen++;
        b_finish = atomic_load(&stop);
        CHECK_EQ(pthread_cond_broadcast(&bc), 0);
    } else {
        while (b_gen == gen) {
            int r = pthread_cond_wait(&bc, &bm);
            if (r)
                CHECK_EQ(r, 0);
        }
    }
    finish = b_finish;
    CHECK_EQ(pthread_mutex_unlock(&bm), 0);
    return finish;
}

static int queue_wait(pthread_cond_t *c, clockid_t attr_clock, uint32_t r)
{
    if (r % 4 == 0) {
        struct timespec d = deadline_after_ns(attr_clock, 200000);
        return pthread_cond_timedwait(c, &qm, &d);
    }
    if (r % 4 == 1) {
        struct timespec d = deadline_after_ns(CLOCK_MONOTONIC, 300000);
        return pthread_cond_clockwait(c, &qm, CLOCK_MONOTONIC, &d);
    }
    return pthread_cond_wait(c, &qm);
}

static void *worker(void *arg)
{
    long id = (long)arg;
    uint32_t s = seed_for(id);
    for (;;) {
        for (int i = 0; i < LOCKS_PER_ROUND; i++) {
            int k = (int)(rnd(&s) % N_MUTEX);
            CHECK_EQ(pthread_mutex_lock(&mx[k]), 0);
            mx_count[k]++;
            CHECK_EQ(pthread_mutex_unlock(&mx[k]), 0);
        }
        CHECK_EQ(pthread_mutex_lock(&qm), 0);
        if (id & 1) {
            while (qlen == 0) {
                int r = queue_wait(&q_not_empty, CLOCK_REALTIME, rnd(&s));
                if (r == ETIMEDOUT)
                    timeouts++;
                else if (r)
                    CHECK_EQ(r, 0);
            }
            qlen--;
            consumed++;
            if (rnd(&s) % 8 == 0)
                CHECK_EQ(pthread_cond_broadcast(&q_not_full), 0);
            else
                CHECK_EQ(pthread_cond_signal(&q_not_full), 0);
        } else {
            while (qlen == QUEUE_CAP) {
                int r = queue_wait(&q_not_full, CLOCK_MONOTONIC, rnd(&s));
                if (r == ETIMEDOUT)
                    timeouts++;
                else if (r)
                    CHECK_EQ(r, 0);
            }
            qlen++;
            produced++;
            CHECK_EQ(pthread_cond_signal(&q_not_empty), 0);
        }
        CHECK_EQ(pthread_mutex_unlock(&qm), 0);
        tick();
        atomic_fetch_add(&rounds_seen, 1);
        if (barrier())
            break;
    }
    return NULL;
}

static void run(int n, double seconds)
{
    char name[64];
    snprintf(name, sizeof name, "%d threads", n);
    static char ctx[2][64];
    char *c = ctx[n > 64];
    memcpy(c, name, sizeof name);
    struct phase p = phase_start(c, seconds);
    n_threads = n;
    b_count = 0;
    atomic_store(&stop, 0);
    atomic_store(&rounds_seen, 0);
    int gen0 = b_gen;
    long produced0 = produced, consumed0 = consumed, locks0 = 0;
    for (int k = 0; k < N_MUTEX; k++)
        locks0 += mx_count[k];
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 128 * 1024);
    pthread_t *t = calloc((size_t)n, sizeof *t);
    for (long i = 0; i < n; i++)
        CHECK_EQ(pthread_create(&t[i], &a, worker, (void *)i), 0);
    while (phase_time_left(&p) || ({
               CHECK_EQ(pthread_mutex_lock(&bm), 0);
               int g = b_gen - gen0;
               CHECK_EQ(pthread_mutex_unlock(&bm), 0);
               g < MIN_ROUNDS;
           })) {
        sleep_ms(20);
        progress(&p, "%ld thread-rounds", atomic_load(&rounds_seen));
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < n; i++)
        join_thread(t[i]);
    free(t);
    long rounds = b_gen - gen0;
    long locks = -locks0;
    for (int k = 0; k < N_MUTEX; k++)
        locks += mx_count[k];
    CHECK_EQ(atomic_load(&rounds_seen), rounds * n);
    CHECK_EQ(locks, rounds * n * LOCKS_PER_ROUND);
    CHECK_EQ(produced - produced0, rounds * (n / 2));
    CHECK_EQ(consumed - consumed0, rounds * (n / 2));
    CHECK_EQ(qlen, 0);
    summary("%d threads: %ld rounds, %ld locks, %ld items, %ld timed-out waits", n,
            rounds, locks, produced - produced0, timeouts);
}

int main(void)
{
    torture_init("oversubscribed");
    static const int types[4] = { PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_RECURSIVE,
                                  PTHREAD_MUTEX_ERRORCHECK, PTHREAD_MUTEX_ADAPTIVE_NP };
    for (int i = 0; i < N_MUTEX; i++) {
        pthread_mutexattr_t a;
        pthread_mutexattr_init(&a);
        pthread_mutexattr_settype(&a, types[i % 4]);
        CHECK_EQ(pthread_mutex_init(&mx[i], &a), 0);
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    CHECK_EQ(pthread_cond_init(&q_not_empty, &ca), 0);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    CHECK_EQ(pthread_cond_init(&q_not_full, &ca), 0);
    double secs = torture_seconds(1.5);
    run(64, secs);
    run(256, secs);
    return check_finish();
}
