// The parking lot: one process-wide table of wait queues keyed by address.
//
// Inspired by WebKit's WTF::ParkingLot, by way of CPython's
// Python/parking_lot.c (the seed API: park / unpark / unpark_all /
// after_fork) and Rust's parking_lot (validate/before-sleep/timed-out
// callbacks, exact "more waiters", requeue). Lock words and condition
// variables keep their state in the caller's memory; only threads that must
// sleep enter the lot, queue FIFO in the bucket for their address, and sleep
// on their own futex word (see parker.h).
//
// Guarantees:
// - park compares the address's value with `expected` under the bucket lock,
//   so a wake-up sent after the value changed cannot be missed.
// - unpark callbacks run under the bucket lock, even when nobody waits, and
//   the woken thread is signalled after the bucket lock is released.
// - A waiter that times out never loses a wake-up an unparker already claimed
//   for it: it waits for that wake-up and reports OK instead.
// - After waking a thread, an unparker never touches the waiter's memory.
// - Addresses are only hash keys: the memory they point to may be freed the
//   moment the last waiter has been dequeued.
//
// Nothing here allocates with malloc or calls pthread_* or sem_*.
#ifndef PLK_PARKING_LOT_H
#define PLK_PARKING_LOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "parker.h"

enum plk_park_result {
    PLK_PARK_OK,      // woken by an unpark (see the token)
    PLK_PARK_AGAIN,   // the value differed / validate said no: never slept
    PLK_PARK_TIMEOUT, // the deadline passed before anyone unparked us
    PLK_PARK_REFUSED, // before_sleep said no: left the queue, never slept
    PLK_PARK_BUSY,    // the bucket was locked by a thread that cannot go on
                      // yet (see "Signal handlers" below): nothing was done
                      // and validate was not called; treat as a spurious
                      // wake-up, but let the CPU go before trying again
};

// Unpark tokens: a value the unparker hands to the thread it wakes.
#define PLK_TOKEN_NORMAL ((uintptr_t)0)
#define PLK_TOKEN_HANDOFF ((uintptr_t)1) // the lock was handed to you

// What an unpark callback learns. Runs under the bucket lock.
struct plk_unpark_result {
    void *park_arg;        // the first woken thread's park_arg, or NULL
    size_t unparked;       // threads woken by this call
    size_t requeued;       // threads moved to another address (requeue only)
    bool has_more_waiters; // exact: threads still parked on the address
    bool be_fair;          // the bucket's fairness timer expired: hand off
    bool gave_up;          // plk_unpark_requeue only: did nothing, as
                           // PLK_UNPARK_GAVE_UP (callbacks not run)
};

typedef uintptr_t (*plk_unpark_fn)(void *arg, const struct plk_unpark_result *r);

// The full form of park. Every callback is optional (NULL).
struct plk_park_ops {
    // Under the bucket lock before enqueueing. Returning false gives AGAIN.
    bool (*validate)(void *ctx);
    // After enqueueing and releasing the bucket lock, before sleeping; e.g.
    // releasing a mutex. Returning false (e.g. the release failed) makes the
    // thread leave the queue as a timeout would and return REFUSED -- or OK,
    // if an unparker claimed it meanwhile. It must not park on the same
    // address.
    bool (*before_sleep)(void *ctx);
    // Under the bucket lock when the wait timed out and the thread left the
    // queue of `key` (its address, which a requeue may have changed);
    // `was_last` says no other thread is parked on `key`.
    void (*timed_out)(void *ctx, const void *key, bool was_last);
    void *ctx;
    // The sleep is a thread-cancellation point (see plk_parker_wait_ex). The
    // caller must then own the waiter (plk_park_waiter) and call
    // plk_park_abandon from its cancellation cleanup.
    bool cancellable;
    // Before sleeping, watch for the wake-up for up to this long -- only
    // while fewer threads are in park than CPUs are available, so that a
    // spinner never keeps the thread that would wake it off a CPU.
    int64_t spin_ns;
};

/*
 * A parked thread's entry in its bucket's queue. Normally it lives on
 * plk_park_ex's stack; plk_park_waiter lets the caller place it where a
 * cancellation cleanup handler can still reach it. Opaque to callers.
 *
 *   next, prev  links in its bucket's queue            (bucket lock)
 *   address     the key it waits on; requeue rewrites it while holding both
 *               buckets' locks, so the owner reads it atomically, locks that
 *               bucket and checks it again                  (bucket lock)
 *   park_arg    fixed before enqueueing; read by unpark callbacks
 *   token       set by the unparker before the wake-up (bucket lock; the
 *               owner reads it after seeing WOKEN, an acquire)
 *   dequeued    set by the unparker that claimed this entry (bucket lock)
 *   requeued_by the last requeue op that moved it, or PLK_REQUEUE_ABORT
 *               (bucket lock; readable by the owner once it left the queue)
 *   parker      the futex word the thread sleeps on; the unparker's store of
 *               WOKEN is its last access to this entry
 */
struct plk_waiter {
    struct plk_waiter *next;
    struct plk_waiter *prev;
    _Atomic uintptr_t address;
    void *park_arg;
    uintptr_t token;
    bool dequeued;
    unsigned char requeued_by; // enum plk_requeue_op
    struct plk_parker parker;
};

// Parks the calling thread on `address` if *address == *expected, comparing
// `size` bytes (1, 2, 4 or 8; address naturally aligned). timeout_ns < 0
// waits forever. Returns OK, AGAIN, TIMEOUT or (rarely) BUSY.
//
// Example (a one-shot event):
//     while (atomic_load(&ev->set) == 0) {
//         uint32_t zero = 0;
//         plk_park(&ev->set, &zero, 4, -1, NULL);
//     }
//     // setter: atomic_store(&ev->set, 1); plk_unpark_all(&ev->set);
enum plk_park_result plk_park(const void *address, const void *expected,
                              size_t size, int64_t timeout_ns, void *park_arg);

// Parks on `address` with callbacks and an absolute deadline (NULL: forever).
// On OK, *token (if not NULL) receives the unparker's token.
enum plk_park_result plk_park_ex(const void *address,
                                 const struct plk_park_ops *ops,
                                 const struct plk_deadline *deadline,
                                 void *park_arg, uintptr_t *token);

// plk_park_ex with caller-provided storage for the queue entry.
enum plk_park_result plk_park_waiter(struct plk_waiter *w, const void *address,
                                     const struct plk_park_ops *ops,
                                     const struct plk_deadline *deadline,
                                     void *park_arg, uintptr_t *token);

// For a cancellable park that was unwound out of its sleep: leaves the queue
// as a timeout would (running ops->timed_out), or, when an unparker already
// claimed `w`, waits for that wake-up. Returns true in the second case, with
// the unparker's token in *token. w->requeued_by tells whether (and how) a
// requeue moved it meanwhile.
bool plk_park_abandon(struct plk_waiter *w, const struct plk_park_ops *ops,
                      uintptr_t *token);

// Wakes the first thread parked on `address`, if any. `fn` (may be NULL) runs
// under the bucket lock whether or not a thread was found; its return value
// is the woken thread's token. Returns the number woken (0 or 1) -- or, when
// the bucket was locked by a thread that cannot go on yet (see "Signal
// handlers" below), PLK_UNPARK_GAVE_UP: nothing was done, `fn` did not run,
// and the caller must make its state consistent without the bucket lock and
// post the wake-up (plk_parking_lot_post_wake).
size_t plk_unpark_one(const void *address, plk_unpark_fn fn, void *arg);
#define PLK_UNPARK_GAVE_UP ((size_t)-1)

// Wakes every thread parked on `address` with PLK_TOKEN_NORMAL. Returns the
// number woken (0 when it had to post the wake-up instead).
size_t plk_unpark_all(const void *address);

enum plk_requeue_op {
    PLK_REQUEUE_ABORT,                   // do nothing
    PLK_REQUEUE_UNPARK_ONE,              // wake the first, leave the rest
    PLK_REQUEUE_REQUEUE_ONE,             // move the first to `to`
    PLK_REQUEUE_UNPARK_ONE_REQUEUE_REST, // wake the first, move the rest
    PLK_REQUEUE_REQUEUE_ALL,             // move all to `to`
    PLK_REQUEUE_UNPARK_ALL,              // wake all, move none
};

// Moves threads parked on `from` to the queue of `to` (FIFO order kept),
// optionally waking the first (or all: every woken thread gets the token).
// Both buckets are locked (in table order) while `validate` chooses the
// operation and while `callback` (may be NULL) sees the outcome
// (`has_more_waiters` is about `from`) and returns the token of the woken
// thread. When no thread is parked on `from`, `validate` is not called and
// `callback` runs with PLK_REQUEUE_ABORT and an empty result; when
// `validate` returns ABORT, `callback` does not run. Returns the outcome;
// `gave_up` set means nothing was done and nothing ran, as for
// PLK_UNPARK_GAVE_UP.
struct plk_unpark_result
plk_unpark_requeue(const void *from, const void *to,
                   enum plk_requeue_op (*validate)(void *arg),
                   uintptr_t (*callback)(void *arg, enum plk_requeue_op op,
                                         const struct plk_unpark_result *r),
                   void *arg);

// Signal handlers. A handler may interrupt its thread inside one of the
// parking lot's critical sections (bucket locks are not reentrant).
//
// Best, a signal handler wrapper postpones the program's handler while
// plk_parking_lot_handler_must_wait() is true (the calling thread holds a
// bucket lock, or has yet to wake a thread it unparked): it registers `fn`
// with plk_parking_lot_call_when_free, which runs it (once) as soon as that
// is over -- e.g. to send the postponed signals again. Async-signal-safe.
//
// A handler that does run there only ever tries bucket locks, and while it
// waits, no other thread waits indefinitely for a bucket lock: park returns
// BUSY, unparks give up (docs/design.md, "Signal handlers"). Such a handler
// brackets a wait (e.g. polling for a mutex) with nested_wait_begin/end.
bool plk_parking_lot_busy_here(void);
bool plk_parking_lot_handler_must_wait(void);
void plk_parking_lot_call_when_free(void (*fn)(void));
// A caller that, after an unpark gave up, still owes the wake-up (it must
// release its lock word and post the wake-up) brackets the whole operation
// with these, so that no postponed handler runs in between.
void plk_parking_lot_owe_begin(void);
void plk_parking_lot_owe_end(void);
void plk_parking_lot_nested_wait_begin(void);
void plk_parking_lot_nested_wait_end(void);

// Queues a wake-up of the first thread (or every thread, with `all`) parked
// on `address`, to run under its bucket lock as soon as that is free: now,
// or when its holder releases it. `fn` (may be NULL) runs there only if a
// thread was found, with `address` as its argument, and returns the woken
// threads' token. Nothing else of the caller's is kept: the memory at
// `address` may be gone by then (`fn` may touch it when a thread was found,
// since a thread still waits on it).
void plk_parking_lot_post_wake(const void *address, bool all, plk_unpark_fn fn);

// Fork support. A forked child must forget every parked thread (they do not
// exist there) and every bucket lock they held. The table detects a fork by
// itself (a MADV_WIPEONFORK page) and resets on its first use in the child,
// whatever the order of atfork handlers, and after _Fork too; the parent
// never holds bucket locks across fork, since other libraries' atfork
// handlers may lock mutexes. plk_parking_lot_fork_child (the seed's
// after_fork) resets explicitly: call it from an atfork child handler.
// plk_parking_lot_init maps the detection page early (optional: done lazily
// otherwise; without MADV_WIPEONFORK only the explicit reset works).
void plk_parking_lot_init(void);
void plk_parking_lot_fork_child(void);
void plk_parking_lot_after_fork(void);

// Introspection for tests: buckets in the current table, and threads inside
// park right now -- counted from entry, before they are queued (and including
// those about to return AGAIN), since this count drives table growth. To know
// a thread is queued, also wait until it is blocked.
size_t plk_parking_lot_table_size(void);
size_t plk_parking_lot_parked_threads(void);

#endif
