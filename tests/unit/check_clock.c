// Unit tests for core/clock.c: monotonic time and absolute deadlines.
#include <stdint.h>
#include <time.h>

#include "clock.h"
#include "helpers.h"
#include "suites.h"

static struct timespec now_on(clockid_t clock)
{
    struct timespec ts;
    ck_assert_int_eq(clock_gettime(clock, &ts), 0);
    return ts;
}

static struct plk_deadline deadline_at(clockid_t clock, time_t sec, long nsec)
{
    struct plk_deadline d = { .when = { .tv_sec = sec, .tv_nsec = nsec },
                              .clock = clock };
    return d;
}

static void assert_normalised(const struct plk_deadline *d)
{
    ck_assert_int_ge(d->when.tv_nsec, 0);
    ck_assert_int_lt(d->when.tv_nsec, PLK_NS_PER_SEC);
}

START_TEST(now_ns_follows_clock_gettime)
{
    clockid_t clock = clocks[_i];
    struct timespec before = now_on(clock);
    int64_t now = clock == CLOCK_MONOTONIC ? plk_clock_now_ns()
                                           : plk_clock_now_ns_on(clock);
    struct timespec after = now_on(clock);
    ck_assert_int_ge(now, ts_ns(&before));
    ck_assert_int_le(now, ts_ns(&after));
}
END_TEST

START_TEST(deadline_after_is_monotonic_and_normalised)
{
    // Values chosen to hit every carry case of the nanosecond field.
    static const int64_t timeouts[] = {
        0, 1, 999999999, PLK_NS_PER_SEC, PLK_NS_PER_SEC + 1,
        3 * PLK_NS_PER_SEC / 2, 123456789012LL,
    };
    for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
        int64_t before = plk_clock_now_ns();
        struct plk_deadline d = plk_deadline_after_ns(timeouts[i]);
        int64_t after = plk_clock_now_ns();
        ck_assert_int_eq(d.clock, CLOCK_MONOTONIC);
        assert_normalised(&d);
        ck_assert_int_ge(ts_ns(&d.when), before + timeouts[i]);
        ck_assert_int_le(ts_ns(&d.when), after + timeouts[i]);
    }
}
END_TEST

START_TEST(deadline_after_saturates_huge_timeouts)
{
    // Nothing may wrap around into the past: the deadline stays normalised,
    // positive and far away (UBSan in the Asan build also flags overflow).
    static const int64_t timeouts[] = { INT64_MAX, INT64_MAX - 1,
                                        INT64_MAX / 2 };
    for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
        struct timespec now = now_on(CLOCK_MONOTONIC);
        struct plk_deadline d = plk_deadline_after_ns(timeouts[i]);
        assert_normalised(&d);
        ck_assert_int_ge(d.when.tv_sec,
                         now.tv_sec + timeouts[i] / PLK_NS_PER_SEC);
        ck_assert(!plk_deadline_passed(&d));
    }
}
END_TEST

START_TEST(deadline_after_negative_has_passed)
{
    struct plk_deadline d = plk_deadline_after_ns(-5);
    assert_normalised(&d);
    ck_assert(plk_deadline_passed(&d));
    d = plk_deadline_after_ns(INT64_MIN);
    assert_normalised(&d);
    ck_assert(plk_deadline_passed(&d));
}
END_TEST

START_TEST(deadline_passed_past_and_future)
{
    clockid_t clock = clocks[_i];
    struct timespec now = now_on(clock);

    // Around the second boundary, so both branches of the comparison count.
    struct plk_deadline d = deadline_at(clock, now.tv_sec - 1, 999999999);
    ck_assert(plk_deadline_passed(&d));
    d = deadline_at(clock, now.tv_sec, now.tv_nsec); // "at" counts as passed
    ck_assert(plk_deadline_passed(&d));
    d = deadline_at(clock, now.tv_sec + 10, 0);
    ck_assert(!plk_deadline_passed(&d));
    d = deadline_at(clock, now.tv_sec + 10, 999999999);
    ck_assert(!plk_deadline_passed(&d));
}
END_TEST

START_TEST(deadline_passed_once_reached)
{
    clockid_t clock = clocks[_i];
    struct timespec now = now_on(clock);
    int64_t target = ts_ns(&now) + 20 * MS;
    struct plk_deadline d = deadline_at(clock, target / PLK_NS_PER_SEC,
                                        target % PLK_NS_PER_SEC);
    while (!plk_deadline_passed(&d))
        sleep_ns(5 * MS);
    // Never reported early.
    struct timespec after = now_on(clock);
    ck_assert_int_ge(ts_ns(&after), target);
}
END_TEST

START_TEST(deadline_passed_negative_seconds)
{
    clockid_t clock = clocks[_i];
    struct plk_deadline d = deadline_at(clock, -1, 0);
    ck_assert(plk_deadline_passed(&d));
    d = deadline_at(clock, -1, 999999999);
    ck_assert(plk_deadline_passed(&d));
    d = deadline_at(clock, INT64_MIN, 0);
    ck_assert(plk_deadline_passed(&d));
}
END_TEST

Suite *clock_suite(void)
{
    Suite *s = suite_create("clock");

    TCase *now = tcase_create("now");
    tcase_add_loop_test(now, now_ns_follows_clock_gettime, 0, N_CLOCKS);
    suite_add_tcase(s, now);

    TCase *after = tcase_create("deadline_after_ns");
    tcase_add_test(after, deadline_after_is_monotonic_and_normalised);
    tcase_add_test(after, deadline_after_saturates_huge_timeouts);
    tcase_add_test(after, deadline_after_negative_has_passed);
    suite_add_tcase(s, after);

    TCase *passed = tcase_create("deadline_passed");
    tcase_add_loop_test(passed, deadline_passed_past_and_future, 0, N_CLOCKS);
    tcase_add_loop_test(passed, deadline_passed_once_reached, 0, N_CLOCKS);
    tcase_add_loop_test(passed, deadline_passed_negative_seconds, 0, N_CLOCKS);
    suite_add_tcase(s, passed);
    return s;
}
