// A mutex on the parking lot: one 32-bit word, two bits.
//
//   LOCKED  someone owns the mutex
//   PARKED  threads may be parked on the word's address
//
// The word can sit inside a pthread_mutex_t's __lock field. Lock is one CAS
// when free; otherwise the thread spins for a bounded time, only while nobody
// is parked, then sets PARKED and parks. Unlock is one CAS when PARKED is
// clear; otherwise it unparks one waiter, and hands the mutex over directly
// (LOCKED stays set) when the bucket's fairness timer says so, so no waiter
// starves under barging.
//
// A word with any other bit set (corrupted or uninitialised memory) counts
// as held, as glibc counts any non-zero word: trylock fails, timed locks time
// out, lock waits until an unlock stores a clean word.
//
// Invariant: PARKED is cleared only under the bucket lock of the word's
// address (by an unlocker, or by the last waiter leaving on timeout), so a
// thread that parks after setting it cannot be forgotten.
#ifndef PLK_MUTEX_H
#define PLK_MUTEX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "clock.h"

struct plk_mutex {
    _Atomic uint32_t word;
};

#define PLK_MUTEX_INIT { 0 }

enum {
    PLK_MUTEX_LOCKED = 1u,
    PLK_MUTEX_PARKED = 2u,
};

// An observer of one slow acquisition (the profiler's view of a wait). The
// caller sets `since_ns` and `on_park`; lock_slow calls on_park (if not NULL)
// once, just before the thread first parks, and sets `parked` when it did
// park. While the thread is parked an unlocker can read `since_ns` (see
// plk_mutex_unlock_slow).
struct plk_mutex_wait {
    int64_t since_ns;
    void (*on_park)(struct plk_mutex_wait *w);
    bool parked;
};

// Slow paths (mutex.c). `w` may be NULL.
bool plk_mutex_lock_slow(struct plk_mutex *m, const struct plk_deadline *deadline,
                         struct plk_mutex_wait *w);
// Returns the `since_ns` of the waiter it woke, or 0 (nobody woken, or a
// waiter without an observer, e.g. one requeued from a condition variable).
int64_t plk_mutex_unlock_slow(struct plk_mutex *m, bool force_fair);

// Acquires `m`, sleeping as long as needed.
static inline void plk_mutex_lock(struct plk_mutex *m)
{
    uint32_t expected = 0;
    if (!atomic_compare_exchange_weak_explicit(&m->word, &expected,
                                               PLK_MUTEX_LOCKED,
                                               memory_order_acquire,
                                               memory_order_relaxed))
        plk_mutex_lock_slow(m, NULL, NULL);
}

// Acquires `m` unless `deadline` (absolute, either clock) passes first.
// Returns true when acquired. A past deadline still acquires a free mutex.
static inline bool plk_mutex_timedlock(struct plk_mutex *m,
                                       const struct plk_deadline *deadline)
{
    uint32_t expected = 0;
    if (atomic_compare_exchange_strong_explicit(&m->word, &expected,
                                                PLK_MUTEX_LOCKED,
                                                memory_order_acquire,
                                                memory_order_relaxed))
        return true;
    return plk_mutex_lock_slow(m, deadline, NULL);
}

// Acquires `m` if it is free right now. Never sleeps.
static inline bool plk_mutex_trylock(struct plk_mutex *m)
{
    uint32_t w = atomic_load_explicit(&m->word, memory_order_relaxed);
    while (!(w & ~PLK_MUTEX_PARKED)) {
        if (atomic_compare_exchange_weak_explicit(&m->word, &w,
                                                  w | PLK_MUTEX_LOCKED,
                                                  memory_order_acquire,
                                                  memory_order_relaxed))
            return true;
    }
    return false;
}

// Releases `m`. The caller must own it. After the releasing store the mutex's
// memory is not touched again (its address is used only as a hash key), so
// another thread may free it as soon as it can lock it.
static inline void plk_mutex_unlock(struct plk_mutex *m)
{
    uint32_t expected = PLK_MUTEX_LOCKED;
    if (!atomic_compare_exchange_strong_explicit(&m->word, &expected, 0,
                                                 memory_order_release,
                                                 memory_order_relaxed))
        plk_mutex_unlock_slow(m, false);
}

// Releases `m` and, if a thread is parked, hands the mutex to it directly.
static inline void plk_mutex_unlock_fair(struct plk_mutex *m)
{
    uint32_t expected = PLK_MUTEX_LOCKED;
    if (!atomic_compare_exchange_strong_explicit(&m->word, &expected, 0,
                                                 memory_order_release,
                                                 memory_order_relaxed))
        plk_mutex_unlock_slow(m, true);
}

static inline bool plk_mutex_is_locked(const struct plk_mutex *m)
{
    return atomic_load_explicit(&((struct plk_mutex *)m)->word,
                                memory_order_relaxed) & ~PLK_MUTEX_PARKED;
}

// Sets PARKED if `m` is locked; returns whether it was locked. Used by the
// condition variable to requeue waiters onto a held mutex. The caller must
// hold the bucket lock of `m`'s address (i.e. call it from a requeue
// callback).
bool plk_mutex_mark_parked_if_locked(struct plk_mutex *m);

// Adaptive spinning budget in nanoseconds (default PLK_MUTEX_SPIN_NS_DEFAULT;
// 0 disables spinning). Spinning happens only while no thread is parked.
#define PLK_MUTEX_SPIN_NS_DEFAULT 20000
void plk_mutex_set_spin_ns(int64_t ns);
int64_t plk_mutex_spin_ns(void);

#endif
