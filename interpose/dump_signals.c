// The signal triggers of the dumps (dump.h): the PARKLOCK_DUMP_SIGNAL
// handler, and the SIGINT/SIGTERM handlers of programs that left those
// signals at their default action.
//
// A program must not notice the SIGINT/SIGTERM handlers: CPython, for one,
// installs its KeyboardInterrupt handler only where it finds SIGINT at
// SIG_DFL. So sigaction() and the signal() family are interposed for these
// two signals (exports.map): our handler reads as SIG_DFL, and setting SIG_DFL
// sets our handler. A program that installs a handler of its own, or
// ignores the signal, replaces ours as it would replace the default.
//
// The same entry points wrap every handler the program installs
// (handler_wrap.h), for every signal.
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "dump.h"
#include "export.h"
#include "handler_wrap.h"
#include "profile.h"

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
typedef void (*handler_fn)(int);
typedef handler_fn (*signal_fn)(int, handler_fn);

// The next definition of each function (glibc's, or another interposer's),
// resolved on first use. Racing resolvers store the same pointer.
static void *next_fn(void *_Atomic *slot, const char *name)
{
    void *fn = atomic_load_explicit(slot, memory_order_acquire);
    if (!fn) {
        fn = dlsym(RTLD_NEXT, name);
        atomic_store_explicit(slot, fn, memory_order_release);
    }
    return fn;
}

static void *_Atomic next_sigaction_slot;

static int next_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    sigaction_fn fn = (sigaction_fn)next_fn(&next_sigaction_slot, "sigaction");
    if (!fn) {
        errno = ENOSYS;
        return -1;
    }
    return fn(sig, act, old);
}

/* The fatal-signal dump. `hooked` is set once, by plk_dump_arm_signals,
 * for each of SIGINT and SIGTERM found at SIG_DFL then. */
static _Atomic bool hooked_int, hooked_term;
// Still as we armed it: the program has set no action of its own, and a
// query must read an untouched signal's all-zero action.
static _Atomic bool pristine_int, pristine_term;

static _Atomic bool *pristine(int sig)
{
    return sig == SIGINT ? &pristine_int : sig == SIGTERM ? &pristine_term : NULL;
}

static void touched(int sig)
{
    _Atomic bool *p = pristine(sig);
    if (p)
        atomic_store_explicit(p, false, memory_order_relaxed);
}

static bool hooked(int sig)
{
    return (sig == SIGINT && atomic_load_explicit(&hooked_int, memory_order_relaxed)) ||
           (sig == SIGTERM && atomic_load_explicit(&hooked_term, memory_order_relaxed));
}

static void set_default(struct sigaction *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sa_handler = SIG_DFL;
    sigemptyset(&sa->sa_mask);
}

// Dump, then die by the signal, exactly as without us (the status a parent
// sees is "killed by sig").
static void on_fatal_signal(int sig)
{
    plk_dump(PLK_DUMP_FATAL_SIGNAL);
    struct sigaction dfl;
    set_default(&dfl);
    next_sigaction(sig, &dfl, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    raise(sig); // stays pending: the handler runs with `sig` blocked
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

static void fatal_action(struct sigaction *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sa_handler = on_fatal_signal;
    sigemptyset(&sa->sa_mask);
    sa->sa_flags = 0;
}

static bool is_fatal_action(const struct sigaction *sa)
{
    return !(sa->sa_flags & SA_SIGINFO) && sa->sa_handler == on_fatal_signal;
}

static bool is_default(const struct sigaction *sa)
{
    return !(sa->sa_flags & SA_SIGINFO) && sa->sa_handler == SIG_DFL;
}

// sigaction for a hooked signal: SIG_DFL installs our handler, our handler
// reads as SIG_DFL.
// Our handler is installed with the program's mask and flags, so that a
// query reads exactly what glibc would report for SIG_DFL.
static void as_default(struct sigaction *sa)
{
    sa->sa_handler = SIG_DFL;
}

static int hooked_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    struct sigaction ours, was;
    if (act && is_default(act)) {
        ours = *act;
        ours.sa_handler = on_fatal_signal;
        act = &ours;
    }
    bool untouched = atomic_load_explicit(pristine(sig), memory_order_relaxed);
    int r = next_sigaction(sig, act, &was);
    if (r == 0 && old) {
        *old = was;
        if (is_fatal_action(&was)) {
            if (untouched)
                set_default(old); // flags 0, empty mask, no restorer
            else
                as_default(old);
        }
    }
    if (r == 0 && act)
        touched(sig);
    return r;
}

// After glibc's signal() family set SIG_DFL on a hooked signal: our handler
// again, with the flags and mask glibc chose.
static void rehook(int sig)
{
    struct sigaction cur;
    if (!hooked(sig) || next_sigaction(sig, NULL, &cur) != 0 || !is_default(&cur))
        return;
    cur.sa_handler = on_fatal_signal;
    next_sigaction(sig, &cur, NULL);
}

static int plk_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    struct plk_wrap_call call;
    plk_wrap_begin(&call, sig, act);
    int r = hooked(sig) ? hooked_sigaction(sig, call.act, old)
                        : next_sigaction(sig, call.act, old);
    int saved_errno = errno;
    plk_wrap_end(&call, sig, r == 0, old);
    errno = saved_errno;
    return r;
}
PLK_EXPORT_ALIAS(sigaction, plk_sigaction);

// signal(), bsd_signal(), sysv_signal(), ...: glibc implements them over
// its internal sigaction, which the alias above does not see. So glibc's
// runs (it alone knows siginterrupt()'s choices), then what it installed is
// hooked or wrapped in place, keeping glibc's flags and mask.
static void *_Atomic next_signal_slot, *_Atomic next_bsd_signal_slot,
    *_Atomic next_sysv_signal_slot, *_Atomic next___sysv_signal_slot;

static handler_fn forward_signal(void *_Atomic *slot, const char *name, int sig,
                                 handler_fn handler)
{
    signal_fn fn = (signal_fn)next_fn(slot, name);
    if (!fn) {
        errno = ENOSYS;
        return SIG_ERR;
    }
    uint64_t previous = plk_wrap_previous(sig);
    handler_fn was = fn(sig, handler);
    if (was == SIG_ERR)
        return SIG_ERR;
    int saved_errno = errno;
    touched(sig);
    // Wrapped first: the dump hook is ours, never the program's handler.
    plk_wrap_installed(sig, (sigaction_fn)next_fn(&next_sigaction_slot, "sigaction"));
    rehook(sig);
    errno = saved_errno;
    if (was == on_fatal_signal)
        return SIG_DFL; // sigset() on a hooked signal: ours reads as SIG_DFL
    return plk_wrap_translate_handler(was, previous);
}

static handler_fn plk_signal(int sig, handler_fn handler)
{
    return forward_signal(&next_signal_slot, "signal", sig, handler);
}
PLK_EXPORT_ALIAS(signal, plk_signal);

static handler_fn plk_bsd_signal(int sig, handler_fn handler)
{
    return forward_signal(&next_bsd_signal_slot, "bsd_signal", sig, handler);
}
PLK_EXPORT_ALIAS(bsd_signal, plk_bsd_signal);

static handler_fn plk_sysv_signal(int sig, handler_fn handler)
{
    return forward_signal(&next_sysv_signal_slot, "sysv_signal", sig, handler);
}
PLK_EXPORT_ALIAS(sysv_signal, plk_sysv_signal);

static handler_fn plk___sysv_signal(int sig, handler_fn handler)
{
    return forward_signal(&next___sysv_signal_slot, "__sysv_signal", sig, handler);
}
PLK_EXPORT_ALIAS(__sysv_signal, plk___sysv_signal);

// ssignal: glibc's alias of signal (BSD semantics).
static void *_Atomic next_ssignal_slot, *_Atomic next_sigset_slot;

static handler_fn plk_ssignal(int sig, handler_fn handler)
{
    return forward_signal(&next_ssignal_slot, "ssignal", sig, handler);
}
PLK_EXPORT_ALIAS(ssignal, plk_ssignal);

// sigset (System V): also SIG_HOLD; left to glibc, then wrapped.
static handler_fn plk_sigset(int sig, handler_fn handler)
{
    return forward_signal(&next_sigset_slot, "sigset", sig, handler);
}
PLK_EXPORT_ALIAS(sigset, plk_sigset);

/* Arming. */

static void on_dump_signal(int sig)
{
    (void)sig;
    plk_dump(PLK_DUMP_SIGNAL); // keeps errno
}

static void arm_fatal(int sig, _Atomic bool *flag)
{
    atomic_store(pristine(sig), true);
    struct sigaction old, ours;
    if (sig == plk_profile_settings.dump_signal || next_sigaction(sig, NULL, &old) != 0 ||
        !is_default(&old))
        return; // the program's (or its parent's) choice stands
    fatal_action(&ours);
    if (next_sigaction(sig, &ours, NULL) == 0)
        atomic_store(flag, true);
}

void plk_signals_init(void)
{
    // Resolved here, early, rather than in a signal handler (dlsym is not
    // async-signal-safe, and programs do call signal() from handlers).
    next_fn(&next_sigaction_slot, "sigaction");
    next_fn(&next_signal_slot, "signal");
    next_fn(&next_bsd_signal_slot, "bsd_signal");
    next_fn(&next_sysv_signal_slot, "sysv_signal");
    next_fn(&next___sysv_signal_slot, "__sysv_signal");
    next_fn(&next_ssignal_slot, "ssignal");
    next_fn(&next_sigset_slot, "sigset");
}

void plk_dump_arm_signals(void)
{
    plk_signals_init();
    arm_fatal(SIGINT, &hooked_int);
    arm_fatal(SIGTERM, &hooked_term);
    int sig = plk_profile_settings.dump_signal;
    if (sig > 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_dump_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        next_sigaction(sig, &sa, NULL);
    }
}
