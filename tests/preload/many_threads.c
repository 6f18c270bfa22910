// Many threads at once: 192 threads arrive in waves and park on a cond and
// on contended mutexes while more keep arriving (parklock's table of wait
// queues grows under them), then all are released by one broadcast and
// hammer a few mutexes and conds. Exact totals; every thread finishes.
#include "check.h"

#define N_THREADS 192
#define WAVE 24
#define ITERS 150

static pthread_mutex_t gate_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_c = PTHREAD_COND_INITIALIZER;
static int gate_open;
static atomic_int arrived;

static pthread_mutex_t m[4] = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP,
    PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP, PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP,
};
static pthread_cond_t c[4] = {
    PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
    PTHREAD_COND_INITIALIZER,
};
static long count[4];
static pthread_mutex_t blocker = PTHREAD_MUTEX_INITIALIZER; // held by main
static atomic_int through_blocker;

static void *worker(void *arg)
{
    long id = (long)arg;
    // Half of each wave parks on the gate cond, half on a held mutex.
    if (id & 1) {
        CHECK_EQ(pthread_mutex_lock(&blocker), 0);
        atomic_fetch_add(&through_blocker, 1);
        CHECK_EQ(pthread_mutex_unlock(&blocker), 0);
    }
    CHECK_EQ(pthread_mutex_lock(&gate_m), 0);
    atomic_fetch_add(&arrived, 1);
    while (!gate_open) {
        int r = pthread_cond_wait(&gate_c, &gate_m);
        if (r)
            CHECK_EQ(r, 0);
    }
    CHECK_EQ(pthread_mutex_unlock(&gate_m), 0);

    for (int i = 0; i < ITERS; i++) {
        int k = (int)((id + i) & 3);
        CHECK_EQ(pthread_mutex_lock(&m[k]), 0);
        count[k]++;
        if (i % 25 == 0) {
            CHECK_EQ(pthread_cond_broadcast(&c[k]), 0);
            struct timespec d = deadline_after_ms(CLOCK_MONOTONIC, 1);
            int r = pthread_cond_clockwait(&c[k], &m[k], CLOCK_MONOTONIC, &d);
            if (r && r != ETIMEDOUT)
                CHECK_EQ(r, 0);
        } else if (i % 7 == 0) {
            CHECK_EQ(pthread_cond_signal(&c[k]), 0);
        }
        CHECK_EQ(pthread_mutex_unlock(&m[k]), 0);
    }
    return NULL;
}

int main(void)
{
    static pthread_t t[N_THREADS];
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 256 * 1024);
    CHECK_EQ(pthread_mutex_lock(&blocker), 0);
    for (long i = 0; i < N_THREADS; i++) {
        CHECK_EQ(pthread_create(&t[i], &a, worker, (void *)i), 0);
        if ((i + 1) % WAVE == 0) // the even half of this wave is at the gate
            WAIT_UNTIL(atomic_load(&arrived) == (int)(i + 1) / 2, 10000);
    }
    CHECK_EQ(atomic_load(&arrived), N_THREADS / 2);
    sleep_ms(20);
    CHECK_EQ(pthread_mutex_unlock(&blocker), 0); // the odd half streams through
    CHECK(WAIT_UNTIL(atomic_load(&arrived) == N_THREADS, 20000));
    CHECK_EQ(atomic_load(&through_blocker), N_THREADS / 2);
    CHECK_EQ(pthread_mutex_lock(&gate_m), 0);
    gate_open = 1;
    CHECK_EQ(pthread_cond_broadcast(&gate_c), 0);
    CHECK_EQ(pthread_mutex_unlock(&gate_m), 0);
    for (int i = 0; i < N_THREADS; i++)
        join_thread(t[i]);
    long total = 0;
    for (int k = 0; k < 4; k++) {
        total += count[k];
        CHECK_EQ(count[k], (long)N_THREADS * ITERS / 4);
        CHECK_EQ(pthread_mutex_trylock(&m[k]), 0);
        CHECK_EQ(pthread_mutex_unlock(&m[k]), 0);
    }
    CHECK_EQ(total, (long)N_THREADS * ITERS);
    return check_finish();
}
