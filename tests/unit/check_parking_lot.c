// Unit tests for core/parking_lot.c: park, unpark, requeue, growth, fork, and
// the signal-handler rules (stuck buckets, nested sections, posted wake-ups).
//
// Most tests park helper threads with plk_park_ex and a before_sleep callback
// that flags "queued": once the flag is up the thread is in its queue, so the
// order of parking (FIFO checks) and "is it parked yet" never rely on timing.
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "futex.h"
#include "helpers.h"
#include "parking_lot.h"
#include "suites.h"

// Sanitizer builds run several times slower: shrink the stress loops.
#define SLOWDOWN SANITIZER_SLOWDOWN(4)

#ifdef __SANITIZE_THREAD__
// The fork test starts threads in the child of a multithreaded process,
// which TSan refuses unless told otherwise. The runtime looks this hook up
// dynamically, hence the default visibility.
__attribute__((visibility("default"))) const char *__tsan_default_options(void);
__attribute__((visibility("default"))) const char *__tsan_default_options(void)
{
    return "die_after_fork=0";
}
#endif

/* ------------------------------------------------------------------------
 * Polling helpers.
 */

// Polls `done(arg)` until it holds; false if PATIENCE_NS ran out first.
// Uses no Check assertion, so the child of a fork may call it too.
static bool poll_until(bool (*done)(const void *), const void *arg)
{
    int64_t give_up = plk_clock_now_ns() + PATIENCE_NS;
    while (!done(arg)) {
        if (plk_clock_now_ns() > give_up)
            return false;
        sched_yield();
    }
    return true;
}

static bool parked_count_is(const void *arg)
{
    return plk_parking_lot_parked_threads() == *(const size_t *)arg;
}

// Waits until exactly `n` threads are inside park.
static void wait_parked(size_t n)
{
    ck_assert_msg(poll_until(parked_count_is, &n),
                  "parked threads stuck at %zu, expected %zu",
                  plk_parking_lot_parked_threads(), n);
}

/* ------------------------------------------------------------------------
 * A waiter: a thread parked with plk_park_ex on `address`, with itself as
 * park_arg. Fields other than the atomics are read after the join only.
 */
struct waiter {
    pthread_t thread;
    const void *address;
    bool timed;
    struct plk_deadline deadline; // used when `timed`
    _Atomic bool queued;          // before_sleep ran: it is in the queue
    _Atomic bool done;
    enum plk_park_result result;
    uintptr_t token;
    int timed_out_calls;
    const void *timed_out_key;
    bool was_last;
};

static bool mark_queued(void *ctx)
{
    struct waiter *w = ctx;
    atomic_store(&w->queued, true);
    return true;
}

static void note_timed_out(void *ctx, const void *key, bool was_last)
{
    struct waiter *w = ctx;
    w->timed_out_calls++;
    w->timed_out_key = key;
    w->was_last = was_last;
}

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    const struct plk_park_ops ops = {
        .before_sleep = mark_queued,
        .timed_out = note_timed_out,
        .ctx = w,
    };
    w->result = plk_park_ex(w->address, &ops, w->timed ? &w->deadline : NULL,
                            w, &w->token);
    atomic_store(&w->done, true);
    return NULL;
}

static bool waiter_queued(const void *arg)
{
    return atomic_load(&((const struct waiter *)arg)->queued);
}

// Starts `w` on `address` (deadline NULL: forever; attr NULL: defaults).
// Returns pthread_create's result; no Check assertions.
static int start_waiter(struct waiter *w, const void *address,
                        const struct plk_deadline *deadline,
                        const pthread_attr_t *attr)
{
    memset(w, 0, sizeof *w);
    w->address = address;
    w->token = ~(uintptr_t)0; // overwritten on OK
    if (deadline) {
        w->timed = true;
        w->deadline = *deadline;
    }
    return pthread_create(&w->thread, attr, waiter_main, w);
}

// Starts `w` on `address` and returns once it is queued.
static void park_waiter(struct waiter *w, const void *address,
                        const struct plk_deadline *deadline)
{
    ck_assert_int_eq(start_waiter(w, address, deadline, NULL), 0);
    ck_assert_msg(poll_until(waiter_queued, w), "waiter never queued");
}

// Parks ws[0..n) on `address`, one after the other: the queue order is theirs.
static void park_waiters(struct waiter *ws, size_t n, const void *address)
{
    for (size_t i = 0; i < n; i++)
        park_waiter(&ws[i], address, NULL);
}

static void join_waiter(struct waiter *w)
{
    join(&w->thread, 1);
}

// Joins `w` and checks that an unpark woke it with `token`.
static void expect_woken(struct waiter *w, uintptr_t token)
{
    join_waiter(w);
    ck_assert_int_eq(w->result, PLK_PARK_OK);
    ck_assert_uint_eq(w->token, token);
    ck_assert_int_eq(w->timed_out_calls, 0);
}

/* ------------------------------------------------------------------------
 * Unparking with a recording callback. The token handed out names the woken
 * waiter (its park_arg), so each waiter can tell it got its own wake-up.
 */
struct unpark_log {
    int calls;
    struct plk_unpark_result seen;
};

static uintptr_t name_woken(void *arg, const struct plk_unpark_result *r)
{
    (void)arg;
    return (uintptr_t)r->park_arg;
}

static uintptr_t log_unpark(void *arg, const struct plk_unpark_result *r)
{
    struct unpark_log *log = arg;
    log->calls++;
    log->seen = *r;
    return name_woken(NULL, r);
}

// unpark_one must wake exactly `w`, reporting `more` waiters left behind.
static void unpark_expect(const void *address, struct waiter *w, bool more)
{
    struct unpark_log log = { 0 };
    ck_assert_uint_eq(plk_unpark_one(address, log_unpark, &log), 1);
    ck_assert_int_eq(log.calls, 1);
    ck_assert_ptr_eq(log.seen.park_arg, w);
    ck_assert_uint_eq(log.seen.unparked, 1);
    ck_assert_int_eq(log.seen.has_more_waiters, more);
    expect_woken(w, (uintptr_t)w);
}

// unpark_one must find nobody, and still run its callback once.
static void unpark_expect_none(const void *address)
{
    struct unpark_log log = { .seen = { .park_arg = &log, .unparked = 9,
                                        .has_more_waiters = true } };
    ck_assert_uint_eq(plk_unpark_one(address, log_unpark, &log), 0);
    ck_assert_int_eq(log.calls, 1);
    ck_assert_ptr_null(log.seen.park_arg);
    ck_assert_uint_eq(log.seen.unparked, 0);
    ck_assert(!log.seen.has_more_waiters);
}

// Wakes order[0..n) one by one from `address`, in that order, then nobody.
static void drain_in_order(const void *address, struct waiter **order, size_t n)
{
    for (size_t k = 0; k < n; k++)
        unpark_expect(address, order[k], k + 1 < n);
    unpark_expect_none(address);
}

/* ------------------------------------------------------------------------
 * Waiters spread over many addresses. A table sized for this many threads
 * has only a few times more buckets than there are addresses, so several
 * pairs of addresses share a bucket (the birthday problem), and whatever is
 * "about an address" (has_more_waiters, was_last, unpark_all) must look at
 * that address only.
 */
#define SPREAD_ADDRESSES 128
#define SPREAD_SECOND_EVERY 3
#define SPREAD_POOL (1u << 16)

/* Fills out[0..n) with distinct addresses scattered pseudo-randomly over a
 * large pool. Evenly spaced addresses would not do: multiplicative hashing
 * spreads an arithmetic progression perfectly, and nothing would collide;
 * random ones collide as in the birthday problem. */
static void scatter_addresses(const void **out, size_t n)
{
    static uint32_t pool[SPREAD_POOL];
    uint32_t x = 0x2545f491; // xorshift32, fixed seed: reproducible
    for (size_t i = 0; i < n; i++) {
        bool fresh;
        do {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            out[i] = &pool[x % SPREAD_POOL];
            fresh = true;
            for (size_t j = 0; j < i; j++)
                fresh &= out[j] != out[i];
        } while (!fresh);
    }
}

/* A first waiter on every address, then a second one on every third
 * address: queue order within a bucket interleaves addresses. */
static const void *spread_addrs[SPREAD_ADDRESSES];
static struct waiter spread_firsts[SPREAD_ADDRESSES];
static struct waiter spread_seconds[SPREAD_ADDRESSES / SPREAD_SECOND_EVERY + 1];

static bool has_second(size_t i)
{
    return i % SPREAD_SECOND_EVERY == 0;
}

static struct waiter *second_of(size_t i)
{
    return &spread_seconds[i / SPREAD_SECOND_EVERY];
}

static void park_spread(void)
{
    scatter_addresses(spread_addrs, SPREAD_ADDRESSES);
    for (size_t i = 0; i < SPREAD_ADDRESSES; i++)
        park_waiter(&spread_firsts[i], spread_addrs[i], NULL);
    for (size_t i = 0; i < SPREAD_ADDRESSES; i += SPREAD_SECOND_EVERY)
        park_waiter(second_of(i), spread_addrs[i], NULL);
}

// Wakes every spread waiter with unpark_all, which must count exactly the
// waiters of each address.
static void release_spread(void)
{
    for (size_t i = 0; i < SPREAD_ADDRESSES; i++) {
        ck_assert_uint_eq(plk_unpark_all(spread_addrs[i]), has_second(i) ? 2 : 1);
        expect_woken(&spread_firsts[i], PLK_TOKEN_NORMAL);
        if (has_second(i))
            expect_woken(second_of(i), PLK_TOKEN_NORMAL);
    }
}

/* ------------------------------------------------------------------------
 * Park: value comparison.
 */

static const size_t sizes[] = { 1, 2, 4, 8 };

/* A 16-byte buffer whose bytes all differ; the parked-on value of size s
 * sits at offset s, naturally aligned but not 8-aligned (except s == 8). */
union buffer {
    uint8_t bytes[16];
    uint64_t align;
};

static void fill_distinct(union buffer *b)
{
    for (int i = 0; i < 16; i++)
        b->bytes[i] = (uint8_t)(0x11 * (i + 1));
}

START_TEST(park_again_when_value_differs)
{
    size_t size = sizes[_i];
    union buffer mem, expected;
    fill_distinct(&mem);
    const void *address = &mem.bytes[size];

    // Differing in the lowest or in the highest compared byte is enough.
    size_t flips[] = { size, 2 * size - 1 };
    for (size_t f = 0; f < 2; f++) {
        expected = mem;
        expected.bytes[flips[f]] ^= 0x80;
        int64_t start = plk_clock_now_ns();
        // With a (long) timeout a wrong sleep shows up as TIMEOUT, not a hang.
        ck_assert_int_eq(plk_park(address, &expected.bytes[size], size,
                                  5 * PLK_NS_PER_SEC, NULL),
                         PLK_PARK_AGAIN);
        ck_assert_int_lt(plk_clock_now_ns() - start, PLK_NS_PER_SEC);
    }
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);
    unpark_expect_none(address);
}
END_TEST

struct plain_park {
    pthread_t thread;
    const void *address;
    const void *expected;
    size_t size;
    enum plk_park_result result;
    _Atomic bool done;
};

static void *plain_park_main(void *arg)
{
    struct plain_park *p = arg;
    p->result = plk_park(p->address, p->expected, p->size, -1, NULL);
    atomic_store(&p->done, true);
    return NULL;
}

START_TEST(park_sleeps_when_value_equal)
{
    size_t size = sizes[_i];
    union buffer mem, expected;
    fill_distinct(&mem);
    // Only `size` bytes count: everything around the value differs.
    memset(&expected, 0, sizeof expected);
    memcpy(&expected.bytes[size], &mem.bytes[size], size);
    struct plain_park p = { .address = &mem.bytes[size],
                            .expected = &expected.bytes[size],
                            .size = size };
    spawn(&p.thread, 1, plain_park_main, &p, 0);
    wait_parked(1);
    sleep_ns(20 * MS);
    ck_assert(!atomic_load(&p.done));

    // parked_threads counts from the entry into park, so the thread may not
    // be queued yet: retry until the unpark finds it.
    int64_t give_up = plk_clock_now_ns() + PATIENCE_NS;
    while (plk_unpark_one(p.address, NULL, NULL) == 0)
        ck_assert_int_lt(plk_clock_now_ns(), give_up);
    join(&p.thread, 1);
    ck_assert_int_eq(p.result, PLK_PARK_OK);
}
END_TEST

/* ------------------------------------------------------------------------
 * Park: timeouts.
 */

START_TEST(park_times_out_after_relative_timeout)
{
    uint32_t word = 7, expected = 7;
    int64_t start = plk_clock_now_ns();
    ck_assert_int_eq(plk_park(&word, &expected, 4, 50 * MS, NULL),
                     PLK_PARK_TIMEOUT);
    int64_t elapsed = plk_clock_now_ns() - start;
    ck_assert_int_ge(elapsed, 50 * MS);
    ck_assert_int_lt(elapsed, 5 * PLK_NS_PER_SEC);
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);
    unpark_expect_none(&word); // it left the queue
}
END_TEST

START_TEST(park_with_zero_timeout_times_out_at_once)
{
    uint32_t word = 7, expected = 7;
    int64_t start = plk_clock_now_ns();
    ck_assert_int_eq(plk_park(&word, &expected, 4, 0, NULL), PLK_PARK_TIMEOUT);
    ck_assert_int_lt(plk_clock_now_ns() - start, PLK_NS_PER_SEC);
    unpark_expect_none(&word);
}
END_TEST

START_TEST(park_ex_times_out_at_absolute_deadline)
{
    clockid_t clock = clocks[_i];
    uint32_t word = 0;
    const struct plk_park_ops no_ops = { 0 };
    struct plk_deadline d = deadline_in(clock, 50 * MS);
    int64_t start = plk_clock_now_ns();
    ck_assert_int_eq(plk_park_ex(&word, &no_ops, &d, NULL, NULL),
                     PLK_PARK_TIMEOUT);
    ck_assert_int_ge(plk_clock_now_ns_on(clock), ts_ns(&d.when));
    ck_assert_int_lt(plk_clock_now_ns() - start, 5 * PLK_NS_PER_SEC);
    unpark_expect_none(&word);
}
END_TEST

START_TEST(park_ex_negative_deadline_times_out_at_once)
{
    clockid_t clock = clocks[_i];
    uint32_t word = 0;
    const struct plk_park_ops no_ops = { 0 };
    const struct timespec past[] = { { -1, 0 }, { -1, 999999999 },
                                     { -1000000, 5 } };
    for (size_t i = 0; i < sizeof past / sizeof past[0]; i++) {
        struct plk_deadline d = { .when = past[i], .clock = clock };
        int64_t start = plk_clock_now_ns();
        ck_assert_int_eq(plk_park_ex(&word, &no_ops, &d, NULL, NULL),
                         PLK_PARK_TIMEOUT);
        ck_assert_int_lt(plk_clock_now_ns() - start, PLK_NS_PER_SEC);
    }
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);
    unpark_expect_none(&word);
}
END_TEST

START_TEST(timed_out_reports_was_last)
{
    static uint32_t word;
    struct waiter forever, short1, short2;
    park_waiter(&forever, &word, NULL);

    // Another waiter stays behind: not the last.
    struct plk_deadline d = deadline_in(CLOCK_MONOTONIC, 50 * MS);
    park_waiter(&short1, &word, &d);
    join_waiter(&short1);
    ck_assert_int_eq(short1.result, PLK_PARK_TIMEOUT);
    ck_assert_int_ge(plk_clock_now_ns(), ts_ns(&d.when));
    ck_assert_int_eq(short1.timed_out_calls, 1);
    ck_assert_ptr_eq(short1.timed_out_key, &word);
    ck_assert(!short1.was_last);

    // The one that stayed is still first in line, and then nobody.
    unpark_expect(&word, &forever, false);

    // Alone on the address: the last.
    d = deadline_in(CLOCK_MONOTONIC, 50 * MS);
    park_waiter(&short2, &word, &d);
    join_waiter(&short2);
    ck_assert_int_eq(short2.result, PLK_PARK_TIMEOUT);
    ck_assert_int_eq(short2.timed_out_calls, 1);
    ck_assert_ptr_eq(short2.timed_out_key, &word);
    ck_assert(short2.was_last);
}
END_TEST

START_TEST(timed_out_was_last_ignores_other_addresses)
{
    // Each timed waiter is alone on its address, though bucket-mates (other
    // timed waiters, or bystanders parked for good) may share its bucket.
    enum { EACH = SPREAD_ADDRESSES / 2 };
    static const void *addrs[2 * EACH];
    static struct waiter bystanders[EACH], timed[EACH];
    scatter_addresses(addrs, 2 * EACH);
    for (size_t i = 0; i < EACH; i++)
        park_waiter(&bystanders[i], addrs[i], NULL);
    for (size_t i = 0; i < EACH; i++) {
        struct plk_deadline d = deadline_in(CLOCK_MONOTONIC, 50 * MS);
        park_waiter(&timed[i], addrs[EACH + i], &d);
    }
    for (size_t i = 0; i < EACH; i++) {
        join_waiter(&timed[i]);
        ck_assert_int_eq(timed[i].result, PLK_PARK_TIMEOUT);
        ck_assert_int_eq(timed[i].timed_out_calls, 1);
        ck_assert_ptr_eq(timed[i].timed_out_key, addrs[EACH + i]);
        ck_assert(timed[i].was_last);
    }
    for (size_t i = 0; i < EACH; i++)
        unpark_expect(addrs[i], &bystanders[i], false);
}
END_TEST

/* ------------------------------------------------------------------------
 * Park: callbacks.
 */

struct park_probe {
    int validate_calls;
    int before_sleep_calls;
    int timed_out_calls;
};

static bool refuse(void *ctx)
{
    ((struct park_probe *)ctx)->validate_calls++;
    return false;
}

static bool count_before_sleep(void *ctx)
{
    ((struct park_probe *)ctx)->before_sleep_calls++;
    return true;
}

static void count_timed_out(void *ctx, const void *key, bool was_last)
{
    (void)key;
    (void)was_last;
    ((struct park_probe *)ctx)->timed_out_calls++;
}

START_TEST(validate_false_gives_again_without_sleeping)
{
    static uint32_t word;
    struct park_probe probe = { 0 };
    const struct plk_park_ops ops = { .validate = refuse,
                                      .before_sleep = count_before_sleep,
                                      .timed_out = count_timed_out,
                                      .ctx = &probe };
    uintptr_t token = 12345;
    // No deadline: a sleep here would hang until the Check timeout.
    ck_assert_int_eq(plk_park_ex(&word, &ops, NULL, NULL, &token),
                     PLK_PARK_AGAIN);
    ck_assert_int_eq(probe.validate_calls, 1);
    ck_assert_int_eq(probe.before_sleep_calls, 0);
    ck_assert_int_eq(probe.timed_out_calls, 0);
    ck_assert_uint_eq(token, 12345); // only OK writes the token
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);
    unpark_expect_none(&word); // never queued
}
END_TEST

struct self_unpark {
    const void *address;
    size_t found;
    struct unpark_log log;
};

static bool unpark_own_address(void *ctx)
{
    struct self_unpark *s = ctx;
    s->found = plk_unpark_one(s->address, log_unpark, &s->log);
    return true;
}

START_TEST(before_sleep_runs_after_enqueue)
{
    // before_sleep unparks the very address we park on: it must find us
    // queued (and not deadlock on the bucket lock), and our sleep must then
    // end at once with that token rather than at the deadline.
    static uint32_t word;
    struct self_unpark s = { .address = &word };
    const struct plk_park_ops ops = { .before_sleep = unpark_own_address,
                                      .ctx = &s };
    struct plk_deadline d = deadline_in(CLOCK_MONOTONIC, 5 * PLK_NS_PER_SEC);
    uintptr_t token = 0;
    int marker;
    ck_assert_int_eq(plk_park_ex(&word, &ops, &d, &marker, &token),
                     PLK_PARK_OK);
    ck_assert_uint_eq(s.found, 1);
    ck_assert_ptr_eq(s.log.seen.park_arg, &marker);
    ck_assert(!s.log.seen.has_more_waiters);
    ck_assert_uint_eq(token, (uintptr_t)&marker);
}
END_TEST

// before_sleep that refuses, optionally after unparking its own address.
struct refuser {
    const void *address;
    bool unpark_first;
    size_t timed_out_calls;
};

static bool refuse_sleep(void *ctx)
{
    struct refuser *r = ctx;
    if (r->unpark_first)
        plk_unpark_one(r->address, NULL, NULL);
    return false;
}

static void count_refused_timeout(void *ctx, const void *key, bool was_last)
{
    (void)key;
    (void)was_last;
    ((struct refuser *)ctx)->timed_out_calls++;
}

START_TEST(before_sleep_refusal_leaves_the_queue)
{
    // Refused: the thread leaves the queue (timed_out runs) without
    // sleeping, and nothing stays parked on the address.
    static uint32_t word;
    struct refuser r = { .address = &word };
    const struct plk_park_ops ops = { .before_sleep = refuse_sleep,
                                      .timed_out = count_refused_timeout,
                                      .ctx = &r };
    ck_assert_int_eq(plk_park_ex(&word, &ops, NULL, NULL, NULL), PLK_PARK_REFUSED);
    ck_assert_uint_eq(r.timed_out_calls, 1);
    ck_assert_uint_eq(plk_unpark_one(&word, NULL, NULL), 0);
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);
}
END_TEST

START_TEST(before_sleep_refusal_after_claim_reports_ok)
{
    // Claimed before refusing: the wake-up was given to us, so the park
    // reports OK (with the unparker's token) rather than losing it.
    static uint32_t word;
    struct refuser r = { .address = &word, .unpark_first = true };
    const struct plk_park_ops ops = { .before_sleep = refuse_sleep,
                                      .timed_out = count_refused_timeout,
                                      .ctx = &r };
    uintptr_t token = 99;
    ck_assert_int_eq(plk_park_ex(&word, &ops, NULL, NULL, &token), PLK_PARK_OK);
    ck_assert_uint_eq(token, PLK_TOKEN_NORMAL);
    ck_assert_uint_eq(r.timed_out_calls, 0);
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);
}
END_TEST

START_TEST(wakeup_right_after_before_sleep_is_not_lost)
{
    // The unpark races with the waiter going to sleep (before_sleep just
    // told us it is queued). A lost wake-up shows as TIMEOUT.
    static uint32_t word;
    for (int i = 0; i < 200 / SLOWDOWN; i++) {
        struct waiter w;
        struct plk_deadline d = deadline_in(CLOCK_MONOTONIC, 5 * PLK_NS_PER_SEC);
        park_waiter(&w, &word, &d);
        unpark_expect(&word, &w, false);
    }
}
END_TEST

/* ------------------------------------------------------------------------
 * Unpark.
 */

START_TEST(unpark_without_waiter_runs_callback)
{
    static uint32_t word;
    unpark_expect_none(&word);
    ck_assert_uint_eq(plk_unpark_one(&word, NULL, NULL), 0);
    ck_assert_uint_eq(plk_unpark_all(&word), 0);
}
END_TEST

START_TEST(unpark_one_reports_park_arg_and_exact_more)
{
    static uint32_t word;
    struct waiter ws[3];
    park_waiters(ws, 3, &word);
    struct waiter *order[] = { &ws[0], &ws[1], &ws[2] };
    drain_in_order(&word, order, 3); // has_more: true, true, false
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);
}
END_TEST

static uintptr_t give_token(void *arg, const struct plk_unpark_result *r)
{
    (void)r;
    return *(const uintptr_t *)arg;
}

static const uintptr_t tokens[] = { PLK_TOKEN_HANDOFF, PLK_TOKEN_NORMAL,
                                    0xdeadbeef, UINTPTR_MAX };

START_TEST(unpark_delivers_token)
{
    static uint32_t word;
    struct waiter w;
    park_waiter(&w, &word, NULL);
    ck_assert_uint_eq(plk_unpark_one(&word, give_token, (void *)&tokens[_i]), 1);
    expect_woken(&w, tokens[_i]);
}
END_TEST

enum { FIFO_WAITERS = 8 };

// Parks ws[] on `address` in reverse array order, so that FIFO order differs
// from address order; order[] receives the queue order.
static void park_reversed(struct waiter ws[FIFO_WAITERS],
                          struct waiter *order[FIFO_WAITERS], const void *address)
{
    for (size_t k = 0; k < FIFO_WAITERS; k++) {
        order[k] = &ws[FIFO_WAITERS - 1 - k];
        park_waiter(order[k], address, NULL);
    }
}

START_TEST(unpark_one_wakes_in_fifo_order)
{
    static uint32_t word;
    struct waiter ws[FIFO_WAITERS], *order[FIFO_WAITERS];
    park_reversed(ws, order, &word);
    drain_in_order(&word, order, FIFO_WAITERS);
}
END_TEST

START_TEST(growth_keeps_fifo_order)
{
    // Bystanders on other addresses make the table grow (rehash) while
    // these wait; their order must survive. Only one growth: a second one
    // could undo the first one's mistake.
    static uint32_t word;
    static const void *addrs[SPREAD_ADDRESSES];
    static struct waiter bystanders[SPREAD_ADDRESSES];
    struct waiter ws[FIFO_WAITERS], *order[FIFO_WAITERS];
    size_t initial = plk_parking_lot_table_size();
    park_reversed(ws, order, &word);
    scatter_addresses(addrs, SPREAD_ADDRESSES);
    size_t n = 0;
    while (plk_parking_lot_table_size() == initial) {
        ck_assert_msg(n < SPREAD_ADDRESSES, "the table never grew");
        park_waiter(&bystanders[n], addrs[n], NULL);
        n++;
    }
    drain_in_order(&word, order, FIFO_WAITERS);
    for (size_t i = 0; i < n; i++)
        unpark_expect(addrs[i], &bystanders[i], false);
}
END_TEST

START_TEST(unpark_all_wakes_only_that_address)
{
    enum { ON_A = 5, ON_B = 3 };
    static uint32_t a, b;
    struct waiter wa[ON_A], wb[ON_B];
    // Interleaved, so both addresses' waiters are mixed in time.
    for (size_t i = 0; i < ON_A; i++) {
        park_waiter(&wa[i], &a, NULL);
        if (i < ON_B)
            park_waiter(&wb[i], &b, NULL);
    }
    ck_assert_uint_eq(plk_unpark_all(&a), ON_A);
    for (size_t i = 0; i < ON_A; i++)
        expect_woken(&wa[i], PLK_TOKEN_NORMAL);
    // Those on b are still parked, in their order.
    wait_parked(ON_B);
    for (size_t i = 0; i < ON_B; i++)
        ck_assert(!atomic_load(&wb[i].done));
    ck_assert_uint_eq(plk_unpark_all(&a), 0);
    struct waiter *order[] = { &wb[0], &wb[1], &wb[2] };
    drain_in_order(&b, order, ON_B);
}
END_TEST

START_TEST(has_more_counts_only_same_address)
{
    park_spread();
    for (size_t i = 0; i < SPREAD_ADDRESSES; i++) {
        unpark_expect(spread_addrs[i], &spread_firsts[i], has_second(i));
        if (has_second(i))
            unpark_expect(spread_addrs[i], second_of(i), false);
        unpark_expect_none(spread_addrs[i]);
    }
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);
}
END_TEST

START_TEST(unpark_all_counts_only_same_address)
{
    park_spread();
    release_spread();
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);
}
END_TEST

/* ------------------------------------------------------------------------
 * Requeue.
 */

enum { REQUEUE_FROM = 4 }; // waiters parked on `from`; one more waits on `to`

struct requeue_case {
    enum plk_requeue_op op;
    size_t unparked;
    size_t requeued;
    bool has_more; // about `from`
};

static const struct requeue_case requeue_cases[] = {
    { PLK_REQUEUE_ABORT, 0, 0, false },
    { PLK_REQUEUE_UNPARK_ONE, 1, 0, true },
    { PLK_REQUEUE_REQUEUE_ONE, 0, 1, true },
    { PLK_REQUEUE_UNPARK_ONE_REQUEUE_REST, 1, REQUEUE_FROM - 1, false },
    { PLK_REQUEUE_REQUEUE_ALL, 0, REQUEUE_FROM, false },
    { PLK_REQUEUE_UNPARK_ALL, REQUEUE_FROM, 0, false },
};

struct requeue_probe {
    enum plk_requeue_op op; // what validate answers
    int validate_calls;
    int callback_calls;
    enum plk_requeue_op seen_op;
    struct plk_unpark_result seen;
};

static enum plk_requeue_op choose_op(void *arg)
{
    struct requeue_probe *p = arg;
    p->validate_calls++;
    return p->op;
}

static uintptr_t log_requeue(void *arg, enum plk_requeue_op op,
                             const struct plk_unpark_result *r)
{
    struct requeue_probe *p = arg;
    p->callback_calls++;
    p->seen_op = op;
    p->seen = *r;
    return name_woken(NULL, r);
}

struct requeue_spy {
    int validate_calls;
    int callback_calls;
    enum plk_requeue_op callback_op;
    struct plk_unpark_result seen;
};

static enum plk_requeue_op spy_validate(void *arg)
{
    ((struct requeue_spy *)arg)->validate_calls++;
    return PLK_REQUEUE_REQUEUE_ALL;
}

static uintptr_t spy_callback(void *arg, enum plk_requeue_op op,
                                const struct plk_unpark_result *r)
{
    struct requeue_spy *p = arg;
    p->callback_calls++;
    p->callback_op = op;
    p->seen = *r;
    return PLK_TOKEN_NORMAL;
}

START_TEST(requeue_without_waiters_skips_validate)
{
    // validate may trust state only a parked thread vouches for (the cond
    // dereferences the mutex it recorded): with nobody on `from` it must not
    // run; the callback still does, with ABORT and an empty result.
    static uint32_t from, to;
    struct requeue_spy p = { 0 };
    struct plk_unpark_result r =
        plk_unpark_requeue(&from, &to, spy_validate, spy_callback, &p);
    ck_assert_int_eq(p.validate_calls, 0);
    ck_assert_int_eq(p.callback_calls, 1);
    ck_assert_int_eq(p.callback_op, PLK_REQUEUE_ABORT);
    ck_assert_uint_eq(p.seen.unparked + p.seen.requeued, 0);
    ck_assert(!p.seen.has_more_waiters);
    ck_assert_uint_eq(r.unparked + r.requeued, 0);
}
END_TEST

START_TEST(requeue_applies_op)
{
    const struct requeue_case *c = &requeue_cases[_i];
    static uint32_t from, to;
    struct waiter on_to, ws[REQUEUE_FROM];
    park_waiter(&on_to, &to, NULL);
    park_waiters(ws, REQUEUE_FROM, &from);

    struct requeue_probe probe = { .op = c->op };
    struct plk_unpark_result r =
        plk_unpark_requeue(&from, &to, choose_op, log_requeue, &probe);
    ck_assert_int_eq(probe.validate_calls, 1);
    ck_assert_uint_eq(r.unparked, c->unparked);
    ck_assert_uint_eq(r.requeued, c->requeued);
    if (c->op != PLK_REQUEUE_ABORT) {
        ck_assert_int_eq(r.has_more_waiters, c->has_more);
        ck_assert_int_eq(probe.callback_calls, 1);
        ck_assert_int_eq(probe.seen_op, c->op);
        ck_assert_uint_eq(probe.seen.unparked, c->unparked);
        ck_assert_uint_eq(probe.seen.requeued, c->requeued);
        ck_assert_int_eq(probe.seen.has_more_waiters, c->has_more);
        ck_assert_ptr_eq(probe.seen.park_arg, c->unparked ? &ws[0] : NULL);
    }

    // Woken: the first `unparked`, all with the callback's token (which
    // names the first). Moved: the next `requeued`, behind `to`'s own
    // waiter. The rest stays on `from`. Each queue drains in FIFO order.
    size_t k = 0;
    for (; k < c->unparked; k++)
        expect_woken(&ws[k], (uintptr_t)&ws[0]);
    struct waiter *to_order[REQUEUE_FROM + 1] = { &on_to };
    size_t n_to = 1;
    for (; k < c->unparked + c->requeued; k++)
        to_order[n_to++] = &ws[k];
    struct waiter *from_order[REQUEUE_FROM];
    size_t n_from = 0;
    for (; k < REQUEUE_FROM; k++)
        from_order[n_from++] = &ws[k];
    drain_in_order(&to, to_order, n_to);
    drain_in_order(&from, from_order, n_from);
}
END_TEST

START_TEST(requeued_waiter_times_out_on_new_address)
{
    static uint32_t from, to;
    struct waiter on_to, moved;
    park_waiter(&on_to, &to, NULL);
    // Long enough that the requeue below surely comes first.
    struct plk_deadline d = deadline_in(CLOCK_MONOTONIC, 500 * MS);
    park_waiter(&moved, &from, &d);
    struct requeue_probe probe = { .op = PLK_REQUEUE_REQUEUE_ALL };
    struct plk_unpark_result r =
        plk_unpark_requeue(&from, &to, choose_op, NULL, &probe);
    ck_assert_uint_eq(r.requeued, 1);

    // It times out on `to`, where on_to still waits: not the last there,
    // even though `from` is empty.
    join_waiter(&moved);
    ck_assert_int_eq(moved.result, PLK_PARK_TIMEOUT);
    ck_assert_int_ge(plk_clock_now_ns(), ts_ns(&d.when));
    ck_assert_int_eq(moved.timed_out_calls, 1);
    ck_assert_ptr_eq(moved.timed_out_key, &to);
    ck_assert(!moved.was_last);
    unpark_expect(&to, &on_to, false);
    unpark_expect_none(&from);
}
END_TEST

/* Two threads requeue everything back and forth between two addresses in
 * opposite directions while waiters stay parked: the bucket pair must be
 * locked in a consistent order (a deadlock trips the Check timeout), and no
 * waiter may get lost or duplicated. */
struct ping_pong {
    const void *from;
    const void *to;
    int rounds;
};

static enum plk_requeue_op requeue_all(void *arg)
{
    (void)arg;
    return PLK_REQUEUE_REQUEUE_ALL;
}

static void *ping_pong_main(void *arg)
{
    struct ping_pong *p = arg;
    for (int i = 0; i < p->rounds; i++)
        plk_unpark_requeue(p->from, p->to, requeue_all, NULL, NULL);
    return NULL;
}

START_TEST(opposite_requeues_keep_every_waiter)
{
    enum { N = 6 };
    static uint32_t a, b;
    struct waiter ws[N];
    park_waiters(ws, N, &a);
    struct ping_pong there = { &a, &b, 20000 / SLOWDOWN };
    struct ping_pong back = { &b, &a, 20000 / SLOWDOWN };
    pthread_t t1, t2;
    spawn(&t1, 1, ping_pong_main, &there, 0);
    spawn(&t2, 1, ping_pong_main, &back, 0);
    join(&t1, 1);
    join(&t2, 1);
    ck_assert_uint_eq(plk_unpark_all(&a) + plk_unpark_all(&b), N);
    for (size_t i = 0; i < N; i++)
        expect_woken(&ws[i], PLK_TOKEN_NORMAL);
}
END_TEST

/* ------------------------------------------------------------------------
 * Table growth under load.
 */

#define GROWTH_THREADS 96
#define GROWTH_ROUNDS (20 / SLOWDOWN)

/* One thread parking GROWTH_ROUNDS times on its own address. */
struct churner {
    pthread_t thread;
    uint32_t *address;
    _Atomic int queued;  // times its before_sleep ran
    int woken;           // OK results carrying its own token
    int bad;             // any other result or token
};

static bool count_queued(void *ctx)
{
    atomic_fetch_add(&((struct churner *)ctx)->queued, 1);
    return true;
}

static void *churner_main(void *arg)
{
    struct churner *c = arg;
    const struct plk_park_ops ops = { .before_sleep = count_queued, .ctx = c };
    for (int r = 0; r < GROWTH_ROUNDS; r++) {
        uintptr_t token = 0;
        if (plk_park_ex(c->address, &ops, NULL, c, &token) == PLK_PARK_OK &&
            token == (uintptr_t)c)
            c->woken++;
        else
            c->bad++;
    }
    return NULL;
}

static bool all_queued_once(const void *arg)
{
    const struct churner *cs = arg;
    for (size_t i = 0; i < GROWTH_THREADS; i++)
        if (atomic_load(&cs[i].queued) == 0)
            return false;
    return true;
}

START_TEST(table_grows_while_threads_park)
{
    static uint32_t words[GROWTH_THREADS];
    static struct churner cs[GROWTH_THREADS];
    size_t initial = plk_parking_lot_table_size();

    // All start at once, so the table grows while others enqueue.
    for (size_t i = 0; i < GROWTH_THREADS; i++) {
        cs[i].address = &words[i];
        spawn(&cs[i].thread, 1, churner_main, &cs[i], 0);
    }
    ck_assert_msg(poll_until(all_queued_once, cs), "not all threads queued");
    size_t grown = plk_parking_lot_table_size();
    ck_assert_uint_ge(grown, 3 * GROWTH_THREADS);
    ck_assert_uint_ge(grown, initial);

    // Sweep the addresses, waking whoever is parked, while the woken park
    // again, until every round of every thread was woken exactly once.
    int claimed[GROWTH_THREADS] = { 0 };
    int total = 0;
    int64_t give_up = plk_clock_now_ns() + 6 * PATIENCE_NS;
    while (total < GROWTH_THREADS * GROWTH_ROUNDS) {
        ck_assert_msg(plk_clock_now_ns() < give_up, "only %d wakes", total);
        for (size_t i = 0; i < GROWTH_THREADS; i++) {
            if (claimed[i] < GROWTH_ROUNDS &&
                plk_unpark_one(&words[i], name_woken, NULL) == 1) {
                claimed[i]++;
                total++;
            }
        }
        sched_yield();
    }
    for (size_t i = 0; i < GROWTH_THREADS; i++) {
        join(&cs[i].thread, 1);
        ck_assert_int_eq(cs[i].bad, 0);
        ck_assert_int_eq(cs[i].woken, GROWTH_ROUNDS);
        ck_assert_int_eq(claimed[i], GROWTH_ROUNDS);
    }
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);
    ck_assert_uint_eq(plk_parking_lot_table_size(), grown); // never shrinks
}
END_TEST

/* ------------------------------------------------------------------------
 * Timeouts racing with unparks.
 */

#define RACE_WAITERS 6
#define RACE_UNPARKERS 2
#define RACE_MS 1000

/* Waiters park with tiny timeouts while unparkers hammer unpark_one. Every
 * wake-up an unparker claimed (unpark_one returned 1) must surface as exactly
 * one OK carrying that token, even when the waiter's deadline passed at the
 * same moment. */
struct race {
    uint32_t word;
    _Atomic bool stop;
    _Atomic uint64_t next_token;
    // Unparker side.
    _Atomic uint64_t claimed, claimed_token_sum, callback_unparked;
    // Waiter side.
    _Atomic uint64_t ok, ok_token_sum, timeouts, again;
};

static uintptr_t hand_numbered_token(void *arg, const struct plk_unpark_result *r)
{
    struct race *race = arg;
    if (r->unparked == 0)
        return PLK_TOKEN_NORMAL;
    uint64_t token = atomic_fetch_add(&race->next_token, 1) + 1;
    atomic_fetch_add(&race->callback_unparked, 1);
    atomic_fetch_add(&race->claimed_token_sum, token);
    return (uintptr_t)token;
}

static void *race_unparker(void *arg)
{
    struct race *race = arg;
    while (!atomic_load(&race->stop))
        if (plk_unpark_one(&race->word, hand_numbered_token, race) == 1)
            atomic_fetch_add(&race->claimed, 1);
    return NULL;
}

static void *race_waiter(void *arg)
{
    struct race *race = arg;
    const struct plk_park_ops no_ops = { 0 };
    for (uint64_t i = 0; !atomic_load(&race->stop); i++) {
        // 0 to 99 us: many deadlines expire right as an unpark arrives.
        struct plk_deadline d = plk_deadline_after_ns((int64_t)(i % 100) * US);
        uintptr_t token = 0;
        switch (plk_park_ex(&race->word, &no_ops, &d, NULL, &token)) {
        case PLK_PARK_OK:
            atomic_fetch_add(&race->ok, 1);
            atomic_fetch_add(&race->ok_token_sum, token);
            break;
        case PLK_PARK_TIMEOUT:
            atomic_fetch_add(&race->timeouts, 1);
            break;
        case PLK_PARK_AGAIN:
            atomic_fetch_add(&race->again, 1);
            break;
        case PLK_PARK_REFUSED:
            ck_abort_msg("REFUSED without a before_sleep");
        case PLK_PARK_BUSY:
            ck_abort_msg("BUSY without a signal handler waiting");
        }
    }
    return NULL;
}

START_TEST(timeout_never_loses_claimed_wakeup)
{
    static struct race race;
    pthread_t waiters[RACE_WAITERS], unparkers[RACE_UNPARKERS];
    spawn(waiters, RACE_WAITERS, race_waiter, &race, 0);
    spawn(unparkers, RACE_UNPARKERS, race_unparker, &race, 0);
    sleep_ns(RACE_MS * MS);
    atomic_store(&race.stop, true);
    join(unparkers, RACE_UNPARKERS);
    join(waiters, RACE_WAITERS);

    uint64_t claimed = atomic_load(&race.claimed);
    ck_assert_uint_eq(atomic_load(&race.again), 0);
    ck_assert_uint_eq(atomic_load(&race.callback_unparked), claimed);
    ck_assert_uint_eq(atomic_load(&race.ok), claimed);
    ck_assert_uint_eq(atomic_load(&race.ok_token_sum),
                      atomic_load(&race.claimed_token_sum));
    // Both outcomes happened, or the race was not exercised.
    ck_assert_uint_gt(claimed, 0);
    ck_assert_uint_gt(atomic_load(&race.timeouts), 0);
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);
}
END_TEST

/* ------------------------------------------------------------------------
 * Fork.
 */

#define FORKS (20 / SLOWDOWN)

#define CHURNERS 2

/* Background threads that keep bucket locks busy during the forks: each
 * parks briefly on a shared word and unparks the other. */
struct churn {
    uint32_t word;
    _Atomic int started;
    _Atomic bool stop;
};

static void *churn_main(void *arg)
{
    struct churn *c = arg;
    const struct plk_park_ops no_ops = { 0 };
    atomic_fetch_add(&c->started, 1);
    while (!atomic_load(&c->stop)) {
        struct plk_deadline d = plk_deadline_after_ns(200 * US);
        plk_park_ex(&c->word, &no_ops, &d, NULL, NULL);
        plk_unpark_one(&c->word, NULL, NULL);
    }
    return NULL;
}

static bool churners_started(const void *arg)
{
    return atomic_load(&((const struct churn *)arg)->started) == CHURNERS;
}

// Exit codes of the forked child, naming the first check that failed.
enum {
    CHILD_OK = 0,
    CHILD_STILL_PARKED = 10,
    CHILD_GHOST_WOKEN,
    CHILD_NO_STACK,
    CHILD_NO_THREAD,
    CHILD_NOT_QUEUED,
    CHILD_NOT_FOUND,
    CHILD_JOIN,
    CHILD_BAD_RESULT,
    CHILD_LEFT_PARKED,
};

#define CHILD_STACK (1u << 20)

// In the child: the parent's parked threads are gone; a new thread parks
// and is unparked normally.
// explicit_reset: the child calls the atfork-style reset; otherwise the
// table must notice the fork by itself on first use (MADV_WIPEONFORK).
static int child_checks(const void *parent_address, const void *address,
                        bool explicit_reset)
{
    if (explicit_reset)
        plk_parking_lot_fork_child();
    if (plk_parking_lot_parked_threads() != 0)
        return CHILD_STILL_PARKED;
    if (plk_unpark_one(parent_address, NULL, NULL) != 0)
        return CHILD_GHOST_WOKEN;

    // A stack of our own: glibc would otherwise recycle a vanished parent
    // thread's stack, and with it a pthread_t that TSan still remembers
    // ("dup thread with used id").
    void *stack = mmap(NULL, CHILD_STACK, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    pthread_attr_t attr;
    if (stack == MAP_FAILED || pthread_attr_init(&attr) != 0 ||
        pthread_attr_setstack(&attr, stack, CHILD_STACK) != 0)
        return CHILD_NO_STACK;
    struct waiter w;
    if (start_waiter(&w, address, NULL, &attr) != 0)
        return CHILD_NO_THREAD;
    if (!poll_until(waiter_queued, &w))
        return CHILD_NOT_QUEUED;
    if (plk_unpark_one(address, name_woken, NULL) != 1)
        return CHILD_NOT_FOUND;
    if (pthread_join(w.thread, NULL) != 0)
        return CHILD_JOIN;
    if (w.result != PLK_PARK_OK || w.token != (uintptr_t)&w)
        return CHILD_BAD_RESULT;
    if (plk_parking_lot_parked_threads() != 0)
        return CHILD_LEFT_PARKED;
    return CHILD_OK;
}

static void fork_and_check_child(const void *parent_address, const void *address,
                                 bool explicit_reset)
{
    // No prepare step: other threads keep parking and unparking right up
    // to the fork, possibly holding bucket locks.
    pid_t pid = fork();
    if (pid == 0)
        _exit(child_checks(parent_address, address, explicit_reset));
    ck_assert_int_ne(pid, -1);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status), "child died (status %#x)", status);
    ck_assert_msg(WEXITSTATUS(status) == CHILD_OK, "child check %d failed",
                  WEXITSTATUS(status));
}

START_TEST(fork_with_parked_threads)
{
    enum { PARKED = 2 };
    static uint32_t parked_word, child_word;
    static struct churn churn;
    struct waiter ws[PARKED];
    pthread_t churners[CHURNERS];
    park_waiters(ws, PARKED, &parked_word);
    spawn(churners, CHURNERS, churn_main, &churn, 0);
    // Only fork once the churners run their own code: while a thread starts
    // up, the ASan runtime (GCC 12) mallocs, and a child forked then
    // inherits its allocator lock held and deadlocks creating a thread.
    ck_assert(poll_until(churners_started, &churn));

    for (int i = 0; i < FORKS; i++)
        fork_and_check_child(&parked_word, &child_word, i % 2 == 0);

    atomic_store(&churn.stop, true);
    join(churners, CHURNERS);
    // The parent's waiters survived every fork, still in order.
    struct waiter *order[] = { &ws[0], &ws[1] };
    drain_in_order(&parked_word, order, PARKED);
}
END_TEST

/* ------------------------------------------------------------------------
 * Stuck buckets: the signal-handler rules (parking_lot.h, "Signal handlers").
 *
 * The stuck holder (struct stuck) is in helpers.h.
 */

// The bucket of `address` in the current table, by the lot's Fibonacci hash
// (parking_lot.c): only to pick addresses that share a bucket, or do not.
static size_t bucket_of(const void *address)
{
    unsigned log2 = (unsigned)__builtin_ctzll(plk_parking_lot_table_size());
    return (size_t)(((uint64_t)(uintptr_t)address * 0x9E3779B97F4A7C15ull) >>
                    (64 - log2));
}

#define BUCKET_POOL (1u << 14)
static uint32_t bucket_pool[BUCKET_POOL];

// The `nth` (from 0) address of the pool other than `a` that is in a's
// bucket (same) or not (!same).
static const void *nth_address_near(const void *a, bool same, size_t nth)
{
    for (size_t i = 0; i < BUCKET_POOL; i++) {
        const void *x = &bucket_pool[i];
        if (x != a && (bucket_of(x) == bucket_of(a)) == same && nth-- == 0)
            return x;
    }
    ck_abort_msg("no address %s the bucket of %p", same ? "in" : "out of", a);
    return NULL;
}

static const void *bucket_mate(const void *a)
{
    return nth_address_near(a, true, 0);
}

static const void *elsewhere(const void *a, size_t nth)
{
    return nth_address_near(a, false, nth);
}

// An address of the pool in bucket `k` of the current table. Two buckets
// are locked together in table order: this picks which comes first.
static const void *address_in_bucket(size_t k)
{
    for (size_t i = 0; i < BUCKET_POOL; i++)
        if (bucket_of(&bucket_pool[i]) == k)
            return &bucket_pool[i];
    ck_abort_msg("no address in bucket %zu", k);
    return NULL;
}

static bool waiter_done(const void *arg)
{
    return atomic_load(&((const struct waiter *)arg)->done);
}

// `w` is woken (within PATIENCE_NS) with `token`.
static void await_woken(struct waiter *w, uintptr_t token)
{
    ck_assert_msg(poll_until(waiter_done, w), "waiter never woken");
    expect_woken(w, token);
}

// `w` stays parked a while: nothing that could wake it is on its way. (It
// cannot pass by being slow: a wrong wake-up only makes it fail.)
static void expect_still_parked(struct waiter *w)
{
    sleep_ns(20 * MS);
    ck_assert(!atomic_load(&w->done));
}

/* One bucket operation, run by a thread of its own against a stuck bucket. */
enum stuck_op { OP_PARK, OP_UNPARK_ONE, OP_UNPARK_ALL, OP_REQUEUE, N_OPS };
static const char *const stuck_op_names[N_OPS] = { "park", "unpark_one",
                                                   "unpark_all", "requeue" };

// When the test announces a waiting nested handler.
enum nested_when { NESTED_BEFORE, NESTED_WHILE_WAITING, NESTED_NEVER, N_WHEN };
static const char *const nested_when_names[N_WHEN] = { "before", "while waiting",
                                                       "never" };

#define OP_TOKEN ((uintptr_t)0x5eed)

struct stuck_call {
    pthread_t thread;
    enum stuck_op op;
    const void *address;
    const void *to; // requeue only
    _Atomic bool done;
    // Valid once done.
    enum plk_park_result park;
    size_t unparked;
    struct plk_unpark_result requeue;
    int validate_calls;
    int callback_calls;
};

static bool call_validate(void *ctx)
{
    ((struct stuck_call *)ctx)->validate_calls++;
    return false;
}

static uintptr_t call_fn(void *arg, const struct plk_unpark_result *r)
{
    (void)r;
    ((struct stuck_call *)arg)->callback_calls++;
    return OP_TOKEN;
}

static enum plk_requeue_op call_requeue_validate(void *arg)
{
    ((struct stuck_call *)arg)->validate_calls++;
    return PLK_REQUEUE_UNPARK_ONE;
}

static uintptr_t call_requeue_callback(void *arg, enum plk_requeue_op op,
                                       const struct plk_unpark_result *r)
{
    (void)op;
    (void)r;
    ((struct stuck_call *)arg)->callback_calls++;
    return OP_TOKEN;
}

static void *stuck_call_main(void *arg)
{
    struct stuck_call *c = arg;
    switch (c->op) {
    case OP_PARK: {
        const struct plk_park_ops ops = { .validate = call_validate, .ctx = c };
        c->park = plk_park_ex(c->address, &ops, NULL, NULL, NULL);
        break;
    }
    case OP_UNPARK_ONE:
        c->unparked = plk_unpark_one(c->address, call_fn, c);
        break;
    case OP_UNPARK_ALL:
        c->unparked = plk_unpark_all(c->address);
        break;
    case OP_REQUEUE:
        c->requeue = plk_unpark_requeue(c->address, c->to, call_requeue_validate,
                                        call_requeue_callback, c);
        break;
    case N_OPS:
        break;
    }
    atomic_store(&c->done, true);
    return NULL;
}

static bool call_done(const void *arg)
{
    return atomic_load(&((const struct stuck_call *)arg)->done);
}

/* A waiter W is parked on `word`, then a holder gets stuck in word's bucket
 * and another thread runs one operation on `word`. With a nested handler
 * announced (before the operation, or while it already waits for the
 * bucket), the operation returns at once without the bucket: park BUSY
 * without validating, unpark_one and requeue give up without their
 * callbacks and leave W parked, unpark_all returns 0 and posts its wake-up,
 * which W gets when the holder lets go. With no handler announced the
 * operation waits for the holder and then succeeds. _i: op + N_OPS * when. */
START_TEST(op_on_stuck_bucket)
{
    enum stuck_op op = (enum stuck_op)(_i % N_OPS);
    enum nested_when when = (enum nested_when)(_i / N_OPS);
    // The requeue's target comes after the stuck bucket in table order.
    const void *word = address_in_bucket(1);
    struct waiter w;
    struct stuck s;
    struct stuck_call c = { .op = op, .address = word, .to = address_in_bucket(2) };
    park_waiter(&w, word, NULL);
    stuck_start(&s, word);

    if (when == NESTED_BEFORE)
        plk_parking_lot_nested_wait_begin();
    spawn(&c.thread, 1, stuck_call_main, &c, 0);
    if (when == NESTED_WHILE_WAITING) {
        sleep_ns(20 * MS); // most likely asleep on the bucket lock by now
        ck_assert_msg(!atomic_load(&c.done), "%s returned past a held bucket",
                      stuck_op_names[op]);
        plk_parking_lot_nested_wait_begin();
    }

    if (when == NESTED_NEVER) {
        // It waits for the holder, however long.
        sleep_ns(50 * MS);
        ck_assert_msg(!atomic_load(&c.done), "%s did not wait for the bucket",
                      stuck_op_names[op]);
        stuck_release(&s);
        ck_assert_msg(poll_until(call_done, &c), "%s never returned",
                      stuck_op_names[op]);
        join(&c.thread, 1);
        switch (op) {
        case OP_PARK:
            ck_assert_int_eq(c.park, PLK_PARK_AGAIN);
            ck_assert_int_eq(c.validate_calls, 1);
            unpark_expect(word, &w, false);
            break;
        case OP_UNPARK_ONE:
            ck_assert_uint_eq(c.unparked, 1);
            ck_assert_int_eq(c.callback_calls, 1);
            expect_woken(&w, OP_TOKEN);
            break;
        case OP_UNPARK_ALL:
            ck_assert_uint_eq(c.unparked, 1);
            expect_woken(&w, PLK_TOKEN_NORMAL);
            break;
        case OP_REQUEUE:
            ck_assert(!c.requeue.gave_up);
            ck_assert_uint_eq(c.requeue.unparked, 1);
            ck_assert_int_eq(c.validate_calls, 1);
            ck_assert_int_eq(c.callback_calls, 1);
            expect_woken(&w, OP_TOKEN);
            break;
        case N_OPS:
            break;
        }
    } else {
        // It gives up while the holder still holds the bucket.
        ck_assert_msg(poll_until(call_done, &c), "%s (nested %s) waited for the bucket",
                      stuck_op_names[op], nested_when_names[when]);
        join(&c.thread, 1);
        ck_assert_int_eq(c.validate_calls, 0);
        ck_assert_int_eq(c.callback_calls, 0);
        switch (op) {
        case OP_PARK:
            ck_assert_int_eq(c.park, PLK_PARK_BUSY);
            break;
        case OP_UNPARK_ONE:
            ck_assert_uint_eq(c.unparked, PLK_UNPARK_GAVE_UP);
            break;
        case OP_UNPARK_ALL:
            ck_assert_uint_eq(c.unparked, 0);
            break;
        case OP_REQUEUE:
            ck_assert(c.requeue.gave_up);
            ck_assert_uint_eq(c.requeue.unparked, 0);
            ck_assert_uint_eq(c.requeue.requeued, 0);
            break;
        case N_OPS:
            break;
        }
        expect_still_parked(&w);
        plk_parking_lot_nested_wait_end();
        stuck_release(&s);
        if (op == OP_UNPARK_ALL) {
            await_woken(&w, PLK_TOKEN_NORMAL); // the posted wake-up
        } else {
            // Nothing was done or posted: W is still first on `word`.
            expect_still_parked(&w);
            unpark_expect(word, &w, false);
        }
    }
    unpark_expect_none(word);
    unpark_expect_none(c.to);
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);
}
END_TEST

// A requeue gives up when its target's bucket is the stuck one, too: the
// waiter stays on `from`, and the callbacks do not run.
START_TEST(requeue_gives_up_when_target_bucket_stuck)
{
    static uint32_t to;
    const void *from = elsewhere(&to, 0);
    struct waiter w;
    struct stuck s;
    park_waiter(&w, from, NULL);
    stuck_start(&s, &to);
    plk_parking_lot_nested_wait_begin();
    struct requeue_probe probe = { .op = PLK_REQUEUE_REQUEUE_ALL };
    struct plk_unpark_result r =
        plk_unpark_requeue(from, &to, choose_op, log_requeue, &probe);
    ck_assert(r.gave_up);
    ck_assert_uint_eq(r.unparked + r.requeued, 0);
    ck_assert_int_eq(probe.validate_calls, 0);
    ck_assert_int_eq(probe.callback_calls, 0);
    plk_parking_lot_nested_wait_end();
    stuck_release(&s);

    // Still on `from`: now the same requeue moves it.
    r = plk_unpark_requeue(from, &to, choose_op, log_requeue, &probe);
    ck_assert(!r.gave_up);
    ck_assert_uint_eq(r.requeued, 1);
    ck_assert_int_eq(probe.validate_calls, 1);
    ck_assert_int_eq(probe.callback_calls, 1);
    unpark_expect_none(from);
    unpark_expect(&to, &w, false);
}
END_TEST

/* Without a nested handler announced, a requeue waits for a held bucket --
 * whichever of its two buckets that is. They are locked in table order;
 * _i = 0: the held one comes first, _i = 1: second, i.e. the requeue holds
 * the other bucket already when it reaches the held one. */
START_TEST(requeue_waits_for_either_bucket)
{
    bool held_second = _i == 1;
    const void *from = address_in_bucket(held_second ? 2 : 1);
    const void *to = address_in_bucket(held_second ? 1 : 2);
    struct waiter w;
    struct stuck s;
    struct stuck_call c = { .op = OP_REQUEUE, .address = from, .to = to };
    park_waiter(&w, from, NULL);
    stuck_start(&s, from);
    spawn(&c.thread, 1, stuck_call_main, &c, 0);
    sleep_ns(50 * MS);
    ck_assert_msg(!atomic_load(&c.done), "requeue did not wait (gave_up %d)",
                  (int)c.requeue.gave_up);
    stuck_release(&s);
    ck_assert_msg(poll_until(call_done, &c), "requeue never returned");
    join(&c.thread, 1);
    ck_assert(!c.requeue.gave_up);
    ck_assert_uint_eq(c.requeue.unparked, 1);
    ck_assert_int_eq(c.validate_calls, 1);
    ck_assert_int_eq(c.callback_calls, 1);
    expect_woken(&w, OP_TOKEN);
    unpark_expect_none(from);
    unpark_expect_none(to);
}
END_TEST

/* A park or unpark that merely waits its turn is not a nested handler:
 * with nobody announced, a busy bucket is never given up on. Many threads
 * hammer one bucket with short critical sections; no BUSY or GAVE_UP. */
struct no_give_up {
    uint32_t word;
    _Atomic bool stop;
    _Atomic int busy, gave_up, rounds;
};

static void *no_give_up_main(void *arg)
{
    struct no_give_up *n = arg;
    const struct plk_park_ops no_ops = { 0 };
    while (!atomic_load(&n->stop)) {
        struct plk_deadline d = plk_deadline_after_ns(20 * US);
        if (plk_park_ex(&n->word, &no_ops, &d, NULL, NULL) == PLK_PARK_BUSY)
            atomic_fetch_add(&n->busy, 1);
        if (plk_unpark_one(&n->word, NULL, NULL) == PLK_UNPARK_GAVE_UP)
            atomic_fetch_add(&n->gave_up, 1);
        if (plk_unpark_requeue(&n->word, &n->word, NULL, NULL, NULL).gave_up)
            atomic_fetch_add(&n->gave_up, 1);
        atomic_fetch_add(&n->rounds, 1);
    }
    return NULL;
}

START_TEST(contention_alone_never_gives_up)
{
    enum { THREADS = 4 };
    static struct no_give_up n;
    pthread_t t[THREADS];
    spawn(t, THREADS, no_give_up_main, &n, 0);
    sleep_ns(300 * MS);
    atomic_store(&n.stop, true);
    join(t, THREADS);
    ck_assert_int_gt(atomic_load(&n.rounds), 0);
    ck_assert_int_eq(atomic_load(&n.busy), 0);
    ck_assert_int_eq(atomic_load(&n.gave_up), 0);
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);
}
END_TEST

/* ---- code running under a bucket lock (a nested handler) ---- */

/* What a "handler" sees when it runs inside this thread's own bucket
 * critical section: here, a validate callback of a park on `own`. Results
 * are recorded and checked after the park returns (the bucket lock must not
 * be held across a failing assertion). */
struct nested_probe {
    const void *own;          // the bucket we are in
    const void *mate;         // another address in that bucket
    const void *other;        // elsewhere; `on_other` waits there
    const void *other_from;   // elsewhere, nobody parked
    const void *other_to;     // elsewhere, nobody parked
    struct waiter *on_own;    // parked on `own`
    struct waiter *on_other;  // parked on `other`
    bool busy_here;
    size_t own_unpark, mate_unpark, other_unpark, own_unpark_all;
    struct unpark_log own_log, mate_log, other_log;
    struct park_probe own_park_probe, mate_park_probe;
    enum plk_park_result own_park, mate_park;
    struct requeue_probe own_requeue_probe;
    struct plk_unpark_result own_requeue;
    struct requeue_spy other_requeue_spy;
    struct plk_unpark_result other_requeue;
    bool on_own_done_inside;
};

static bool run_nested(void *ctx)
{
    struct nested_probe *p = ctx;
    p->busy_here = plk_parking_lot_busy_here();
    p->own_unpark = plk_unpark_one(p->own, log_unpark, &p->own_log);
    p->mate_unpark = plk_unpark_one(p->mate, log_unpark, &p->mate_log);
    p->other_unpark = plk_unpark_one(p->other, log_unpark, &p->other_log);

    const struct plk_park_ops own_ops = { .validate = refuse,
                                          .ctx = &p->own_park_probe };
    const struct plk_park_ops mate_ops = { .validate = refuse,
                                           .ctx = &p->mate_park_probe };
    p->own_park = plk_park_ex(p->own, &own_ops, NULL, NULL, NULL);
    p->mate_park = plk_park_ex(p->mate, &mate_ops, NULL, NULL, NULL);

    p->own_requeue_probe.op = PLK_REQUEUE_UNPARK_ALL;
    p->own_requeue = plk_unpark_requeue(p->own, p->other_to, choose_op, log_requeue,
                                        &p->own_requeue_probe);
    p->other_requeue = plk_unpark_requeue(p->other_from, p->other_to, spy_validate,
                                          spy_callback, &p->other_requeue_spy);

    // Posted: on_own is woken only after we release the bucket.
    p->own_unpark_all = plk_unpark_all(p->own);
    p->on_own_done_inside = atomic_load(&p->on_own->done);
    return false;
}

START_TEST(nested_section_only_tries_bucket_locks)
{
    static uint32_t own;
    struct waiter on_own, on_other;
    struct nested_probe p = {
        .own = &own,
        .mate = bucket_mate(&own),
        .other = elsewhere(&own, 0),
        .other_from = elsewhere(&own, 1),
        .other_to = elsewhere(&own, 2),
        .on_own = &on_own,
        .on_other = &on_other,
    };
    park_waiter(&on_own, &own, NULL);
    park_waiter(&on_other, p.other, NULL);
    ck_assert(!plk_parking_lot_busy_here());

    const struct plk_park_ops ops = { .validate = run_nested, .ctx = &p };
    ck_assert_int_eq(plk_park_ex(&own, &ops, NULL, NULL, NULL), PLK_PARK_AGAIN);
    ck_assert(!plk_parking_lot_busy_here());
    ck_assert(p.busy_here);

    // Our own bucket: given up at once, nothing run.
    ck_assert_uint_eq(p.own_unpark, PLK_UNPARK_GAVE_UP);
    ck_assert_int_eq(p.own_log.calls, 0);
    ck_assert_uint_eq(p.mate_unpark, PLK_UNPARK_GAVE_UP);
    ck_assert_int_eq(p.mate_log.calls, 0);
    ck_assert_int_eq(p.own_park, PLK_PARK_BUSY);
    ck_assert_int_eq(p.own_park_probe.validate_calls, 0);
    ck_assert_int_eq(p.mate_park, PLK_PARK_BUSY);
    ck_assert_int_eq(p.mate_park_probe.validate_calls, 0);
    ck_assert(p.own_requeue.gave_up);
    ck_assert_int_eq(p.own_requeue_probe.validate_calls, 0);
    ck_assert_int_eq(p.own_requeue_probe.callback_calls, 0);
    ck_assert_uint_eq(p.own_unpark_all, 0);
    ck_assert(!p.on_own_done_inside);

    // Other buckets: as usual.
    ck_assert_uint_eq(p.other_unpark, 1);
    ck_assert_int_eq(p.other_log.calls, 1);
    ck_assert_ptr_eq(p.other_log.seen.park_arg, &on_other);
    expect_woken(&on_other, (uintptr_t)&on_other);
    ck_assert(!p.other_requeue.gave_up);
    ck_assert_int_eq(p.other_requeue_spy.validate_calls, 0);
    ck_assert_int_eq(p.other_requeue_spy.callback_calls, 1);
    ck_assert_int_eq(p.other_requeue_spy.callback_op, PLK_REQUEUE_ABORT);

    // The posted unpark_all ran when the park released our bucket.
    await_woken(&on_own, PLK_TOKEN_NORMAL);
    unpark_expect_none(&own);
    unpark_expect_none(p.other_to);
    ck_assert_uint_eq(plk_parking_lot_parked_threads(), 0);
}
END_TEST

/* ---- postponing until the thread holds no bucket lock ---- */

static struct {
    int calls;
    bool busy_at_call; // plk_parking_lot_busy_here() inside the last call
} when_free_log;

static void when_free_fn(void)
{
    when_free_log.calls++;
    when_free_log.busy_at_call = plk_parking_lot_busy_here();
}

struct postponer {
    const void *other;  // another bucket, locked and released meanwhile
    int calls_inside;   // when_free_fn calls seen before leaving
};

static bool postpone_in_validate(void *ctx)
{
    struct postponer *p = ctx;
    plk_parking_lot_call_when_free(when_free_fn);
    // Taking and releasing another bucket leaves ours held: not yet.
    plk_unpark_one(p->other, NULL, NULL);
    p->calls_inside = when_free_log.calls;
    return false;
}

static uintptr_t postpone_in_requeue(void *arg, enum plk_requeue_op op,
                                     const struct plk_unpark_result *r)
{
    (void)op;
    (void)r;
    plk_parking_lot_call_when_free(when_free_fn);
    *(int *)arg = when_free_log.calls;
    return PLK_TOKEN_NORMAL;
}

// A function registered under a bucket lock runs once, right after the
// thread's last bucket lock is released: not under an inner one, not again.
START_TEST(call_when_free_runs_after_last_release)
{
    static uint32_t word;
    struct postponer p = { .other = elsewhere(&word, 0) };
    const struct plk_park_ops ops = { .validate = postpone_in_validate, .ctx = &p };
    ck_assert_int_eq(plk_park_ex(&word, &ops, NULL, NULL, NULL), PLK_PARK_AGAIN);
    ck_assert_int_eq(p.calls_inside, 0);
    ck_assert_int_eq(when_free_log.calls, 1);
    ck_assert(!when_free_log.busy_at_call);

    // Once only.
    unpark_expect_none(&word);
    ck_assert_int_eq(when_free_log.calls, 1);

    // Under a pair of bucket locks: after both are released.
    int calls_inside = -1;
    struct plk_unpark_result r =
        plk_unpark_requeue(&word, elsewhere(&word, 1), NULL, postpone_in_requeue,
                           &calls_inside);
    ck_assert(!r.gave_up);
    ck_assert_int_eq(calls_inside, 1);
    ck_assert_int_eq(when_free_log.calls, 2);
    ck_assert(!when_free_log.busy_at_call);
}
END_TEST

/* ---- posted wake-ups ---- */

#define POSTED_TOKEN_BASE ((uintptr_t)0x70000)

// The posted wake-ups' fn: all calls logged; the token names the first
// woken waiter (its park_arg) plus a marker.
static struct {
    int calls;
    const void *arg[8];
    struct plk_unpark_result seen[8];
} posted;

static uintptr_t log_posted(void *arg, const struct plk_unpark_result *r)
{
    if (posted.calls < 8) {
        posted.arg[posted.calls] = arg;
        posted.seen[posted.calls] = *r;
    }
    posted.calls++;
    return POSTED_TOKEN_BASE + (uintptr_t)r->park_arg;
}

START_TEST(post_wake_runs_when_holder_releases)
{
    static uint32_t word;
    const void *mate = bucket_mate(&word);
    struct waiter w;
    struct stuck s;
    park_waiter(&w, &word, NULL);
    stuck_start(&s, &word);
    plk_parking_lot_post_wake(&word, false, log_posted);
    plk_parking_lot_post_wake(mate, false, log_posted); // nobody there
    // The bucket is held: nothing ran, nobody woke.
    expect_still_parked(&w);
    ck_assert_int_eq(posted.calls, 0);

    stuck_release(&s);
    await_woken(&w, POSTED_TOKEN_BASE + (uintptr_t)&w);
    // fn ran once, for `word` (where a thread was found), not for `mate`.
    ck_assert_int_eq(posted.calls, 1);
    ck_assert_ptr_eq(posted.arg[0], &word);
    ck_assert_uint_eq(posted.seen[0].unparked, 1);
    ck_assert_ptr_eq(posted.seen[0].park_arg, &w);
    ck_assert(!posted.seen[0].has_more_waiters);

    // Both notes are spent: later waiters are not woken by them.
    struct waiter later, later_mate;
    park_waiter(&later, &word, NULL);
    park_waiter(&later_mate, mate, NULL);
    expect_still_parked(&later);
    expect_still_parked(&later_mate);
    ck_assert_int_eq(posted.calls, 1);
    unpark_expect(&word, &later, false);
    unpark_expect(mate, &later_mate, false);
}
END_TEST

START_TEST(post_wake_on_free_bucket_runs_at_once)
{
    static uint32_t word, empty;
    struct waiter w;
    park_waiter(&w, &word, NULL);
    plk_parking_lot_post_wake(&word, false, log_posted);
    // Done before post_wake returned.
    ck_assert_int_eq(posted.calls, 1);
    ck_assert_ptr_eq(posted.arg[0], &word);
    expect_woken(&w, POSTED_TOKEN_BASE + (uintptr_t)&w);

    // Nobody parked: fn does not run, and nothing is remembered.
    plk_parking_lot_post_wake(&empty, false, log_posted);
    plk_parking_lot_post_wake(&empty, true, log_posted);
    ck_assert_int_eq(posted.calls, 1);
    struct waiter later;
    park_waiter(&later, &empty, NULL);
    expect_still_parked(&later);
    unpark_expect(&empty, &later, false);
}
END_TEST

// Two wake-ups posted for one address while its bucket is stuck wake two
// of its waiters, in FIFO order; the third stays parked.
START_TEST(post_wake_twice_wakes_two)
{
    static uint32_t word;
    struct waiter ws[3];
    struct stuck s;
    park_waiters(ws, 3, &word);
    stuck_start(&s, &word);
    plk_parking_lot_post_wake(&word, false, log_posted);
    plk_parking_lot_post_wake(&word, false, log_posted);
    expect_still_parked(&ws[0]);
    stuck_release(&s);

    ck_assert_msg(poll_until(waiter_done, &ws[0]) && poll_until(waiter_done, &ws[1]),
                  "posted wake-ups lost");
    size_t unparked = 0;
    ck_assert_int_ge(posted.calls, 1);
    ck_assert_int_le(posted.calls, 2);
    for (int i = 0; i < posted.calls; i++) {
        ck_assert_ptr_eq(posted.arg[i], &word);
        unparked += posted.seen[i].unparked;
    }
    ck_assert_uint_eq(unparked, 2);
    ck_assert(posted.seen[posted.calls - 1].has_more_waiters);
    // Each got the token of the call that woke it.
    ck_assert_int_eq(ws[0].result, PLK_PARK_OK);
    ck_assert_int_eq(ws[1].result, PLK_PARK_OK);
    join_waiter(&ws[0]);
    join_waiter(&ws[1]);
    ck_assert_uint_eq(ws[0].token, POSTED_TOKEN_BASE + (uintptr_t)&ws[0]);
    ck_assert(ws[1].token == POSTED_TOKEN_BASE + (uintptr_t)&ws[0] ||
              ws[1].token == POSTED_TOKEN_BASE + (uintptr_t)&ws[1]);
    expect_still_parked(&ws[2]);
    unpark_expect(&word, &ws[2], false);
}
END_TEST

/* Many wake-ups posted for one address while its bucket is stuck take one
 * note between them (more than there are note slots: without merging the
 * poster would wait for a slot, i.e. for the stuck holder). */
#define MANY_POSTS 200

struct poster {
    const void *address;
    _Atomic bool done;
};

static void *poster_main(void *arg)
{
    struct poster *p = arg;
    for (int i = 0; i < MANY_POSTS; i++)
        plk_parking_lot_post_wake(p->address, false, log_posted);
    atomic_store(&p->done, true);
    return NULL;
}

static bool poster_done(const void *arg)
{
    return atomic_load(&((const struct poster *)arg)->done);
}

START_TEST(post_wake_merges_per_address)
{
    static uint32_t word;
    struct waiter ws[3];
    struct stuck s;
    struct poster p = { .address = &word };
    pthread_t t;
    park_waiters(ws, 3, &word);
    stuck_start(&s, &word);
    spawn(&t, 1, poster_main, &p, 0);
    ck_assert_msg(poll_until(poster_done, &p), "posting waited for the stuck bucket");
    join(&t, 1);
    expect_still_parked(&ws[0]);
    ck_assert_int_eq(posted.calls, 0);
    stuck_release(&s);

    // As many as there were waiters (fewer than the wake-ups posted).
    for (int i = 0; i < 3; i++)
        ck_assert_msg(poll_until(waiter_done, &ws[i]), "waiter %d not woken", i);
    size_t unparked = 0;
    for (int i = 0; i < posted.calls && i < 8; i++)
        unparked += posted.seen[i].unparked;
    ck_assert_uint_eq(unparked, 3);
    for (int i = 0; i < 3; i++) {
        join_waiter(&ws[i]);
        ck_assert_int_eq(ws[i].result, PLK_PARK_OK);
    }
    // The surplus is not kept for later waiters.
    struct waiter later;
    park_waiter(&later, &word, NULL);
    expect_still_parked(&later);
    unpark_expect(&word, &later, false);
}
END_TEST

// `all` wakes every waiter of the address -- and only of that address,
// though a bucket-mate waits in the same queue.
START_TEST(post_wake_all_wakes_every_waiter)
{
    static uint32_t word;
    const void *mate = bucket_mate(&word);
    struct waiter ws[3], bystander;
    struct stuck s;
    park_waiter(&ws[0], &word, NULL);
    park_waiter(&bystander, mate, NULL);
    park_waiter(&ws[1], &word, NULL);
    park_waiter(&ws[2], &word, NULL);
    stuck_start(&s, &word);
    plk_parking_lot_nested_wait_begin();
    plk_parking_lot_post_wake(&word, true, log_posted);
    expect_still_parked(&ws[0]);
    plk_parking_lot_nested_wait_end();
    stuck_release(&s);

    for (int i = 0; i < 3; i++)
        await_woken(&ws[i], POSTED_TOKEN_BASE + (uintptr_t)&ws[0]);
    ck_assert_int_eq(posted.calls, 1);
    ck_assert_ptr_eq(posted.arg[0], &word);
    ck_assert_uint_eq(posted.seen[0].unparked, 3);
    ck_assert(!posted.seen[0].has_more_waiters);
    expect_still_parked(&bystander);
    unpark_expect(mate, &bystander, false);
    unpark_expect_none(&word);
}
END_TEST

Suite *parking_lot_suite(void)
{
    Suite *s = suite_create("parking_lot");
    int n_sizes = (int)(sizeof sizes / sizeof sizes[0]);

    TCase *value = tcase_create("value");
    tcase_set_timeout(value, 60);
    tcase_add_loop_test(value, park_again_when_value_differs, 0, n_sizes);
    tcase_add_loop_test(value, park_sleeps_when_value_equal, 0, n_sizes);
    suite_add_tcase(s, value);

    TCase *timeout = tcase_create("timeout");
    tcase_set_timeout(timeout, 60);
    tcase_add_test(timeout, park_times_out_after_relative_timeout);
    tcase_add_test(timeout, park_with_zero_timeout_times_out_at_once);
    tcase_add_loop_test(timeout, park_ex_times_out_at_absolute_deadline, 0,
                        N_CLOCKS);
    tcase_add_loop_test(timeout, park_ex_negative_deadline_times_out_at_once,
                        0, N_CLOCKS);
    tcase_add_test(timeout, timed_out_reports_was_last);
    tcase_add_test(timeout, timed_out_was_last_ignores_other_addresses);
    suite_add_tcase(s, timeout);

    TCase *callbacks = tcase_create("callbacks");
    tcase_set_timeout(callbacks, 60);
    tcase_add_test(callbacks, validate_false_gives_again_without_sleeping);
    tcase_add_test(callbacks, before_sleep_runs_after_enqueue);
    tcase_add_test(callbacks, wakeup_right_after_before_sleep_is_not_lost);
    tcase_add_test(callbacks, before_sleep_refusal_leaves_the_queue);
    tcase_add_test(callbacks, before_sleep_refusal_after_claim_reports_ok);
    suite_add_tcase(s, callbacks);

    TCase *unpark = tcase_create("unpark");
    tcase_set_timeout(unpark, 60);
    tcase_add_test(unpark, unpark_without_waiter_runs_callback);
    tcase_add_test(unpark, unpark_one_reports_park_arg_and_exact_more);
    tcase_add_loop_test(unpark, unpark_delivers_token, 0,
                        (int)(sizeof tokens / sizeof tokens[0]));
    tcase_add_test(unpark, unpark_one_wakes_in_fifo_order);
    tcase_add_test(unpark, unpark_all_wakes_only_that_address);
    tcase_add_test(unpark, has_more_counts_only_same_address);
    tcase_add_test(unpark, unpark_all_counts_only_same_address);
    suite_add_tcase(s, unpark);

    TCase *requeue = tcase_create("requeue");
    tcase_set_timeout(requeue, 60);
    tcase_add_test(requeue, requeue_without_waiters_skips_validate);
    tcase_add_loop_test(requeue, requeue_applies_op, 0,
                        (int)(sizeof requeue_cases / sizeof requeue_cases[0]));
    tcase_add_test(requeue, requeued_waiter_times_out_on_new_address);
    tcase_add_test(requeue, opposite_requeues_keep_every_waiter);
    suite_add_tcase(s, requeue);

    TCase *stress = tcase_create("stress");
    tcase_set_timeout(stress, 120);
    tcase_add_test(stress, table_grows_while_threads_park);
    tcase_add_test(stress, growth_keeps_fifo_order);
    tcase_add_test(stress, timeout_never_loses_claimed_wakeup);
    tcase_add_test(stress, fork_with_parked_threads);
    suite_add_tcase(s, stress);

    TCase *stuck = tcase_create("stuck bucket");
    tcase_set_timeout(stuck, 60);
    tcase_add_loop_test(stuck, op_on_stuck_bucket, 0, N_OPS * N_WHEN);
    tcase_add_test(stuck, requeue_gives_up_when_target_bucket_stuck);
    tcase_add_loop_test(stuck, requeue_waits_for_either_bucket, 0, 2);
    tcase_add_test(stuck, contention_alone_never_gives_up);
    tcase_add_test(stuck, nested_section_only_tries_bucket_locks);
    tcase_add_test(stuck, call_when_free_runs_after_last_release);
    tcase_add_test(stuck, post_wake_runs_when_holder_releases);
    tcase_add_test(stuck, post_wake_on_free_bucket_runs_at_once);
    tcase_add_test(stuck, post_wake_twice_wakes_two);
    tcase_add_test(stuck, post_wake_merges_per_address);
    tcase_add_test(stuck, post_wake_all_wakes_every_waiter);
    suite_add_tcase(s, stuck);
    return s;
}
