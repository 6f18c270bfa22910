// A condition variable on the parking lot.
//
// State: one pointer-sized word holding the mutex its current waiters use
// (0: no waiters). Waiting parks on the cond's address with a validation that
// records the mutex, releases the mutex only after the thread is queued (so a
// signal sent after the release finds it), and relocks after waking.
//
// Signal wakes one waiter, or moves it straight onto the mutex's queue when
// the mutex is held. Broadcast wakes one waiter and requeues the rest onto
// the mutex's queue, so they are released one at a time as the mutex frees
// instead of stampeding. Waiters never touch the cond after they were woken
// or requeued, so the cond may be destroyed as soon as broadcast returns.
//
// Waiters using two different mutexes at once (undefined in POSIX, tolerated
// by glibc) switch the cond to a "mixed" state in which nothing is requeued.
#ifndef PLK_COND_H
#define PLK_COND_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "mutex.h"
#include "parking_lot.h"

struct plk_cond {
    _Atomic uintptr_t mutex; // struct plk_mutex * of the waiters, 0, or MIXED
};

#define PLK_COND_INIT { 0 }

// Token given to a waiter woken directly by plk_cond_signal: a waiter that is
// cancelled after receiving it passes the signal on.
#define PLK_TOKEN_SIGNALLED ((uintptr_t)2)

// The mutex a wait releases and reacquires. For a parking-lot mutex set only
// `word`: waiters can then be requeued onto it. For any other mutex (one the
// interposer leaves to glibc) set `word` to NULL and give `unlock` (returns
// 0 or an error, which ends the wait) and `lock`; such waiters are simply
// woken.
struct plk_cond_mutex {
    struct plk_mutex *word;
    int (*unlock)(void *arg);
    void (*lock)(void *arg);
    void *arg;
};

enum plk_cond_wait_result {
    PLK_COND_WOKEN,        // signalled (or, rarely, spuriously); mutex held
    PLK_COND_TIMEOUT,      // deadline passed; mutex held
    PLK_COND_UNLOCK_FAILED // `unlock` failed: not waited, mutex as it was
};

// One wait in progress. The caller owns it so that a cancellation cleanup
// handler can reach it (plk_cond_wait_abandon). Opaque.
struct plk_cond_waiter {
    struct plk_waiter waiter;
    struct plk_park_ops ops;
    struct plk_cond *c;
    struct plk_cond_mutex m;
    bool requeued;    // timed out while already moved onto the mutex's queue
    bool nested;      // waits in a signal handler nested in its thread's
                      // parking-lot section: must never be requeued
    int unlock_error; // what m.unlock returned
};

// Atomically releases `m` (which the caller holds) and waits on `c` until
// signalled, or until `deadline` (absolute, either clock; NULL: forever).
// Always returns with `m` held again. Returns false on timeout, true
// otherwise (a wake-up may be spurious, rarely).
bool plk_cond_wait(struct plk_cond *c, struct plk_mutex *m,
                   const struct plk_deadline *deadline);

// The general form: any mutex, caller-owned wait state, and optionally a
// thread-cancellation point (the sleep runs between the parker's cancel
// hooks). On PLK_COND_UNLOCK_FAILED, cw->unlock_error holds the error.
enum plk_cond_wait_result plk_cond_wait_with(struct plk_cond_waiter *cw,
                                             struct plk_cond *c,
                                             const struct plk_cond_mutex *m,
                                             const struct plk_deadline *deadline,
                                             bool cancellable);

// From a cancellation cleanup handler of an interrupted plk_cond_wait_with:
// leaves the cond's queue (or takes a wake-up already on its way, passing a
// consumed signal on to another waiter) and reacquires the mutex.
void plk_cond_wait_abandon(struct plk_cond_waiter *cw);

// Wakes (or requeues onto the mutex) one waiter. Returns whether there was one
// (false, too, when the wake-up had to be posted: see plk_parking_lot_post_wake).
bool plk_cond_signal(struct plk_cond *c);

// Releases every waiter: one is woken, the rest requeued onto the mutex.
// Returns the number of waiters released (woken plus requeued; 0 when the
// wake-up had to be posted).
size_t plk_cond_broadcast(struct plk_cond *c);

// How long a waiter watches for its wake-up before sleeping in the kernel,
// when CPUs are free (see plk_park_ops.spin_ns): a signal that comes within
// it costs neither side a system call. 0 disables.
#define PLK_COND_SPIN_NS_DEFAULT 10000
void plk_cond_set_spin_ns(int64_t ns);
int64_t plk_cond_spin_ns(void);

#endif
