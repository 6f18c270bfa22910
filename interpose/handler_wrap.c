// Wrapping the program's signal handlers: see handler_wrap.h.
#include "handler_wrap.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "parking_lot.h"
#include "settings.h"

#define NSIG_MAX 65 // signals 1..64

// The program's handler per signal: the function's address, with bit 63 set
// for an SA_SIGINFO handler (user-space addresses on x86-64 stay below
// 2^47); 0 when the signal is not wrapped. One word, so that the wrapper
// never sees a handler with the other one's calling convention.
#define SIGINFO_BIT ((uint64_t)1 << 63)
static _Atomic uint64_t handlers[NSIG_MAX];

typedef void (*plain_handler)(int);
typedef void (*info_handler)(int, siginfo_t *, void *);

static bool wrappable_signal(int sig)
{
    switch (sig) {
    case SIGKILL:
    case SIGSTOP:
    case SIGSEGV:
    case SIGBUS:
    case SIGFPE:
    case SIGILL:
    case SIGTRAP:
    case SIGSYS:
        return false;
    default:
        return sig > 0 && sig < NSIG_MAX && !use_glibc();
    }
}

static void *handler_of(const struct sigaction *act)
{
    return (act->sa_flags & SA_SIGINFO) ? (void *)act->sa_sigaction
                                        : (void *)act->sa_handler;
}

static void wrapper(int sig, siginfo_t *info, void *uc);

static bool is_wrapper(const struct sigaction *act)
{
    return (act->sa_flags & SA_SIGINFO) && act->sa_sigaction == wrapper;
}

// A handler function (not SIG_DFL, SIG_IGN, ...) that we may wrap.
static bool wrappable_action(int sig, const struct sigaction *act)
{
    void *h = handler_of(act);
    return wrappable_signal(sig) && h != (void *)SIG_DFL && h != (void *)SIG_IGN &&
           h != (void *)SIG_ERR && h != (void *)wrapper &&
           !(act->sa_flags & SA_RESETHAND);
}

static uint64_t pack(const struct sigaction *act)
{
    return (uint64_t)(uintptr_t)handler_of(act) |
           ((act->sa_flags & SA_SIGINFO) ? SIGINFO_BIT : 0);
}

static void *unpack(uint64_t h)
{
    return (void *)(uintptr_t)(h & ~SIGINFO_BIT);
}

/* Postponing. */

#define MAX_POSTPONED 8
struct postponed {
    int sig;
    siginfo_t info;
};
static __thread struct postponed postponed[MAX_POSTPONED];
static __thread unsigned n_postponed;

// Runs right after the thread's last bucket release: sends each postponed
// signal to this thread again. It is not blocked (it was deliverable when
// it came, and bucket sections do not change the mask), so the kernel
// delivers it as the syscall returns, to the wrapper, which now runs the
// handler. The original siginfo goes with it: a thread may queue any
// siginfo to itself.
static void send_postponed(void)
{
    int saved_errno = errno;
    struct postponed todo[MAX_POSTPONED];
    unsigned n = n_postponed;
    memcpy(todo, postponed, n * sizeof todo[0]);
    n_postponed = 0; // a handler run below may postpone afresh
    atomic_signal_fence(memory_order_seq_cst);
    pid_t pid = getpid(), tid = gettid();
    for (unsigned i = 0; i < n; i++) {
        if (syscall(SYS_rt_tgsigqueueinfo, pid, tid, todo[i].sig, &todo[i].info) != 0)
            syscall(SYS_tgkill, pid, tid, todo[i].sig);
    }
    errno = saved_errno;
}

static bool postpone(int sig, const siginfo_t *info)
{
    unsigned n = n_postponed;
    if (n == MAX_POSTPONED)
        return false; // run it here: the nested-handler rules apply
    postponed[n].sig = sig;
    postponed[n].info = *info;
    atomic_signal_fence(memory_order_seq_cst);
    n_postponed = n + 1;
    plk_parking_lot_call_when_free(send_postponed);
    return true;
}

static void wrapper(int sig, siginfo_t *info, void *uc)
{
    if (plk_parking_lot_busy_here() && postpone(sig, info))
        return;
    uint64_t h = atomic_load_explicit(&handlers[sig], memory_order_acquire);
    void *fn = unpack(h);
    // 0: the program switched to SIG_DFL or SIG_IGN while this signal was
    // on its way; the kernel already chose us, so it is dropped.
    if (fn == (void *)SIG_DFL || fn == (void *)SIG_IGN)
        return;
    if (h & SIGINFO_BIT)
        ((info_handler)fn)(sig, info, uc);
    else
        ((plain_handler)fn)(sig);
}

/* sigaction. */

void plk_wrap_begin(struct plk_wrap_call *call, int sig, const struct sigaction *act)
{
    call->act = act;
    call->recorded = false;
    if (sig <= 0 || sig >= NSIG_MAX) {
        call->previous = 0;
        return;
    }
    if (act && wrappable_action(sig, act)) {
        // Recorded before it is installed: the wrapper may run as soon as
        // the kernel has it.
        call->previous = atomic_exchange(&handlers[sig], pack(act));
        call->recorded = true;
        call->wrapped = *act;
        call->wrapped.sa_sigaction = wrapper;
        call->wrapped.sa_flags |= SA_SIGINFO;
        call->act = &call->wrapped;
        return;
    }
    call->previous = atomic_load(&handlers[sig]);
}

static void translate_old(struct sigaction *old, uint64_t previous)
{
    if (!is_wrapper(old))
        return;
    if (previous & SIGINFO_BIT) {
        old->sa_sigaction = (info_handler)unpack(previous);
    } else {
        old->sa_flags &= ~SA_SIGINFO;
        old->sa_handler = (plain_handler)unpack(previous);
    }
}

void plk_wrap_end(struct plk_wrap_call *call, int sig, const struct sigaction *act,
                  bool ok, struct sigaction *old)
{
    if (sig <= 0 || sig >= NSIG_MAX)
        return;
    if (!ok) {
        if (call->recorded)
            atomic_store(&handlers[sig], call->previous);
        return;
    }
    // Installed something unwrapped: forgotten only now, so that a signal
    // still on its way to the wrapper finds the handler it was sent to.
    if (act && !call->recorded)
        atomic_store(&handlers[sig], 0);
    if (old)
        translate_old(old, call->previous);
}

/* The signal() family. */

uint64_t plk_wrap_previous(int sig)
{
    return sig > 0 && sig < NSIG_MAX ? atomic_load(&handlers[sig]) : 0;
}

void (*plk_wrap_translate_handler(void (*was)(int), uint64_t previous))(int)
{
    if (was == (plain_handler)(void *)wrapper)
        return (plain_handler)unpack(previous);
    return was;
}

void plk_wrap_installed(int sig, plk_sigaction_fn real_sigaction)
{
    if (sig <= 0 || sig >= NSIG_MAX || !real_sigaction)
        return;
    struct sigaction cur;
    if (real_sigaction(sig, NULL, &cur) != 0 || is_wrapper(&cur))
        return; // e.g. sigset(SIG_HOLD): the handler stays as it was
    if (!wrappable_action(sig, &cur)) {
        atomic_store(&handlers[sig], 0);
        return;
    }
    // Between glibc's install and this one the handler runs unwrapped,
    // exactly as without us.
    atomic_store(&handlers[sig], pack(&cur));
    struct sigaction wrapped = cur;
    wrapped.sa_sigaction = wrapper;
    wrapped.sa_flags |= SA_SIGINFO;
    real_sigaction(sig, &wrapped, NULL);
}
