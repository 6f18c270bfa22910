// Signal storm: threads blocked in lock, timedlock, clocklock and in all
// three cond waits receive signals at a high rate. Two handlers: SIGUSR1
// without SA_RESTART (every interrupted futex wait sees EINTR inside the
// library), SIGUSR2 with SA_RESTART; both do work (a few hundred rounds of
// arithmetic, clock_gettime, errno clobbered and restored).
//
// Checked:
//   - no lock or wait call returns EINTR (or anything but 0 / ETIMEDOUT);
//   - timed calls with far deadlines never say ETIMEDOUT; those with short
//     deadlines say it only once the deadline has passed;
//   - no wake-up is lost: a ping-pong pair and a producer/consumer queue use
//     untimed waits (a lost wake-up hangs: the watchdog reports it), and every
//     total is exact;
//   - the signals did arrive (handled count > 0, printed).
#include "torture.h"

#define N_LOCKERS 4
#define N_CONSUMERS 3
#define N_PRODUCERS 2
#define QUEUE_MAX 4
#define FAR_MS 600000 // a deadline that never passes during the run

static atomic_long handled;
static atomic_uint sink; // the handlers' work goes somewhere
static atomic_int stop;

static void do_work(int sig)
{
    int saved = errno;
    uint32_t x = (uint32_t)sig;
    for (int i = 0; i < 300; i++)
        x = rnd(&x) + 1;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    atomic_fetch_xor_explicit(&sink, x ^ (uint32_t)ts.tv_nsec, memory_order_relaxed);
    errno = EINTR; // a handler that leaves errno dirty would be caught here
    atomic_fetch_add_explicit(&handled, 1, memory_order_relaxed);
    errno = saved;
}

static void on_signal(int sig)
{
    do_work(sig);
}

static void install(int sig, int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = flags;
    sigaction(sig, &sa, NULL);
}

// A result that may be 0 only (far deadline or no deadline).
#define CHECK_OK(expr)                                                         \
    do {                                                                       \
        int r_ = (expr);                                                       \
        if (r_ != 0)                                                           \
            CHECK_EQ(r_, 0);                                                   \
    } while (0)

/* Lockers: blocked most of the time behind a holder. */

static pthread_mutex_t lm[4];
static long lm_count[4];
static atomic_long lm_expected[4];

static void *holder(void *arg)
{
    (void)arg;
    uint32_t s = seed_for(77);
    while (!atomic_load(&stop)) {
        int k = (int)(rnd(&s) & 3);
        CHECK_OK(pthread_mutex_lock(&lm[k]));
        lm_count[k]++;
        sleep_ms(1); // lockers pile up and park behind us
        CHECK_OK(pthread_mutex_unlock(&lm[k]));
        atomic_fetch_add(&lm_expected[k], 1);
        tick();
    }
    return NULL;
}

static void *locker(void *arg)
{
    long id = (long)arg;
    uint32_t s = seed_for(id);
    while (!atomic_load(&stop)) {
        uint32_t r = rnd(&s);
        int k = (int)(r & 3);
        struct timespec d;
        switch ((r >> 4) % 5) {
        case 0:
            d = deadline_after_ms(CLOCK_REALTIME, FAR_MS);
            CHECK_OK(pthread_mutex_timedlock(&lm[k], &d));
            break;
        case 1:
            d = deadline_after_ms(CLOCK_MONOTONIC, FAR_MS);
            CHECK_OK(pthread_mutex_clocklock(&lm[k], CLOCK_MONOTONIC, &d));
            break;
        case 2: {
            // A short deadline: ETIMEDOUT only once it has passed.
            clockid_t clk = (r >> 8) & 1 ? CLOCK_MONOTONIC : CLOCK_REALTIME;
            d = deadline_after_ns(clk, 300000);
            int x = pthread_mutex_clocklock(&lm[k], clk, &d);
            if (x == ETIMEDOUT) {
                CHECK(reached(clk, &d));
                tick();
                continue;
            }
            CHECK_OK(x);
            break;
        }
        default:
            CHECK_OK(pthread_mutex_lock(&lm[k]));
        }
        lm_count[k]++;
        CHECK_OK(pthread_mutex_unlock(&lm[k]));
        atomic_fetch_add(&lm_expected[k], 1);
        tick();
    }
    return NULL;
}

/* Producers and consumers: untimed, timed and clock waits, both clocks. */

static pthread_mutex_t qm = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty, not_full; // not_empty: monotonic clock
static int qlen;
static long produced, consumed;
static bool producers_done;

static int cond_wait_kind(pthread_cond_t *c, clockid_t attr_clock, int kind)
{
    struct timespec d;
    switch (kind % 3) {
    case 1:
        d = deadline_after_ms(attr_clock, FAR_MS);
        return pthread_cond_timedwait(c, &qm, &d);
    case 2: {
        clockid_t clk = kind & 4 ? CLOCK_REALTIME : CLOCK_MONOTONIC;
        d = deadline_after_ms(clk, FAR_MS);
        return pthread_cond_clockwait(c, &qm, clk, &d);
    }
    default:
        return pthread_cond_wait(c, &qm);
    }
}

static void *producer(void *arg)
{
    long id = (long)arg;
    uint32_t s = seed_for(id + 10);
    while (!atomic_load(&stop)) {
        CHECK_OK(pthread_mutex_lock(&qm));
        while (qlen >= QUEUE_MAX)
            CHECK_OK(cond_wait_kind(&not_full, CLOCK_REALTIME, (int)rnd(&s)));
        qlen++;
        produced++;
        CHECK_OK(pthread_cond_signal(&not_empty));
        CHECK_OK(pthread_mutex_unlock(&qm));
        tick();
    }
    return NULL;
}

static void *consumer(void *arg)
{
    long id = (long)arg;
    uint32_t s = seed_for(id + 20);
    CHECK_OK(pthread_mutex_lock(&qm));
    for (;;) {
        while (qlen == 0 && !producers_done)
            CHECK_OK(cond_wait_kind(&not_empty, CLOCK_MONOTONIC, (int)rnd(&s)));
        if (qlen == 0)
            break;
        qlen--;
        consumed++;
        CHECK_OK(pthread_cond_signal(&not_full));
        tick();
    }
    CHECK_OK(pthread_mutex_unlock(&qm));
    return NULL;
}

/* Ping-pong: strictly alternating turns, untimed waits. */

static pthread_mutex_t pm = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pc[2] = { PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER };
static int turn;
static long pings[2];

static void *pinger(void *arg)
{
    long id = (long)arg;
    CHECK_OK(pthread_mutex_lock(&pm));
    for (;;) {
        while (turn != id && turn != 2)
            CHECK_OK(pthread_cond_wait(&pc[id], &pm));
        if (turn == 2)
            break;
        pings[id]++;
        turn = atomic_load(&stop) ? 2 : 1 - (int)id;
        CHECK_OK(pthread_cond_signal(&pc[1 - id]));
        tick();
    }
    CHECK_OK(pthread_mutex_unlock(&pm));
    return NULL;
}

int main(void)
{
    torture_init("signal_storm");
    install(SIGUSR1, 0);
    install(SIGUSR2, SA_RESTART);
    static const int types[4] = { PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_RECURSIVE,
                                  PTHREAD_MUTEX_ERRORCHECK, PTHREAD_MUTEX_ADAPTIVE_NP };
    for (int i = 0; i < 4; i++) {
        pthread_mutexattr_t a;
        pthread_mutexattr_init(&a);
        pthread_mutexattr_settype(&a, types[i]);
        CHECK_EQ(pthread_mutex_init(&lm[i], &a), 0);
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    CHECK_EQ(pthread_cond_init(&not_empty, &ca), 0);
    CHECK_EQ(pthread_cond_init(&not_full, NULL), 0);

    enum { N = 1 + N_LOCKERS + N_PRODUCERS + N_CONSUMERS + 2 };
    pthread_t t[N];
    int n = 0;
    t[n++] = start_thread(holder, NULL);
    for (long i = 0; i < N_LOCKERS; i++)
        t[n++] = start_thread(locker, (void *)i);
    for (long i = 0; i < N_PRODUCERS; i++)
        t[n++] = start_thread(producer, (void *)i);
    for (long i = 0; i < N_CONSUMERS; i++)
        t[n++] = start_thread(consumer, (void *)i);
    for (long i = 0; i < 2; i++)
        t[n++] = start_thread(pinger, (void *)i);

    // The storm: every thread, alternating signals, ~20 rounds per ms at most.
    struct phase p = phase_start("storm", torture_seconds(3));
    long sent = 0;
    while (phase_time_left(&p)) {
        for (int i = 0; i < n; i++) {
            pthread_kill(t[i], (sent & 1) ? SIGUSR2 : SIGUSR1);
            sent++;
        }
        struct timespec ts = { 0, 50000 };
        nanosleep(&ts, NULL);
        progress(&p, "%ld signals sent, %ld handled", sent, atomic_load(&handled));
    }
    atomic_store(&stop, 1);
    check_context = "shutdown";
    // Producers first, then consumers drain; pingers stop on their own.
    for (int i = 0; i < 1 + N_LOCKERS + N_PRODUCERS; i++)
        join_thread(t[i]);
    CHECK_OK(pthread_mutex_lock(&qm));
    producers_done = true;
    CHECK_OK(pthread_cond_broadcast(&not_empty));
    CHECK_OK(pthread_mutex_unlock(&qm));
    for (int i = 1 + N_LOCKERS + N_PRODUCERS; i < n; i++)
        join_thread(t[i]);

    long locks = 0;
    for (int k = 0; k < 4; k++) {
        CHECK_EQ(lm_count[k], atomic_load(&lm_expected[k]));
        locks += lm_count[k];
    }
    CHECK_EQ(consumed, produced);
    CHECK_EQ(qlen, 0);
    CHECK(pings[0] >= 1 && pings[0] - pings[1] >= 0 && pings[0] - pings[1] <= 1);
    CHECK(atomic_load(&handled) > 0);
    summary("%ld signals sent, %ld handled; %ld locks, %ld items, %ld ping-pongs",
            sent, atomic_load(&handled), locks, consumed, pings[0] + pings[1]);
    return check_finish();
}
