// Unit tests for core/parker.c: per-thread sleep and wake-up.
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "helpers.h"
#include "parker.h"
#include "suites.h"

/* A thread that arms its own parker, publishes it and waits on it. Fields
 * other than the atomics are read by the test only after the join. */
struct sleeper {
    pthread_t thread;
    bool timed;
    struct plk_deadline deadline;        // used when `timed`
    _Atomic(struct plk_parker *) parker; // published once armed
    _Atomic bool done;
    bool woken;                    // plk_parker_wait's result
    struct plk_parker_stats stats; // the sleeper's counters after the wait
};

static void *sleeper_main(void *arg)
{
    struct sleeper *s = arg;
    struct plk_parker *p = plk_parker_self();
    plk_parker_arm(p);
    atomic_store(&s->parker, p);
    s->woken = plk_parker_wait(p, s->timed ? &s->deadline : NULL);
    s->stats = plk_parker_stats();
    atomic_store(&s->done, true);
    return NULL;
}

// Starts `s` and returns once it sleeps in the kernel (or gave up sleeping
// after its deadline: the word stays SLEEPING then too).
static void start_sleeper(struct sleeper *s)
{
    spawn(&s->thread, 1, sleeper_main, s, 0);
    int64_t give_up = plk_clock_now_ns() + PATIENCE_NS;
    struct plk_parker *p;
    while (!(p = atomic_load(&s->parker)) ||
           atomic_load(&p->word) != PLK_PARKER_SLEEPING) {
        ck_assert_msg(plk_clock_now_ns() < give_up, "sleeper never slept");
        sched_yield();
    }
}

static void join_sleeper(struct sleeper *s)
{
    join(&s->thread, 1);
    ck_assert(atomic_load(&s->done));
}

static _Atomic int signals_handled;

static void count_signal(int sig)
{
    (void)sig;
    atomic_fetch_add_explicit(&signals_handled, 1, memory_order_relaxed);
}

// Without SA_RESTART, so that a signal really interrupts FUTEX_WAIT (EINTR).
static void install_sigusr1_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = count_signal;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
}

// Sends SIGUSR1 to the sleeper every millisecond until it is done or
// `max_signals` were sent. Returns how many were sent.
static int pester(struct sleeper *s, int max_signals)
{
    int sent = 0;
    while (sent < max_signals && !atomic_load(&s->done)) {
        ck_assert_int_eq(pthread_kill(s->thread, SIGUSR1), 0);
        sent++;
        sleep_ns(MS);
    }
    return sent;
}

START_TEST(spin_sees_earlier_wake)
{
    struct plk_parker p;
    plk_parker_arm(&p);
    plk_parker_wake(&p);
    struct plk_parker_stats before = plk_parker_stats();
    ck_assert(plk_parker_spin(&p, 10 * MS, NULL));
    struct plk_parker_stats after = plk_parker_stats();
    // The waker found nobody asleep: no FUTEX_WAKE, and no FUTEX_WAIT.
    ck_assert_uint_eq(after.futex_waits, before.futex_waits);
    ck_assert_uint_eq(after.futex_wakes, before.futex_wakes);
}
END_TEST

START_TEST(spin_gives_up_after_budget)
{
    struct plk_parker p;
    plk_parker_arm(&p);
    int64_t start = plk_clock_now_ns();
    ck_assert(!plk_parker_spin(&p, 2 * MS, NULL));
    ck_assert_int_ge(plk_clock_now_ns() - start, 2 * MS);
    ck_assert_uint_eq(atomic_load(&p.word), PLK_PARKER_WAITING);
}
END_TEST

START_TEST(spin_stops_at_deadline)
{
    // A deadline before the end of the budget ends the spin there.
    struct plk_parker p;
    plk_parker_arm(&p);
    struct plk_deadline d = deadline_in(CLOCK_MONOTONIC, 2 * MS);
    int64_t start = plk_clock_now_ns();
    ck_assert(!plk_parker_spin(&p, 10 * PLK_NS_PER_SEC, &d));
    ck_assert_int_lt(plk_clock_now_ns() - start, 5 * PLK_NS_PER_SEC);
    ck_assert(plk_deadline_passed(&d));
}
END_TEST

static void *wake_soon(void *arg)
{
    sleep_ns(1 * MS);
    plk_parker_wake(arg);
    return NULL;
}

START_TEST(spin_sees_wake_from_other_thread)
{
    struct plk_parker p;
    plk_parker_arm(&p);
    pthread_t t;
    spawn(&t, 1, wake_soon, &p, 0);
    ck_assert(plk_parker_spin(&p, 10 * PLK_NS_PER_SEC, NULL));
    join(&t, 1);
}
END_TEST

START_TEST(wake_before_wait_returns_immediately)
{
    struct plk_parker *p = plk_parker_self();
    plk_parker_arm(p);
    plk_parker_wake(p);
    struct plk_parker_stats before = plk_parker_stats();
    struct plk_deadline far = deadline_in(CLOCK_MONOTONIC, 60 * PLK_NS_PER_SEC);
    int64_t start = plk_clock_now_ns();
    ck_assert(plk_parker_wait(p, &far));
    ck_assert(plk_parker_wait(p, NULL)); // WOKEN stays until re-armed
    ck_assert_int_lt(plk_clock_now_ns() - start, PLK_NS_PER_SEC);
    // Neither the wake (nobody slept) nor the waits touched the kernel.
    struct plk_parker_stats after = plk_parker_stats();
    ck_assert_uint_eq(after.futex_waits, before.futex_waits);
    ck_assert_uint_eq(after.futex_wakes, before.futex_wakes);
}
END_TEST

START_TEST(wait_times_out_no_earlier_than_deadline)
{
    clockid_t clock = clocks[_i];
    struct plk_parker *p = plk_parker_self();
    plk_parker_arm(p);
    uint64_t waits_before = plk_parker_stats().futex_waits;
    int64_t start = plk_clock_now_ns();
    struct plk_deadline d = deadline_in(clock, 30 * MS);
    ck_assert(!plk_parker_wait(p, &d));
    ck_assert_int_ge(plk_clock_now_ns_on(clock), ts_ns(&d.when));
    ck_assert_int_lt(plk_clock_now_ns() - start, 5 * PLK_NS_PER_SEC);
    ck_assert_uint_gt(plk_parker_stats().futex_waits, waits_before);
}
END_TEST

START_TEST(wait_with_past_deadline_returns_false)
{
    clockid_t clock = clocks[_i];
    struct plk_parker *p = plk_parker_self();
    plk_parker_arm(p);
    struct plk_deadline d = deadline_in(clock, -MS);
    ck_assert(!plk_parker_wait(p, &d));
    plk_parker_arm(p);
    d.when.tv_sec = -1;
    d.when.tv_nsec = 0;
    ck_assert(!plk_parker_wait(p, &d));
}
END_TEST

START_TEST(wake_from_other_thread)
{
    // _i == 1: the sleeper has a (far) deadline, which must not matter.
    struct sleeper s = { .timed = _i == 1 };
    if (s.timed)
        s.deadline = deadline_in(CLOCK_MONOTONIC, 60 * PLK_NS_PER_SEC);
    start_sleeper(&s);
    ck_assert(!atomic_load(&s.done));
    uint64_t wakes_before = plk_parker_stats().futex_wakes;
    plk_parker_wake(atomic_load(&s.parker));
    // The sleeper was in FUTEX_WAIT, so exactly one FUTEX_WAKE was needed.
    ck_assert_uint_eq(plk_parker_stats().futex_wakes, wakes_before + 1);
    join_sleeper(&s);
    ck_assert(s.woken);
    ck_assert_uint_ge(s.stats.futex_waits, 1);
}
END_TEST

START_TEST(signals_do_not_end_timed_wait)
{
    install_sigusr1_handler();
    struct sleeper s = { .timed = true };
    s.deadline = deadline_in(CLOCK_MONOTONIC, 200 * MS);
    start_sleeper(&s);
    int sent = pester(&s, 1000000);
    join_sleeper(&s);
    ck_assert_int_gt(sent, 0);
    ck_assert(!s.woken);
    ck_assert_int_ge(plk_clock_now_ns(), ts_ns(&s.deadline.when));
#ifndef __SANITIZE_THREAD__
    // TSan defers handlers to its own sync points; elsewhere they must run.
    ck_assert_int_gt(atomic_load(&signals_handled), 0);
#endif
}
END_TEST

START_TEST(signals_do_not_end_untimed_wait)
{
    install_sigusr1_handler();
    struct sleeper s = { .timed = false };
    start_sleeper(&s);
    ck_assert_int_eq(pester(&s, 50), 50);
    ck_assert(!atomic_load(&s.done));
    plk_parker_wake(atomic_load(&s.parker));
    join_sleeper(&s);
    ck_assert(s.woken);
#ifndef __SANITIZE_THREAD__
    ck_assert_int_gt(atomic_load(&signals_handled), 0);
#endif
}
END_TEST

static void *report_stats(void *arg)
{
    *(struct plk_parker_stats *)arg = plk_parker_stats();
    return NULL;
}

START_TEST(stats_start_at_zero_per_thread)
{
    // Give this thread some counts first: they must not leak into another.
    struct plk_parker *p = plk_parker_self();
    plk_parker_arm(p);
    struct plk_deadline d = deadline_in(CLOCK_MONOTONIC, MS);
    ck_assert(!plk_parker_wait(p, &d));
    ck_assert_uint_ge(plk_parker_stats().futex_waits, 1);

    struct plk_parker_stats fresh = { 1, 1 };
    pthread_t t;
    spawn(&t, 1, report_stats, &fresh, 0);
    join(&t, 1);
    ck_assert_uint_eq(fresh.futex_waits, 0);
    ck_assert_uint_eq(fresh.futex_wakes, 0);
}
END_TEST

START_TEST(stats_count_only_kernel_wakes)
{
    // Waking a parker that is armed but not sleeping needs no FUTEX_WAKE.
    struct sleeper s = { 0 };
    struct plk_parker idle = { 0 };
    plk_parker_arm(&idle);
    struct plk_parker_stats before = plk_parker_stats();
    plk_parker_wake(&idle);
    ck_assert_uint_eq(plk_parker_stats().futex_wakes, before.futex_wakes);
    ck_assert_uint_eq(atomic_load(&idle.word), PLK_PARKER_WOKEN);

    // Waking a sleeping one counts one.
    start_sleeper(&s);
    plk_parker_wake(atomic_load(&s.parker));
    join_sleeper(&s);
    struct plk_parker_stats after = plk_parker_stats();
    ck_assert_uint_eq(after.futex_wakes, before.futex_wakes + 1);
    ck_assert_uint_eq(after.futex_waits, before.futex_waits);
}
END_TEST

Suite *parker_suite(void)
{
    Suite *s = suite_create("parker");

    TCase *wait = tcase_create("wait");
    tcase_set_timeout(wait, 60);
    tcase_add_test(wait, wake_before_wait_returns_immediately);
    tcase_add_test(wait, spin_sees_earlier_wake);
    tcase_add_test(wait, spin_gives_up_after_budget);
    tcase_add_test(wait, spin_stops_at_deadline);
    tcase_add_test(wait, spin_sees_wake_from_other_thread);
    tcase_add_loop_test(wait, wait_times_out_no_earlier_than_deadline, 0,
                        N_CLOCKS);
    tcase_add_loop_test(wait, wait_with_past_deadline_returns_false, 0,
                        N_CLOCKS);
    tcase_add_loop_test(wait, wake_from_other_thread, 0, 2);
    suite_add_tcase(s, wait);

    TCase *signals = tcase_create("signals");
    tcase_set_timeout(signals, 60);
    tcase_add_test(signals, signals_do_not_end_timed_wait);
    tcase_add_test(signals, signals_do_not_end_untimed_wait);
    suite_add_tcase(s, signals);

    TCase *stats = tcase_create("stats");
    tcase_set_timeout(stats, 60);
    tcase_add_test(stats, stats_start_at_zero_per_thread);
    tcase_add_test(stats, stats_count_only_kernel_wakes);
    suite_add_tcase(s, stats);
    return s;
}
