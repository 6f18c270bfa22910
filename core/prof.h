// The contention profile: per-lock counters and per-stack weights, in tables
// mapped once with mmap. Recording never allocates, never takes a lock of any
// kind (atomics only) and never calls pthread_*, so it can run on any lock
// path, in any thread, at any time.
//
// Entries are keyed by (address, kind): a mutex or a condition variable. A
// lock destroyed (or re-initialised) retires its entry; the next event at the
// same address creates a new entry with a higher generation, so reuse of the
// address is reported apart. Stacks are interned per (entry, role, frames).
//
// When a table is full, events still count: lock events go to the "other"
// entry (plk_prof_other) and dropped stacks are counted (plk_prof_totals).
#ifndef PLK_PROF_H
#define PLK_PROF_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum plk_prof_kind {
    PLK_PROF_MUTEX = 1,
    PLK_PROF_COND = 2,
};

// What ran the lock, as the report names it (docs/dump-format.md "type").
enum plk_prof_type {
    PLK_PROF_NORMAL,
    PLK_PROF_RECURSIVE,
    PLK_PROF_ERRORCHECK,
    PLK_PROF_ADAPTIVE,
    PLK_PROF_GLIBC, // a mutex glibc runs (robust, shared, PI, PP, or any
                    // mutex under PARKLOCK_ENGINE=glibc)
    PLK_PROF_CONDVAR,
};

enum plk_prof_role {
    PLK_PROF_SITE,   // where the lock was first contended (its name)
    PLK_PROF_WAITER, // a thread that slept waiting for it
    PLK_PROF_HOLDER, // a thread that released it to a sleeping waiter
};

// Wait-time histogram: bucket k holds waits in [2^(k-1), 2^k) ns (bucket 0:
// 0 ns); the last bucket holds everything longer.
#define PLK_PROF_HIST_BUCKETS 48

#define PLK_PROF_MAX_DEPTH 64

enum plk_prof_state {
    PLK_PROF_FREE = 0,
    PLK_PROF_LIVE,
    PLK_PROF_RETIRED, // destroyed or re-initialised: history only
};

/*
 * One lock's counters. Written with relaxed atomics by any thread; the dump
 * reads them racily (a dump during activity may be off by the events in
 * flight). `address` and `state` are claimed by CAS when the entry is
 * created; `kind`, `type`, `generation` and `id` are written by the creator
 * before `state` becomes LIVE (release) and never change after.
 *
 * acquired/acquired_fold: mutexes count their acquisitions in their own
 * memory (32 bits, see interpose/profile.c); a thread holding the mutex, or
 * a dump, folds that counter into `acquired` with plk_prof_note_acquired.
 */
struct plk_prof_entry {
    _Atomic uintptr_t address; // 0: free slot
    _Atomic uint32_t state;    // enum plk_prof_state
    uint32_t id;               // unique, 1-based, in creation order
    uint32_t generation;       // earlier entries at the same address
    uint8_t kind;              // enum plk_prof_kind
    uint8_t type;              // enum plk_prof_type
    _Atomic uint32_t site;     // stack index + 1 of the naming site, 0: none

    // Mutexes (and the "other" row).
    _Atomic uint64_t contended;  // acquisitions that had to wait
    _Atomic uint64_t parked;     // ...of which slept in the kernel
    _Atomic uint64_t acquired;   // total acquisitions, when counted
    _Atomic uint64_t acquired_fold; // FOLD_COUNTED | last counter folded in
    _Atomic bool acquired_counted;  // copy of FOLD_COUNTED, for readers

    // Both: timeouts (timed lock / timed cond wait) and the wait times of
    // contended acquisitions (mutex) or of waits (cond).
    _Atomic uint64_t timeouts;
    _Atomic uint64_t wait_total_ns;
    _Atomic uint64_t wait_max_ns;
    _Atomic uint64_t hist[PLK_PROF_HIST_BUCKETS];

    // Condition variables.
    _Atomic uint64_t waits;
    _Atomic uint64_t timed_waits;
    _Atomic uint64_t signals;
    _Atomic uint64_t broadcasts;
    _Atomic uint64_t wakeups;
};

/*
 * One interned stack of one entry in one role: how often it occurred and its
 * weight (ns waited for waiters and sites, ns of delay caused for holders).
 * `key` (a hash, never 0) claims the slot; `frames`/`depth`/`entry`/`role`
 * are written before `ready` is set (release).
 */
struct plk_prof_stack {
    _Atomic uint64_t key;
    _Atomic uint32_t ready;
    uint32_t entry; // index of the entry (plk_prof_entry_at)
    uint8_t role;   // enum plk_prof_role
    uint8_t depth;
    _Atomic uint64_t count;
    _Atomic uint64_t weight;
    uintptr_t frames[]; // `depth` used, innermost first
};

struct plk_prof_totals {
    uint64_t dropped_entries; // events that found the entry table full
    uint64_t dropped_stacks;  // stack samples that found the stack table full
    size_t entries;           // entries in use (incl. retired)
    size_t stacks;            // stacks in use
};

// Maps the tables: up to `max_entries` locks and conds, stacks of up to
// `stack_depth` frames (0: none kept). Returns false (profiling stays off)
// if the memory cannot be mapped. Call once, before any recording.
bool plk_prof_init(size_t max_entries, int stack_depth);

// True once plk_prof_init succeeded.
bool plk_prof_ready(void);
int plk_prof_stack_depth(void);

// A forked child's fresh start: forgets every entry and stack.
void plk_prof_reset(void);

// The live entry for `address` of `kind`, created if needed with `type`;
// the "other" entry when the table is full.
struct plk_prof_entry *plk_prof_lookup(const void *address, enum plk_prof_kind kind,
                                       enum plk_prof_type type);

// The live entry for `address` of `kind`, or NULL; never creates.
struct plk_prof_entry *plk_prof_find(const void *address, enum plk_prof_kind kind);

// Retires the live entry of `address` (destroy or re-init), if any.
void plk_prof_retire(struct plk_prof_entry *e);

// One contended acquisition (or timed-out attempt) of a mutex.
void plk_prof_record_contention(struct plk_prof_entry *e, int64_t wait_ns, bool parked,
                                bool timed_out);

// One condition-variable wait that returned after `wait_ns`.
void plk_prof_record_cond_wait(struct plk_prof_entry *e, int64_t wait_ns, bool timed,
                               bool timed_out);

// A mutex holder (or a dump) folds the mutex's own 32-bit acquisition
// counter in: the total grows by how far the counter moved since the last
// fold, if it moved forward by less than 2^31. Returns false, changing
// nothing, if it moved backwards: an older reading racing a newer one, or,
// for a holder, a new mutex at the address (one freed without destroy).
bool plk_prof_note_acquired(struct plk_prof_entry *e, uint32_t counter);

// Adds one occurrence of `frames[0..n)` with `weight` to `e` in `role`
// (frames beyond the configured depth are dropped). The first site or
// waiter stack recorded for an entry also becomes its naming site.
void plk_prof_record_stack(struct plk_prof_entry *e, enum plk_prof_role role,
                           const uintptr_t *frames, int n, uint64_t weight);

// For the dump: the tables' slots (some free: check address / ready).
size_t plk_prof_entry_slots(void);
struct plk_prof_entry *plk_prof_entry_at(size_t i);
size_t plk_prof_stack_slots(void);
const struct plk_prof_stack *plk_prof_stack_at(size_t i);
struct plk_prof_entry *plk_prof_other(void);
size_t plk_prof_entry_index(const struct plk_prof_entry *e);
struct plk_prof_totals plk_prof_totals(void);

// Histogram helpers: the bucket of a wait, the upper bound (ns) of a bucket
// (INT64_MAX for the last, open one, so that JSON readers with 64-bit signed
// integers take it),
// and the q-quantile (0 < q <= 1) of an entry's waits, interpolated within
// its bucket and capped at the maximum.
unsigned plk_prof_bucket(uint64_t ns);
uint64_t plk_prof_bucket_limit(unsigned bucket);
uint64_t plk_prof_quantile(const struct plk_prof_entry *e, double q);

#endif
