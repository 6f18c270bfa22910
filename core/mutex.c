// Mutex slow paths: adaptive spinning bounded by time, then the parking lot.
#include "mutex.h"

#include <sched.h>
#include <time.h>

#include "atomic.h"
#include "parking_lot.h"

static _Atomic int64_t spin_budget_ns = PLK_MUTEX_SPIN_NS_DEFAULT;

void plk_mutex_set_spin_ns(int64_t ns)
{
    atomic_store_explicit(&spin_budget_ns, ns < 0 ? 0 : ns, memory_order_relaxed);
}

int64_t plk_mutex_spin_ns(void)
{
    return atomic_load_explicit(&spin_budget_ns, memory_order_relaxed);
}

// Pause rounds double up to this many PAUSEs, then each round yields the CPU
// (on an oversubscribed machine the owner may be waiting for it).
#define MAX_PAUSE_SHIFT 6
#define PAUSE_ROUNDS 8

struct spinner {
    int64_t until_ns; // 0 until the first round starts the clock
    unsigned round;
};

// One round of waiting for the owner; false once the time budget is spent.
// Bounded by time, not by a count, because PAUSE costs anything from 10 to
// 150 cycles depending on the CPU.
static bool spin_once(struct spinner *s)
{
    int64_t budget = plk_mutex_spin_ns();
    if (budget <= 0)
        return false;
    int64_t now = plk_clock_now_ns();
    if (s->until_ns == 0)
        s->until_ns = now + budget;
    else if (now >= s->until_ns)
        return false;
    if (s->round < PAUSE_ROUNDS) {
        unsigned shift = s->round < MAX_PAUSE_SHIFT ? s->round : MAX_PAUSE_SHIFT;
        for (unsigned i = 0; i < (1u << shift); i++)
            plk_cpu_relax();
    } else {
        sched_yield();
    }
    s->round++;
    return true;
}

static bool still_locked_and_parked(void *arg)
{
    struct plk_mutex *m = arg;
    uint32_t w = atomic_load_explicit(&m->word, memory_order_relaxed);
    return (w & PLK_MUTEX_PARKED) && (w & ~PLK_MUTEX_PARKED);
}

static void clear_parked_if_last(void *arg, const void *key, bool was_last)
{
    (void)key;
    struct plk_mutex *m = arg;
    if (was_last)
        atomic_fetch_and_explicit(&m->word, ~PLK_MUTEX_PARKED, memory_order_relaxed);
}

// A signal handler that interrupted its thread inside a parking-lot critical
// section does not park (see plk_parking_lot_busy_here): it polls, and says
// so, since the section it interrupted cannot end meanwhile.
static bool lock_polling(struct plk_mutex *m, const struct plk_deadline *deadline)
{
    if (plk_mutex_trylock(m))
        return true;
    plk_parking_lot_nested_wait_begin();
    bool locked = false;
    for (unsigned round = 0;; round++) {
        if (plk_mutex_trylock(m)) {
            locked = true;
            break;
        }
        if (deadline && plk_deadline_passed(deadline))
            break;
        if (round < 64) {
            sched_yield();
        } else {
            struct timespec pause = { 0, 50000 };
            nanosleep(&pause, NULL);
        }
    }
    plk_parking_lot_nested_wait_end();
    return locked;
}

bool plk_mutex_lock_slow(struct plk_mutex *m, const struct plk_deadline *deadline,
                         struct plk_mutex_wait *observer)
{
    if (__builtin_expect(plk_parking_lot_busy_here(), 0))
        return lock_polling(m, deadline);
    bool observed = false;
    struct spinner spinner = { 0 };
    uint32_t w = atomic_load_explicit(&m->word, memory_order_relaxed);
    for (;;) {
        if (!(w & ~PLK_MUTEX_PARKED)) {
            // Free (possibly with PARKED set: then we keep it set).
            if (atomic_compare_exchange_weak_explicit(&m->word, &w,
                                                      w | PLK_MUTEX_LOCKED,
                                                      memory_order_acquire,
                                                      memory_order_relaxed))
                return true;
            continue;
        }
        if (!(w & PLK_MUTEX_PARKED)) {
            // Spin only while nobody is parked: once someone sleeps, an
            // unlocker will wake it and spinning would just steal the CPU.
            if (spin_once(&spinner)) {
                w = atomic_load_explicit(&m->word, memory_order_relaxed);
                continue;
            }
            if (!atomic_compare_exchange_weak_explicit(&m->word, &w,
                                                       w | PLK_MUTEX_PARKED,
                                                       memory_order_relaxed,
                                                       memory_order_relaxed))
                continue;
        }
        if (observer && !observed) {
            observed = true;
            if (observer->on_park)
                observer->on_park(observer);
        }
        struct plk_park_ops ops = {
            .validate = still_locked_and_parked,
            .timed_out = clear_parked_if_last,
            .ctx = m,
        };
        uintptr_t token;
        enum plk_park_result r = plk_park_ex(m, &ops, deadline, observer, &token);
        if (observer && r != PLK_PARK_AGAIN && r != PLK_PARK_BUSY)
            observer->parked = true;
        switch (r) {
        case PLK_PARK_OK:
            if (token == PLK_TOKEN_HANDOFF)
                return true; // the unlocker left it LOCKED for us
            break;
        case PLK_PARK_AGAIN:
        case PLK_PARK_REFUSED: // no before_sleep here
            break;
        case PLK_PARK_BUSY:
            // Poll until the bucket is usable again (PARKED stays set: the
            // next unlock that finds nobody clears it).
            if (deadline && plk_deadline_passed(deadline))
                return false;
            sched_yield();
            break;
        case PLK_PARK_TIMEOUT:
            return false;
        }
        spinner = (struct spinner){ 0 };
        w = atomic_load_explicit(&m->word, memory_order_relaxed);
    }
}

struct unlock_ctx {
    struct plk_mutex *m;
    bool force_fair;
    int64_t woken_since_ns;
};

// Runs under the bucket lock, with the mutex still LOCKED|PARKED and owned by
// the caller: nobody else can change the word meanwhile, so plain stores do.
static uintptr_t release_or_hand_off(void *arg, const struct plk_unpark_result *r)
{
    struct unlock_ctx *u = arg;
    if (r->unparked && r->park_arg) // still parked: its memory is valid
        u->woken_since_ns = ((struct plk_mutex_wait *)r->park_arg)->since_ns;
    if (r->unparked && (u->force_fair || r->be_fair)) {
        if (!r->has_more_waiters)
            atomic_store_explicit(&u->m->word, PLK_MUTEX_LOCKED, memory_order_relaxed);
        return PLK_TOKEN_HANDOFF;
    }
    atomic_store_explicit(&u->m->word, r->has_more_waiters ? PLK_MUTEX_PARKED : 0,
                          memory_order_release);
    return PLK_TOKEN_NORMAL;
}

// The wake-up of an unlock that could not take the bucket lock (see
// plk_unpark_one), run by whoever releases that lock. It runs only if a
// waiter was found: then the mutex is alive (a thread waits for it).
static uintptr_t wake_posted(void *arg, const struct plk_unpark_result *r)
{
    struct plk_mutex *m = arg;
    if (!r->has_more_waiters)
        atomic_fetch_and_explicit(&m->word, ~PLK_MUTEX_PARKED, memory_order_relaxed);
    return PLK_TOKEN_NORMAL;
}

int64_t plk_mutex_unlock_slow(struct plk_mutex *m, bool force_fair)
{
    struct unlock_ctx u = { m, force_fair, 0 };
    plk_parking_lot_owe_begin();
    if (__builtin_expect(plk_unpark_one(m, release_or_hand_off, &u) !=
                             PLK_UNPARK_GAVE_UP, 1)) {
        plk_parking_lot_owe_end();
        return u.woken_since_ns;
    }
    // Release now, keeping PARKED so that the next owner's unlock wakes a
    // waiter too, and post the wake-up. In this order: a waiter woken while
    // the word is still LOCKED would park again, and nobody would wake it.
    uint32_t w = atomic_load_explicit(&m->word, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&m->word, &w, w & PLK_MUTEX_PARKED,
                                                  memory_order_release,
                                                  memory_order_relaxed))
        ;
    if (w & PLK_MUTEX_PARKED)
        plk_parking_lot_post_wake(m, false, wake_posted);
    plk_parking_lot_owe_end();
    return 0;
}

bool plk_mutex_mark_parked_if_locked(struct plk_mutex *m)
{
    uint32_t w = atomic_load_explicit(&m->word, memory_order_relaxed);
    for (;;) {
        if (!(w & ~PLK_MUTEX_PARKED))
            return false;
        if (w & PLK_MUTEX_PARKED)
            return true;
        if (atomic_compare_exchange_weak_explicit(&m->word, &w, w | PLK_MUTEX_PARKED,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    }
}
