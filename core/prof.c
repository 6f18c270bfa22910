// Contention profile tables (see prof.h).
#include "prof.h"

#include <string.h>
#include <sys/mman.h>

/*
 * Both tables are open-addressed with linear probing and never shrink:
 * entries are claimed by CAS on their key and stay claimed (a retired lock
 * keeps its slot: it is reported). Each table has twice as many slots as it
 * may hold items, so probes stay short; past the limit new items are
 * dropped (counted).
 *
 * Entries: key is the address; several entries may share it (one LIVE at a
 * time, the others RETIRED), found by continuing the probe. Two threads
 * creating the same address race for the same first free slot, so at most
 * one entry is created; the loser finds the winner's (it waits for LIVE).
 */

static struct {
    struct plk_prof_entry *entries;
    size_t entry_slots; // power of two
    size_t entry_limit;
    _Atomic size_t entries_used;
    _Atomic uint32_t next_id;

    unsigned char *stacks;
    size_t stack_slots; // power of two
    size_t stack_limit;
    size_t stack_stride;
    _Atomic size_t stacks_used;
    int depth;

    _Atomic uint64_t dropped_entries;
    _Atomic uint64_t dropped_stacks;
    _Atomic bool ready;
} prof;

static struct plk_prof_entry other_entry;

#define RELAXED memory_order_relaxed

static size_t pow2_at_least(size_t n)
{
    size_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

static void *map_zeroed(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

bool plk_prof_init(size_t max_entries, int stack_depth)
{
    if (max_entries < 1)
        max_entries = 1;
    if (stack_depth < 0)
        stack_depth = 0;
    if (stack_depth > PLK_PROF_MAX_DEPTH)
        stack_depth = PLK_PROF_MAX_DEPTH;
    prof.entry_limit = max_entries;
    prof.entry_slots = pow2_at_least(max_entries * 2);
    prof.entries = map_zeroed(prof.entry_slots * sizeof(struct plk_prof_entry));
    if (!prof.entries)
        return false;
    prof.depth = stack_depth;
    if (stack_depth > 0) {
        // About four stacks per lock (site, waiters, holders) on average.
        prof.stack_limit = max_entries * 4;
        prof.stack_slots = pow2_at_least(prof.stack_limit * 2);
        prof.stack_stride = (sizeof(struct plk_prof_stack) +
                             (size_t)stack_depth * sizeof(uintptr_t) + 15) & ~(size_t)15;
        prof.stacks = map_zeroed(prof.stack_slots * prof.stack_stride);
        if (!prof.stacks)
            prof.depth = 0;
    }
    atomic_store_explicit(&prof.ready, true, memory_order_release);
    return true;
}

bool plk_prof_ready(void)
{
    return atomic_load_explicit(&prof.ready, memory_order_acquire);
}

int plk_prof_stack_depth(void)
{
    return prof.depth;
}

void plk_prof_reset(void)
{
    if (!plk_prof_ready())
        return;
    // In a forked child only this thread exists: plain stores do. MADV
    // DONTNEED gives the pages back zeroed.
    madvise(prof.entries, prof.entry_slots * sizeof(struct plk_prof_entry), MADV_DONTNEED);
    if (prof.stacks)
        madvise(prof.stacks, prof.stack_slots * prof.stack_stride, MADV_DONTNEED);
    memset(&other_entry, 0, sizeof other_entry);
    atomic_store(&prof.entries_used, 0);
    atomic_store(&prof.stacks_used, 0);
    atomic_store(&prof.next_id, 0);
    atomic_store(&prof.dropped_entries, 0);
    atomic_store(&prof.dropped_stacks, 0);
}

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static inline uintptr_t entry_key(const void *address, enum plk_prof_kind kind)
{
    // A mutex and a cond never share an address while both are alive, but
    // a destroyed one's memory may be reused as the other: keep them apart.
    (void)kind;
    return (uintptr_t)address;
}

// Waits until a just-claimed entry is published (its creator is a few
// stores away from it).
static uint32_t settled_state(struct plk_prof_entry *e)
{
    uint32_t s;
    while ((s = atomic_load_explicit(&e->state, memory_order_acquire)) == PLK_PROF_FREE)
        ;
    return s;
}

static struct plk_prof_entry *probe(const void *address, enum plk_prof_kind kind,
                                    enum plk_prof_type type, bool create)
{
    if (!plk_prof_ready())
        return create ? &other_entry : NULL;
    uintptr_t key = entry_key(address, kind);
    if (key == 0)
        return create ? &other_entry : NULL;
    size_t mask = prof.entry_slots - 1;
    size_t i = mix64(key) & mask;
    uint32_t generation = 0;
    for (size_t n = 0; n < prof.entry_slots; n++, i = (i + 1) & mask) {
        struct plk_prof_entry *e = &prof.entries[i];
        uintptr_t a = atomic_load_explicit(&e->address, memory_order_acquire);
        if (a == 0) {
            if (!create)
                return NULL;
            if (atomic_fetch_add_explicit(&prof.entries_used, 1, RELAXED) >= prof.entry_limit) {
                atomic_fetch_sub_explicit(&prof.entries_used, 1, RELAXED);
                atomic_fetch_add_explicit(&prof.dropped_entries, 1, RELAXED);
                return &other_entry;
            }
            if (!atomic_compare_exchange_strong_explicit(&e->address, &a, key,
                                                         memory_order_acq_rel,
                                                         memory_order_acquire)) {
                atomic_fetch_sub_explicit(&prof.entries_used, 1, RELAXED);
                if (a != key)
                    continue; // someone else's address: keep probing
                // Lost the race for our own address: use the winner's entry.
                if (settled_state(e) == PLK_PROF_LIVE && e->kind == kind)
                    return e;
                generation++;
                continue;
            }
            e->kind = (uint8_t)kind;
            e->type = (uint8_t)type;
            e->generation = generation;
            e->id = atomic_fetch_add_explicit(&prof.next_id, 1, RELAXED) + 1;
            atomic_store_explicit(&e->state, PLK_PROF_LIVE, memory_order_release);
            return e;
        }
        if (a != key)
            continue;
        if (settled_state(e) == PLK_PROF_LIVE && e->kind == kind)
            return e;
        generation++;
    }
    if (create)
        atomic_fetch_add_explicit(&prof.dropped_entries, 1, RELAXED);
    return create ? &other_entry : NULL;
}

// A small per-thread cache of recent lookups: a thread usually works with a
// few locks at a time, and a hit costs two loads of the entry's first line
// instead of a probe. An entry is valid while it is LIVE at that address.
#define CACHE_SLOTS 8
static __thread struct plk_prof_entry *lookup_cache[CACHE_SLOTS]
    __attribute__((tls_model("initial-exec")));

static inline bool still_for(const struct plk_prof_entry *e, uintptr_t key,
                             enum plk_prof_kind kind)
{
    return e && atomic_load_explicit(&((struct plk_prof_entry *)e)->address, RELAXED) == key &&
           atomic_load_explicit(&((struct plk_prof_entry *)e)->state, memory_order_acquire) ==
               PLK_PROF_LIVE &&
           e->kind == kind;
}

struct plk_prof_entry *plk_prof_lookup(const void *address, enum plk_prof_kind kind,
                                       enum plk_prof_type type)
{
    uintptr_t key = entry_key(address, kind);
    struct plk_prof_entry **slot = &lookup_cache[(key >> 4) % CACHE_SLOTS];
    struct plk_prof_entry *e = *slot;
    if (still_for(e, key, kind))
        return e;
    e = probe(address, kind, type, true);
    if (e != &other_entry)
        *slot = e;
    return e;
}

struct plk_prof_entry *plk_prof_find(const void *address, enum plk_prof_kind kind)
{
    return probe(address, kind, 0, false);
}

void plk_prof_retire(struct plk_prof_entry *e)
{
    if (e && e != &other_entry)
        atomic_store_explicit(&e->state, PLK_PROF_RETIRED, memory_order_release);
}

unsigned plk_prof_bucket(uint64_t ns)
{
    unsigned b = ns == 0 ? 0 : 64 - (unsigned)__builtin_clzll(ns);
    return b < PLK_PROF_HIST_BUCKETS ? b : PLK_PROF_HIST_BUCKETS - 1;
}

uint64_t plk_prof_bucket_limit(unsigned bucket)
{
    if (bucket >= PLK_PROF_HIST_BUCKETS - 1)
        return INT64_MAX;
    return (uint64_t)1 << bucket;
}

static void record_wait(struct plk_prof_entry *e, int64_t wait_ns)
{
    uint64_t ns = wait_ns > 0 ? (uint64_t)wait_ns : 0;
    atomic_fetch_add_explicit(&e->wait_total_ns, ns, RELAXED);
    uint64_t max = atomic_load_explicit(&e->wait_max_ns, RELAXED);
    while (ns > max &&
           !atomic_compare_exchange_weak_explicit(&e->wait_max_ns, &max, ns, RELAXED, RELAXED))
        ;
    atomic_fetch_add_explicit(&e->hist[plk_prof_bucket(ns)], 1, RELAXED);
}

void plk_prof_record_contention(struct plk_prof_entry *e, int64_t wait_ns, bool parked,
                                bool timed_out)
{
    atomic_fetch_add_explicit(&e->contended, 1, RELAXED);
    if (parked)
        atomic_fetch_add_explicit(&e->parked, 1, RELAXED);
    if (timed_out)
        atomic_fetch_add_explicit(&e->timeouts, 1, RELAXED);
    record_wait(e, wait_ns);
}

void plk_prof_record_cond_wait(struct plk_prof_entry *e, int64_t wait_ns, bool timed,
                               bool timed_out)
{
    atomic_fetch_add_explicit(&e->waits, 1, RELAXED);
    if (timed)
        atomic_fetch_add_explicit(&e->timed_waits, 1, RELAXED);
    if (timed_out)
        atomic_fetch_add_explicit(&e->timeouts, 1, RELAXED);
    else
        atomic_fetch_add_explicit(&e->wakeups, 1, RELAXED);
    record_wait(e, wait_ns);
}

#define FOLD_COUNTED ((uint64_t)1 << 32)

bool plk_prof_note_acquired(struct plk_prof_entry *e, uint32_t counter)
{
    // Holders of the mutex call this (serialised by the mutex), and so may a
    // dump (racing with them). The counter seen last and whether there was
    // one are one word, so that a racing older reading cannot pass the
    // check on a half-made first fold.
    if (e == &other_entry)
        return true;
    uint64_t fold = atomic_load_explicit(&e->acquired_fold, RELAXED);
    uint32_t seen;
    do {
        seen = (uint32_t)fold;
        if (fold & FOLD_COUNTED) {
            int32_t moved = (int32_t)(counter - seen);
            if (moved <= 0)
                return moved == 0;
        }
    } while (!atomic_compare_exchange_weak_explicit(&e->acquired_fold, &fold,
                                                    FOLD_COUNTED | counter, RELAXED,
                                                    RELAXED));
    atomic_fetch_add_explicit(&e->acquired, (uint32_t)(counter - seen), RELAXED);
    atomic_store_explicit(&e->acquired_counted, true, RELAXED);
    return true;
}

static inline struct plk_prof_stack *stack_slot(size_t i)
{
    return (struct plk_prof_stack *)(prof.stacks + i * prof.stack_stride);
}

static uint64_t stack_hash(size_t entry, enum plk_prof_role role, const uintptr_t *frames,
                           int n)
{
    uint64_t h = mix64(entry * 4 + (uint64_t)role + 1);
    for (int i = 0; i < n; i++)
        h = mix64(h ^ frames[i]);
    return h ? h : 1;
}

static bool same_stack(const struct plk_prof_stack *s, size_t entry, enum plk_prof_role role,
                       const uintptr_t *frames, int n)
{
    return s->entry == entry && s->role == role && s->depth == n &&
           memcmp(s->frames, frames, (size_t)n * sizeof *frames) == 0;
}

void plk_prof_record_stack(struct plk_prof_entry *e, enum plk_prof_role role,
                           const uintptr_t *frames, int n, uint64_t weight)
{
    if (!prof.stacks || e == &other_entry || n <= 0)
        return;
    if (n > prof.depth)
        n = prof.depth;
    size_t entry = plk_prof_entry_index(e);
    uint64_t key = stack_hash(entry, role, frames, n);
    size_t mask = prof.stack_slots - 1;
    size_t i = key & mask;
    for (size_t probes = 0; probes < prof.stack_slots; probes++, i = (i + 1) & mask) {
        struct plk_prof_stack *s = stack_slot(i);
        uint64_t k = atomic_load_explicit(&s->key, memory_order_acquire);
        if (k == 0) {
            if (atomic_fetch_add_explicit(&prof.stacks_used, 1, RELAXED) >= prof.stack_limit) {
                atomic_fetch_sub_explicit(&prof.stacks_used, 1, RELAXED);
                break;
            }
            if (!atomic_compare_exchange_strong_explicit(&s->key, &k, key,
                                                         memory_order_acq_rel,
                                                         memory_order_acquire)) {
                atomic_fetch_sub_explicit(&prof.stacks_used, 1, RELAXED);
                if (k != key)
                    continue;
            } else {
                s->entry = (uint32_t)entry;
                s->role = (uint8_t)role;
                s->depth = (uint8_t)n;
                memcpy(s->frames, frames, (size_t)n * sizeof *frames);
                atomic_store_explicit(&s->ready, 1, memory_order_release);
                // The first waiter's (or site) stack recorded for an entry
                // names it; a holder's stack is where it was released.
                uint32_t none = 0;
                if (role != PLK_PROF_HOLDER)
                    atomic_compare_exchange_strong_explicit(&e->site, &none, (uint32_t)i + 1,
                                                            RELAXED, RELAXED);
                atomic_fetch_add_explicit(&s->count, 1, RELAXED);
                atomic_fetch_add_explicit(&s->weight, weight, RELAXED);
                return;
            }
        }
        if (k != key)
            continue;
        while (!atomic_load_explicit(&s->ready, memory_order_acquire))
            ; // its creator is copying the frames
        if (!same_stack(s, entry, role, frames, n))
            continue; // a hash collision
        atomic_fetch_add_explicit(&s->count, 1, RELAXED);
        atomic_fetch_add_explicit(&s->weight, weight, RELAXED);
        return;
    }
    atomic_fetch_add_explicit(&prof.dropped_stacks, 1, RELAXED);
}

size_t plk_prof_entry_slots(void)
{
    return plk_prof_ready() ? prof.entry_slots : 0;
}

struct plk_prof_entry *plk_prof_entry_at(size_t i)
{
    return &prof.entries[i];
}

size_t plk_prof_stack_slots(void)
{
    return plk_prof_ready() && prof.stacks ? prof.stack_slots : 0;
}

const struct plk_prof_stack *plk_prof_stack_at(size_t i)
{
    return stack_slot(i);
}

struct plk_prof_entry *plk_prof_other(void)
{
    return &other_entry;
}

size_t plk_prof_entry_index(const struct plk_prof_entry *e)
{
    return (size_t)(e - prof.entries);
}

struct plk_prof_totals plk_prof_totals(void)
{
    return (struct plk_prof_totals){
        .dropped_entries = atomic_load_explicit(&prof.dropped_entries, RELAXED),
        .dropped_stacks = atomic_load_explicit(&prof.dropped_stacks, RELAXED),
        .entries = atomic_load_explicit(&prof.entries_used, RELAXED),
        .stacks = atomic_load_explicit(&prof.stacks_used, RELAXED),
    };
}

uint64_t plk_prof_quantile(const struct plk_prof_entry *e, double q)
{
    uint64_t counts[PLK_PROF_HIST_BUCKETS], total = 0;
    for (unsigned b = 0; b < PLK_PROF_HIST_BUCKETS; b++) {
        counts[b] = atomic_load_explicit(&((struct plk_prof_entry *)e)->hist[b], RELAXED);
        total += counts[b];
    }
    uint64_t max = atomic_load_explicit(&((struct plk_prof_entry *)e)->wait_max_ns, RELAXED);
    if (total == 0)
        return 0;
    double rank = q * (double)total; // the rank-th smallest wait, 1-based
    uint64_t below = 0;
    for (unsigned b = 0; b < PLK_PROF_HIST_BUCKETS; b++) {
        if (counts[b] == 0)
            continue;
        if ((double)(below + counts[b]) >= rank) {
            if (b == 0)
                return 0;
            double lo = (double)((uint64_t)1 << (b - 1));
            double hi = b == PLK_PROF_HIST_BUCKETS - 1 ? (double)max : lo * 2;
            double frac = (rank - (double)below) / (double)counts[b];
            uint64_t v = (uint64_t)(lo + (hi - lo) * frac);
            return v < max ? v : max;
        }
        below += counts[b];
    }
    return max;
}
