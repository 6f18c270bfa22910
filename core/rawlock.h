// A word-sized lock that does not depend on the parking lot.
//
// Guards the parking lot's buckets (and later the profiler's tables). It is
// the classic three-state futex lock: UNLOCKED, LOCKED, LOCKED with sleepers.
// It is never held across a call that could block on anything but itself.
#ifndef PLK_RAWLOCK_H
#define PLK_RAWLOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct plk_rawlock {
    _Atomic uint32_t word;
};

#define PLK_RAWLOCK_INIT { 0 }

enum {
    PLK_RAWLOCK_UNLOCKED = 0,
    PLK_RAWLOCK_LOCKED = 1,
    PLK_RAWLOCK_CONTENDED = 2, // locked, and someone may sleep in the kernel
};

void plk_rawlock_lock_slow(struct plk_rawlock *l);
bool plk_rawlock_lock_slow_unless(struct plk_rawlock *l, bool (*give_up)(void));
void plk_rawlock_unlock_slow(struct plk_rawlock *l);

// While a waiter sleeps in plk_rawlock_lock_unless, it asks give_up again
// this often.
#define PLK_RAWLOCK_RECHECK_NS 1000000

static inline void plk_rawlock_lock(struct plk_rawlock *l)
{
    uint32_t expected = PLK_RAWLOCK_UNLOCKED;
    if (!atomic_compare_exchange_strong_explicit(&l->word, &expected,
                                                 PLK_RAWLOCK_LOCKED,
                                                 memory_order_acquire,
                                                 memory_order_relaxed))
        plk_rawlock_lock_slow(l);
}

// Takes the lock if it is free; never waits.
static inline bool plk_rawlock_trylock(struct plk_rawlock *l)
{
    // seq_cst, failure included: the parking lot's notes rely on a failed
    // try being ordered after the note it publishes (parking_lot.c).
    uint32_t expected = PLK_RAWLOCK_UNLOCKED;
    return atomic_compare_exchange_strong(&l->word, &expected, PLK_RAWLOCK_LOCKED);
}

// plk_rawlock_lock for a lock whose holder may never release it while some
// condition lasts (the parking lot's: a holder interrupted by a signal
// handler that waits for something): once the short spin is over, returns
// false without the lock whenever give_up() says so -- checked before each
// sleep and at least every PLK_RAWLOCK_RECHECK_NS while asleep.
static inline bool plk_rawlock_lock_unless(struct plk_rawlock *l,
                                           bool (*give_up)(void))
{
    return plk_rawlock_trylock(l) || plk_rawlock_lock_slow_unless(l, give_up);
}

// seq_cst (free on x86, where every exchange is a full barrier): the
// parking lot looks for notes right after it (parking_lot.c).
static inline void plk_rawlock_unlock(struct plk_rawlock *l)
{
    if (atomic_exchange(&l->word, PLK_RAWLOCK_UNLOCKED) == PLK_RAWLOCK_CONTENDED)
        plk_rawlock_unlock_slow(l);
}

// Forgets any holder: only for the child after fork, where the holder is gone.
static inline void plk_rawlock_reset(struct plk_rawlock *l)
{
    atomic_store_explicit(&l->word, PLK_RAWLOCK_UNLOCKED, memory_order_relaxed);
}

#endif
