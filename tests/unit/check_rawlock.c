// Unit tests for core/rawlock.c: the three-state futex word lock, trylock,
// and lock_unless (giving up while a holder may be stuck).
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include "clock.h"
#include "helpers.h"
#include "rawlock.h"
#include "suites.h"

#define STRESS_ITERATIONS (200000 / SANITIZER_SLOWDOWN(10))
#define STRESS_THREADS 4

static uint32_t rawlock_word(struct plk_rawlock *l)
{
    return atomic_load_explicit(&l->word, memory_order_relaxed);
}

// Spins (yielding) until the lock word reads `want`, or fails the test.
static void wait_for_word(struct plk_rawlock *l, uint32_t want)
{
    int64_t give_up = plk_clock_now_ns() + PATIENCE_NS;
    while (rawlock_word(l) != want) {
        ck_assert_msg(plk_clock_now_ns() < give_up,
                      "lock word stuck at %u, expected %u", rawlock_word(l),
                      want);
        sched_yield();
    }
}

START_TEST(uncontended_lock_unlock)
{
    struct plk_rawlock l = PLK_RAWLOCK_INIT;
    for (int i = 0; i < 3; i++) {
        plk_rawlock_lock(&l);
        ck_assert_uint_eq(rawlock_word(&l), PLK_RAWLOCK_LOCKED);
        plk_rawlock_unlock(&l);
        ck_assert_uint_eq(rawlock_word(&l), PLK_RAWLOCK_UNLOCKED);
    }
}
END_TEST

/* Shared by the stress threads: `counter` and `inside` are protected by
 * `lock`; `inside` must be 0 whenever a thread enters. */
struct stress {
    struct plk_rawlock lock;
    uint64_t counter;
    int inside;
    _Atomic int overlaps;
};

static void *stress_thread(void *arg)
{
    struct stress *s = arg;
    for (int i = 0; i < STRESS_ITERATIONS; i++) {
        plk_rawlock_lock(&s->lock);
        if (s->inside++ != 0)
            atomic_fetch_add(&s->overlaps, 1);
        s->counter++;
        s->inside--;
        plk_rawlock_unlock(&s->lock);
    }
    return NULL;
}

START_TEST(mutual_exclusion_stress)
{
    static struct stress s = { .lock = PLK_RAWLOCK_INIT };
    pthread_t threads[STRESS_THREADS];
    spawn(threads, STRESS_THREADS, stress_thread, &s, 0);
    join(threads, STRESS_THREADS);
    ck_assert_int_eq(atomic_load(&s.overlaps), 0);
    ck_assert_uint_eq(s.counter, (uint64_t)STRESS_THREADS * STRESS_ITERATIONS);
    ck_assert_uint_eq(rawlock_word(&s.lock), PLK_RAWLOCK_UNLOCKED);
}
END_TEST

struct blocker {
    struct plk_rawlock *lock;
    _Atomic int acquired;
};

static void *lock_then_unlock(void *arg)
{
    struct blocker *b = arg;
    plk_rawlock_lock(b->lock);
    atomic_store(&b->acquired, 1);
    plk_rawlock_unlock(b->lock);
    return NULL;
}

START_TEST(blocked_locker_sleeps_until_unlock)
{
    struct plk_rawlock l = PLK_RAWLOCK_INIT;
    struct blocker b = { .lock = &l };
    pthread_t t;
    plk_rawlock_lock(&l);
    spawn(&t, 1, lock_then_unlock, &b, 0);
    // The blocked thread gives up spinning and marks the lock contended;
    // the unlock must then wake it (otherwise the join below hangs).
    wait_for_word(&l, PLK_RAWLOCK_CONTENDED);
    ck_assert_int_eq(atomic_load(&b.acquired), 0);
    plk_rawlock_unlock(&l);
    join(&t, 1);
    ck_assert_int_eq(atomic_load(&b.acquired), 1);
    ck_assert_uint_eq(rawlock_word(&l), PLK_RAWLOCK_UNLOCKED);
}
END_TEST

START_TEST(reset_forgets_holder)
{
    // As in a child after fork: the holder is gone, reset frees the lock.
    struct plk_rawlock l = PLK_RAWLOCK_INIT;
    plk_rawlock_lock(&l);
    plk_rawlock_reset(&l);
    ck_assert_uint_eq(rawlock_word(&l), PLK_RAWLOCK_UNLOCKED);
    plk_rawlock_lock(&l);
    ck_assert_uint_eq(rawlock_word(&l), PLK_RAWLOCK_LOCKED);
    plk_rawlock_unlock(&l);

    // A contended word too.
    atomic_store(&l.word, PLK_RAWLOCK_CONTENDED);
    plk_rawlock_reset(&l);
    ck_assert_uint_eq(rawlock_word(&l), PLK_RAWLOCK_UNLOCKED);
    plk_rawlock_lock(&l);
    plk_rawlock_unlock(&l);
    ck_assert_uint_eq(rawlock_word(&l), PLK_RAWLOCK_UNLOCKED);
}
END_TEST

/* ---- trylock and lock_unless ---------------------------------------------- */

START_TEST(trylock_takes_only_a_free_lock)
{
    struct plk_rawlock l = PLK_RAWLOCK_INIT;
    ck_assert(plk_rawlock_trylock(&l));
    ck_assert_uint_eq(rawlock_word(&l), PLK_RAWLOCK_LOCKED);
    // Held (by us: trylock does not care who holds it): fails, word intact.
    ck_assert(!plk_rawlock_trylock(&l));
    ck_assert_uint_eq(rawlock_word(&l), PLK_RAWLOCK_LOCKED);
    plk_rawlock_unlock(&l);
    ck_assert_uint_eq(rawlock_word(&l), PLK_RAWLOCK_UNLOCKED);

    // Held with sleepers: fails without touching the word, so the holder's
    // unlock still knows to wake them.
    atomic_store(&l.word, PLK_RAWLOCK_CONTENDED);
    ck_assert(!plk_rawlock_trylock(&l));
    ck_assert_uint_eq(rawlock_word(&l), PLK_RAWLOCK_CONTENDED);
    plk_rawlock_unlock(&l);
    ck_assert(plk_rawlock_trylock(&l));
    plk_rawlock_unlock(&l);
    ck_assert_uint_eq(rawlock_word(&l), PLK_RAWLOCK_UNLOCKED);
}
END_TEST

/* give_up takes no argument: the lock_unless tests share this state (each
 * test runs in its own process, or alone, so there is no interference). */
static _Atomic bool give_up_answer;
static _Atomic int give_up_calls;

static bool count_give_up(void)
{
    atomic_fetch_add(&give_up_calls, 1);
    return atomic_load(&give_up_answer);
}

static void give_up_reset(bool answer)
{
    atomic_store(&give_up_answer, answer);
    atomic_store(&give_up_calls, 0);
}

static bool give_up_asked(int n)
{
    int64_t end = plk_clock_now_ns() + PATIENCE_NS;
    while (atomic_load(&give_up_calls) < n) {
        if (plk_clock_now_ns() >= end)
            return false;
        sched_yield();
    }
    return true;
}

START_TEST(lock_unless_takes_free_lock_without_asking)
{
    struct plk_rawlock l = PLK_RAWLOCK_INIT;
    give_up_reset(true); // would give up, if it were asked
    ck_assert(plk_rawlock_lock_unless(&l, count_give_up));
    ck_assert_uint_eq(rawlock_word(&l), PLK_RAWLOCK_LOCKED);
    ck_assert_int_eq(atomic_load(&give_up_calls), 0);
    plk_rawlock_unlock(&l);
    ck_assert_uint_eq(rawlock_word(&l), PLK_RAWLOCK_UNLOCKED);
}
END_TEST

/* A thread that calls plk_rawlock_lock_unless(lock, count_give_up) once,
 * and if it got the lock, releases it. */
struct unless_locker {
    pthread_t thread;
    struct plk_rawlock *lock;
    _Atomic bool done;
    bool got; // valid once `done`
};

static void *unless_locker_main(void *arg)
{
    struct unless_locker *u = arg;
    u->got = plk_rawlock_lock_unless(u->lock, count_give_up);
    if (u->got)
        plk_rawlock_unlock(u->lock);
    atomic_store(&u->done, true);
    return NULL;
}

static void unless_locker_start(struct unless_locker *u, struct plk_rawlock *l)
{
    *u = (struct unless_locker){ .lock = l };
    spawn(&u->thread, 1, unless_locker_main, u, 0);
}

// Waits (PATIENCE_NS at most) until `u` returned, then joins it.
static void unless_locker_finish(struct unless_locker *u)
{
    int64_t end = plk_clock_now_ns() + PATIENCE_NS;
    while (!atomic_load(&u->done)) {
        ck_assert_msg(plk_clock_now_ns() < end, "lock_unless never returned");
        sched_yield();
    }
    join(&u->thread, 1);
}

START_TEST(lock_unless_gives_up_on_held_lock)
{
    struct plk_rawlock l = PLK_RAWLOCK_INIT;
    struct unless_locker u;
    give_up_reset(true);
    plk_rawlock_lock(&l);
    unless_locker_start(&u, &l);
    // We never release the lock before it returns: only giving up ends it.
    unless_locker_finish(&u);
    ck_assert(!u.got);
    ck_assert_int_ge(atomic_load(&give_up_calls), 1);
    // Still ours (possibly marked contended by the waiter: harmless).
    ck_assert_uint_ne(rawlock_word(&l), PLK_RAWLOCK_UNLOCKED);
    ck_assert(!plk_rawlock_trylock(&l));
    plk_rawlock_unlock(&l);
    ck_assert_uint_eq(rawlock_word(&l), PLK_RAWLOCK_UNLOCKED);
    ck_assert(plk_rawlock_lock_unless(&l, count_give_up));
    plk_rawlock_unlock(&l);
}
END_TEST

START_TEST(lock_unless_acquires_when_holder_releases)
{
    struct plk_rawlock l = PLK_RAWLOCK_INIT;
    struct unless_locker u;
    give_up_reset(false);
    plk_rawlock_lock(&l);
    unless_locker_start(&u, &l);
    // It asks before each sleep, and again while asleep.
    ck_assert_msg(give_up_asked(2), "give_up asked only %d times",
                  atomic_load(&give_up_calls));
    ck_assert_uint_eq(rawlock_word(&l), PLK_RAWLOCK_CONTENDED);
    ck_assert(!atomic_load(&u.done));
    plk_rawlock_unlock(&l);
    unless_locker_finish(&u);
    ck_assert(u.got);
    ck_assert_uint_eq(rawlock_word(&l), PLK_RAWLOCK_UNLOCKED);
}
END_TEST

START_TEST(lock_unless_sleeper_notices_give_up)
{
    // The waiter sleeps on a lock that will not be released until it has
    // returned; turning give_up true must end its wait (a re-check every
    // PLK_RAWLOCK_RECHECK_NS), not a wake-up from an unlock.
    struct plk_rawlock l = PLK_RAWLOCK_INIT;
    struct unless_locker u;
    give_up_reset(false);
    plk_rawlock_lock(&l);
    unless_locker_start(&u, &l);
    ck_assert_msg(give_up_asked(3), "give_up asked only %d times",
                  atomic_load(&give_up_calls));
    ck_assert(!atomic_load(&u.done));
    atomic_store(&give_up_answer, true);
    unless_locker_finish(&u);
    ck_assert(!u.got);
    ck_assert_uint_ne(rawlock_word(&l), PLK_RAWLOCK_UNLOCKED); // still ours
    plk_rawlock_unlock(&l);
    ck_assert_uint_eq(rawlock_word(&l), PLK_RAWLOCK_UNLOCKED);
}
END_TEST

/* Three kinds of lockers share one lock: plain lock, lock_unless that never
 * gives up, and lock_unless that always gives up once it would sleep (the
 * CONTENDED mark it leaves behind must not cost anyone a wake-up). Mutual
 * exclusion holds, only the quitters ever give up, and nobody hangs. */
enum { PLAIN, NEVER_QUITS, QUITS, N_KINDS };

struct unless_stress {
    struct plk_rawlock lock;
    uint64_t counter; // under lock
    int inside;       // under lock
    _Atomic int overlaps;
    _Atomic uint64_t entered;
    _Atomic int refused[N_KINDS];
};

struct unless_stresser {
    struct unless_stress *s;
    int kind;
};

static __thread bool quitter;

static bool give_up_if_quitter(void)
{
    return quitter;
}

static void *unless_stress_thread(void *arg)
{
    struct unless_stresser *t = arg;
    struct unless_stress *s = t->s;
    quitter = t->kind == QUITS;
    for (int i = 0; i < STRESS_ITERATIONS / 4; i++) {
        if (t->kind == PLAIN) {
            plk_rawlock_lock(&s->lock);
        } else if (!plk_rawlock_lock_unless(&s->lock, give_up_if_quitter)) {
            atomic_fetch_add(&s->refused[t->kind], 1);
            continue;
        }
        if (s->inside++ != 0)
            atomic_fetch_add(&s->overlaps, 1);
        s->counter++;
        atomic_fetch_add(&s->entered, 1);
        if (i % 16 == 0)
            sched_yield(); // now and then, others must sleep on the lock
        s->inside--;
        plk_rawlock_unlock(&s->lock);
    }
    return NULL;
}

START_TEST(lock_unless_mutual_exclusion_stress)
{
    enum { PER_KIND = 2, N = PER_KIND * N_KINDS };
    static struct unless_stress s = { .lock = PLK_RAWLOCK_INIT };
    struct unless_stresser ts[N];
    for (int i = 0; i < N; i++)
        ts[i] = (struct unless_stresser){ &s, i % N_KINDS };
    pthread_t threads[N];
    spawn(threads, N, unless_stress_thread, ts, sizeof ts[0]);
    join(threads, N);
    ck_assert_int_eq(atomic_load(&s.overlaps), 0);
    ck_assert_int_eq(atomic_load(&s.refused[PLAIN]), 0);
    ck_assert_int_eq(atomic_load(&s.refused[NEVER_QUITS]), 0);
    ck_assert_uint_eq(s.counter, atomic_load(&s.entered));
    ck_assert_uint_eq(s.counter + (uint64_t)atomic_load(&s.refused[QUITS]),
                      (uint64_t)N * (STRESS_ITERATIONS / 4));
    ck_assert_uint_eq(rawlock_word(&s.lock), PLK_RAWLOCK_UNLOCKED);
}
END_TEST

Suite *rawlock_suite(void)
{
    Suite *s = suite_create("rawlock");

    TCase *basic = tcase_create("basic");
    tcase_add_test(basic, uncontended_lock_unlock);
    tcase_add_test(basic, reset_forgets_holder);
    tcase_add_test(basic, trylock_takes_only_a_free_lock);
    tcase_add_test(basic, lock_unless_takes_free_lock_without_asking);
    suite_add_tcase(s, basic);

    TCase *contention = tcase_create("contention");
    tcase_set_timeout(contention, 60);
    tcase_add_test(contention, mutual_exclusion_stress);
    tcase_add_test(contention, blocked_locker_sleeps_until_unlock);
    suite_add_tcase(s, contention);

    TCase *unless = tcase_create("lock_unless");
    tcase_set_timeout(unless, 60);
    tcase_add_test(unless, lock_unless_gives_up_on_held_lock);
    tcase_add_test(unless, lock_unless_acquires_when_holder_releases);
    tcase_add_test(unless, lock_unless_sleeper_notices_give_up);
    tcase_add_test(unless, lock_unless_mutual_exclusion_stress);
    suite_add_tcase(s, unless);
    return s;
}
