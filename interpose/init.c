// Process-level wiring: the constructor, fork hooks, cancellation hooks and
// the exported query function.
#include <pthread.h>

#include "dump.h"
#include "export.h"
#include "internal.h"
#include "parker.h"
#include "parking_lot.h"
#include "profile.h"
#include "real.h"
#include "settings.h"
#include "thread_id.h"

static void fork_child(void)
{
    plk_parking_lot_fork_child();
    forget_tid();
    plk_profile_fork_child();
}

// A cancellable sleep runs with asynchronous cancellation enabled, as glibc's
// futex waits in pthread_cond_wait do; enabling it acts on a cancellation
// that is already pending.
static int enter_cancellable(void)
{
    int old;
    pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, &old);
    return old;
}

static void leave_cancellable(int old)
{
    pthread_setcanceltype(old, NULL);
}

void plk_interpose_init(void)
{
    plk_tid_init();
    plk_settings_load();
    plk_parker_set_cancel_hooks(enter_cancellable, leave_cancellable);
    // The parking lot also resets itself in a forked child on first use
    // (see parking_lot.h), so this handler's place among other libraries'
    // handlers does not matter; nothing is held across fork in the parent.
    plk_parking_lot_init();
    // The prepare and parent handlers only make fork wait for (and block)
    // the profiler's stack unwinds; they hold nothing across the fork.
    pthread_atfork(plk_profile_fork_prepare, plk_profile_fork_parent, fork_child);
    real_resolve_all();
    plk_signals_init();
    plk_profile_init();
}

// Priority 101: before ordinary constructors of the program and of libraries
// loaded after us. Entry points called even earlier work too: settings load
// on first use and glibc's functions resolve lazily.
__attribute__((constructor(101))) static void parklock_constructor(void)
{
    plk_interpose_init();
}

// Which engine this process runs on: "parkinglot" or "glibc". Lets tests and
// tools check that the preload really took effect.
PLK_EXPORT const char *parklock_engine(void)
{
    return use_glibc() ? "glibc" : "parkinglot";
}
