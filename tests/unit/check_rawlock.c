// Unit tests for core/rawlock.c: the three-state futex word lock.
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

Suite *rawlock_suite(void)
{
    Suite *s = suite_create("rawlock");

    TCase *basic = tcase_create("basic");
    tcase_add_test(basic, uncontended_lock_unlock);
    tcase_add_test(basic, reset_forgets_holder);
    suite_add_tcase(s, basic);

    TCase *contention = tcase_create("contention");
    tcase_set_timeout(contention, 60);
    tcase_add_test(contention, mutual_exclusion_stress);
    tcase_add_test(contention, blocked_locker_sleeps_until_unlock);
    suite_add_tcase(s, contention);
    return s;
}
