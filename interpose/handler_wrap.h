// The program's signal handlers, wrapped so that none runs while its thread
// is inside one of the parking lot's critical sections.
//
// A handler that interrupts a bucket critical section and then waits -- for a
// mutex that a thread asleep in that very bucket holds, say -- would wait
// forever: the section cannot end before the handler returns. glibc's futex
// locks have no such section, and programs do lock mutexes in handlers. So
// every handler function the program installs (sigaction, the signal()
// family) is installed in the kernel as a wrapper that calls it, unless the
// signal lands inside a bucket section: then the wrapper records the signal
// and the thread sends it to itself again (rt_tgsigqueueinfo, same siginfo)
// right after the section, where the handler runs normally.
//
// The program sees its own handler and flags in every query (the wrapper's
// pointer and the SA_SIGINFO it adds are translated back). Not wrapped:
// SA_RESETHAND handlers (the kernel resets the disposition at the first
// delivery, so a postponed signal could not come back to them), the
// synchronous fault signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP,
// SIGSYS: a fault cannot be postponed), and everything under
// PARKLOCK_ENGINE=glibc (no bucket sections there). Those handlers run where
// they land; the parking lot's nested-handler rules (docs/design.md) cover
// them as far as they can.
#ifndef PLK_HANDLER_WRAP_H
#define PLK_HANDLER_WRAP_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

typedef int (*plk_sigaction_fn)(int, const struct sigaction *, struct sigaction *);

// One sigaction call in progress: plk_wrap_begin chooses what to install,
// plk_wrap_end records the outcome and translates the old action.
struct plk_wrap_call {
    const struct sigaction *act; // what to pass to the real sigaction
    struct sigaction wrapped;    // storage for a wrapped act
    uint64_t previous;           // the program's handler before this call
    bool recorded;               // act's handler was recorded as the program's
};

void plk_wrap_begin(struct plk_wrap_call *call, int sig, const struct sigaction *act);
void plk_wrap_end(struct plk_wrap_call *call, int sig, bool ok, struct sigaction *old);

// For the signal() family, which glibc implements over its internal
// sigaction: the program's handler for `sig` as the family returns it, if
// `was` (what glibc returned) is our wrapper; `was` otherwise. `previous` is
// plk_wrap_previous(sig) read before the call.
uint64_t plk_wrap_previous(int sig);
void (*plk_wrap_translate_handler(void (*was)(int), uint64_t previous))(int);
// After such a call installed a handler directly: wraps it in place, keeping
// the flags and mask glibc chose (or forgets it, if it is not wrappable).
void plk_wrap_installed(int sig, plk_sigaction_fn real_sigaction);

#endif
