// Unit tests for core/prof.c: the profile tables. Check runs each test in a
// forked process, so each starts with unmapped tables and maps its own.
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "helpers.h"
#include "prof.h"
#include "suites.h"

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static char objects[64][64]; // stand-ins for locks: distinct addresses

START_TEST(lookup_creates_once_and_find_does_not_create)
{
    ck_assert(plk_prof_init(16, 8));
    ck_assert_ptr_null(plk_prof_find(objects[0], PLK_PROF_MUTEX));
    struct plk_prof_entry *a = plk_prof_lookup(objects[0], PLK_PROF_MUTEX, PLK_PROF_RECURSIVE);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_ne(a, plk_prof_other());
    ck_assert_ptr_eq(plk_prof_lookup(objects[0], PLK_PROF_MUTEX, PLK_PROF_NORMAL), a);
    ck_assert_ptr_eq(plk_prof_find(objects[0], PLK_PROF_MUTEX), a);
    ck_assert_uint_eq(a->type, PLK_PROF_RECURSIVE); // the creator's type stays
    ck_assert_uint_eq(a->id, 1);
    ck_assert_uint_eq(a->generation, 0);
    // A cond at the same address is another entry.
    struct plk_prof_entry *c = plk_prof_lookup(objects[0], PLK_PROF_COND, PLK_PROF_CONDVAR);
    ck_assert_ptr_ne(c, a);
    ck_assert_uint_eq(c->id, 2);
    ck_assert_uint_eq(plk_prof_totals().entries, 2);
}
END_TEST

START_TEST(retired_address_gets_a_new_generation)
{
    ck_assert(plk_prof_init(16, 8));
    struct plk_prof_entry *first = plk_prof_lookup(objects[1], PLK_PROF_MUTEX, PLK_PROF_NORMAL);
    plk_prof_record_contention(first, 100, false, false);
    plk_prof_retire(first);
    ck_assert_ptr_null(plk_prof_find(objects[1], PLK_PROF_MUTEX));
    struct plk_prof_entry *second = plk_prof_lookup(objects[1], PLK_PROF_MUTEX, PLK_PROF_NORMAL);
    ck_assert_ptr_ne(second, first);
    ck_assert_uint_eq(second->generation, 1);
    ck_assert_uint_eq(LOAD(first->state), PLK_PROF_RETIRED);
    ck_assert_uint_eq(LOAD(first->contended), 1); // history kept
    ck_assert_uint_eq(LOAD(second->contended), 0);
    plk_prof_retire(second);
    ck_assert_uint_eq(plk_prof_lookup(objects[1], PLK_PROF_MUTEX, PLK_PROF_NORMAL)->generation, 2);
}
END_TEST

START_TEST(full_table_goes_to_other)
{
    ck_assert(plk_prof_init(4, 8));
    for (int i = 0; i < 4; i++)
        ck_assert_ptr_ne(plk_prof_lookup(objects[i], PLK_PROF_MUTEX, PLK_PROF_NORMAL),
                         plk_prof_other());
    struct plk_prof_entry *o = plk_prof_lookup(objects[4], PLK_PROF_MUTEX, PLK_PROF_NORMAL);
    ck_assert_ptr_eq(o, plk_prof_other());
    plk_prof_record_contention(o, 50, true, false);
    ck_assert_uint_eq(LOAD(plk_prof_other()->contended), 1);
    ck_assert_uint_eq(plk_prof_totals().dropped_entries, 1);
    // Existing entries are still found.
    ck_assert_ptr_ne(plk_prof_lookup(objects[2], PLK_PROF_MUTEX, PLK_PROF_NORMAL),
                     plk_prof_other());
    // Stacks of the other row are not kept.
    uintptr_t frames[2] = { 1, 2 };
    plk_prof_record_stack(o, PLK_PROF_WAITER, frames, 2, 5);
    ck_assert_uint_eq(plk_prof_totals().stacks, 0);
}
END_TEST

START_TEST(contention_counts_and_histogram)
{
    ck_assert(plk_prof_init(16, 8));
    struct plk_prof_entry *e = plk_prof_lookup(objects[5], PLK_PROF_MUTEX, PLK_PROF_NORMAL);
    for (int i = 0; i < 98; i++)
        plk_prof_record_contention(e, 1000, false, false); // bucket [512, 1024)
    plk_prof_record_contention(e, 1000000, true, false);
    plk_prof_record_contention(e, 5000000, true, true);
    ck_assert_uint_eq(LOAD(e->contended), 100);
    ck_assert_uint_eq(LOAD(e->parked), 2);
    ck_assert_uint_eq(LOAD(e->timeouts), 1);
    ck_assert_uint_eq(LOAD(e->wait_total_ns), 98 * 1000 + 1000000 + 5000000);
    ck_assert_uint_eq(LOAD(e->wait_max_ns), 5000000);
    ck_assert_uint_eq(LOAD(e->hist[plk_prof_bucket(1000)]), 98);
    uint64_t p50 = plk_prof_quantile(e, 0.5);
    ck_assert_uint_ge(p50, 512);
    ck_assert_uint_le(p50, 1024);
    uint64_t p99 = plk_prof_quantile(e, 0.99);
    ck_assert_uint_ge(p99, 1u << 19);
    ck_assert_uint_le(p99, 1u << 20);
    ck_assert_uint_eq(plk_prof_quantile(e, 1.0), 5000000);
}
END_TEST

START_TEST(bucket_bounds)
{
    ck_assert_uint_eq(plk_prof_bucket(0), 0);
    ck_assert_uint_eq(plk_prof_bucket(1), 1);
    ck_assert_uint_eq(plk_prof_bucket(1023), 10);
    ck_assert_uint_eq(plk_prof_bucket(1024), 11);
    ck_assert_uint_eq(plk_prof_bucket_limit(11), 2048); // [1024, 2048)
    ck_assert_uint_eq(plk_prof_bucket(UINT64_MAX), PLK_PROF_HIST_BUCKETS - 1);
    ck_assert_uint_eq(plk_prof_bucket_limit(PLK_PROF_HIST_BUCKETS - 1), INT64_MAX);
}
END_TEST

START_TEST(cond_waits)
{
    ck_assert(plk_prof_init(16, 8));
    struct plk_prof_entry *e = plk_prof_lookup(objects[6], PLK_PROF_COND, PLK_PROF_CONDVAR);
    plk_prof_record_cond_wait(e, 10, false, false);
    plk_prof_record_cond_wait(e, 20, true, true);
    plk_prof_record_cond_wait(e, 30, true, false);
    ck_assert_uint_eq(LOAD(e->waits), 3);
    ck_assert_uint_eq(LOAD(e->timed_waits), 2);
    ck_assert_uint_eq(LOAD(e->timeouts), 1);
    ck_assert_uint_eq(LOAD(e->wakeups), 2);
    ck_assert_uint_eq(LOAD(e->wait_total_ns), 60);
    ck_assert_uint_eq(LOAD(e->contended), 0);
}
END_TEST

START_TEST(acquisitions_fold_the_counter)
{
    ck_assert(plk_prof_init(16, 8));
    struct plk_prof_entry *e = plk_prof_lookup(objects[7], PLK_PROF_MUTEX, PLK_PROF_NORMAL);
    ck_assert(!LOAD(e->acquired_counted));
    ck_assert(plk_prof_note_acquired(e, 5));
    ck_assert(plk_prof_note_acquired(e, 9));
    ck_assert(!plk_prof_note_acquired(e, 7)); // a stale (racing) reader: ignored
    ck_assert_uint_eq(LOAD(e->acquired), 9);
    ck_assert(LOAD(e->acquired_counted));
    // Across the 32-bit wrap, in steps under 2^31 (larger steps between two
    // notes cannot be told from a stale reader).
    plk_prof_note_acquired(e, 0x7ffffff0u);
    plk_prof_note_acquired(e, 0xffffff00u);
    plk_prof_note_acquired(e, 3);
    ck_assert_uint_eq(LOAD(e->acquired), (uint64_t)UINT32_MAX + 4);
    plk_prof_note_acquired(plk_prof_other(), 100);
    ck_assert_uint_eq(LOAD(plk_prof_other()->acquired), 0);
    // Backwards: a new mutex at the address, or an old reading.
    ck_assert(!plk_prof_note_acquired(e, 1));
    ck_assert_uint_eq(LOAD(e->acquired), (uint64_t)UINT32_MAX + 4);
}
END_TEST

static size_t count_stacks(uint32_t entry, enum plk_prof_role role, uint64_t *count,
                           uint64_t *weight)
{
    size_t n = 0;
    *count = *weight = 0;
    for (size_t i = 0; i < plk_prof_stack_slots(); i++) {
        const struct plk_prof_stack *s = plk_prof_stack_at(i);
        if (!atomic_load(&((struct plk_prof_stack *)s)->ready) || s->entry != entry ||
            s->role != role)
            continue;
        n++;
        *count += LOAD(((struct plk_prof_stack *)s)->count);
        *weight += LOAD(((struct plk_prof_stack *)s)->weight);
    }
    return n;
}

START_TEST(stacks_are_interned_per_entry_and_role)
{
    ck_assert(plk_prof_init(16, 4));
    struct plk_prof_entry *e = plk_prof_lookup(objects[8], PLK_PROF_MUTEX, PLK_PROF_NORMAL);
    uint32_t idx = (uint32_t)plk_prof_entry_index(e);
    uintptr_t a[6] = { 10, 11, 12, 13, 14, 15 }, b[3] = { 10, 11, 99 };
    plk_prof_record_stack(e, PLK_PROF_WAITER, a, 6, 100); // cut to depth 4
    plk_prof_record_stack(e, PLK_PROF_WAITER, a, 4, 50);  // the same 4 frames
    plk_prof_record_stack(e, PLK_PROF_WAITER, b, 3, 7);
    plk_prof_record_stack(e, PLK_PROF_HOLDER, b, 3, 8);
    uint64_t count, weight;
    ck_assert_uint_eq(count_stacks(idx, PLK_PROF_WAITER, &count, &weight), 2);
    ck_assert_uint_eq(count, 3);
    ck_assert_uint_eq(weight, 157);
    ck_assert_uint_eq(count_stacks(idx, PLK_PROF_HOLDER, &count, &weight), 1);
    ck_assert_uint_eq(weight, 8);
    // The first stack names the entry.
    uint32_t site = LOAD(e->site);
    ck_assert_uint_ne(site, 0);
    const struct plk_prof_stack *s = plk_prof_stack_at(site - 1);
    ck_assert_uint_eq(s->depth, 4);
    ck_assert_uint_eq(s->frames[3], 13);
}
END_TEST

START_TEST(no_stacks_at_depth_zero)
{
    ck_assert(plk_prof_init(16, 0));
    struct plk_prof_entry *e = plk_prof_lookup(objects[9], PLK_PROF_MUTEX, PLK_PROF_NORMAL);
    uintptr_t a[2] = { 1, 2 };
    plk_prof_record_stack(e, PLK_PROF_WAITER, a, 2, 1);
    ck_assert_uint_eq(plk_prof_stack_slots(), 0);
    ck_assert_uint_eq(LOAD(e->site), 0);
}
END_TEST

START_TEST(stack_table_full_counts_drops)
{
    ck_assert(plk_prof_init(1, 2)); // room for 4 stacks
    struct plk_prof_entry *e = plk_prof_lookup(objects[10], PLK_PROF_MUTEX, PLK_PROF_NORMAL);
    for (uintptr_t i = 1; i <= 6; i++) {
        uintptr_t f[1] = { i };
        plk_prof_record_stack(e, PLK_PROF_WAITER, f, 1, 1);
    }
    ck_assert_uint_eq(plk_prof_totals().stacks, 4);
    ck_assert_uint_eq(plk_prof_totals().dropped_stacks, 2);
}
END_TEST

START_TEST(reset_forgets_everything)
{
    ck_assert(plk_prof_init(16, 4));
    struct plk_prof_entry *e = plk_prof_lookup(objects[11], PLK_PROF_MUTEX, PLK_PROF_NORMAL);
    uintptr_t f[1] = { 1 };
    plk_prof_record_stack(e, PLK_PROF_WAITER, f, 1, 1);
    plk_prof_record_contention(plk_prof_other(), 1, false, false);
    plk_prof_reset();
    ck_assert_ptr_null(plk_prof_find(objects[11], PLK_PROF_MUTEX));
    ck_assert_uint_eq(plk_prof_totals().entries, 0);
    ck_assert_uint_eq(plk_prof_totals().stacks, 0);
    ck_assert_uint_eq(LOAD(plk_prof_other()->contended), 0);
    e = plk_prof_lookup(objects[11], PLK_PROF_MUTEX, PLK_PROF_NORMAL);
    ck_assert_uint_eq(e->id, 1);
    ck_assert_uint_eq(e->generation, 0);
}
END_TEST

/* Concurrency: many threads creating and updating the same few entries. */

#define RACERS 4
#define RACE_ROUNDS (20000 / SANITIZER_SLOWDOWN(10))

static _Atomic int race_go;

static void *racer(void *arg)
{
    (void)arg;
    while (!atomic_load(&race_go))
        ;
    for (int i = 0; i < RACE_ROUNDS; i++) {
        void *address = objects[20 + i % 8];
        struct plk_prof_entry *e = plk_prof_lookup(address, PLK_PROF_MUTEX, PLK_PROF_NORMAL);
        plk_prof_record_contention(e, 1, false, false);
        uintptr_t f[2] = { (uintptr_t)(i % 3), 7 };
        plk_prof_record_stack(e, PLK_PROF_WAITER, f, 2, 1);
    }
    return NULL;
}

START_TEST(concurrent_creation_makes_one_entry_per_address)
{
    ck_assert(plk_prof_init(64, 4));
    pthread_t t[RACERS];
    for (int i = 0; i < RACERS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, racer, NULL), 0);
    atomic_store(&race_go, 1);
    for (int i = 0; i < RACERS; i++)
        pthread_join(t[i], NULL);
    ck_assert_uint_eq(plk_prof_totals().entries, 8);
    uint64_t total = 0;
    for (int k = 0; k < 8; k++) {
        struct plk_prof_entry *e = plk_prof_find(objects[20 + k], PLK_PROF_MUTEX);
        ck_assert_ptr_nonnull(e);
        total += LOAD(e->contended);
        uint64_t count, weight;
        ck_assert_uint_le(count_stacks((uint32_t)plk_prof_entry_index(e), PLK_PROF_WAITER,
                                       &count, &weight), 3);
        ck_assert_uint_eq(count, LOAD(e->contended));
    }
    ck_assert_uint_eq(total, (uint64_t)RACERS * RACE_ROUNDS);
}
END_TEST

Suite *prof_suite(void)
{
    Suite *s = suite_create("prof");
    TCase *tables = tcase_create("Entries");
    tcase_add_test(tables, lookup_creates_once_and_find_does_not_create);
    tcase_add_test(tables, retired_address_gets_a_new_generation);
    tcase_add_test(tables, full_table_goes_to_other);
    tcase_add_test(tables, reset_forgets_everything);
    suite_add_tcase(s, tables);

    TCase *counters = tcase_create("Counters");
    tcase_add_test(counters, contention_counts_and_histogram);
    tcase_add_test(counters, bucket_bounds);
    tcase_add_test(counters, cond_waits);
    tcase_add_test(counters, acquisitions_fold_the_counter);
    suite_add_tcase(s, counters);

    TCase *stacks = tcase_create("Stacks");
    tcase_add_test(stacks, stacks_are_interned_per_entry_and_role);
    tcase_add_test(stacks, no_stacks_at_depth_zero);
    tcase_add_test(stacks, stack_table_full_counts_drops);
    suite_add_tcase(s, stacks);

    TCase *race = tcase_create("Concurrency");
    tcase_set_timeout(race, 120);
    tcase_add_test(race, concurrent_creation_makes_one_entry_per_address);
    suite_add_tcase(s, race);
    return s;
}
