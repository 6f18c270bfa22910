// A word-sized lock that does not depend on the parking lot.
//
// Guards the parking lot's buckets (and later the profiler's tables). It is
// the classic three-state futex lock: UNLOCKED, LOCKED, LOCKED with sleepers.
// It is never held across a call that could block on anything but itself.
#ifndef PLK_RAWLOCK_H
#define PLK_RAWLOCK_H

#include <stdatomic.h>
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
void plk_rawlock_unlock_slow(struct plk_rawlock *l);

static inline void plk_rawlock_lock(struct plk_rawlock *l)
{
    uint32_t expected = PLK_RAWLOCK_UNLOCKED;
    if (!atomic_compare_exchange_strong_explicit(&l->word, &expected,
                                                 PLK_RAWLOCK_LOCKED,
                                                 memory_order_acquire,
                                                 memory_order_relaxed))
        plk_rawlock_lock_slow(l);
}

static inline void plk_rawlock_unlock(struct plk_rawlock *l)
{
    if (atomic_exchange_explicit(&l->word, PLK_RAWLOCK_UNLOCKED,
                                 memory_order_release) == PLK_RAWLOCK_CONTENDED)
        plk_rawlock_unlock_slow(l);
}

// Forgets any holder: only for the child after fork, where the holder is gone.
static inline void plk_rawlock_reset(struct plk_rawlock *l)
{
    atomic_store_explicit(&l->word, PLK_RAWLOCK_UNLOCKED, memory_order_relaxed);
}

#endif
