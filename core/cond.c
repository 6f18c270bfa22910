// Condition variable on the parking lot (see cond.h).
#include "cond.h"

#include <sched.h>

#include "parking_lot.h"

/*
 * c->mutex is written only under the bucket lock of the cond's address:
 * set by a waiter's validation as it enqueues, cleared when the last waiter
 * leaves (signal, broadcast or timeout). So it is non-zero exactly while
 * threads are queued on the cond -- except after a fork, or in a cond full
 * of garbage: then the next signal or broadcast finds nobody and clears it.
 * The mutex it names is only dereferenced while a waiter is queued (the
 * parking lot calls validate only then), i.e. while that mutex is in use.
 */
#define MIXED ((uintptr_t)1) // waiters use different mutexes: never requeue

static _Atomic int64_t spin_budget_ns = PLK_COND_SPIN_NS_DEFAULT;

void plk_cond_set_spin_ns(int64_t ns)
{
    atomic_store_explicit(&spin_budget_ns, ns < 0 ? 0 : ns, memory_order_relaxed);
}

int64_t plk_cond_spin_ns(void)
{
    return atomic_load_explicit(&spin_budget_ns, memory_order_relaxed);
}

static bool record_mutex(void *arg)
{
    struct plk_cond_waiter *w = arg;
    // A foreign mutex cannot take requeued waiters: mark the cond MIXED.
    // Nor can a nested waiter (plk_parking_lot_busy_here) be requeued: its
    // mutex's bucket may be the one its interrupted thread holds, and then
    // nobody could wake it there.
    uintptr_t mine = w->m.word && !w->nested ? (uintptr_t)w->m.word : MIXED;
    uintptr_t s = atomic_load_explicit(&w->c->mutex, memory_order_relaxed);
    if (s == 0)
        atomic_store_explicit(&w->c->mutex, mine, memory_order_relaxed);
    else if (s != mine && s != MIXED)
        atomic_store_explicit(&w->c->mutex, MIXED, memory_order_relaxed);
    return true;
}

static bool release_mutex(void *arg)
{
    struct plk_cond_waiter *w = arg;
    if (w->m.word) {
        plk_mutex_unlock(w->m.word);
        return true;
    }
    w->unlock_error = w->m.unlock(w->m.arg);
    return w->unlock_error == 0;
}

// The token of a signal posted because the cond's bucket was not available
// (see plk_unpark_one): the waiter is simply woken, and the cond -- which
// may be gone by then -- is not touched. A stale c->mutex left behind is
// cleared by the next signal or broadcast that finds nobody.
static uintptr_t signalled_token(void *arg, const struct plk_unpark_result *r)
{
    (void)arg;
    (void)r;
    return PLK_TOKEN_SIGNALLED;
}

/*
 * Passing a signal on. The cond may already be destroyed and its memory
 * gone: POSIX allows that as soon as no thread is blocked on it, and a
 * waiter that was signalled is no longer blocked on it. So the pass-on reads
 * or writes the cond only from the parking lot's callbacks, and only when a
 * thread is still queued on the cond's address -- then the cond is in use,
 * hence alive. With nobody queued there is nobody to pass the signal to.
 */
struct pass_on {
    struct plk_cond *c;
    struct plk_mutex *mine; // the passing waiter's mutex (NULL: foreign)
};

static enum plk_requeue_op choose_pass_on(void *arg)
{
    struct pass_on *p = arg; // a thread is queued on p->c: it is alive
    uintptr_t s = atomic_load_explicit(&p->c->mutex, memory_order_relaxed);
    if (p->mine && s == (uintptr_t)p->mine && plk_mutex_mark_parked_if_locked(p->mine))
        return PLK_REQUEUE_REQUEUE_ONE;
    return PLK_REQUEUE_UNPARK_ONE;
}

static uintptr_t after_pass_on(void *arg, enum plk_requeue_op op,
                               const struct plk_unpark_result *r)
{
    struct pass_on *p = arg;
    if (op == PLK_REQUEUE_ABORT)
        return PLK_TOKEN_NORMAL; // nobody queued: the cond may be gone
    if (!r->has_more_waiters)
        atomic_store_explicit(&p->c->mutex, 0, memory_order_relaxed);
    return PLK_TOKEN_SIGNALLED;
}

// A waiter leaving without taking the wake-up it was given (cancelled, or
// its unlock failed) passes a signal on, since POSIX lets no such waiter
// consume one. A broadcast is not passed on: it reached everyone already.
static void pass_on_signal(struct plk_cond_waiter *w, bool claimed, uintptr_t token)
{
    if (!(claimed && token == PLK_TOKEN_SIGNALLED) &&
        w->waiter.requeued_by != PLK_REQUEUE_REQUEUE_ONE)
        return;
    struct pass_on p = { .c = w->c, .mine = w->m.word };
    plk_parking_lot_owe_begin();
    struct plk_unpark_result r =
        plk_unpark_requeue(w->c, p.mine ? (const void *)p.mine : (const void *)w->c,
                           choose_pass_on, after_pass_on, &p);
    if (r.gave_up)
        plk_parking_lot_post_wake(w->c, false, signalled_token);
    plk_parking_lot_owe_end();
}

static void reacquire_mutex(struct plk_cond_waiter *w)
{
    if (w->m.word)
        plk_mutex_lock(w->m.word);
    else
        w->m.lock(w->m.arg);
}

static void left_on_timeout(void *arg, const void *key, bool was_last)
{
    struct plk_cond_waiter *w = arg;
    if (key != (const void *)w->c) {
        // A signal or broadcast already moved us onto the mutex: that was a
        // wake-up, not a timeout. Leave the mutex as a timed-out mutex
        // waiter would (we hold its bucket lock).
        w->requeued = true;
        if (was_last)
            atomic_fetch_and_explicit(&w->m.word->word, ~PLK_MUTEX_PARKED,
                                      memory_order_relaxed);
        return;
    }
    if (was_last)
        atomic_store_explicit(&w->c->mutex, 0, memory_order_relaxed);
}

enum plk_cond_wait_result plk_cond_wait_with(struct plk_cond_waiter *cw,
                                             struct plk_cond *c,
                                             const struct plk_cond_mutex *m,
                                             const struct plk_deadline *deadline,
                                             bool cancellable)
{
    cw->c = c;
    cw->m = *m;
    cw->requeued = false;
    cw->nested = plk_parking_lot_busy_here();
    cw->unlock_error = 0;
    cw->ops = (struct plk_park_ops){
        .validate = record_mutex,
        .before_sleep = release_mutex,
        .timed_out = left_on_timeout,
        .ctx = cw,
        .cancellable = cancellable,
        .spin_ns = plk_cond_spin_ns(),
    };
    uintptr_t token = PLK_TOKEN_NORMAL;
    enum plk_park_result r = plk_park_waiter(&cw->waiter, c, &cw->ops, deadline,
                                             NULL, &token);
    if (r == PLK_PARK_BUSY) {
        // Not queued (the bucket's holder cannot go on yet, and may need
        // our mutex): release the mutex, let the CPU go, and wake up
        // spuriously, which POSIX allows.
        if (!release_mutex(cw))
            return PLK_COND_UNLOCK_FAILED;
        sched_yield();
        reacquire_mutex(cw);
        return deadline && plk_deadline_passed(deadline) ? PLK_COND_TIMEOUT
                                                         : PLK_COND_WOKEN;
    }
    // From here on `c` is not touched (it may already be destroyed), except
    // to pass on a signal this failed wait was given.
    if (cw->unlock_error) {
        pass_on_signal(cw, r == PLK_PARK_OK, token);
        return PLK_COND_UNLOCK_FAILED;
    }
    if (r == PLK_PARK_OK && token == PLK_TOKEN_HANDOFF)
        return PLK_COND_WOKEN; // requeued, then handed the mutex by its unlocker
    reacquire_mutex(cw);
    return r == PLK_PARK_TIMEOUT && !cw->requeued ? PLK_COND_TIMEOUT : PLK_COND_WOKEN;
}

bool plk_cond_wait(struct plk_cond *c, struct plk_mutex *m,
                   const struct plk_deadline *deadline)
{
    struct plk_cond_waiter cw;
    struct plk_cond_mutex cm = { .word = m };
    return plk_cond_wait_with(&cw, c, &cm, deadline, false) == PLK_COND_WOKEN;
}

void plk_cond_wait_abandon(struct plk_cond_waiter *cw)
{
    uintptr_t token = PLK_TOKEN_NORMAL;
    bool claimed = plk_park_abandon(&cw->waiter, &cw->ops, &token);
    pass_on_signal(cw, claimed, token);
    if (!(claimed && token == PLK_TOKEN_HANDOFF))
        reacquire_mutex(cw);
}

struct notify_ctx {
    struct plk_cond *c;
    uintptr_t mutex; // the value of c->mutex the caller saw
    bool changed;    // c->mutex differed under the lock: look again
};

static bool mutex_unchanged(struct notify_ctx *n)
{
    n->changed = atomic_load_explicit(&n->c->mutex, memory_order_relaxed) != n->mutex;
    return !n->changed;
}

static enum plk_requeue_op choose_signal(void *arg)
{
    struct notify_ctx *n = arg;
    if (!mutex_unchanged(n))
        return PLK_REQUEUE_ABORT;
    if (n->mutex == MIXED)
        return PLK_REQUEUE_UNPARK_ONE;
    // Waking a thread only to have it block on a held mutex is wasted work:
    // move it onto the mutex's queue instead; the unlock will release it.
    return plk_mutex_mark_parked_if_locked((struct plk_mutex *)n->mutex)
               ? PLK_REQUEUE_REQUEUE_ONE
               : PLK_REQUEUE_UNPARK_ONE;
}

static uintptr_t after_signal(void *arg, enum plk_requeue_op op,
                              const struct plk_unpark_result *r)
{
    (void)op;
    struct notify_ctx *n = arg;
    if (!r->has_more_waiters)
        atomic_store_explicit(&n->c->mutex, 0, memory_order_relaxed);
    return PLK_TOKEN_SIGNALLED;
}

static enum plk_requeue_op choose_broadcast(void *arg)
{
    struct notify_ctx *n = arg;
    if (!mutex_unchanged(n))
        return PLK_REQUEUE_ABORT;
    // Every waiter leaves the cond's queue in this call.
    atomic_store_explicit(&n->c->mutex, 0, memory_order_relaxed);
    if (n->mutex == MIXED)
        return PLK_REQUEUE_UNPARK_ALL;
    return plk_mutex_mark_parked_if_locked((struct plk_mutex *)n->mutex)
               ? PLK_REQUEUE_REQUEUE_ALL
               : PLK_REQUEUE_UNPARK_ONE_REQUEUE_REST;
}

static uintptr_t after_broadcast(void *arg, enum plk_requeue_op op,
                                 const struct plk_unpark_result *r)
{
    struct notify_ctx *n = arg;
    if (op == PLK_REQUEUE_ABORT) {
        // Nobody waits (stale state after a fork, or garbage): forget it.
        atomic_store_explicit(&n->c->mutex, 0, memory_order_relaxed);
        return PLK_TOKEN_NORMAL;
    }
    // The woken thread will take the free mutex; its unlock must then find
    // the threads we queued behind it. (REQUEUE_ALL set PARKED already.)
    if (op == PLK_REQUEUE_UNPARK_ONE_REQUEUE_REST && r->requeued)
        atomic_fetch_or_explicit(&((struct plk_mutex *)n->mutex)->word,
                                 PLK_MUTEX_PARKED, memory_order_relaxed);
    return PLK_TOKEN_NORMAL;
}

// Runs one notification; returns the threads released. Retries when the
// waiters' mutex changed between the first look and the locked one. When a
// bucket was not available (see plk_unpark_one), posts a plain wake-up of
// one (or all) waiters instead, and reports none.
static size_t notify_owing(struct plk_cond *c, bool all,
                           enum plk_requeue_op (*choose)(void *),
                           uintptr_t (*after)(void *, enum plk_requeue_op,
                                              const struct plk_unpark_result *))
{
    for (;;) {
        uintptr_t s = atomic_load_explicit(&c->mutex, memory_order_acquire);
        if (s == 0)
            return 0;
        struct notify_ctx n = { .c = c, .mutex = s };
        const void *to = s == MIXED ? (const void *)c : (const void *)s;
        struct plk_unpark_result r = plk_unpark_requeue(c, to, choose, after, &n);
        if (r.gave_up) {
            plk_parking_lot_post_wake(c, all, all ? NULL : signalled_token);
            return 0;
        }
        if (!n.changed)
            return r.unparked + r.requeued;
    }
}

// The whole notification, a posted wake-up included, is one that no
// postponed signal handler may interrupt (plk_parking_lot_owe_begin).
static size_t notify(struct plk_cond *c, bool all,
                     enum plk_requeue_op (*choose)(void *),
                     uintptr_t (*after)(void *, enum plk_requeue_op,
                                        const struct plk_unpark_result *))
{
    plk_parking_lot_owe_begin();
    size_t n = notify_owing(c, all, choose, after);
    plk_parking_lot_owe_end();
    return n;
}

bool plk_cond_signal(struct plk_cond *c)
{
    return notify(c, false, choose_signal, after_signal) != 0;
}

size_t plk_cond_broadcast(struct plk_cond *c)
{
    return notify(c, true, choose_broadcast, after_broadcast);
}
