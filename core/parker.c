#include "parker.h"

#include <errno.h>

#include "atomic.h"
#include "futex.h"

#define TLS __thread __attribute__((tls_model("initial-exec")))

static TLS struct plk_parker self;
static TLS struct plk_parker_stats stats;

struct plk_parker *plk_parker_self(void)
{
    return &self;
}

void plk_parker_arm(struct plk_parker *p)
{
    atomic_store_explicit(&p->word, PLK_PARKER_WAITING, memory_order_relaxed);
}

static int (*_Atomic cancel_enter)(void);
static void (*_Atomic cancel_leave)(int);

void plk_parker_set_cancel_hooks(int (*enter)(void), void (*leave)(int))
{
    atomic_store_explicit(&cancel_leave, leave, memory_order_relaxed);
    atomic_store_explicit(&cancel_enter, enter, memory_order_release);
}

static int sleep_on(struct plk_parker *p, const struct plk_deadline *deadline,
                    bool cancellable)
{
    int (*enter)(void) = cancellable
                             ? atomic_load_explicit(&cancel_enter, memory_order_acquire)
                             : NULL;
    if (!enter)
        return plk_futex_wait(&p->word, PLK_PARKER_SLEEPING, deadline);
    int saved = enter();
    int r = plk_futex_wait(&p->word, PLK_PARKER_SLEEPING, deadline);
    atomic_load_explicit(&cancel_leave, memory_order_relaxed)(saved);
    return r;
}

bool plk_parker_wait(struct plk_parker *p, const struct plk_deadline *deadline)
{
    return plk_parker_wait_ex(p, deadline, false);
}

bool plk_parker_wait_ex(struct plk_parker *p, const struct plk_deadline *deadline,
                        bool cancellable)
{
    for (;;) {
        uint32_t w = atomic_load_explicit(&p->word, memory_order_acquire);
        if (w == PLK_PARKER_WOKEN)
            return true;
        // Announce the sleep so that the waker knows a FUTEX_WAKE is needed;
        // a waker that comes first leaves WOKEN and the CAS fails.
        if (w == PLK_PARKER_WAITING &&
            !atomic_compare_exchange_strong_explicit(&p->word, &w,
                                                     PLK_PARKER_SLEEPING,
                                                     memory_order_acquire,
                                                     memory_order_acquire))
            continue;
        stats.futex_waits++;
        int r = sleep_on(p, deadline, cancellable);
        if (r == ETIMEDOUT)
            return atomic_load_explicit(&p->word, memory_order_acquire) ==
                   PLK_PARKER_WOKEN;
        // 0 (woken or spurious), EAGAIN (already woken), EINTR (a signal):
        // look at the word again. Signals never surface to the caller.
    }
}

bool plk_parker_spin(struct plk_parker *p, int64_t spin_ns,
                     const struct plk_deadline *deadline)
{
    int64_t until = plk_clock_now_ns() + spin_ns;
    for (;;) {
        for (int i = 0; i < 32; i++) {
            if (atomic_load_explicit(&p->word, memory_order_acquire) == PLK_PARKER_WOKEN)
                return true;
            plk_cpu_relax();
        }
        if (plk_clock_now_ns() >= until || (deadline && plk_deadline_passed(deadline)))
            return false;
    }
}

void plk_parker_wake(struct plk_parker *p)
{
    // After this exchange the parked thread may return and exit: from here on
    // only the address is used, never the memory.
    uint32_t old = atomic_exchange_explicit(&p->word, PLK_PARKER_WOKEN,
                                            memory_order_release);
    if (old == PLK_PARKER_SLEEPING) {
        stats.futex_wakes++;
        plk_futex_wake(&p->word, 1);
    }
}

struct plk_parker_stats plk_parker_stats(void)
{
    return stats;
}
