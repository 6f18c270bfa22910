// Signal handlers that signal conds (regression, companion of
// signal_handler_locks).
//
// Four workers park in mutex locks and cond waits on "main" objects: a
// ping-pong pair passes a token through a mutex and two conds, a producer and
// a consumer run a bounded queue through a mutex and two conds, and all four
// take a shared mutex on every round. Timed waits with short deadlines are
// mixed in, so waiters also leave cond queues on their own. Meanwhile the
// main thread hits the workers with SIGUSR1 at a high rate. The handler locks
// a "handler" mutex, increments a counter, signals (every fourth time:
// broadcasts) a "handler" cond and unlocks. A listener thread, which never
// gets the signal (SIGUSR1 is blocked there), waits on the handler cond for
// the counter to change -- untimed waits, and every fourth wait a 100 ms
// timedwait or clockwait -- and counts the changes it sees.
//
// Only handlers and the listener touch the handler objects, and worker code
// never touches them outside handlers. So on glibc no handler ever needs a
// lock its interrupted thread holds -- neither the handler mutex nor the
// handler cond's internal lock (pthread_cond_signal may take it) -- and the
// program never deadlocks there.
//
// Under parklock every mutex and cond (waiters park on the cond's own
// address) is picked to hash to the same parking-lot bucket, as in
// signal_handler_locks: a handler then often runs while its thread holds
// that bucket's lock in a slow path (park, unpark, requeue, timeout), and its
// lock, signal, broadcast and unlock need the same bucket.
//
// Checked: no hang (the watchdog reports one), exact totals of the main
// workload (ping-pong rounds on both sides, every queue item received once
// and in order, the shared counter), handler counter == handler runs, and no
// lost wake-up: after the workers are joined (no handler runs any more) the
// listener must see the final counter value; if the last wake-up was lost
// while it slept in an untimed wait, nothing else wakes it and the watchdog
// reports the stall.
#include "torture.h"

#define POOL 16384
#define N_WORKERS 4
#define QCAP 4

static pthread_mutex_t mpool[POOL];
static pthread_cond_t cpool[POOL];

// Main objects: the ping-pong (pp), the bounded queue (q), the shared mutex.
static pthread_mutex_t *pp_m, *q_m, *shared_m;
static pthread_cond_t *pp_c[2], *q_not_empty, *q_not_full;
// Handler objects: only handlers and the listener touch them.
static pthread_mutex_t *h_m;
static pthread_cond_t *h_c;

static atomic_int stop;

// Ping-pong: `turn` says whose move it is; `done` is set by side 0 on its
// turn once `stop` is seen.
static int pp_turn, pp_done;
static long pp_moves[2];

// Bounded queue of sequence numbers 1, 2, ...
static long q_buf[QCAP];
static int q_head, q_len, q_closed;
static long q_produced, q_consumed, q_out_of_order;

static long shared_count;
static atomic_long shared_expected;

// Handler state: h_count under h_m; h_runs counted after each handler.
static long h_count;
static atomic_long h_runs;
static int listener_stop;
static atomic_long listener_seen;   // the last value the listener saw
static long listener_changes, listener_waits, listener_timeouts;

static atomic_long timed_waits, timeouts;

#define N_M 4 // pp_m, q_m, shared_m, h_m
#define N_C 5 // pp_c[0], pp_c[1], q_not_empty, q_not_full, h_c

// Picks N_M mutexes and N_C conds that all hash to one bucket, for every
// table size up to 1024 buckets. Returns whether it found them.
static bool pick_colliding(void)
{
    pthread_mutex_t *m[N_M];
    pthread_cond_t *c[N_C];
    unsigned bits;
    bool found = pick_one_bucket(mpool, m, N_M, cpool, c, N_C, POOL, &bits);
    pp_m = m[0], q_m = m[1], shared_m = m[2], h_m = m[3];
    pp_c[0] = c[0], pp_c[1] = c[1], q_not_empty = c[2], q_not_full = c[3];
    h_c = c[4];
    return found;
}

// A cond wait of the main workload: mostly untimed, every eighth a timedwait
// (CLOCK_REALTIME) or clockwait (CLOCK_MONOTONIC) with a 50 us deadline.
// The caller re-checks its predicate either way.
static void main_wait(pthread_cond_t *c, pthread_mutex_t *m, unsigned *n)
{
    unsigned k = (*n)++;
    if (k % 8 != 7) {
        CHECK_EQ(pthread_cond_wait(c, m), 0);
        return;
    }
    clockid_t clock = k % 16 == 7 ? CLOCK_REALTIME : CLOCK_MONOTONIC;
    struct timespec dl = deadline_after_ns(clock, 50000);
    int r = clock == CLOCK_REALTIME ? pthread_cond_timedwait(c, m, &dl)
                                    : pthread_cond_clockwait(c, m, clock, &dl);
    CHECK(r == 0 || r == ETIMEDOUT);
    atomic_fetch_add_explicit(&timed_waits, 1, memory_order_relaxed);
    if (r == ETIMEDOUT)
        atomic_fetch_add_explicit(&timeouts, 1, memory_order_relaxed);
}

static void shared_round(void)
{
    CHECK_EQ(pthread_mutex_lock(shared_m), 0);
    shared_count++;
    CHECK_EQ(pthread_mutex_unlock(shared_m), 0);
    atomic_fetch_add(&shared_expected, 1);
}

// Side 0 and side 1 of the ping-pong.
static void *pingpong(void *arg)
{
    int me = (int)(long)arg;
    unsigned waits = 0;
    for (;;) {
        shared_round();
        CHECK_EQ(pthread_mutex_lock(pp_m), 0);
        while (pp_turn != me && !pp_done)
            main_wait(pp_c[me], pp_m, &waits);
        if (pp_done) {
            CHECK_EQ(pthread_mutex_unlock(pp_m), 0);
            break;
        }
        if (me == 0 && atomic_load(&stop)) {
            // Side 1 has answered every move: the counts are equal now.
            pp_done = 1;
            CHECK_EQ(pthread_cond_signal(pp_c[1]), 0);
            CHECK_EQ(pthread_mutex_unlock(pp_m), 0);
            break;
        }
        pp_moves[me]++;
        pp_turn = !me;
        CHECK_EQ(pthread_cond_signal(pp_c[!me]), 0);
        CHECK_EQ(pthread_mutex_unlock(pp_m), 0);
        tick();
    }
    return NULL;
}

static void *producer(void *arg)
{
    (void)arg;
    unsigned waits = 0;
    for (long seq = 1; !atomic_load(&stop); seq++) {
        shared_round();
        CHECK_EQ(pthread_mutex_lock(q_m), 0);
        while (q_len == QCAP)
            main_wait(q_not_full, q_m, &waits);
        q_buf[(q_head + q_len) % QCAP] = seq;
        q_len++;
        q_produced++;
        // Sometimes broadcast: it requeues the waiter onto the mutex.
        if (seq % 5 == 0)
            CHECK_EQ(pthread_cond_broadcast(q_not_empty), 0);
        else
            CHECK_EQ(pthread_cond_signal(q_not_empty), 0);
        CHECK_EQ(pthread_mutex_unlock(q_m), 0);
        tick();
    }
    CHECK_EQ(pthread_mutex_lock(q_m), 0);
    q_closed = 1;
    CHECK_EQ(pthread_cond_broadcast(q_not_empty), 0);
    CHECK_EQ(pthread_mutex_unlock(q_m), 0);
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    unsigned waits = 0;
    long next = 1;
    for (;;) {
        shared_round();
        CHECK_EQ(pthread_mutex_lock(q_m), 0);
        while (q_len == 0 && !q_closed)
            main_wait(q_not_empty, q_m, &waits);
        if (q_len == 0) {
            CHECK_EQ(pthread_mutex_unlock(q_m), 0);
            break;
        }
        long v = q_buf[q_head];
        q_head = (q_head + 1) % QCAP;
        q_len--;
        q_consumed++;
        if (v != next)
            q_out_of_order++;
        next = v + 1;
        if (next % 7 == 0)
            CHECK_EQ(pthread_cond_broadcast(q_not_full), 0);
        else
            CHECK_EQ(pthread_cond_signal(q_not_full), 0);
        CHECK_EQ(pthread_mutex_unlock(q_m), 0);
        tick();
    }
    return NULL;
}

static _Thread_local unsigned handler_rounds;

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    unsigned k = handler_rounds++;
    CHECK_EQ(pthread_mutex_lock(h_m), 0);
    h_count++;
    if (k % 4 == 3)
        CHECK_EQ(pthread_cond_broadcast(h_c), 0);
    else
        CHECK_EQ(pthread_cond_signal(h_c), 0);
    CHECK_EQ(pthread_mutex_unlock(h_m), 0);
    atomic_fetch_add(&h_runs, 1);
    tick();
    errno = saved;
}

// Waits on the handler cond for the counter to change; publishes what it saw.
static void *listener(void *arg)
{
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
    CHECK_EQ(pthread_mutex_lock(h_m), 0);
    long seen = 0; // handlers only ever increment h_count from 0
    while (!listener_stop) {
        while (h_count == seen && !listener_stop) {
            unsigned k = (unsigned)listener_waits++;
            if (k % 4 != 3) {
                CHECK_EQ(pthread_cond_wait(h_c, h_m), 0);
                continue;
            }
            clockid_t clock = k % 8 == 3 ? CLOCK_REALTIME : CLOCK_MONOTONIC;
            struct timespec dl = deadline_after_ms(clock, 100);
            int r = clock == CLOCK_REALTIME ? pthread_cond_timedwait(h_c, h_m, &dl)
                                            : pthread_cond_clockwait(h_c, h_m, clock, &dl);
            CHECK(r == 0 || r == ETIMEDOUT);
            if (r == ETIMEDOUT)
                listener_timeouts++;
        }
        if (h_count != seen) {
            CHECK(h_count > seen);
            seen = h_count;
            listener_changes++;
            atomic_store(&listener_seen, seen);
            tick();
        }
    }
    CHECK_EQ(pthread_mutex_unlock(h_m), 0);
    return NULL;
}

int main(void)
{
    torture_init("signal_handler_conds");
    for (int i = 0; i < POOL; i++) {
        CHECK_EQ(pthread_mutex_init(&mpool[i], NULL), 0);
        CHECK_EQ(pthread_cond_init(&cpool[i], NULL), 0);
    }
    CHECK(pick_colliding());
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);

    pthread_t l = start_thread(listener, NULL);
    pthread_t t[N_WORKERS];
    t[0] = start_thread(pingpong, (void *)0L);
    t[1] = start_thread(pingpong, (void *)1L);
    t[2] = start_thread(producer, NULL);
    t[3] = start_thread(consumer, NULL);
    struct phase p = phase_start("handlers signal conds", torture_seconds(4));
    long sent = 0;
    while (phase_time_left(&p)) {
        for (int i = 0; i < N_WORKERS; i++, sent++)
            pthread_kill(t[i], SIGUSR1);
        struct timespec ts = { 0, 50000 };
        nanosleep(&ts, NULL);
        progress(&p, "%ld signals sent, %ld handler runs", sent, atomic_load(&h_runs));
    }
    check_context = "workers stop";
    atomic_store(&stop, 1);
    for (int i = 0; i < N_WORKERS; i++)
        join_thread(t[i]);

    // No handler runs any more: the listener must see the final count. A
    // lost wake-up leaves it asleep, and the watchdog reports the stall.
    check_context = "listener sees the final count";
    long final = atomic_load(&h_runs);
    while (atomic_load(&listener_seen) != final)
        sleep_ms(1);
    CHECK_EQ(pthread_mutex_lock(h_m), 0);
    CHECK_EQ(h_count, final);
    listener_stop = 1;
    CHECK_EQ(pthread_cond_signal(h_c), 0);
    CHECK_EQ(pthread_mutex_unlock(h_m), 0);
    join_thread(l);

    check_context = "totals";
    CHECK_EQ(pp_moves[0], pp_moves[1]);
    CHECK_EQ(q_consumed, q_produced);
    CHECK_EQ(q_out_of_order, 0);
    CHECK_EQ(shared_count, atomic_load(&shared_expected));
    CHECK(listener_changes <= final);
    summary("%ld signals sent, %ld handler runs; %ld ping-pong rounds, %ld items "
            "queued, %ld shared; %ld/%ld short timed waits timed out; listener: "
            "%ld changes seen in %ld waits (%ld timed out)",
            sent, final, pp_moves[0], q_produced, shared_count,
            atomic_load(&timeouts), atomic_load(&timed_waits), listener_changes,
            listener_waits, listener_timeouts);
    return check_finish();
}
