// Cancellation storm: consumer threads wait for tokens on a condition
// variable in all three kinds of wait (wait, timedwait, clockwait) while a
// producer hands out tokens (one signal each, now and then a broadcast) and
// a canceller cancels random consumers at random moments and starts new
// ones.
//
// Checked:
//   - every cancelled consumer ran its cleanup handler holding the mutex
//     (errorcheck mutex: __owner is the thread, unlock returns 0);
//   - phase "untimed": consumers use wait and far-deadline waits only, so a
//     signal swallowed by a cancelled waiter (POSIX: it must not consume one)
//     leaves a token behind with consumers asleep: after the storm the
//     tokens must drain to zero with no further signal or broadcast;
//   - phase "timed": consumers use short deadlines (timing out all the time,
//     on both clocks) while being cancelled; totals exact;
//   - afterwards the parking lot holds no stale waiter: fresh waiters are all
//     released by one broadcast, N signals release N token takers, and a
//     timed wait times out (never early).
#include "torture.h"

#define N_CONSUMERS 6
#define TOKEN_CAP 8

static pthread_mutex_t tm; // errorcheck
static pthread_cond_t tc[2]; // [0] realtime, [1] monotonic clock attribute
static pthread_cond_t *cur_c;
static clockid_t cur_clock;
static int tokens;
static long produced, consumed;
static int stop_consumers;
static bool short_waits;

struct consumer {
    atomic_int started;
    int cleanup_ran, cleanup_owner_ok, cleanup_unlock;
    long took;
    uint32_t seed;
};

static void consumer_cleanup(void *arg)
{
    struct consumer *c = arg;
    c->cleanup_ran = 1;
    c->cleanup_owner_ok = tm.__data.__owner == gettid();
    c->cleanup_unlock = pthread_mutex_unlock(&tm);
}

static int wait_once(struct consumer *c)
{
    uint32_t r = rnd(&c->seed);
    int64_t ns = short_waits ? 50000 + (int64_t)(r >> 8) % 2000000 : 600000000000LL;
    struct timespec d;
    switch (r % 3) {
    case 1:
        d = deadline_after_ns(cur_clock, ns);
        return pthread_cond_timedwait(cur_c, &tm, &d);
    case 2: {
        clockid_t clk = (r >> 4) & 1 ? CLOCK_MONOTONIC : CLOCK_REALTIME;
        d = deadline_after_ns(clk, ns);
        return pthread_cond_clockwait(cur_c, &tm, clk, &d);
    }
    default:
        if (short_waits) {
            d = deadline_after_ns(cur_clock, ns);
            return pthread_cond_timedwait(cur_c, &tm, &d);
        }
        return pthread_cond_wait(cur_c, &tm);
    }
}

static void *consumer_thread(void *arg)
{
    struct consumer *c = arg;
    CHECK_EQ(pthread_mutex_lock(&tm), 0);
    atomic_store(&c->started, 1);
    pthread_cleanup_push(consumer_cleanup, c);
    for (;;) {
        while (tokens == 0 && !stop_consumers) {
            int r = wait_once(c);
            if (r != 0 && !(short_waits && r == ETIMEDOUT))
                CHECK_EQ(r, 0);
        }
        if (tokens == 0)
            break; // stop
        tokens--;
        consumed++;
        c->took++;
        tick();
    }
    pthread_cleanup_pop(0);
    CHECK_EQ(pthread_mutex_unlock(&tm), 0);
    return NULL;
}

static struct consumer cons[N_CONSUMERS];
static pthread_t cons_t[N_CONSUMERS];
static atomic_int producing;
static long cancellations, exited_normally;

static void start_consumer(int i)
{
    cons[i] = (struct consumer){ .seed = seed_for(i + 1000 * (int)cancellations) };
    cons_t[i] = start_thread(consumer_thread, &cons[i]);
}

static void reap_cancelled(int i)
{
    void *ret = join_thread(cons_t[i]);
    if (ret == PTHREAD_CANCELED) {
        cancellations++;
        CHECK_EQ(cons[i].cleanup_ran, 1);
        CHECK_EQ(cons[i].cleanup_owner_ok, 1);
        CHECK_EQ(cons[i].cleanup_unlock, 0);
    } else {
        exited_normally++; // only once stop_consumers is set
    }
}

static void *producer(void *arg)
{
    (void)arg;
    uint32_t s = seed_for(4242);
    while (atomic_load(&producing)) {
        CHECK_EQ(pthread_mutex_lock(&tm), 0);
        if (tokens < TOKEN_CAP) {
            tokens++;
            produced++;
            if (rnd(&s) % 16 == 0)
                CHECK_EQ(pthread_cond_broadcast(cur_c), 0);
            else
                CHECK_EQ(pthread_cond_signal(cur_c), 0);
        }
        CHECK_EQ(pthread_mutex_unlock(&tm), 0);
        if (rnd(&s) % 4 == 0)
            sched_yield();
        tick();
    }
    return NULL;
}

static void storm(const char *name, double seconds, bool short_deadlines, int cond)
{
    check_context = name;
    short_waits = short_deadlines;
    cur_c = &tc[cond];
    cur_clock = cond ? CLOCK_MONOTONIC : CLOCK_REALTIME;
    stop_consumers = 0;
    for (int i = 0; i < N_CONSUMERS; i++)
        start_consumer(i);
    atomic_store(&producing, 1);
    pthread_t prod = start_thread(producer, NULL);
    struct phase p = phase_start(name, seconds);
    uint32_t s = seed_for(99);
    long before = cancellations;
    while (phase_time_left(&p) || cancellations - before < 100) {
        int i = (int)(rnd(&s) % N_CONSUMERS);
        WAIT_UNTIL(atomic_load(&cons[i].started) == 1, 10000);
        // Cancel at a random moment: right away, after a yield, or later.
        uint32_t how = rnd(&s) % 4;
        if (how == 1)
            sched_yield();
        else if (how >= 2) {
            struct timespec ts = { 0, (long)(rnd(&s) % 500000) };
            nanosleep(&ts, NULL);
        }
        CHECK_EQ(pthread_cancel(cons_t[i]), 0);
        reap_cancelled(i);
        start_consumer(i);
        tick();
        progress(&p, "%ld cancellations, %ld tokens consumed", cancellations, consumed);
    }
    atomic_store(&producing, 0);
    join_thread(prod);

    if (!short_deadlines) {
        // Every signal was delivered to a live consumer or passed on: the
        // remaining tokens are taken without any further wake-up from us.
        for (int i = 0; i < N_CONSUMERS; i++)
            WAIT_UNTIL(atomic_load(&cons[i].started) == 1, 10000);
        bool drained = WAIT_UNTIL(({
                                      CHECK_EQ(pthread_mutex_lock(&tm), 0);
                                      int left = tokens;
                                      CHECK_EQ(pthread_mutex_unlock(&tm), 0);
                                      left == 0;
                                  }),
                                  20000);
        if (!drained)
            fprintf(stderr, "cancel_storm: %d token(s) left with %d consumers "
                            "waiting: a signal was lost\n", tokens, N_CONSUMERS);
        CHECK(drained);
    }
    CHECK_EQ(pthread_mutex_lock(&tm), 0);
    stop_consumers = 1;
    CHECK_EQ(pthread_cond_broadcast(cur_c), 0);
    CHECK_EQ(pthread_mutex_unlock(&tm), 0);
    for (int i = 0; i < N_CONSUMERS; i++)
        reap_cancelled(i);
    CHECK_EQ(consumed + tokens, produced);
    CHECK_EQ(tokens, 0); // the stopping consumers took what was left
}

/* Afterwards: nothing stale in the parking lot. */

static int arrived, released;

static void *fresh_waiter(void *arg)
{
    pthread_cond_t *c = arg;
    CHECK_EQ(pthread_mutex_lock(&tm), 0);
    arrived++;
    int gen = released;
    while (released == gen) {
        int r = pthread_cond_wait(c, &tm);
        if (r)
            CHECK_EQ(r, 0);
    }
    CHECK_EQ(pthread_mutex_unlock(&tm), 0);
    return NULL;
}

static void *token_taker(void *arg)
{
    pthread_cond_t *c = arg;
    CHECK_EQ(pthread_mutex_lock(&tm), 0);
    arrived++;
    while (tokens == 0) {
        int r = pthread_cond_wait(c, &tm);
        if (r)
            CHECK_EQ(r, 0);
    }
    tokens--;
    CHECK_EQ(pthread_mutex_unlock(&tm), 0);
    return NULL;
}

static bool all_arrived(int n)
{
    return WAIT_UNTIL(({
                          CHECK_EQ(pthread_mutex_lock(&tm), 0);
                          int a = arrived;
                          CHECK_EQ(pthread_mutex_unlock(&tm), 0);
                          a == n;
                      }),
                      10000);
}

static void aftermath(pthread_cond_t *c, clockid_t attr_clock)
{
    enum { K = 8 };
    pthread_t t[K];
    check_context = "aftermath: broadcast";
    arrived = 0;
    for (int i = 0; i < K; i++)
        t[i] = start_thread(fresh_waiter, c);
    CHECK(all_arrived(K)); // each released the mutex only by waiting
    CHECK_EQ(pthread_mutex_lock(&tm), 0);
    released++;
    CHECK_EQ(pthread_cond_broadcast(c), 0);
    CHECK_EQ(pthread_mutex_unlock(&tm), 0);
    for (int i = 0; i < K; i++)
        join_thread(t[i]);

    check_context = "aftermath: one signal per token";
    arrived = 0;
    tokens = 0;
    for (int i = 0; i < K; i++)
        t[i] = start_thread(token_taker, c);
    CHECK(all_arrived(K));
    for (int i = 0; i < K; i++) {
        CHECK_EQ(pthread_mutex_lock(&tm), 0);
        tokens++;
        CHECK_EQ(pthread_cond_signal(c), 0);
        CHECK_EQ(pthread_mutex_unlock(&tm), 0);
    }
    for (int i = 0; i < K; i++)
        join_thread(t[i]);
    CHECK_EQ(tokens, 0);

    check_context = "aftermath: timeout";
    CHECK_EQ(pthread_mutex_lock(&tm), 0);
    struct timespec d = deadline_after_ms(attr_clock, 5);
    CHECK_EQ(pthread_cond_timedwait(c, &tm, &d), ETIMEDOUT);
    CHECK(reached(attr_clock, &d));
    CHECK_EQ(pthread_mutex_unlock(&tm), 0);
}

int main(void)
{
    torture_init("cancel_storm");
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    CHECK_EQ(pthread_mutex_init(&tm, &a), 0);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    CHECK_EQ(pthread_cond_init(&tc[0], &ca), 0);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    CHECK_EQ(pthread_cond_init(&tc[1], &ca), 0);

    double secs = torture_seconds(1);
    storm("untimed waits, realtime cond", secs, false, 0);
    storm("untimed waits, monotonic cond", secs, false, 1);
    storm("short timed waits, realtime cond", secs, true, 0);
    storm("short timed waits, monotonic cond", secs, true, 1);
    aftermath(&tc[0], CLOCK_REALTIME);
    aftermath(&tc[1], CLOCK_MONOTONIC);
    summary("%ld cancellations, %ld consumers exited normally, %ld tokens consumed",
            cancellations, exited_normally, consumed);
    return check_finish();
}
