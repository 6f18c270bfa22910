#include "rawlock.h"

#include "atomic.h"
#include "futex.h"

// A bucket lock is held for a few dozen instructions; a short spin usually
// beats a trip through the kernel.
#define SPIN_ROUNDS 100

void plk_rawlock_lock_slow(struct plk_rawlock *l)
{
    plk_rawlock_lock_slow_unless(l, NULL);
}

bool plk_rawlock_lock_slow_unless(struct plk_rawlock *l, bool (*give_up)(void))
{
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        uint32_t w = atomic_load_explicit(&l->word, memory_order_relaxed);
        if (w == PLK_RAWLOCK_UNLOCKED &&
            atomic_compare_exchange_weak_explicit(&l->word, &w,
                                                  PLK_RAWLOCK_LOCKED,
                                                  memory_order_acquire,
                                                  memory_order_relaxed))
            return true;
        if (w == PLK_RAWLOCK_CONTENDED)
            break;
        plk_cpu_relax();
    }
    // From here on we may sleep, so every acquisition marks the lock
    // contended: the unlocker then knows to wake someone.
    // Giving up leaves it CONTENDED: the holder then makes one futex call
    // too many, which is harmless.
    while (atomic_exchange_explicit(&l->word, PLK_RAWLOCK_CONTENDED,
                                    memory_order_acquire) != PLK_RAWLOCK_UNLOCKED) {
        if (!give_up) {
            plk_futex_wait(&l->word, PLK_RAWLOCK_CONTENDED, NULL);
            continue;
        }
        if (give_up())
            return false;
        struct plk_deadline recheck = plk_deadline_after_ns(PLK_RAWLOCK_RECHECK_NS);
        plk_futex_wait(&l->word, PLK_RAWLOCK_CONTENDED, &recheck);
    }
    return true;
}

void plk_rawlock_unlock_slow(struct plk_rawlock *l)
{
    plk_futex_wake(&l->word, 1);
}
