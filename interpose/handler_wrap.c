// Wrapping the program's signal handlers: see handler_wrap.h.
#include "handler_wrap.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "parking_lot.h"
#include "settings.h"

#define NSIG_MAX 65 // signals 1..64

// The program's handler per signal: the function's address, with bit 63 set
// for an SA_SIGINFO handler (user-space addresses on x86-64 stay below
// 2^47); 0 until a handler is first wrapped. One word, so that the wrapper
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

// A postponed signal's siginfo, up to the end of the largest member of its
// union that the kernel fills (the rest of siginfo_t is zero).
#define INFO_BYTES 48
struct postponed {
    int sig;
    unsigned char info[INFO_BYTES];
};

// Signals this thread postponed, oldest first. Postponing a signal also
// blocks it in the interrupted context (the wrapper edits uc_sigmask), so
// that later instances wait in the kernel's queue, in order, behind it.
// Usually one entry per signal number, more only with SA_NODEFER or nested
// handlers.
#define MAX_POSTPONED 64
static __thread struct postponed postponed[MAX_POSTPONED];
static __thread _Atomic unsigned n_postponed;

// Instances of one signal taken out of the kernel's queue while its
// postponed instances go back in ahead of them. Thread-local rather than on
// the stack: the flush may run on a small alternate signal stack. (It is
// done with before the mask is restored, so a nested flush cannot meet it.)
#define MAX_DRAINED 32
static __thread unsigned char drained[MAX_DRAINED][INFO_BYTES];

static void send_to_self(pid_t pid, pid_t tid, int sig, const unsigned char *bytes)
{
    siginfo_t info;
    memset(&info, 0, sizeof info);
    memcpy(&info, bytes, INFO_BYTES);
    if (syscall(SYS_rt_tgsigqueueinfo, pid, tid, sig, &info) != 0)
        syscall(SYS_tgkill, pid, tid, sig);
}

// Takes the queued instances of `sig` out (the raw call: glibc's
// sigtimedwait is a cancellation point and rewrites SI_TKILL).
static unsigned drain(int sig)
{
    sigset_t just;
    sigemptyset(&just);
    sigaddset(&just, sig);
    struct timespec now = { 0, 0 };
    unsigned n = 0;
    siginfo_t info;
    while (n < MAX_DRAINED &&
           syscall(SYS_rt_sigtimedwait, &just, &info, &now, _NSIG / 8) == sig)
        memcpy(drained[n++], &info, INFO_BYTES);
    return n;
}

// Runs once the thread holds no bucket lock and owes no wake-up: sends each
// postponed signal to this thread again, with its siginfo (a thread may
// queue any siginfo to itself), followed by the instances that queued up
// behind it meanwhile. Every signal is blocked while the queues are
// rebuilt; restoring the mask, without the signals we blocked, has the
// kernel deliver them in order to the wrapper, which now runs the handler.
static void send_postponed(void)
{
    int saved_errno = errno;
    sigset_t all, old, done;
    sigfillset(&all);
    sigemptyset(&done);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pid_t pid = getpid(), tid = gettid();
    unsigned n = atomic_load(&n_postponed);
    for (unsigned i = 0; i < n; i++) {
        int sig = postponed[i].sig;
        if (sigismember(&done, sig))
            continue;
        sigaddset(&done, sig);
        // All postponed instances of this number first, in order, then
        // those still queued.
        unsigned n_drained = drain(sig);
        for (unsigned j = i; j < n; j++) {
            if (postponed[j].sig == sig)
                send_to_self(pid, tid, sig, postponed[j].info);
        }
        for (unsigned k = 0; k < n_drained; k++)
            send_to_self(pid, tid, sig, drained[k]);
        sigdelset(&old, sig); // blocked by the wrapper, not by the program
    }
    atomic_store(&n_postponed, 0);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved_errno;
}

_Static_assert(INFO_BYTES <= sizeof(siginfo_t), "siginfo_t is smaller than its fields");

static bool postpone(int sig, const siginfo_t *info, ucontext_t *uc)
{
    // One instruction takes the slot (a nested wrapper takes the next).
    unsigned n = atomic_fetch_add(&n_postponed, 1);
    if (n >= MAX_POSTPONED) {
        atomic_fetch_sub(&n_postponed, 1);
        return false; // 64 nested postponements: run it here
    }
    postponed[n].sig = sig;
    memcpy(postponed[n].info, info, INFO_BYTES);
    sigaddset(&uc->uc_sigmask, sig);
    plk_parking_lot_call_when_free(send_postponed);
    return true;
}

static void wrapper(int sig, siginfo_t *info, void *uc)
{
    if ((atomic_load_explicit(&n_postponed, memory_order_relaxed) != 0 ||
         plk_parking_lot_handler_must_wait()) &&
        postpone(sig, info, uc))
        return;
    uint64_t h = atomic_load_explicit(&handlers[sig], memory_order_acquire);
    void *fn = unpack(h);
    if (fn == (void *)SIG_DFL) // never recorded (cannot happen)
        return;
    // A handler installed without SA_SIGINFO gets the same three arguments
    // the kernel passes it (on x86-64 some rely on the ucontext).
    ((info_handler)fn)(sig, info, uc);
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
    if (act && is_wrapper(act)) {
        // Our wrapper, read with a raw syscall and put back: it still
        // stands for the handler we recorded.
        call->previous = atomic_load(&handlers[sig]);
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

void plk_wrap_end(struct plk_wrap_call *call, int sig, bool ok, struct sigaction *old)
{
    if (sig <= 0 || sig >= NSIG_MAX)
        return;
    if (!ok) {
        if (call->recorded)
            atomic_store(&handlers[sig], call->previous);
        return;
    }
    // Something unwrapped (SIG_IGN, ...) leaves the recorded handler as it
    // is: the kernel no longer calls the wrapper, unless the program puts
    // back a wrapper it read with a raw rt_sigaction -- which then finds the
    // handler it stands for. (A signal already on its way to the wrapper
    // runs it too, as it would have without us.)
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
    if (!wrappable_action(sig, &cur))
        return; // the recorded handler stays (see plk_wrap_end)
    // Between glibc's install and this one the handler runs unwrapped,
    // exactly as without us.
    atomic_store(&handlers[sig], pack(&cur));
    struct sigaction wrapped = cur;
    wrapped.sa_sigaction = wrapper;
    wrapped.sa_flags |= SA_SIGINFO;
    real_sigaction(sig, &wrapped, NULL);
}
