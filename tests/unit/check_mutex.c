// Unit tests for core/mutex.{h,c}: mutual exclusion under stress, progress
// under barging and fair handoff, trylock, timedlock on both clocks, the
// states of the lock word, freeing a mutex right after unlocking it, and
// the signal-handler rules (a stuck bucket, a handler nested in a bucket
// critical section).
//
// Timing is never asserted tightly: a timeout must not come before its
// deadline, and "promptly" or "eventually" means within seconds.
#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "clock.h"
#include "futex.h"
#include "helpers.h"
#include "mutex.h"
#include "parking_lot.h"
#include "suites.h"

/* ---- helpers ------------------------------------------------------------ */

// Waits (20 s at most) until exactly n threads are parked and asleep.
static void await_parked(size_t n)
{
    int64_t end = plk_clock_now_ns() + 20000 * MS;
    ck_assert_msg(parked_and_asleep_by(NULL, n, end),
                  "expected %zu parked threads, have %zu", n,
                  plk_parking_lot_parked_threads());
}

/* A thread that locks a mutex, reports that it holds it, and holds on until
 * told to let go. */
struct holder {
    struct plk_mutex *m;
    atomic_bool held;
    atomic_bool release;
    pthread_t thread;
};

static void *holder_main(void *arg)
{
    struct holder *h = arg;
    plk_mutex_lock(h->m);
    atomic_store(&h->held, true);
    while (!atomic_load(&h->release))
        sleep_ns(100 * 1000);
    plk_mutex_unlock(h->m);
    return NULL;
}

// Starts `h` on `m`, without waiting for it to get `m`.
static void holder_spawn(struct holder *h, struct plk_mutex *m)
{
    h->m = m;
    atomic_init(&h->held, false);
    atomic_init(&h->release, false);
    spawn(&h->thread, 1, holder_main, h, 0);
}

static void holder_await_held(struct holder *h)
{
    while (!atomic_load(&h->held))
        sleep_ns(100 * 1000);
}

// Starts `h` on `m` and returns once it holds `m`.
static void holder_start(struct holder *h, struct plk_mutex *m)
{
    holder_spawn(h, m);
    holder_await_held(h);
}

static void holder_stop(struct holder *h)
{
    atomic_store(&h->release, true);
    join(&h->thread, 1);
}

/* A thread that takes a mutex once, by lock or by timedlock. */
struct taker {
    struct plk_mutex *m;
    const struct plk_deadline *deadline; // NULL: plk_mutex_lock
    bool got;                            // valid after join
    int64_t done_ns;                     // deadline's clock, after returning
};

static void *taker_main(void *arg)
{
    struct taker *t = arg;
    if (t->deadline)
        t->got = plk_mutex_timedlock(t->m, t->deadline);
    else {
        plk_mutex_lock(t->m);
        t->got = true;
    }
    t->done_ns = plk_clock_now_ns_on(t->deadline ? t->deadline->clock
                                                 : CLOCK_MONOTONIC);
    if (t->got)
        plk_mutex_unlock(t->m);
    return NULL;
}

/* ---- mutual exclusion stress -------------------------------------------- */

enum work { WORK_NONE, WORK_SPIN, WORK_YIELD, N_WORK };

static const size_t stress_threads[] = { 2, 4, 16, 64 };
#define N_STRESS_THREADS (sizeof stress_threads / sizeof stress_threads[0])
static const int64_t stress_spin_ns[] = { PLK_MUTEX_SPIN_NS_DEFAULT, 0,
                                          2000 * 1000 };
#define N_STRESS_SPIN (sizeof stress_spin_ns / sizeof stress_spin_ns[0])
#define N_STRESS_CASES (N_STRESS_THREADS * N_WORK * N_STRESS_SPIN)

struct stress {
    struct plk_mutex m;
    long counter; // plain: only the mutex protects it
    long iters;
    enum work work;
    pthread_barrier_t start;
};

static void critical_work(enum work w)
{
    if (w == WORK_SPIN) {
        // A few hundred nanoseconds.
        for (volatile int i = 0; i < 150; i++)
            ;
    } else if (w == WORK_YIELD) {
        sched_yield();
    }
}

static void *stress_main(void *arg)
{
    struct stress *s = arg;
    pthread_barrier_wait(&s->start);
    for (long i = 0; i < s->iters; i++) {
        plk_mutex_lock(&s->m);
        long seen = s->counter;
        // Keep the read before the work so that the window stays open.
        atomic_signal_fence(memory_order_seq_cst);
        critical_work(s->work);
        s->counter = seen + 1;
        if (i % 8 == 7)
            plk_mutex_unlock_fair(&s->m);
        else
            plk_mutex_unlock(&s->m);
    }
    return NULL;
}

// Every combination of thread count, critical section and spin budget.
START_TEST(mutex_exclusion_stress)
{
    size_t nthreads = stress_threads[_i % N_STRESS_THREADS];
    enum work work = (enum work)(_i / N_STRESS_THREADS % N_WORK);
    int64_t spin = stress_spin_ns[_i / (N_STRESS_THREADS * N_WORK)];
    long total = (work == WORK_YIELD ? 60000 : 300000) / SCALE;

    plk_mutex_set_spin_ns(spin);
    ck_assert_int_eq(plk_mutex_spin_ns(), spin);

    struct stress s = { .m = PLK_MUTEX_INIT,
                        .iters = total / (long)nthreads,
                        .work = work };
    ck_assert_int_eq(pthread_barrier_init(&s.start, NULL, (unsigned)nthreads),
                     0);
    pthread_t t[64];
    spawn(t, nthreads, stress_main, &s, 0);
    join(t, nthreads);
    pthread_barrier_destroy(&s.start);

    ck_assert_msg(s.counter == s.iters * (long)nthreads,
                  "threads=%zu work=%d spin=%lld: counter %ld, expected %ld",
                  nthreads, (int)work, (long long)spin, s.counter,
                  s.iters * (long)nthreads);
    ck_assert_uint_eq(word_of(&s.m), 0);
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);
    plk_mutex_set_spin_ns(PLK_MUTEX_SPIN_NS_DEFAULT);
}
END_TEST

/* ---- progress and fairness ---------------------------------------------- */

#define N_BARGERS 4

struct barging {
    struct plk_mutex m;
    atomic_bool stop;
    pthread_barrier_t start;
    long acquired[N_BARGERS]; // acquired[i] is written by thread i, under m
};

struct barger_arg {
    struct barging *b;
    size_t id;
};

// Re-locks in a tight loop until told to stop.
static void *barger_main(void *arg)
{
    struct barger_arg *a = arg;
    struct barging *b = a->b;
    pthread_barrier_wait(&b->start);
    while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
        plk_mutex_lock(&b->m);
        b->acquired[a->id]++;
        critical_work(WORK_SPIN);
        plk_mutex_unlock(&b->m);
    }
    return NULL;
}

static void bargers_start(struct barging *b, struct barger_arg *args,
                          pthread_t *t, size_t n)
{
    atomic_init(&b->stop, false);
    ck_assert_int_eq(pthread_barrier_init(&b->start, NULL, (unsigned)n + 1), 0);
    for (size_t i = 0; i < n; i++)
        args[i] = (struct barger_arg){ .b = b, .id = i };
    spawn(t, n, barger_main, args, sizeof args[0]);
    pthread_barrier_wait(&b->start);
}

static void bargers_stop(struct barging *b, pthread_t *t, size_t n)
{
    atomic_store(&b->stop, true);
    join(t, n);
    pthread_barrier_destroy(&b->start);
}

// Every thread of a barging crowd gets the lock many times in a second.
// _i: default spin budget, or none (woken threads then never spin).
START_TEST(mutex_no_starvation_under_barging)
{
    plk_mutex_set_spin_ns(stress_spin_ns[_i]);
    struct barging b = { .m = PLK_MUTEX_INIT };
    struct barger_arg args[N_BARGERS];
    pthread_t t[N_BARGERS];
    bargers_start(&b, args, t, N_BARGERS);
    sleep_ns(1000 * MS);
    bargers_stop(&b, t, N_BARGERS);
    for (size_t i = 0; i < N_BARGERS; i++)
        ck_assert_msg(b.acquired[i] >= 10, "thread %zu acquired only %ld times",
                      i, b.acquired[i]);
    ck_assert_uint_eq(word_of(&b.m), 0);
    plk_mutex_set_spin_ns(PLK_MUTEX_SPIN_NS_DEFAULT);
}
END_TEST

// A newcomer that has to park gets the lock within seconds while the
// bargers keep re-locking (the fairness timer hands it over). _i: default
// spin budget, or none.
START_TEST(mutex_parked_waiter_not_starved)
{
    plk_mutex_set_spin_ns(stress_spin_ns[_i]);
    struct barging b = { .m = PLK_MUTEX_INIT };
    struct barger_arg args[N_BARGERS - 1];
    pthread_t t[N_BARGERS - 1];
    bargers_start(&b, args, t, N_BARGERS - 1);
    for (int round = 0; round < 5; round++) {
        sleep_ns(20 * MS);
        struct plk_deadline d = deadline_in(CLOCK_MONOTONIC, 5000 * MS);
        ck_assert_msg(plk_mutex_timedlock(&b.m, &d),
                      "round %d: not acquired within 5 s of barging", round);
        plk_mutex_unlock(&b.m);
    }
    bargers_stop(&b, t, N_BARGERS - 1);
    ck_assert_uint_eq(word_of(&b.m), 0);
    plk_mutex_set_spin_ns(PLK_MUTEX_SPIN_NS_DEFAULT);
}
END_TEST

// unlock_fair with a parked waiter leaves the word LOCKED: the waiter (a
// holder, which then holds on until released) owns it, and the unlocker
// cannot take it back.
START_TEST(mutex_unlock_fair_hands_off)
{
    struct plk_mutex m = PLK_MUTEX_INIT;
    struct holder h;
    plk_mutex_lock(&m);
    holder_spawn(&h, &m);
    await_parked(1);
    ck_assert_uint_eq(word_of(&m), LOCKED_PARKED);

    plk_mutex_unlock_fair(&m);
    ck_assert_msg(!plk_mutex_trylock(&m), "unlock_fair did not hand off");
    ck_assert(plk_mutex_is_locked(&m));
    holder_await_held(&h);
    // It was the only waiter: no PARKED bit left behind.
    ck_assert_uint_eq(word_of(&m), PLK_MUTEX_LOCKED);
    ck_assert(!plk_mutex_trylock(&m));

    holder_stop(&h);
    ck_assert_uint_eq(word_of(&m), 0);
}
END_TEST

#define N_CHAIN 8

struct chain {
    struct plk_mutex m;
    int order[N_CHAIN]; // under m
    int n;              // under m
    atomic_int retaken; // unlockers whose trylock right after unlock_fair won
    atomic_int checked; // unlockers that have made that attempt
};

struct chain_arg {
    struct chain *c;
    int id;
};

// Right after passing the mutex on with unlock_fair, tries to take it back,
// which must fail: the mutex stays LOCKED from hand to hand until the last
// thread lets go, and that one waits for every attempt.
static void unlock_fair_and_retake(struct chain *c)
{
    plk_mutex_unlock_fair(&c->m);
    if (plk_mutex_trylock(&c->m)) {
        atomic_fetch_add(&c->retaken, 1);
        plk_mutex_unlock(&c->m);
    }
    atomic_fetch_add(&c->checked, 1);
}

static void *chain_main(void *arg)
{
    struct chain_arg *a = arg;
    struct chain *c = a->c;
    plk_mutex_lock(&c->m);
    c->order[c->n++] = a->id;
    if (c->n < N_CHAIN) {
        unlock_fair_and_retake(c);
        return NULL;
    }
    // Main and the N_CHAIN - 1 others.
    while (atomic_load(&c->checked) != N_CHAIN)
        sched_yield();
    plk_mutex_unlock_fair(&c->m);
    return NULL;
}

// A chain of unlock_fair, microseconds apart (so the bucket's fairness timer
// cannot be what hands off), gives the mutex to the parked threads in the
// order they parked; no unlocker can take it back, and the last one leaves
// the word clean.
START_TEST(mutex_unlock_fair_chain_fifo)
{
    struct chain c = { .m = PLK_MUTEX_INIT };
    struct chain_arg args[N_CHAIN];
    pthread_t t[N_CHAIN];
    atomic_init(&c.retaken, 0);
    atomic_init(&c.checked, 0);
    plk_mutex_lock(&c.m);
    for (int i = 0; i < N_CHAIN; i++) {
        args[i] = (struct chain_arg){ .c = &c, .id = i };
        spawn(&t[i], 1, chain_main, &args[i], 0);
        await_parked((size_t)i + 1);
    }
    unlock_fair_and_retake(&c);
    join(t, N_CHAIN);
    ck_assert_int_eq(c.n, N_CHAIN);
    for (int i = 0; i < N_CHAIN; i++)
        ck_assert_int_eq(c.order[i], i);
    int retaken = atomic_load(&c.retaken);
    ck_assert_int_eq(retaken, 0);
    ck_assert_uint_eq(word_of(&c.m), 0);
}
END_TEST

/* ---- trylock ------------------------------------------------------------ */

START_TEST(mutex_trylock_free_then_held)
{
    struct plk_mutex m = PLK_MUTEX_INIT;
    ck_assert(plk_mutex_trylock(&m));
    ck_assert_uint_eq(word_of(&m), PLK_MUTEX_LOCKED);
    ck_assert(!plk_mutex_trylock(&m)); // not recursive
    ck_assert_uint_eq(word_of(&m), PLK_MUTEX_LOCKED);
    plk_mutex_unlock(&m);
    ck_assert_uint_eq(word_of(&m), 0);
    ck_assert(plk_mutex_trylock(&m));
    plk_mutex_unlock(&m);
}
END_TEST

START_TEST(mutex_trylock_fails_when_other_thread_holds)
{
    struct plk_mutex m = PLK_MUTEX_INIT;
    struct holder h;
    holder_start(&h, &m);
    for (int i = 0; i < 100; i++)
        ck_assert(!plk_mutex_trylock(&m));
    ck_assert_uint_eq(word_of(&m), PLK_MUTEX_LOCKED);
    holder_stop(&h);
    ck_assert(plk_mutex_trylock(&m));
    plk_mutex_unlock(&m);
    ck_assert_uint_eq(word_of(&m), 0);
}
END_TEST

// An unlocked word with only PARKED set (waiters about to be woken) is free.
START_TEST(mutex_trylock_parked_bit_only)
{
    struct plk_mutex m = PLK_MUTEX_INIT;
    atomic_store(&m.word, PLK_MUTEX_PARKED);
    ck_assert(plk_mutex_trylock(&m));
    ck_assert_uint_eq(word_of(&m), LOCKED_PARKED);
    ck_assert(!plk_mutex_trylock(&m));
    // Nobody is actually parked: the slow unlock must clear the bit.
    plk_mutex_unlock(&m);
    ck_assert_uint_eq(word_of(&m), 0);
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);
}
END_TEST

/* ---- timedlock ---------------------------------------------------------- */

// A free mutex is acquired whatever the deadline, even one long gone.
START_TEST(mutex_timedlock_free_past_deadline)
{
    const struct plk_deadline past[] = {
        { .when = { 0, 0 }, .clock = CLOCK_MONOTONIC },
        { .when = { 0, 0 }, .clock = CLOCK_REALTIME },
        { .when = { -1, 0 }, .clock = CLOCK_MONOTONIC },
        { .when = { -7, 999999999 }, .clock = CLOCK_REALTIME },
        deadline_in(CLOCK_MONOTONIC, -10 * MS),
    };
    struct plk_mutex m = PLK_MUTEX_INIT;
    for (size_t i = 0; i < sizeof past / sizeof past[0]; i++) {
        ck_assert_msg(plk_mutex_timedlock(&m, &past[i]), "deadline %zu", i);
        ck_assert_uint_eq(word_of(&m), PLK_MUTEX_LOCKED);
        plk_mutex_unlock(&m);
        ck_assert_uint_eq(word_of(&m), 0);
    }
}
END_TEST

// On a held mutex, timedlock fails, not before the deadline; the last waiter
// leaving takes the PARKED bit with it.
START_TEST(mutex_timedlock_times_out)
{
    clockid_t clock = clocks[_i];
    struct plk_mutex m = PLK_MUTEX_INIT;
    struct holder h;
    holder_start(&h, &m);

    struct plk_deadline d = deadline_in(clock, 100 * MS);
    bool got = plk_mutex_timedlock(&m, &d);
    int64_t now = plk_clock_now_ns_on(clock);
    ck_assert(!got);
    check_timed_out_in_time(&d, now);
    ck_assert_uint_eq(word_of(&m), PLK_MUTEX_LOCKED);
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);

    holder_stop(&h);
    ck_assert_uint_eq(word_of(&m), 0);
}
END_TEST

// A deadline with a negative tv_sec has passed: fail at once, leave no trace.
START_TEST(mutex_timedlock_negative_deadline)
{
    struct plk_mutex m = PLK_MUTEX_INIT;
    struct holder h;
    holder_start(&h, &m);
    for (size_t i = 0; i < 2; i++) {
        const struct plk_deadline d[] = {
            { .when = { -1, 0 }, .clock = clocks[i] },
            { .when = { -5, 999999999 }, .clock = clocks[i] },
        };
        for (size_t j = 0; j < 2; j++) {
            int64_t start = plk_clock_now_ns();
            ck_assert(!plk_mutex_timedlock(&m, &d[j]));
            ck_assert(plk_clock_now_ns() - start < 2000 * MS);
            ck_assert_uint_eq(word_of(&m), PLK_MUTEX_LOCKED);
        }
    }
    holder_stop(&h);
    ck_assert_uint_eq(word_of(&m), 0);
}
END_TEST

// A parked timedlock gets the mutex once the holder lets go in time.
START_TEST(mutex_timedlock_acquires_when_released)
{
    clockid_t clock = clocks[_i];
    struct plk_mutex m = PLK_MUTEX_INIT;
    struct plk_deadline d = deadline_in(clock, 20000 * MS);
    struct taker tk = { .m = &m, .deadline = &d };
    pthread_t t;
    plk_mutex_lock(&m);
    spawn(&t, 1, taker_main, &tk, 0);
    await_parked(1);
    ck_assert_uint_eq(word_of(&m), LOCKED_PARKED);
    plk_mutex_unlock(&m);
    join(&t, 1);
    ck_assert(tk.got);
    ck_assert(tk.done_ns < ts_ns(&d.when));
    ck_assert_uint_eq(word_of(&m), 0);
}
END_TEST

// A timed-out waiter that is not the last one keeps PARKED set, so the
// remaining waiter is still woken by the unlock (_i: whether the timed
// waiter parked first).
START_TEST(mutex_timed_out_waiter_keeps_others_parked)
{
    struct plk_mutex m = PLK_MUTEX_INIT;
    struct plk_deadline d = deadline_in(CLOCK_MONOTONIC, 200 * MS);
    struct taker timed = { .m = &m, .deadline = &d };
    struct taker plain = { .m = &m };
    struct taker *order[2] = { &plain, &timed };
    if (_i) {
        order[0] = &timed;
        order[1] = &plain;
    }
    pthread_t t[2];
    plk_mutex_lock(&m);
    spawn(&t[0], 1, taker_main, order[0], 0);
    await_parked(1);
    spawn(&t[1], 1, taker_main, order[1], 0);
    join(&t[order[0] == &timed ? 0 : 1], 1);
    ck_assert(!timed.got);
    ck_assert(timed.done_ns >= ts_ns(&d.when));
    await_parked(1);
    ck_assert_uint_eq(word_of(&m), LOCKED_PARKED);

    plk_mutex_unlock(&m);
    join(&t[order[0] == &timed ? 1 : 0], 1);
    ck_assert(plain.got);
    ck_assert_uint_eq(word_of(&m), 0);
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);
}
END_TEST

/* ---- word states -------------------------------------------------------- */

START_TEST(mutex_uncontended_word_states)
{
    struct plk_mutex m = PLK_MUTEX_INIT;
    struct plk_deadline d = deadline_in(CLOCK_MONOTONIC, 1000 * MS);
    for (int i = 0; i < 1000; i++) {
        ck_assert(!plk_mutex_is_locked(&m));
        switch (i % 3) {
        case 0: plk_mutex_lock(&m); break;
        case 1: ck_assert(plk_mutex_trylock(&m)); break;
        default: ck_assert(plk_mutex_timedlock(&m, &d)); break;
        }
        ck_assert_uint_eq(word_of(&m), PLK_MUTEX_LOCKED);
        ck_assert(plk_mutex_is_locked(&m));
        if (i % 2)
            plk_mutex_unlock_fair(&m);
        else
            plk_mutex_unlock(&m);
        ck_assert_uint_eq(word_of(&m), 0);
    }
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);
}
END_TEST

#define N_QUEUED 8

// Waiters queue up behind a holder; once all have passed, no stale PARKED.
START_TEST(mutex_contended_unlock_leaves_clean_word)
{
    struct plk_mutex m = PLK_MUTEX_INIT;
    struct taker tk[N_QUEUED];
    pthread_t t[N_QUEUED];
    for (size_t i = 0; i < N_QUEUED; i++)
        tk[i] = (struct taker){ .m = &m };
    plk_mutex_lock(&m);
    spawn(t, N_QUEUED, taker_main, tk, sizeof tk[0]);
    await_parked(N_QUEUED);
    ck_assert_uint_eq(word_of(&m), LOCKED_PARKED);
    plk_mutex_unlock(&m);
    join(t, N_QUEUED);
    for (size_t i = 0; i < N_QUEUED; i++)
        ck_assert(tk[i].got);
    ck_assert_uint_eq(word_of(&m), 0);
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);
}
END_TEST

/* ---- lifetime ----------------------------------------------------------- */

static void *lock_unlock_free_main(void *arg)
{
    struct plk_mutex *m = arg;
    plk_mutex_lock(m);
    plk_mutex_unlock(m);
    free(m);
    return NULL;
}

// The woken waiter is the last user: it frees the mutex while the unlocker
// may still be inside unlock. Under ASan any late access is reported.
START_TEST(mutex_freed_right_after_unlock)
{
    for (int round = 0; round < 1000 / SCALE; round++) {
        struct plk_mutex *m = malloc(sizeof *m);
        ck_assert_ptr_nonnull(m);
        atomic_init(&m->word, 0);
        plk_mutex_lock(m);
        pthread_t t;
        spawn(&t, 1, lock_unlock_free_main, m, 0);
        await_parked(1);
        if (round % 2)
            plk_mutex_unlock_fair(m);
        else
            plk_mutex_unlock(m);
        join(&t, 1);
    }
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);
}
END_TEST

/* ---- stuck buckets (signal handlers) ------------------------------------ */

static bool holder_holds_within(struct holder *h, int64_t ns)
{
    int64_t end = plk_clock_now_ns() + ns;
    while (!atomic_load(&h->held)) {
        if (plk_clock_now_ns() >= end)
            return false;
        sleep_ns(100 * 1000);
    }
    return true;
}

// An unlock that cannot take the bucket (its holder is stuck, a nested
// handler waits) releases the word at once, keeping PARKED, and posts the
// wake-up: the parked waiter gets the mutex once the holder lets go.
START_TEST(mutex_unlock_releases_word_when_bucket_stuck)
{
    struct plk_mutex m = PLK_MUTEX_INIT;
    struct holder h;
    struct stuck s;
    plk_mutex_lock(&m);
    holder_spawn(&h, &m);
    await_parked(1);
    ck_assert_uint_eq(word_of(&m), LOCKED_PARKED);
    stuck_start(&s, &m);
    plk_parking_lot_nested_wait_begin();

    plk_mutex_unlock(&m);
    ck_assert_uint_eq(word_of(&m), PLK_MUTEX_PARKED);
    // Free right away: anyone may take it (and its unlock posts again).
    ck_assert(plk_mutex_trylock(&m));
    ck_assert_uint_eq(word_of(&m), LOCKED_PARKED);
    plk_mutex_unlock(&m);
    ck_assert_uint_eq(word_of(&m), PLK_MUTEX_PARKED);
    // The waiter still sleeps: its wake-up waits for the bucket.
    sleep_ns(20 * MS);
    ck_assert(!atomic_load(&h.held));

    plk_parking_lot_nested_wait_end();
    stuck_release(&s);
    ck_assert_msg(holder_holds_within(&h, 20000 * MS), "the posted wake-up was lost");
    // It was the only waiter: the posted wake-up cleared PARKED.
    ck_assert_uint_eq(word_of(&m), PLK_MUTEX_LOCKED);
    holder_stop(&h);
    ck_assert_uint_eq(word_of(&m), 0);
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);
}
END_TEST

/* A locker with an observer, reporting whether it got the mutex. */
struct observed_locker {
    pthread_t thread;
    struct plk_mutex *m;
    const struct plk_deadline *deadline;
    struct plk_mutex_wait wait;
    _Atomic uint32_t done;
    bool got; // valid once done
};

static void *observed_locker_main(void *arg)
{
    struct observed_locker *l = arg;
    l->wait.since_ns = plk_clock_now_ns();
    l->got = plk_mutex_lock_slow(l->m, l->deadline, &l->wait);
    if (l->got)
        plk_mutex_unlock(l->m);
    atomic_store(&l->done, 1);
    return NULL;
}

// While the mutex's bucket is stuck, a locker cannot park (BUSY): it polls,
// and gets the mutex as soon as the owner unlocks -- before the bucket is
// free again. It never counts as parked. A timed one gives up at its
// deadline. _i: 0 untimed, 1 timed (and the owner never unlocks in time).
START_TEST(mutex_lock_polls_while_bucket_stuck)
{
    bool timed = _i == 1;
    struct plk_mutex m = PLK_MUTEX_INIT;
    struct stuck s;
    struct plk_deadline d = deadline_in(CLOCK_MONOTONIC, 100 * MS);
    struct observed_locker l = { .m = &m, .deadline = timed ? &d : NULL };
    plk_mutex_lock(&m);
    stuck_start(&s, &m);
    plk_parking_lot_nested_wait_begin();
    spawn(&l.thread, 1, observed_locker_main, &l, 0);
    if (timed) {
        ck_assert_msg(await_flag(&l.done), "timed lock ignored its deadline");
        join(&l.thread, 1);
        ck_assert(!l.got);
        check_timed_out_in_time(&d, plk_clock_now_ns());
        plk_mutex_unlock(&m);
    } else {
        // It marked the word PARKED before trying to park.
        int64_t end = plk_clock_now_ns() + 20000 * MS;
        while (word_of(&m) != LOCKED_PARKED) {
            ck_assert_msg(plk_clock_now_ns() < end, "the locker never tried to park");
            sleep_ns(100 * 1000);
        }
        ck_assert(!atomic_load(&l.done));
        plk_mutex_unlock(&m);
        ck_assert_msg(await_flag(&l.done), "the locker waited for the bucket");
        join(&l.thread, 1);
        ck_assert(l.got);
    }
    ck_assert(!l.wait.parked);
    plk_parking_lot_nested_wait_end();
    stuck_release(&s);
    // PARKED may be left behind; the next unlock that finds nobody clears it.
    plk_mutex_lock(&m);
    plk_mutex_unlock(&m);
    ck_assert_uint_eq(word_of(&m), 0);
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);
}
END_TEST

/* The scenario the rules exist for. This thread is in a bucket critical
 * section (a validate callback) when a "signal handler" (the callback's
 * body) locks a mutex that another thread owns: it polls instead of
 * parking, announcing itself. The owner, before unlocking, unparks an
 * address of that very bucket: it must give up rather than wait for a
 * bucket that cannot be released before its own unlock. */
struct handler_scene {
    struct plk_mutex m;
    uint32_t address;               // the bucket this thread holds
    _Atomic uint32_t owner_holds;   // the owner has the mutex
    _Atomic uint32_t in_handler;    // the handler is about to lock
    size_t owner_unpark;            // what the owner's unpark returned
    bool handler_busy_here;
    bool handler_got;               // held the mutex after lock returned
};

static void *owner_main(void *arg)
{
    struct handler_scene *h = arg;
    plk_mutex_lock(&h->m);
    atomic_store(&h->owner_holds, 1);
    while (atomic_load(&h->in_handler) == 0)
        sleep_ns(100 * 1000);
    h->owner_unpark = plk_unpark_one(&h->address, NULL, NULL);
    plk_mutex_unlock(&h->m);
    return NULL;
}

static bool handler(void *ctx)
{
    struct handler_scene *h = ctx;
    h->handler_busy_here = plk_parking_lot_busy_here();
    atomic_store(&h->in_handler, 1);
    plk_mutex_lock(&h->m);
    h->handler_got = plk_mutex_is_locked(&h->m);
    plk_mutex_unlock(&h->m);
    return false;
}

START_TEST(mutex_nested_handler_waits_without_deadlock)
{
    static struct handler_scene h = { .m = PLK_MUTEX_INIT };
    pthread_t owner;
    spawn(&owner, 1, owner_main, &h, 0);
    ck_assert(await_flag(&h.owner_holds));
    const struct plk_park_ops ops = { .validate = handler, .ctx = &h };
    // A deadlock here trips the test case's timeout.
    ck_assert_int_eq(plk_park_ex(&h.address, &ops, NULL, NULL, NULL), PLK_PARK_AGAIN);
    join(&owner, 1);
    ck_assert(h.handler_busy_here);
    ck_assert(h.handler_got);
    ck_assert_uint_eq(h.owner_unpark, PLK_UNPARK_GAVE_UP);
    ck_assert_uint_eq(word_of(&h.m), 0);
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);
}
END_TEST

/* A handler nested in this thread's section on the mutex's own bucket
 * unlocks the mutex: the unpark cannot even try that bucket, so the word is
 * released and the wake-up posted; this thread's own release of the bucket
 * then runs it. */
struct nested_unlock {
    struct plk_mutex m;
    struct holder *waiter;
    uint32_t word_after; // the mutex word right after the unlock
    bool waiter_held;    // the waiter had the mutex before we left
};

static bool unlock_in_handler(void *ctx)
{
    struct nested_unlock *n = ctx;
    plk_mutex_unlock(&n->m);
    n->word_after = word_of(&n->m);
    sleep_ns(20 * MS);
    n->waiter_held = atomic_load(&n->waiter->held);
    return false;
}

START_TEST(mutex_unlock_in_nested_section_posts_wakeup)
{
    static struct nested_unlock n = { .m = PLK_MUTEX_INIT };
    struct holder h;
    n.waiter = &h;
    plk_mutex_lock(&n.m);
    holder_spawn(&h, &n.m);
    await_parked(1);
    const struct plk_park_ops ops = { .validate = unlock_in_handler, .ctx = &n };
    ck_assert_int_eq(plk_park_ex(&n.m, &ops, NULL, NULL, NULL), PLK_PARK_AGAIN);
    ck_assert_uint_eq(n.word_after, PLK_MUTEX_PARKED);
    ck_assert(!n.waiter_held);
    ck_assert_msg(holder_holds_within(&h, 20000 * MS), "the posted wake-up was lost");
    holder_stop(&h);
    ck_assert_uint_eq(word_of(&n.m), 0);
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);
}
END_TEST

/* ---- suite -------------------------------------------------------------- */

Suite *mutex_suite(void)
{
    Suite *s = suite_create("mutex");

    TCase *tc = tcase_create("exclusion");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, mutex_exclusion_stress, 0, (int)N_STRESS_CASES);
    suite_add_tcase(s, tc);

    tc = tcase_create("fairness");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, mutex_no_starvation_under_barging, 0, 2);
    tcase_add_loop_test(tc, mutex_parked_waiter_not_starved, 0, 2);
    tcase_add_test(tc, mutex_unlock_fair_hands_off);
    tcase_add_test(tc, mutex_unlock_fair_chain_fifo);
    suite_add_tcase(s, tc);

    tc = tcase_create("trylock");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, mutex_trylock_free_then_held);
    tcase_add_test(tc, mutex_trylock_fails_when_other_thread_holds);
    tcase_add_test(tc, mutex_trylock_parked_bit_only);
    suite_add_tcase(s, tc);

    tc = tcase_create("timedlock");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, mutex_timedlock_free_past_deadline);
    tcase_add_loop_test(tc, mutex_timedlock_times_out, 0, 2);
    tcase_add_test(tc, mutex_timedlock_negative_deadline);
    tcase_add_loop_test(tc, mutex_timedlock_acquires_when_released, 0, 2);
    tcase_add_loop_test(tc, mutex_timed_out_waiter_keeps_others_parked, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("word states");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, mutex_uncontended_word_states);
    tcase_add_test(tc, mutex_contended_unlock_leaves_clean_word);
    suite_add_tcase(s, tc);

    tc = tcase_create("lifetime");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, mutex_freed_right_after_unlock);
    suite_add_tcase(s, tc);

    tc = tcase_create("stuck bucket");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, mutex_unlock_releases_word_when_bucket_stuck);
    tcase_add_loop_test(tc, mutex_lock_polls_while_bucket_stuck, 0, 2);
    tcase_add_test(tc, mutex_nested_handler_waits_without_deadlock);
    tcase_add_test(tc, mutex_unlock_in_nested_section_posts_wakeup);
    suite_add_tcase(s, tc);

    return s;
}
