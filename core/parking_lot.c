// The parking lot: see parking_lot.h for the contract, docs/design.md for the
// invariants in prose.
#include "parking_lot.h"

#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "atomic.h"
#include "parker.h"
#include "log.h"
#include "rawlock.h"

/*
 * One wait queue for every address hashing to it, FIFO in arrival order.
 * Everything but the lock itself is protected by the lock.
 */
struct bucket {
    struct plk_rawlock lock;
    uint32_t rng;             // xorshift state for the fairness timer
    int64_t fair_deadline_ns; // CLOCK_MONOTONIC: next unpark hands off after it
    struct plk_waiter *head;
    struct plk_waiter *tail;
} __attribute__((aligned(PLK_CACHE_LINE)));

/*
 * The hash table. Tables only grow and are never freed: a thread that loaded
 * an old table pointer may still lock one of its buckets, notice that the
 * table is no longer current and retry. Growth holds every bucket lock of
 * the old table, so no queue changes while waiters are moved.
 */
struct table {
    unsigned log2;
    struct bucket *buckets;
};

// Enough buckets for 3 parked threads each (WebKit's and Rust's load factor);
// growth doubles once more so that it stays rare.
#define LOAD_FACTOR 3
#define GROWTH_FACTOR 2
#define INITIAL_LOG2 6

// Fairness: at most this long between two direct hand-offs per bucket.
#define FAIR_WINDOW_NS 1000000

static struct bucket initial_buckets[1u << INITIAL_LOG2];
static struct table initial_table = { INITIAL_LOG2, initial_buckets };
static _Atomic(struct table *) current_table = &initial_table;

// Threads inside plk_park_ex right now; the table grows with its high mark.
static _Atomic size_t parked_threads;

/*
 * Fork. The child's only thread is the one that forked: every queued waiter
 * and every held bucket lock belongs to a thread that does not exist there,
 * so the child must reset the table before its first use. Other libraries'
 * atfork handlers may lock and unlock mutexes (jemalloc's do) before or
 * after ours, in either process, so the reset cannot rely on the order of
 * atfork handlers, and the parent must never hold bucket locks across fork.
 * Instead a page mapped with MADV_WIPEONFORK reads ALIVE in the process that
 * mapped it and 0 in any forked child (with or without atfork handlers:
 * _Fork too); the first table access in the child sees 0 and resets.
 */
enum { SENTINEL_FORKED = 0, SENTINEL_ALIVE = 1, SENTINEL_RESETTING = 2 };

// NULL until mapped; &sentinel_unsupported if MADV_WIPEONFORK is missing
// (then only the atfork child handler resets).
static _Atomic uint32_t *_Atomic fork_sentinel;
static _Atomic uint32_t sentinel_unsupported = SENTINEL_ALIVE;

static void reset_table(void);

/*
 * Signal handlers. A handler may lock and unlock mutexes and signal conds
 * (not async-signal-safe in POSIX, but glibc's futex locks tolerate it as
 * long as the handler needs no lock its thread holds, and programs rely on
 * that). Bucket locks are invisible to the program, so two rules keep them
 * from closing a cycle that glibc would not have:
 *
 * 1. A thread never waits for a bucket lock it holds itself. Each thread
 *    counts the bucket locks it holds; code that finds the count non-zero on
 *    entry runs in a handler nested in such a section, and only ever tries
 *    bucket locks (try_hold). If that fails, park returns BUSY and unparks
 *    give up, as in rule 2.
 * 2. While such a nested handler waits (polls for a mutex, or sleeps), its
 *    interrupted section cannot end. It announces itself in nested_waiters,
 *    and then no other thread waits indefinitely for a bucket lock: after the
 *    short spin (and at least every millisecond while asleep) it gives up,
 *    because it may hold a mutex the handler waits for. A park then returns
 *    BUSY (the caller retries, or releases its mutex and wakes spuriously);
 *    a mutex unlock releases the word first and posts its wake-up as a note;
 *    cond signals and broadcasts post theirs. Notes are run by whichever
 *    thread releases a bucket lock next (see run_notes).
 *
 * Only a thread leaving a queue it is in (timeout, cancellation) still
 * waits for its bucket indefinitely: it cannot return without.
 */
static __thread unsigned held_buckets;
static _Atomic unsigned nested_waiters;
// Set by a signal handler wrapper that postponed a handler (see
// plk_parking_lot_call_when_free); run once the thread holds no bucket lock
// and owes no wake-up: an unpark that claimed a waiter (and may have handed
// it a mutex) wakes it after releasing the bucket, and a handler run before
// that could wait for the very thread it has not woken yet.
static __thread void (*when_free)(void);
static __thread unsigned waking; // unparks in progress on this thread

static inline void call_when_free(void)
{
    atomic_signal_fence(memory_order_seq_cst);
    if (__builtin_expect(when_free != NULL, 0) && held_buckets == 0 && waking == 0) {
        void (*fn)(void) = when_free;
        when_free = NULL;
        atomic_signal_fence(memory_order_seq_cst);
        fn();
    }
}

static inline void begin_waking(void)
{
    waking++;
    atomic_signal_fence(memory_order_seq_cst);
}

static inline void end_waking(void)
{
    atomic_signal_fence(memory_order_seq_cst);
    waking--;
    call_when_free();
}

static bool a_holder_may_be_stuck(void)
{
    return atomic_load_explicit(&nested_waiters, memory_order_relaxed) != 0;
}

bool plk_parking_lot_busy_here(void)
{
    return held_buckets != 0;
}

bool plk_parking_lot_handler_must_wait(void)
{
    return held_buckets != 0 || waking != 0;
}

void plk_parking_lot_owe_begin(void)
{
    begin_waking();
}

void plk_parking_lot_owe_end(void)
{
    end_waking();
}

void plk_parking_lot_call_when_free(void (*fn)(void))
{
    when_free = fn;
}

void plk_parking_lot_nested_wait_begin(void)
{
    atomic_fetch_add_explicit(&nested_waiters, 1, memory_order_relaxed);
}

void plk_parking_lot_nested_wait_end(void)
{
    atomic_fetch_sub_explicit(&nested_waiters, 1, memory_order_relaxed);
}

/*
 * Notes: wake-ups whose bucket lock was not available. A slot's state word
 * holds a phase, FREE -> FILLING -> READY -> RUNNING -> FREE (or back to
 * READY when its bucket is still held), the number of threads to wake, and
 * a generation that changes at each filling. A wake-up for an address that
 * already has a READY note just adds to its count: so the slots needed are
 * bounded by the addresses whose buckets are stuck, not by the number of
 * wake-ups. pending_notes counts the slots not FREE.
 *
 * No note is forgotten: a note is made READY (seq_cst) before its bucket
 * lock is tried, and every release of a bucket lock (an exchange, seq_cst)
 * is followed by a load of pending_notes. So when the try fails, the holder
 * it failed on -- or a later one -- sees the note when it releases.
 */
#define NOTE_SLOTS 64
enum { NOTE_FREE, NOTE_FILLING, NOTE_READY, NOTE_RUNNING };
#define NOTE_PHASE(s) ((uint32_t)(s)&3u)
#define NOTE_COUNT(s) ((uint32_t)(s) >> 2)
#define NOTE_MAX_COUNT (UINT32_MAX >> 2)
#define NOTE_STATE(gen, count, phase) \
    (((uint64_t)(gen) << 32) | ((uint64_t)(count) << 2) | (phase))
#define NOTE_GEN(s) ((uint32_t)((s) >> 32))

static struct note {
    _Atomic uint64_t state;
    // Written while FILLING, read by mergers that check the state around.
    _Atomic uintptr_t address;
    _Atomic(plk_unpark_fn) fn;
    _Atomic bool all;
} notes[NOTE_SLOTS];
static _Atomic uint32_t pending_notes;

static __thread bool running_notes;      // run_notes is on this thread's stack
static __thread volatile bool run_again; // ... and must make another pass

static void run_notes(void);

static inline void hold(struct plk_rawlock *l)
{
    held_buckets++;
    // Counted before the lock is taken, even as the compiler sees it: a
    // handler must never find the lock held and the count zero.
    atomic_signal_fence(memory_order_seq_cst);
    plk_rawlock_lock(l);
}

static inline void unhold(void)
{
    atomic_signal_fence(memory_order_seq_cst);
    held_buckets--;
    call_when_free();
}

static inline bool try_hold(struct plk_rawlock *l)
{
    held_buckets++;
    atomic_signal_fence(memory_order_seq_cst);
    if (plk_rawlock_trylock(l))
        return true;
    unhold();
    return false;
}

// Takes a bucket lock unless that could wait for ever (rules 1 and 2).
// `nested` is whether the thread held bucket locks when the operation began
// (not now: the second lock of a pair is not a nested one).
static inline bool take_unless_stuck(struct plk_rawlock *l, bool nested)
{
    if (nested)
        return try_hold(l);
    held_buckets++;
    atomic_signal_fence(memory_order_seq_cst);
    if (plk_rawlock_lock_unless(l, a_holder_may_be_stuck))
        return true;
    unhold();
    return false;
}

static inline bool hold_unless_stuck(struct plk_rawlock *l)
{
    return take_unless_stuck(l, held_buckets != 0);
}

// Every release looks for notes (the lock may be the one a note waits for),
// even if this thread still holds another bucket lock: run_notes only tries.
static inline void release(struct plk_rawlock *l)
{
    plk_rawlock_unlock(l);
    atomic_signal_fence(memory_order_seq_cst);
    held_buckets--;
    if (__builtin_expect(atomic_load(&pending_notes) != 0, 0))
        run_notes();
    call_when_free(); // reads when_free after the count, as a handler could
}

static size_t table_size(const struct table *t)
{
    return (size_t)1 << t->log2;
}

static size_t hash(uintptr_t address, unsigned log2)
{
    // Fibonacci hashing: the high bits of the product are well mixed.
    return (size_t)(((uint64_t)address * 0x9E3779B97F4A7C15ull) >> (64 - log2));
}

static void map_sentinel(void)
{
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    _Atomic uint32_t *s = &sentinel_unsupported;
    if (page != MAP_FAILED) {
        if (madvise(page, 4096, MADV_WIPEONFORK) == 0) {
            s = page;
            atomic_store_explicit(s, SENTINEL_ALIVE, memory_order_relaxed);
        } else {
            munmap(page, 4096);
        }
    }
    _Atomic uint32_t *expected = NULL;
    if (!atomic_compare_exchange_strong(&fork_sentinel, &expected, s) &&
        s != &sentinel_unsupported)
        munmap((void *)s, 4096); // another thread mapped one first
}

// Resets the table if this is a forked child that has not done so yet.
static void check_forked(void)
{
    _Atomic uint32_t *s = atomic_load_explicit(&fork_sentinel, memory_order_acquire);
    if (__builtin_expect(!s, 0)) {
        map_sentinel();
        return; // nothing can have been forked from a process without it
    }
    uint32_t v = atomic_load_explicit(s, memory_order_acquire);
    if (__builtin_expect(v == SENTINEL_ALIVE, 1))
        return;
    if (v == SENTINEL_FORKED &&
        atomic_compare_exchange_strong(s, &v, SENTINEL_RESETTING)) {
        reset_table();
        atomic_store_explicit(s, SENTINEL_ALIVE, memory_order_release);
        return;
    }
    // Another of the child's threads is resetting: wait for it.
    while (atomic_load_explicit(s, memory_order_acquire) != SENTINEL_ALIVE)
        plk_cpu_relax();
}

static struct table *load_table(void)
{
    check_forked();
    return atomic_load_explicit(&current_table, memory_order_acquire);
}

static bool is_current(const struct table *t)
{
    return atomic_load_explicit(&current_table, memory_order_relaxed) == t;
}

// Locks the bucket of `address` in the current table with `take` (hold,
// hold_unless_stuck or try_hold); NULL if `take` failed.
static inline struct bucket *lock_bucket_with(uintptr_t address,
                                              bool (*take)(struct plk_rawlock *))
{
    for (;;) {
        struct table *t = load_table();
        struct bucket *b = &t->buckets[hash(address, t->log2)];
        if (!take(&b->lock))
            return NULL;
        if (is_current(t))
            return b;
        release(&b->lock);
    }
}

static bool hold_for_ever(struct plk_rawlock *l)
{
    hold(l);
    return true;
}

// Waits as long as it takes: only for a thread leaving a queue it is in.
static struct bucket *lock_bucket(uintptr_t address)
{
    return lock_bucket_with(address, hold_for_ever);
}

// NULL when the lock may be held by a thread that cannot go on (see above).
static struct bucket *lock_bucket_unless_stuck(uintptr_t address)
{
    return lock_bucket_with(address, hold_unless_stuck);
}

// Locks the bucket of a waiter whose address a requeue may change meanwhile.
static struct bucket *lock_waiter_bucket(struct plk_waiter *w)
{
    for (;;) {
        uintptr_t key = atomic_load_explicit(&w->address, memory_order_relaxed);
        struct bucket *b = lock_bucket(key);
        if (atomic_load_explicit(&w->address, memory_order_relaxed) == key)
            return b;
        release(&b->lock);
    }
}

// Locks the buckets of two addresses in table order (once if they share
// one); false, holding neither, when one of them may be held by a thread
// that cannot go on.
static bool lock_bucket_pair(uintptr_t a, uintptr_t b, struct bucket **ba,
                             struct bucket **bb)
{
    bool nested = held_buckets != 0;
    for (;;) {
        struct table *t = load_table();
        size_t ia = hash(a, t->log2), ib = hash(b, t->log2);
        struct bucket *first = &t->buckets[ia < ib ? ia : ib];
        struct bucket *second = &t->buckets[ia < ib ? ib : ia];
        if (!take_unless_stuck(&first->lock, nested))
            return false;
        if (second != first && !take_unless_stuck(&second->lock, nested)) {
            release(&first->lock);
            return false;
        }
        if (is_current(t)) {
            *ba = &t->buckets[ia];
            *bb = &t->buckets[ib];
            return true;
        }
        if (second != first)
            release(&second->lock);
        release(&first->lock);
    }
}

static void unlock_bucket_pair(struct bucket *ba, struct bucket *bb)
{
    if (bb != ba)
        release(&bb->lock);
    release(&ba->lock);
}

static void unlock_first(struct table *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        release(&t->buckets[i].lock);
}

// Locks every bucket of `t`, or none (see lock_bucket_pair).
static bool lock_all(struct table *t)
{
    bool nested = held_buckets != 0;
    for (size_t i = 0; i < table_size(t); i++) {
        if (!take_unless_stuck(&t->buckets[i].lock, nested)) {
            unlock_first(t, i);
            return false;
        }
    }
    return true;
}

static void unlock_all(struct table *t)
{
    unlock_first(t, table_size(t));
}

/* Queue operations: callers hold the bucket lock. */

static void enqueue(struct bucket *b, struct plk_waiter *w)
{
    w->next = NULL;
    w->prev = b->tail;
    if (b->tail)
        b->tail->next = w;
    else
        b->head = w;
    b->tail = w;
}

static void dequeue(struct bucket *b, struct plk_waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        b->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        b->tail = w->prev;
}

static uintptr_t key_of(const struct plk_waiter *w)
{
    return atomic_load_explicit(&w->address, memory_order_relaxed);
}

static struct plk_waiter *find_from(struct plk_waiter *w, uintptr_t address)
{
    while (w && key_of(w) != address)
        w = w->next;
    return w;
}

static uint32_t next_random(struct bucket *b)
{
    uint32_t x = b->rng;
    if (x == 0)
        x = (uint32_t)((uintptr_t)b >> 6) | 1u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b->rng = x;
    return x;
}

// Per bucket, a timer randomised in [0, 1 ms): when it has expired, the next
// unpark should hand the lock to the woken thread instead of letting others
// barge, and the timer restarts.
static bool time_to_be_fair(struct bucket *b)
{
    int64_t now = plk_clock_now_ns();
    if (now < b->fair_deadline_ns)
        return false;
    b->fair_deadline_ns = now + next_random(b) % FAIR_WINDOW_NS;
    return true;
}

// Marks `w` claimed with `token`. After the bucket lock is released, the
// caller wakes &w->parker: w itself may vanish as soon as that store lands.
static void claim(struct plk_waiter *w, uintptr_t token)
{
    w->token = token;
    w->dequeued = true;
}

/* Growth. */

static unsigned log2_at_least(size_t n)
{
    unsigned log2 = INITIAL_LOG2;
    while (((size_t)1 << log2) < n && log2 < 40)
        log2++;
    return log2;
}

// Maps a zeroed table of 2^log2 buckets; the header takes one cache line.
static struct table *map_table(unsigned log2)
{
    size_t bytes = PLK_CACHE_LINE + (sizeof(struct bucket) << log2);
    void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return NULL;
    struct table *t = mem;
    t->log2 = log2;
    t->buckets = (struct bucket *)((char *)mem + PLK_CACHE_LINE);
    return t;
}

static void unmap_table(struct table *t)
{
    munmap(t, PLK_CACHE_LINE + (sizeof(struct bucket) << t->log2));
}

// Moves every waiter of `from` into `to`, keeping each address's FIFO order
// (all waiters of one address share one old bucket, walked head to tail).
static void rehash(struct table *from, struct table *to)
{
    for (size_t i = 0; i < table_size(from); i++) {
        struct plk_waiter *w = from->buckets[i].head;
        while (w) {
            struct plk_waiter *next = w->next;
            enqueue(&to->buckets[hash(key_of(w), to->log2)], w);
            w = next;
        }
        from->buckets[i].head = from->buckets[i].tail = NULL;
    }
}

static void grow_for(size_t threads)
{
    size_t needed = threads * LOAD_FACTOR;
    for (;;) {
        struct table *t = load_table();
        if (table_size(t) >= needed)
            return;
        struct table *bigger = map_table(log2_at_least(needed * GROWTH_FACTOR));
        if (!bigger)
            return; // Out of memory: longer queues, still correct.
        if (!lock_all(t)) {
            unmap_table(bigger);
            return; // a bucket may stay locked for long: grow another time
        }
        if (!is_current(t)) {
            unlock_all(t);
            unmap_table(bigger);
            continue;
        }
        rehash(t, bigger);
        atomic_store_explicit(&current_table, bigger, memory_order_release);
        unlock_all(t);
        return;
    }
}

static void enter_lot(void)
{
    size_t n = atomic_fetch_add_explicit(&parked_threads, 1, memory_order_relaxed) + 1;
    if (table_size(load_table()) < n * LOAD_FACTOR)
        grow_for(n);
}

// CPUs this process may run on (sched_getaffinity: a plain syscall), read
// once; 1 if unknown.
static int usable_cpus(void)
{
    static _Atomic int cpus;
    int n = atomic_load_explicit(&cpus, memory_order_relaxed);
    if (__builtin_expect(n == 0, 0)) {
        cpu_set_t set;
        n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
        if (n < 1)
            n = 1;
        atomic_store_explicit(&cpus, n, memory_order_relaxed);
    }
    return n;
}

// Spinning before sleep pays only when a CPU is free for the spinner.
static bool may_spin(void)
{
    return atomic_load_explicit(&parked_threads, memory_order_relaxed) <=
           (size_t)usable_cpus();
}

static void leave_lot(void)
{
    atomic_fetch_sub_explicit(&parked_threads, 1, memory_order_relaxed);
}

/* Park. */

enum plk_park_result plk_park_ex(const void *address,
                                 const struct plk_park_ops *ops,
                                 const struct plk_deadline *deadline,
                                 void *park_arg, uintptr_t *token)
{
    struct plk_waiter w;
    return plk_park_waiter(&w, address, ops, deadline, park_arg, token);
}

// Takes `w` out of its queue unless an unparker claimed it first; in that
// case waits for the claimed wake-up (and token, e.g. a mutex handed over),
// which is on its way. Returns whether it had been claimed.
static bool leave_queue(struct plk_waiter *w, const struct plk_park_ops *ops)
{
    struct bucket *b = lock_waiter_bucket(w);
    if (w->dequeued) {
        release(&b->lock);
        plk_parker_wait(&w->parker, NULL);
        return true;
    }
    uintptr_t key = key_of(w);
    dequeue(b, w);
    bool was_last = find_from(b->head, key) == NULL;
    if (ops->timed_out)
        ops->timed_out(ops->ctx, (const void *)key, was_last);
    release(&b->lock);
    return false;
}

enum plk_park_result plk_park_waiter(struct plk_waiter *w, const void *address,
                                     const struct plk_park_ops *ops,
                                     const struct plk_deadline *deadline,
                                     void *park_arg, uintptr_t *token)
{
    static const struct plk_park_ops no_ops;
    if (!ops)
        ops = &no_ops;
    *w = (struct plk_waiter){
        .address = (uintptr_t)address,
        .park_arg = park_arg,
        .token = PLK_TOKEN_NORMAL,
        .requeued_by = PLK_REQUEUE_ABORT,
    };

    enter_lot();
    struct bucket *b = lock_bucket_unless_stuck((uintptr_t)address);
    if (!b) {
        leave_lot();
        return PLK_PARK_BUSY;
    }
    if (ops->validate && !ops->validate(ops->ctx)) {
        release(&b->lock);
        leave_lot();
        return PLK_PARK_AGAIN;
    }
    plk_parker_arm(&w->parker);
    enqueue(b, w);
    // A handler nested in its thread's bucket section: that section cannot
    // end before we are woken (rule 2).
    bool nested = held_buckets > 1;
    if (nested)
        plk_parking_lot_nested_wait_begin();
    release(&b->lock);

    enum plk_park_result result = PLK_PARK_OK;
    if (ops->before_sleep && !ops->before_sleep(ops->ctx)) {
        if (!leave_queue(w, ops))
            result = PLK_PARK_REFUSED;
    } else if (!(ops->spin_ns > 0 && may_spin() &&
                 plk_parker_spin(&w->parker, ops->spin_ns, deadline)) &&
               !plk_parker_wait_ex(&w->parker, deadline, ops->cancellable) &&
               !leave_queue(w, ops)) {
        result = PLK_PARK_TIMEOUT;
    }
    if (result == PLK_PARK_OK && token)
        *token = w->token;
    if (nested)
        plk_parking_lot_nested_wait_end();
    leave_lot();
    return result;
}

bool plk_park_abandon(struct plk_waiter *w, const struct plk_park_ops *ops,
                      uintptr_t *token)
{
    static const struct plk_park_ops no_ops;
    bool claimed = leave_queue(w, ops ? ops : &no_ops);
    if (claimed && token)
        *token = w->token;
    leave_lot();
    return claimed;
}

struct compare_ctx {
    const void *address;
    const void *expected;
    size_t size;
};

static bool value_unchanged(void *arg)
{
    const struct compare_ctx *c = arg;
    switch (c->size) {
    case 1:
        return __atomic_load_n((const uint8_t *)c->address, __ATOMIC_RELAXED) ==
               *(const uint8_t *)c->expected;
    case 2:
        return __atomic_load_n((const uint16_t *)c->address, __ATOMIC_RELAXED) ==
               *(const uint16_t *)c->expected;
    case 4:
        return __atomic_load_n((const uint32_t *)c->address, __ATOMIC_RELAXED) ==
               *(const uint32_t *)c->expected;
    case 8:
        return __atomic_load_n((const uint64_t *)c->address, __ATOMIC_RELAXED) ==
               *(const uint64_t *)c->expected;
    default:
        return false;
    }
}

enum plk_park_result plk_park(const void *address, const void *expected,
                              size_t size, int64_t timeout_ns, void *park_arg)
{
    struct compare_ctx ctx = { address, expected, size };
    struct plk_park_ops ops = { .validate = value_unchanged, .ctx = &ctx };
    struct plk_deadline deadline;
    if (timeout_ns >= 0)
        deadline = plk_deadline_after_ns(timeout_ns);
    return plk_park_ex(address, &ops, timeout_ns >= 0 ? &deadline : NULL,
                       park_arg, NULL);
}

/* Unpark. */

static size_t unpark_one(const void *address, plk_unpark_fn fn, void *arg)
{
    uintptr_t key = (uintptr_t)address;
    struct bucket *b = lock_bucket_unless_stuck(key);
    if (!b)
        return PLK_UNPARK_GAVE_UP;
    struct plk_waiter *w = find_from(b->head, key);
    struct plk_unpark_result r = { 0 };
    if (w) {
        r.park_arg = w->park_arg;
        r.unparked = 1;
        r.has_more_waiters = find_from(w->next, key) != NULL;
        r.be_fair = time_to_be_fair(b);
        dequeue(b, w);
    }
    uintptr_t token = fn ? fn(arg, &r) : PLK_TOKEN_NORMAL;
    struct plk_parker *parker = NULL;
    if (w) {
        parker = &w->parker;
        claim(w, token);
    }
    release(&b->lock);
    if (parker)
        plk_parker_wake(parker);
    return r.unparked;
}

size_t plk_unpark_one(const void *address, plk_unpark_fn fn, void *arg)
{
    begin_waking();
    size_t n = unpark_one(address, fn, arg);
    end_waking();
    return n;
}

// Wakes a list of claimed waiters linked through `next`.
static void wake_list(struct plk_waiter *w)
{
    while (w) {
        struct plk_waiter *next = w->next;
        plk_parker_wake(&w->parker); // w may be gone after this
        w = next;
    }
}

// Dequeues and claims the first `limit` waiters on `key`, the caller holding
// its bucket lock `b`; returns them linked through `next`. `fn` (may be
// NULL) gives their token, and runs only if there is one.
static struct plk_waiter *take_waiters(struct bucket *b, uintptr_t key, size_t limit,
                                       plk_unpark_fn fn, void *arg, size_t *n)
{
    struct plk_waiter *woken = NULL, **tail = &woken;
    struct plk_unpark_result r = { 0 };
    for (struct plk_waiter *w = find_from(b->head, key), *next; w;
         w = find_from(next, key)) {
        next = w->next;
        if (r.unparked == limit) {
            r.has_more_waiters = true;
            break;
        }
        if (!woken)
            r.park_arg = w->park_arg;
        dequeue(b, w);
        w->next = NULL;
        *tail = w;
        tail = &w->next;
        r.unparked++;
    }
    uintptr_t token = woken && fn ? fn(arg, &r) : PLK_TOKEN_NORMAL;
    for (struct plk_waiter *w = woken; w; w = w->next)
        claim(w, token);
    *n = r.unparked;
    return woken;
}

size_t plk_unpark_all(const void *address)
{
    uintptr_t key = (uintptr_t)address;
    begin_waking();
    struct bucket *b = lock_bucket_unless_stuck(key);
    size_t n = 0;
    if (b) {
        struct plk_waiter *woken = take_waiters(b, key, SIZE_MAX, NULL, NULL, &n);
        release(&b->lock);
        wake_list(woken);
    } else {
        plk_parking_lot_post_wake(address, true, NULL);
    }
    end_waking();
    return n;
}

/* Notes (see the top of the file). */

// Runs note `n` (RUNNING, owned by the caller, waking `count` threads or
// all) if its bucket lock is free.
static bool try_note(struct note *n, uint32_t count)
{
    uintptr_t address = atomic_load_explicit(&n->address, memory_order_relaxed);
    struct bucket *b = lock_bucket_with(address, try_hold);
    if (!b)
        return false;
    size_t woken_count;
    struct plk_waiter *woken = take_waiters(
        b, address, atomic_load_explicit(&n->all, memory_order_relaxed) ? SIZE_MAX : count,
        atomic_load_explicit(&n->fn, memory_order_relaxed), (void *)address,
        &woken_count);
    release(&b->lock);
    wake_list(woken);
    return true;
}

static bool bucket_is_locked(uintptr_t address)
{
    struct table *t = load_table();
    return atomic_load(&t->buckets[hash(address, t->log2)].lock.word) !=
           PLK_RAWLOCK_UNLOCKED;
}

// Runs what it can of the READY notes, once each; a note whose bucket is
// locked is left READY for that lock's holder.
static void run_notes_once(void)
{
    for (size_t i = 0; i < NOTE_SLOTS; i++) {
        struct note *n = &notes[i];
        uint64_t s = atomic_load(&n->state);
        for (;;) {
            if (NOTE_PHASE(s) != NOTE_READY ||
                !atomic_compare_exchange_strong(
                    &n->state, &s, NOTE_STATE(NOTE_GEN(s), 0, NOTE_RUNNING)))
                break;
            if (try_note(n, NOTE_COUNT(s))) {
                atomic_store(&n->state, NOTE_STATE(NOTE_GEN(s), 0, NOTE_FREE));
                atomic_fetch_sub(&pending_notes, 1);
                break;
            }
            // The holder we failed on may have released the lock and looked
            // at the note while it was RUNNING: publish it again, then make
            // sure a holder is still there to see it (or try once more).
            atomic_store(&n->state, s);
            if (bucket_is_locked(atomic_load_explicit(&n->address, memory_order_relaxed)))
                break;
        }
    }
}

// Called after a release of this thread's last bucket lock finds notes, and
// after posting one. A signal handler that posts while the thread it
// interrupted is in here asks for another pass instead of recursing.
static void run_notes(void)
{
    if (running_notes) {
        run_again = true;
        return;
    }
    running_notes = true;
    begin_waking();
    for (;;) {
        run_again = false;
        run_notes_once(); // its own releases set run_again: pass again
        if (run_again)
            continue;
        running_notes = false;
        atomic_signal_fence(memory_order_seq_cst);
        if (!run_again)
            break;
        running_notes = true;
    }
    end_waking();
}

// Adds one more wake-up to a READY note for the same thing, if there is one.
static bool merge_note(uintptr_t address, bool all, plk_unpark_fn fn)
{
    for (size_t i = 0; i < NOTE_SLOTS; i++) {
        struct note *n = &notes[i];
        uint64_t s = atomic_load(&n->state);
        if (NOTE_PHASE(s) != NOTE_READY ||
            atomic_load_explicit(&n->address, memory_order_relaxed) != address ||
            atomic_load_explicit(&n->all, memory_order_relaxed) != all ||
            atomic_load_explicit(&n->fn, memory_order_relaxed) != fn)
            continue;
        uint32_t count = NOTE_COUNT(s);
        uint64_t more = NOTE_STATE(NOTE_GEN(s), count < NOTE_MAX_COUNT ? count + 1 : count,
                                   NOTE_READY);
        // The generation makes sure the fields read belong to this filling.
        if (atomic_compare_exchange_strong(&n->state, &s, more))
            return true;
    }
    return false;
}

static bool add_note(uintptr_t address, bool all, plk_unpark_fn fn)
{
    for (size_t i = 0; i < NOTE_SLOTS; i++) {
        struct note *n = &notes[i];
        uint64_t s = atomic_load(&n->state);
        if (NOTE_PHASE(s) != NOTE_FREE)
            continue;
        uint32_t gen = NOTE_GEN(s) + 1;
        if (!atomic_compare_exchange_strong(&n->state, &s,
                                            NOTE_STATE(gen, 0, NOTE_FILLING)))
            continue;
        atomic_store_explicit(&n->address, address, memory_order_relaxed);
        atomic_store_explicit(&n->all, all, memory_order_relaxed);
        atomic_store_explicit(&n->fn, fn, memory_order_relaxed);
        atomic_fetch_add(&pending_notes, 1);
        atomic_store(&n->state, NOTE_STATE(gen, 1, NOTE_READY));
        return true;
    }
    return false;
}

void plk_parking_lot_post_wake(const void *address, bool all, plk_unpark_fn fn)
{
    // Every slot taken means as many addresses stuck at once: help run the
    // notes, and let the holders of their buckets run.
    while (!merge_note((uintptr_t)address, all, fn) &&
           !add_note((uintptr_t)address, all, fn)) {
        run_notes();
        sched_yield();
    }
    run_notes();
}

static struct plk_unpark_result
unpark_requeue(const void *from, const void *to,
                   enum plk_requeue_op (*validate)(void *arg),
                   uintptr_t (*callback)(void *arg, enum plk_requeue_op op,
                                         const struct plk_unpark_result *r),
                   void *arg)
{
    uintptr_t key_from = (uintptr_t)from, key_to = (uintptr_t)to;
    struct bucket *bf, *bt;
    struct plk_unpark_result r = { 0 };
    if (!lock_bucket_pair(key_from, key_to, &bf, &bt)) {
        r.gave_up = true;
        return r;
    }
    if (!find_from(bf->head, key_from)) {
        // Nobody to move: validate (which may trust state that only a
        // parked thread vouches for) is skipped; the callback still runs.
        if (callback)
            callback(arg, PLK_REQUEUE_ABORT, &r);
        unlock_bucket_pair(bf, bt);
        return r;
    }
    enum plk_requeue_op op = validate ? validate(arg) : PLK_REQUEUE_ABORT;
    if (op == PLK_REQUEUE_ABORT) {
        unlock_bucket_pair(bf, bt);
        return r;
    }

    size_t wake_limit = op == PLK_REQUEUE_UNPARK_ALL ? SIZE_MAX
                        : op == PLK_REQUEUE_UNPARK_ONE ||
                                  op == PLK_REQUEUE_UNPARK_ONE_REQUEUE_REST
                            ? 1
                            : 0;
    size_t move_limit = op == PLK_REQUEUE_REQUEUE_ONE ? 1
                        : op == PLK_REQUEUE_REQUEUE_ALL ||
                                  op == PLK_REQUEUE_UNPARK_ONE_REQUEUE_REST
                            ? SIZE_MAX
                            : 0;
    if (key_from == key_to)
        move_limit = 0; // already where they would go
    struct plk_waiter *woken = NULL, **woken_tail = &woken;
    struct plk_waiter *w = find_from(bf->head, key_from);
    while (w && r.unparked < wake_limit) {
        struct plk_waiter *next = w->next;
        if (!woken)
            r.park_arg = w->park_arg;
        dequeue(bf, w);
        w->next = NULL;
        *woken_tail = w;
        woken_tail = &w->next;
        r.unparked++;
        w = find_from(next, key_from);
    }
    // Moving to the tail of `to` in walk order keeps the FIFO order; a moved
    // waiter cannot be met again when both addresses share the bucket,
    // because its key is no longer `from`.
    while (w && r.requeued < move_limit) {
        struct plk_waiter *next = w->next;
        dequeue(bf, w);
        atomic_store_explicit(&w->address, key_to, memory_order_relaxed);
        w->requeued_by = (unsigned char)op;
        enqueue(bt, w);
        r.requeued++;
        w = find_from(next, key_from);
    }
    r.has_more_waiters = w != NULL;
    if (woken)
        r.be_fair = time_to_be_fair(bf);

    uintptr_t token = callback ? callback(arg, op, &r) : PLK_TOKEN_NORMAL;
    for (struct plk_waiter *v = woken; v; v = v->next)
        claim(v, token);
    unlock_bucket_pair(bf, bt);
    wake_list(woken);
    return r;
}

struct plk_unpark_result
plk_unpark_requeue(const void *from, const void *to,
                   enum plk_requeue_op (*validate)(void *arg),
                   uintptr_t (*callback)(void *arg, enum plk_requeue_op op,
                                         const struct plk_unpark_result *r),
                   void *arg)
{
    begin_waking();
    struct plk_unpark_result r = unpark_requeue(from, to, validate, callback, arg);
    end_waking();
    return r;
}

/* Fork. */

static void reset_table(void)
{
    struct table *t = atomic_load_explicit(&current_table, memory_order_acquire);
    for (size_t i = 0; i < table_size(t); i++) {
        struct bucket *b = &t->buckets[i];
        plk_rawlock_reset(&b->lock);
        b->head = b->tail = NULL;
    }
    // The parent's notes and nested waiters were about threads that the
    // child does not have (their waiters are gone with the queues).
    // (Generations go on, so that a merge interrupted by a fork from a
    // signal handler cannot mistake a refilled slot for its note.)
    for (size_t i = 0; i < NOTE_SLOTS; i++) {
        uint64_t s = atomic_load_explicit(&notes[i].state, memory_order_relaxed);
        atomic_store_explicit(&notes[i].state,
                              NOTE_STATE(NOTE_GEN(s) + 1, 0, NOTE_FREE),
                              memory_order_relaxed);
    }
    atomic_store_explicit(&pending_notes, 0, memory_order_relaxed);
    atomic_store_explicit(&nested_waiters, 0, memory_order_relaxed);
    atomic_store_explicit(&parked_threads, 0, memory_order_relaxed);
}

void plk_parking_lot_init(void)
{
    if (!atomic_load_explicit(&fork_sentinel, memory_order_acquire))
        map_sentinel();
}

void plk_parking_lot_fork_child(void)
{
    _Atomic uint32_t *s = atomic_load_explicit(&fork_sentinel, memory_order_acquire);
    when_free = NULL; // the parent's postponed signals are the parent's
    // held_buckets stays: it is 0 unless fork was called from a signal
    // handler nested in a bucket section, which resumes in the child and
    // releases what it counted (on a lock the reset already freed).
    running_notes = false;
    reset_table();
    if (s)
        atomic_store_explicit(s, SENTINEL_ALIVE, memory_order_release);
}

void plk_parking_lot_after_fork(void)
{
    plk_parking_lot_fork_child();
}

size_t plk_parking_lot_table_size(void)
{
    return table_size(load_table());
}

size_t plk_parking_lot_parked_threads(void)
{
    check_forked();
    return atomic_load_explicit(&parked_threads, memory_order_relaxed);
}
