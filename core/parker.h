// Per-thread sleep and wake-up: each thread parks on its own futex word.
//
// The word lives in initial-exec TLS, so it exists for the thread's whole
// life and needs no constructor. A parked thread returns only after it has
// seen the word set to WOKEN; the waker's last access to the thread's memory
// is that store (the FUTEX_WAKE that follows uses only the address).
#ifndef PLK_PARKER_H
#define PLK_PARKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "clock.h"

struct plk_parker {
    _Atomic uint32_t word; // one of the states below
};

enum {
    PLK_PARKER_WAITING = 0,  // armed, still running
    PLK_PARKER_WOKEN = 1,    // a waker claimed it; the only way out
    PLK_PARKER_SLEEPING = 2, // in (or entering) FUTEX_WAIT: the waker must wake
};

// Counters of the calling thread, for tests and benchmarks: how many times it
// slept in FUTEX_WAIT and how many FUTEX_WAKE calls it issued for parked
// threads.
struct plk_parker_stats {
    uint64_t futex_waits;
    uint64_t futex_wakes;
};

// The calling thread's parker.
struct plk_parker *plk_parker_self(void);

// Arms the calling thread's parker before it is published to a waker.
void plk_parker_arm(struct plk_parker *p);

// Sleeps until woken or until `deadline` (NULL: forever). Signals and
// spurious futex returns are absorbed. Returns true once WOKEN was seen,
// false on timeout (the parker may still be woken later: the caller decides).
bool plk_parker_wait(struct plk_parker *p, const struct plk_deadline *deadline);

// The same, but a cancellation point when `cancellable`: the FUTEX_WAIT runs
// between the hooks set below (the interposer enables asynchronous thread
// cancellation there), so the thread may be unwound out of the sleep.
bool plk_parker_wait_ex(struct plk_parker *p, const struct plk_deadline *deadline,
                        bool cancellable);

// Hooks around a cancellable sleep: `enter` returns a value that `leave`
// receives. Set once, before threads park cancellably; the core itself
// cannot call pthread_* functions.
void plk_parker_set_cancel_hooks(int (*enter)(void), void (*leave)(int));

// Watches the word (PAUSE, no syscall) for up to `spin_ns` or until
// `deadline` (may be NULL); returns true if WOKEN was seen. A waker that
// comes meanwhile needs no FUTEX_WAKE, and the thread no FUTEX_WAIT.
bool plk_parker_spin(struct plk_parker *p, int64_t spin_ns,
                     const struct plk_deadline *deadline);

// Wakes `p`'s thread. Call without holding any bucket lock.
void plk_parker_wake(struct plk_parker *p);

// Counters of the calling thread since it started (or since fork).
struct plk_parker_stats plk_parker_stats(void);

#endif
