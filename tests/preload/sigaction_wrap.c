// Signal dispositions as the program sees them, and the calls of its
// handlers, exactly as on glibc -- whatever the preload installs in the kernel
// in their place (a wrapper that calls the program's handler):
//   - sigaction() reads back the program's own handler, flags and mask, with
//     exactly the bits glibc and the kernel add or drop: glibc's SA_RESTORER
//     (and its sa_restorer), the kernel dropping flag bits it does not know
//     and SIGKILL/SIGSTOP from sa_mask; the old action of a replacing call is
//     the previous one; act and old may be the same struct; a failed call
//     leaves old alone;
//   - the signal() family (signal, bsd_signal, ssignal, sysv_signal,
//     __sysv_signal, sigset with SIG_HOLD, sigignore, siginterrupt) returns
//     the previous handler, SA_SIGINFO ones included, and installs glibc's
//     flags and masks; siginterrupt's memory changes what a later signal()
//     installs;
//   - invalid numbers, SIGKILL/SIGSTOP and glibc's own signals (32, 33) fail
//     with EINVAL where glibc fails, and only there;
//   - handlers are called with the right arguments (signal number, siginfo of
//     raise/kill/pthread_kill/sigqueue/SIGCHLD, a ucontext with the
//     interrupted mask and the alternate stack), on the right thread and
//     stack, with the right mask; queued realtime signals all arrive, in the
//     kernel's (nesting) order; SA_RESETHAND, SA_NODEFER, SA_ONSTACK and
//     SA_RESTART do what they do on glibc; errno a handler leaves behind is
//     what the interrupted code sees;
//   - handlers that re-arm or replace themselves, edit their ucontext's
//     mask or leave by siglongjmp work as on glibc;
//   - handlers installed with the raw rt_sigaction system call, over or under
//     glibc's, are what sigaction and signal() report and what runs;
//   - a forked child inherits the handlers (and they run there); exec and
//     posix_spawn reset them (and their flags) to SIG_DFL; system() gives
//     back the SIGQUIT handler it set aside.
// Expectations that depend on the kernel (whether it drops unknown flag bits)
// are probed once with the raw system call.
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>

#include "check.h"

// sigset(), siginterrupt() and sigignore() are deprecated, not gone.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

// Exported by glibc, declared only for old X/Open programs.
extern __sighandler_t bsd_signal(int sig, __sighandler_t handler);

#define SA_RESTORER_ 0x04000000u       // x86: glibc sets it with its restorer
#define SA_UNSUPPORTED_ 0x00000400u    // never a valid flag (kernel >= 5.11)
#define SA_EXPOSE_TAGBITS_ 0x00000800u // kept by kernels >= 5.11, a no-op on x86
#define SA_INTERRUPT_ 0x20000000u      // what glibc's sysv_signal also passes

/* What glibc and the kernel do to the flags (probe()). */

static unsigned glibc_adds;         // bits glibc's sigaction adds to every act
static void (*glibc_restorer)(void); // the sa_restorer glibc installs
static bool kernel_drops_unknown;   // Linux >= 5.11: unknown flag bits vanish

// The sa_flags sigaction reads back after installing `set` through glibc.
static unsigned F(unsigned set)
{
    unsigned known = SA_NOCLDSTOP | SA_NOCLDWAIT | SA_SIGINFO | SA_ONSTACK | SA_RESTART |
                     SA_NODEFER | SA_RESETHAND | SA_EXPOSE_TAGBITS_ | glibc_adds;
    return (kernel_drops_unknown ? set & known : set) | glibc_adds;
}

// The kernel's own struct (rt_sigaction with an 8-byte mask).
struct ksigaction {
    void *handler;
    unsigned long flags;
    void *restorer;
    uint64_t mask;
};

static void probe(void)
{
    check_context = "probe";
    int sig = SIGRTMIN + 6;
    struct ksigaction k = { .handler = (void *)SIG_IGN, .flags = SA_UNSUPPORTED_ }, ko;
    CHECK_EQ(syscall(SYS_rt_sigaction, sig, &k, NULL, 8), 0);
    memset(&ko, 0, sizeof ko);
    CHECK_EQ(syscall(SYS_rt_sigaction, sig, NULL, &ko, 8), 0);
    kernel_drops_unknown = !(ko.flags & SA_UNSUPPORTED_);

    struct sigaction a, o;
    memset(&a, 0, sizeof a);
    a.sa_handler = SIG_IGN;
    CHECK_EQ(sigaction(sig, &a, NULL), 0);
    CHECK_EQ(sigaction(sig, NULL, &o), 0);
    glibc_adds = (unsigned)o.sa_flags;
    glibc_restorer = o.sa_restorer;
#if defined(__x86_64__)
    CHECK_EQ(glibc_adds, SA_RESTORER_);
    CHECK(glibc_restorer != NULL);
#endif
    a.sa_handler = SIG_DFL;
    CHECK_EQ(sigaction(sig, &a, NULL), 0);
}

/* Signal sets. */

// The set of the signals listed, up to a 0.
static sigset_t set_of(int first, ...)
{
    sigset_t s;
    sigemptyset(&s);
    va_list ap;
    va_start(ap, first);
    for (int sig = first; sig != 0; sig = va_arg(ap, int))
        sigaddset(&s, sig);
    va_end(ap);
    return s;
}

static sigset_t current_mask(void)
{
    sigset_t s;
    pthread_sigmask(SIG_BLOCK, NULL, &s);
    return s;
}

// Compares the membership of every signal 1..64; `want` NULL is empty.
static void check_mask_(const char *file, int line, const char *what, const sigset_t *got,
                        const sigset_t *want)
{
    for (int s = 1; s <= 64; s++) {
        int g = sigismember(got, s), w = want ? sigismember(want, s) : 0;
        if (g != w) {
            char expr[160];
            snprintf(expr, sizeof expr, "%s has signal %d", what, s);
            check_fail(file, line, expr, g, w);
        }
    }
}
#define CHECK_MASK(got, want) check_mask_(__FILE__, __LINE__, #got, got, want)

// `want` with SIGKILL and SIGSTOP taken out, as the kernel stores sa_mask.
static sigset_t stored_mask(const sigset_t *want)
{
    sigset_t s;
    if (want)
        s = *want;
    else
        sigemptyset(&s);
    sigdelset(&s, SIGKILL);
    sigdelset(&s, SIGSTOP);
    return s;
}

/* Actions. */

static void check_sa_(const char *file, int line, const char *what,
                      const struct sigaction *got, void *handler, unsigned flags,
                      const sigset_t *mask)
{
    char expr[200];
    if ((void *)got->sa_handler != handler) {
        snprintf(expr, sizeof expr, "%s: handler", what);
        check_fail(file, line, expr, (long)got->sa_handler, (long)handler);
    }
    if ((unsigned)got->sa_flags != flags) {
        snprintf(expr, sizeof expr, "%s: sa_flags (hex %#x, expected %#x)", what,
                 (unsigned)got->sa_flags, flags);
        check_fail(file, line, expr, (unsigned)got->sa_flags, flags);
    }
    sigset_t want = stored_mask(mask);
    snprintf(expr, sizeof expr, "%s: sa_mask", what);
    check_mask_(file, line, expr, &got->sa_mask, &want);
#if defined(__x86_64__)
    void (*restorer)(void) = (flags & SA_RESTORER_) ? glibc_restorer : NULL;
    if (got->sa_restorer != restorer) {
        snprintf(expr, sizeof expr, "%s: sa_restorer", what);
        check_fail(file, line, expr, (long)got->sa_restorer, (long)restorer);
    }
#endif
}

// The action sigaction() reports now for `sig`.
static void check_action_(const char *file, int line, const char *what, int sig,
                          void *handler, unsigned flags, const sigset_t *mask)
{
    struct sigaction old;
    memset(&old, 0x5a, sizeof old);
    int r = sigaction(sig, NULL, &old);
    char expr[160];
    if (r != 0) {
        snprintf(expr, sizeof expr, "sigaction(%d, NULL, &old) == 0 (%s)", sig, what);
        check_fail(file, line, expr, r, 0);
        return;
    }
    snprintf(expr, sizeof expr, "%s (signal %d)", what, sig);
    check_sa_(file, line, expr, &old, handler, flags, mask);
}
#define CHECK_SA(got, handler, flags, mask)                                    \
    check_sa_(__FILE__, __LINE__, #got, got, (void *)(handler), flags, mask)
#define CHECK_ACTION(sig, handler, flags, mask)                                \
    check_action_(__FILE__, __LINE__, #sig, sig, (void *)(handler), flags, mask)

// `expr` evaluates to `ret` and leaves errno `err` (errno is 0 before).
#define CHECK_ERRNO(expr, ret, err)                                            \
    do {                                                                       \
        errno = 0;                                                             \
        long check_r_ = (long)(expr);                                          \
        int check_e_ = errno;                                                  \
        if (check_r_ != (long)(ret))                                           \
            check_fail(__FILE__, __LINE__, #expr " == " #ret, check_r_,        \
                       (long)(ret));                                           \
        if (check_e_ != (err))                                                 \
            check_fail(__FILE__, __LINE__, "errno after " #expr " == " #err,   \
                       check_e_, (err));                                       \
    } while (0)

static struct sigaction action(void *handler, unsigned flags, const sigset_t *mask)
{
    struct sigaction a;
    memset(&a, 0, sizeof a);
    a.sa_handler = (void (*)(int))handler;
    a.sa_flags = (int)flags;
    if (mask)
        a.sa_mask = *mask;
    else
        sigemptyset(&a.sa_mask);
    return a;
}

static int install(int sig, void *handler, unsigned flags, const sigset_t *mask)
{
    struct sigaction a = action(handler, flags, mask);
    return sigaction(sig, &a, NULL);
}

static void reset(int sig)
{
    CHECK_EQ(install(sig, SIG_DFL, 0, NULL), 0);
}

/* Handlers: each call leaves a record. */

#define MAX_RECS 16

struct rec {
    int which; // which handler
    int sig;
    pid_t tid;
    bool info;          // called with a siginfo
    siginfo_t si;       // its copy
    bool uc;            // a non-NULL ucontext
    sigset_t uc_mask;   // its uc_sigmask
    void *uc_ss_sp;     // its uc_stack.ss_sp
    sigset_t mask;      // the thread's mask in the handler
    uintptr_t sp;       // the address of a local
    int ss_flags;       // sigaltstack() in the handler
};

static struct rec recs[MAX_RECS];
static atomic_int nrecs;

static void forget_recs(void)
{
    atomic_store(&nrecs, 0);
    memset(recs, 0, sizeof recs);
}

static void record(int which, int sig, siginfo_t *info, void *ucv)
{
    int saved = errno;
    int i = atomic_fetch_add(&nrecs, 1);
    if (i < MAX_RECS) {
        struct rec *r = &recs[i];
        volatile char local = 0;
        r->which = which;
        r->sig = sig;
        r->tid = gettid();
        r->info = info != NULL;
        if (info)
            r->si = *info;
        r->uc = ucv != NULL;
        if (ucv) {
            ucontext_t *uc = ucv;
            r->uc_mask = uc->uc_sigmask;
            r->uc_ss_sp = uc->uc_stack.ss_sp;
        }
        pthread_sigmask(SIG_BLOCK, NULL, &r->mask);
        stack_t ss;
        sigaltstack(NULL, &ss);
        r->ss_flags = ss.ss_flags;
        r->sp = (uintptr_t)&local;
    }
    errno = saved;
}

static void on_plain(int sig) { record(1, sig, NULL, NULL); }
static void on_plain2(int sig) { record(2, sig, NULL, NULL); }
static void on_info(int sig, siginfo_t *si, void *uc) { record(3, sig, si, uc); }
static void on_info2(int sig, siginfo_t *si, void *uc) { record(4, sig, si, uc); }

// Leave errno changed, as a careless handler does.
static void on_errno(int sig)
{
    record(5, sig, NULL, NULL);
    errno = 12345;
}
static void on_errno_info(int sig, siginfo_t *si, void *uc)
{
    record(6, sig, si, uc);
    errno = 23456;
}

static int n_recs(void) { return atomic_load(&nrecs); }

/* sigaction read-back. */

struct combo {
    void *handler;
    unsigned flags;
    int mask[6]; // 0-terminated
};

static sigset_t combo_mask(const struct combo *c)
{
    sigset_t s;
    sigemptyset(&s);
    for (int i = 0; i < 6 && c->mask[i]; i++)
        sigaddset(&s, c->mask[i]);
    return s;
}

static void *readback_in_thread(void *arg)
{
    (void)arg;
    sigset_t m = set_of(SIGUSR2, 0);
    CHECK_ACTION(SIGUSR1, on_info2, F(SA_SIGINFO | SA_RESTART), &m);
    return NULL;
}

static void readback(void)
{
    check_context = "sigaction read-back";
    // A signal nobody touched: what the kernel starts with.
    CHECK_ACTION(SIGRTMIN + 5, SIG_DFL, 0, NULL);
    CHECK_EQ(sigaction(SIGRTMIN + 5, NULL, NULL), 0);

    const struct combo combos[] = {
        { on_plain, 0, { 0 } },
        { on_plain, SA_RESTART, { SIGUSR2, SIGWINCH, 0 } },
        { on_info, SA_SIGINFO, { 0 } },
        { on_info, SA_SIGINFO | SA_RESTART | SA_NODEFER, { SIGINT, SIGRTMIN + 3, SIGKILL, 0 } },
        { on_plain2, SA_NODEFER, { SIGSTOP, SIGALRM, 0 } },
        { on_plain, SA_ONSTACK | SA_RESTART, { SIGUSR2, 0 } },
        { on_info2, SA_SIGINFO | SA_ONSTACK, { SIGCHLD, SIGRTMAX, 0 } },
        { on_plain, SA_RESETHAND, { SIGUSR2, 0 } },
        { on_info, SA_SIGINFO | SA_RESETHAND | SA_NODEFER, { 0 } },
        { on_plain2, SA_NOCLDSTOP | SA_NOCLDWAIT | SA_RESTART, { 0 } },
        { on_plain, SA_UNSUPPORTED_ | SA_RESTART, { 0 } }, // dropped by the kernel
        { on_plain, SA_INTERRUPT_, { 0 } },                // dropped by the kernel
        { on_plain, SA_EXPOSE_TAGBITS_, { 0 } },           // kept
        { on_info2, SA_SIGINFO | SA_RESTORER_, { 0 } },    // glibc's restorer wins
        { SIG_IGN, SA_RESTART | SA_SIGINFO, { SIGUSR2, 0 } },
        { SIG_DFL, SA_NODEFER, { 0 } },
        { on_info, SA_SIGINFO | SA_RESTART | SA_NODEFER | SA_ONSTACK,
          { SIGHUP, SIGQUIT, SIGPIPE, SIGTERM, SIGRTMIN, 0 } },
        { SIG_DFL, 0, { 0 } },
    };
    const int sigs[] = { SIGUSR1, SIGRTMIN + 4 };
    for (size_t k = 0; k < sizeof sigs / sizeof sigs[0]; k++) {
        int sig = sigs[k];
        const struct combo *prev = NULL;
        for (size_t i = 0; i < sizeof combos / sizeof combos[0]; i++) {
            const struct combo *c = &combos[i];
            char what[120];
            sigset_t m = combo_mask(c);
            struct sigaction a = action(c->handler, c->flags, &m), old;
            a.sa_restorer = (void (*)(void))0x1234; // garbage: glibc sets its own
            memset(&old, 0x5a, sizeof old);
            CHECK_EQ(sigaction(sig, &a, &old), 0);
            if (prev) {
                sigset_t pm = combo_mask(prev);
                snprintf(what, sizeof what, "old action replaced by combo %zu", i);
                check_sa_(__FILE__, __LINE__, what, &old, prev->handler, F(prev->flags), &pm);
                CHECK_EQ(!!(old.sa_flags & SA_SIGINFO), !!(prev->flags & SA_SIGINFO));
            }
            snprintf(what, sizeof what, "read-back of combo %zu", i);
            check_action_(__FILE__, __LINE__, what, sig, c->handler, F(c->flags), &m);
            prev = c;
        }
    }

    // sigfillset leaves out glibc's own 32 and 33; sa_mask keeps what it is
    // given, glibc's signals too, except SIGKILL and SIGSTOP.
    sigset_t full;
    sigfillset(&full);
    CHECK_EQ(sigismember(&full, 32), 0);
    CHECK_EQ(sigismember(&full, 33), 0);
    CHECK_EQ(install(SIGUSR1, on_plain, 0, &full), 0);
    CHECK_ACTION(SIGUSR1, on_plain, F(0), &full);
    sigset_t raw;
    memset(&raw, 0xff, sizeof raw);
    CHECK_EQ(sigismember(&raw, 32), 1);
    CHECK_EQ(install(SIGUSR1, on_info, SA_SIGINFO, &raw), 0);
    CHECK_ACTION(SIGUSR1, on_info, F(SA_SIGINFO), &raw);

    // act and old the same struct (restrict says no; glibc copes): old is
    // the previous action, the new one is what act said before the call.
    {
        int (*sigaction_)(int, const struct sigaction *, struct sigaction *) = sigaction;
        sigset_t m = set_of(SIGUSR2, 0);
        struct sigaction a = action(on_plain2, SA_RESTART | SA_NODEFER, &m);
        CHECK_EQ(sigaction_(SIGUSR1, &a, &a), 0);
        CHECK_SA(&a, on_info, F(SA_SIGINFO), &raw);
        CHECK_ACTION(SIGUSR1, on_plain2, F(SA_RESTART | SA_NODEFER), &m);
        a = action(on_info2, SA_SIGINFO, NULL);
        CHECK_EQ(sigaction_(SIGUSR1, &a, &a), 0);
        CHECK_SA(&a, on_plain2, F(SA_RESTART | SA_NODEFER), &m);
        CHECK_ACTION(SIGUSR1, on_info2, F(SA_SIGINFO), NULL);
    }

    // Handler values that are neither SIG_DFL, SIG_IGN nor functions are
    // stored as they are.
    CHECK_EQ(install(SIGUSR2, SIG_ERR, 0, NULL), 0);
    CHECK_ACTION(SIGUSR2, SIG_ERR, F(0), NULL);
    CHECK_EQ(install(SIGUSR2, SIG_HOLD, SA_SIGINFO, NULL), 0);
    CHECK_ACTION(SIGUSR2, SIG_HOLD, F(SA_SIGINFO), NULL);
    reset(SIGUSR2);

    // The fault signals read back the same way.
    const int faults[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS };
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        sigset_t m = set_of(SIGUSR1, 0);
        CHECK_EQ(install(faults[i], on_info, SA_SIGINFO | SA_ONSTACK | SA_NODEFER, &m), 0);
        CHECK_ACTION(faults[i], on_info, F(SA_SIGINFO | SA_ONSTACK | SA_NODEFER), &m);
        reset(faults[i]);
        CHECK_ACTION(faults[i], SIG_DFL, F(0), NULL);
    }

    // SIGCHLD's own flags.
    CHECK_EQ(install(SIGCHLD, on_info, SA_SIGINFO | SA_NOCLDSTOP | SA_RESTART, NULL), 0);
    CHECK_ACTION(SIGCHLD, on_info, F(SA_SIGINFO | SA_NOCLDSTOP | SA_RESTART), NULL);
    reset(SIGCHLD);

    // Another thread sees the same dispositions.
    sigset_t m = set_of(SIGUSR2, 0);
    CHECK_EQ(install(SIGUSR1, on_info2, SA_SIGINFO | SA_RESTART, &m), 0);
    join_thread(start_thread(readback_in_thread, NULL));
    reset(SIGUSR1);
    CHECK_ACTION(SIGUSR1, SIG_DFL, F(0), NULL);
    reset(SIGRTMIN + 4);
}

/* Invalid signals. */

static void errors(void)
{
    check_context = "invalid signals";
    struct sigaction a = action(on_plain, 0, NULL), ign = action(SIG_IGN, 0, NULL),
                     dfl = action(SIG_DFL, 0, NULL), o;
    const int bad[] = { 0, -1, 65, 1000, 32, 33, SIGRTMIN - 2, SIGRTMIN - 1 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int sig = bad[i];
        check_context = "invalid signal numbers and glibc's own signals";
        CHECK_ERRNO(sigaction(sig, &a, NULL), -1, EINVAL);
        CHECK_ERRNO(sigaction(sig, &ign, NULL), -1, EINVAL);
        CHECK_ERRNO(sigaction(sig, NULL, &o), -1, EINVAL);
        CHECK_ERRNO(sigaction(sig, NULL, NULL), -1, EINVAL);
        CHECK_ERRNO(signal(sig, on_plain), SIG_ERR, EINVAL);
        CHECK_ERRNO(bsd_signal(sig, on_plain), SIG_ERR, EINVAL);
        CHECK_ERRNO(ssignal(sig, on_plain), SIG_ERR, EINVAL);
        CHECK_ERRNO(sysv_signal(sig, on_plain), SIG_ERR, EINVAL);
        CHECK_ERRNO(__sysv_signal(sig, on_plain), SIG_ERR, EINVAL);
        CHECK_ERRNO(sigset(sig, on_plain), SIG_ERR, EINVAL);
        CHECK_ERRNO(sigset(sig, SIG_HOLD), SIG_ERR, EINVAL);
        CHECK_ERRNO(siginterrupt(sig, 1), -1, EINVAL);
        CHECK_ERRNO(sigignore(sig), -1, EINVAL);
    }
    check_context = "SIGKILL and SIGSTOP";
    const int kernel_only[] = { SIGKILL, SIGSTOP };
    for (size_t i = 0; i < 2; i++) {
        int sig = kernel_only[i];
        // Setting anything fails, and leaves old alone; asking succeeds.
        memset(&o, 0x5a, sizeof o);
        CHECK_ERRNO(sigaction(sig, &a, &o), -1, EINVAL);
        CHECK_EQ((long)o.sa_handler, (long)0x5a5a5a5a5a5a5a5aLL);
        CHECK_ERRNO(sigaction(sig, &ign, NULL), -1, EINVAL);
        CHECK_ERRNO(sigaction(sig, &dfl, NULL), -1, EINVAL);
        CHECK_ERRNO(sigaction(sig, NULL, &o), 0, 0);
        CHECK_SA(&o, SIG_DFL, 0, NULL);
        CHECK_ERRNO(sigaction(sig, NULL, NULL), 0, 0);
        CHECK_ERRNO(signal(sig, on_plain), SIG_ERR, EINVAL);
        CHECK_ERRNO(signal(sig, SIG_DFL), SIG_ERR, EINVAL);
        CHECK_ERRNO(sysv_signal(sig, on_plain), SIG_ERR, EINVAL);
        CHECK_ERRNO(sigset(sig, on_plain), SIG_ERR, EINVAL);
        // SIG_HOLD only blocks (which the kernel ignores), then asks.
        CHECK_ERRNO(sigset(sig, SIG_HOLD), SIG_DFL, 0);
        CHECK_ERRNO(siginterrupt(sig, 0), -1, EINVAL);
        CHECK_ERRNO(sigignore(sig), -1, EINVAL);
    }
    check_context = "SIG_ERR as the handler";
    CHECK_ERRNO(signal(SIGUSR1, SIG_ERR), SIG_ERR, EINVAL);
    CHECK_ERRNO(bsd_signal(SIGUSR1, SIG_ERR), SIG_ERR, EINVAL);
    CHECK_ERRNO(sysv_signal(SIGUSR1, SIG_ERR), SIG_ERR, EINVAL);
    CHECK_ACTION(SIGUSR1, SIG_DFL, F(0), NULL);
    // sigset takes SIG_ERR as a handler (glibc does not check).
    CHECK_ERRNO(sigset(SIGUSR1, SIG_ERR), SIG_DFL, 0);
    CHECK_ACTION(SIGUSR1, SIG_ERR, F(0), NULL);
    reset(SIGUSR1);
    // The valid extremes.
    check_context = "signals 1 and 64";
    CHECK_ERRNO(sigaction(1, NULL, NULL), 0, 0);
    CHECK_ERRNO(sigaction(64, NULL, &o), 0, 0);
    CHECK_EQ(install(64, on_plain, SA_RESTART, NULL), 0);
    CHECK_ACTION(64, on_plain, F(SA_RESTART), NULL);
    reset(64);
}

/* The signal() family. */

static void family(int sig)
{
    sigset_t self = set_of(sig, 0), usr2 = set_of(SIGUSR2, 0);

    check_context = "signal/bsd_signal/ssignal";
    CHECK_EQ(signal(sig, on_plain), SIG_DFL);
    CHECK_ACTION(sig, on_plain, F(SA_RESTART), &self);
    CHECK_EQ(signal(sig, on_plain2), on_plain);
    CHECK_ACTION(sig, on_plain2, F(SA_RESTART), &self);
    CHECK_EQ(bsd_signal(sig, on_plain), on_plain2);
    CHECK_ACTION(sig, on_plain, F(SA_RESTART), &self);
    CHECK_EQ(ssignal(sig, SIG_IGN), on_plain);
    CHECK_ACTION(sig, SIG_IGN, F(SA_RESTART), &self);
    CHECK_EQ(signal(sig, on_plain), SIG_IGN);
    // The previous handler an SA_SIGINFO one: its pointer comes back.
    CHECK_EQ(install(sig, on_info, SA_SIGINFO | SA_NODEFER, &usr2), 0);
    CHECK_EQ((void *)signal(sig, on_plain2), (void *)on_info);
    CHECK_ACTION(sig, on_plain2, F(SA_RESTART), &self);
    CHECK_EQ(install(sig, on_info2, SA_SIGINFO, NULL), 0);
    CHECK_EQ((void *)bsd_signal(sig, SIG_DFL), (void *)on_info2);
    CHECK_ACTION(sig, SIG_DFL, F(SA_RESTART), &self);
    CHECK_EQ(install(sig, on_info, SA_SIGINFO, NULL), 0);
    CHECK_EQ((void *)ssignal(sig, on_plain), (void *)on_info);
    // sigaction's old action after signal(): the handler and BSD flags.
    {
        struct sigaction a = action(on_info2, SA_SIGINFO, NULL), o;
        CHECK_EQ(sigaction(sig, &a, &o), 0);
        CHECK_SA(&o, on_plain, F(SA_RESTART), &self);
    }

    check_context = "sysv_signal";
    CHECK_EQ((void *)sysv_signal(sig, on_plain), (void *)on_info2);
    CHECK_ACTION(sig, on_plain, F(SA_RESETHAND | SA_NODEFER | SA_INTERRUPT_), NULL);
    CHECK_EQ(__sysv_signal(sig, on_plain2), on_plain);
    CHECK_ACTION(sig, on_plain2, F(SA_RESETHAND | SA_NODEFER | SA_INTERRUPT_), NULL);
    CHECK_EQ(sysv_signal(sig, SIG_DFL), on_plain2);
    CHECK_ACTION(sig, SIG_DFL, F(SA_RESETHAND | SA_NODEFER | SA_INTERRUPT_), NULL);

    check_context = "sigset";
    sigset_t was_blocked = current_mask();
    CHECK_EQ(sigismember(&was_blocked, sig), 0);
    CHECK_EQ(sigset(sig, on_plain), SIG_DFL);
    CHECK_ACTION(sig, on_plain, F(0), NULL);
    CHECK_EQ(sigset(sig, on_plain2), on_plain);
    CHECK_ACTION(sig, on_plain2, F(0), NULL);
    // SIG_HOLD: blocks, keeps the handler, returns it; then SIG_HOLD.
    CHECK_EQ(sigset(sig, SIG_HOLD), on_plain2);
    sigset_t now = current_mask();
    CHECK_EQ(sigismember(&now, sig), 1);
    CHECK_ACTION(sig, on_plain2, F(0), NULL);
    CHECK_EQ(sigset(sig, SIG_HOLD), SIG_HOLD);
    // A handler while blocked: installs it, unblocks, returns SIG_HOLD.
    CHECK_EQ(sigset(sig, on_plain), SIG_HOLD);
    now = current_mask();
    CHECK_EQ(sigismember(&now, sig), 0);
    CHECK_ACTION(sig, on_plain, F(0), NULL);
    CHECK_EQ(sigset(sig, SIG_IGN), on_plain);
    CHECK_ACTION(sig, SIG_IGN, F(0), NULL);
    CHECK_EQ(sigset(sig, SIG_DFL), SIG_IGN);
    CHECK_ACTION(sig, SIG_DFL, F(0), NULL);
    // Previous SA_SIGINFO handlers, through both of sigset's paths.
    CHECK_EQ(install(sig, on_info, SA_SIGINFO | SA_RESTART, &usr2), 0);
    CHECK_EQ((void *)sigset(sig, SIG_HOLD), (void *)on_info);
    CHECK_ACTION(sig, on_info, F(SA_SIGINFO | SA_RESTART), &usr2);
    CHECK_EQ(sigset(sig, SIG_DFL), SIG_HOLD);
    CHECK_EQ(install(sig, on_info2, SA_SIGINFO, NULL), 0);
    CHECK_EQ((void *)sigset(sig, on_plain), (void *)on_info2);
    CHECK_ACTION(sig, on_plain, F(0), NULL);
    // SIG_HOLD with the signal at SIG_DFL.
    reset(sig);
    CHECK_EQ(sigset(sig, SIG_HOLD), SIG_DFL);
    CHECK_EQ(sigset(sig, SIG_DFL), SIG_HOLD);
    now = current_mask();
    CHECK_EQ(sigismember(&now, sig), 0);

    check_context = "sigignore";
    CHECK_EQ(install(sig, on_info, SA_SIGINFO | SA_RESTART, &usr2), 0);
    CHECK_EQ(sigignore(sig), 0);
    CHECK_ACTION(sig, SIG_IGN, F(0), NULL);
    {
        struct sigaction a = action(on_plain, 0, NULL), o;
        CHECK_EQ(sigaction(sig, &a, &o), 0);
        CHECK_SA(&o, SIG_IGN, F(0), NULL);
    }

    check_context = "siginterrupt";
    // It rewrites the current action's SA_RESTART, keeping the rest.
    CHECK_EQ(install(sig, on_plain, SA_RESTART | SA_NODEFER, &usr2), 0);
    CHECK_EQ(siginterrupt(sig, 1), 0);
    CHECK_ACTION(sig, on_plain, F(SA_NODEFER), &usr2);
    CHECK_EQ(siginterrupt(sig, 0), 0);
    CHECK_ACTION(sig, on_plain, F(SA_RESTART | SA_NODEFER), &usr2);
    CHECK_EQ(install(sig, on_info, SA_SIGINFO | SA_ONSTACK, &usr2), 0);
    CHECK_EQ(siginterrupt(sig, 0), 0);
    CHECK_ACTION(sig, on_info, F(SA_SIGINFO | SA_ONSTACK | SA_RESTART), &usr2);
    CHECK_EQ(siginterrupt(sig, 1), 0);
    CHECK_ACTION(sig, on_info, F(SA_SIGINFO | SA_ONSTACK), &usr2);
    {
        struct sigaction a = action(on_plain2, 0, NULL), o;
        CHECK_EQ(sigaction(sig, &a, &o), 0);
        CHECK_SA(&o, on_info, F(SA_SIGINFO | SA_ONSTACK), &usr2);
    }
    // glibc remembers siginterrupt(sig, 1): signal() and its aliases then
    // install without SA_RESTART (sigaction does not care).
    CHECK_EQ(signal(sig, on_plain), on_plain2);
    CHECK_ACTION(sig, on_plain, F(0), &self);
    CHECK_EQ(bsd_signal(sig, on_plain2), on_plain);
    CHECK_ACTION(sig, on_plain2, F(0), &self);
    CHECK_EQ(ssignal(sig, on_plain), on_plain2);
    CHECK_ACTION(sig, on_plain, F(0), &self);
    CHECK_EQ(install(sig, on_plain2, SA_RESTART, NULL), 0);
    CHECK_ACTION(sig, on_plain2, F(SA_RESTART), NULL);
    CHECK_EQ(siginterrupt(sig, 0), 0);
    CHECK_EQ(signal(sig, on_plain), on_plain2);
    CHECK_ACTION(sig, on_plain, F(SA_RESTART), &self);
    // On SIG_DFL and SIG_IGN too.
    reset(sig);
    CHECK_EQ(siginterrupt(sig, 0), 0);
    CHECK_ACTION(sig, SIG_DFL, F(SA_RESTART), NULL);
    CHECK_EQ(install(SIGUSR2, SIG_IGN, SA_RESTART, &self), 0);
    CHECK_EQ(siginterrupt(SIGUSR2, 1), 0);
    CHECK_ACTION(SIGUSR2, SIG_IGN, F(0), &self);
    CHECK_EQ(siginterrupt(SIGUSR2, 0), 0);
    reset(SIGUSR2);
    reset(sig);
}

/* Delivery. */

static void check_info_(const char *file, int line, const struct rec *r, int sig, int code,
                        pid_t pid)
{
    char expr[120];
#define INFO_FIELD(field, want)                                                \
    do {                                                                       \
        if ((long)(field) != (long)(want)) {                                   \
            snprintf(expr, sizeof expr, "%s (signal %d)", #field, sig);        \
            check_fail(file, line, expr, (long)(field), (long)(want));         \
        }                                                                      \
    } while (0)
    INFO_FIELD(r->sig, sig);
    INFO_FIELD(r->info, true);
    INFO_FIELD(r->uc, true);
    INFO_FIELD(r->si.si_signo, sig);
    INFO_FIELD(r->si.si_errno, 0);
    INFO_FIELD(r->si.si_code, code);
    if (code <= 0 || sig == SIGCHLD) {
        INFO_FIELD(r->si.si_pid, pid);
        INFO_FIELD(r->si.si_uid, getuid());
    }
#undef INFO_FIELD
}
#define CHECK_INFO(rec, sig, code, pid) check_info_(__FILE__, __LINE__, rec, sig, code, pid)

static sigset_t union_of(const sigset_t *a, const sigset_t *b)
{
    sigset_t s;
    sigorset(&s, a, b);
    return s;
}

static void delivery(void)
{
    const int sig = SIGUSR1;
    pid_t pid = getpid(), tid = gettid();
    sigset_t none, usr2_rt3 = set_of(SIGUSR2, SIGRTMIN + 3, SIGKILL, 0);
    sigemptyset(&none);
    sigset_t winch = set_of(SIGWINCH, 0);
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, &winch, NULL), 0);
    sigset_t before = current_mask(); // SIGWINCH blocked

    check_context = "raise, plain handler";
    forget_recs();
    CHECK_EQ(install(sig, on_plain, 0, &usr2_rt3), 0);
    CHECK_EQ(raise(sig), 0);
    CHECK_EQ(n_recs(), 1);
    CHECK_EQ(recs[0].which, 1);
    CHECK_EQ(recs[0].sig, sig);
    CHECK_EQ(recs[0].tid, tid);
    {
        // Blocked in the handler: the signal itself and sa_mask (SIGKILL
        // cannot be), on top of what was blocked.
        sigset_t add = stored_mask(&usr2_rt3);
        sigaddset(&add, sig);
        sigset_t want = union_of(&before, &add);
        CHECK_MASK(&recs[0].mask, &want);
    }
    sigset_t after = current_mask();
    CHECK_MASK(&after, &before);

    check_context = "raise, SA_SIGINFO handler";
    forget_recs();
    CHECK_EQ(install(sig, on_info, SA_SIGINFO, NULL), 0);
    CHECK_EQ(raise(sig), 0);
    CHECK_EQ(n_recs(), 1);
    CHECK_EQ(recs[0].which, 3);
    CHECK_INFO(&recs[0], sig, SI_TKILL, pid);
    CHECK_EQ(recs[0].tid, tid);
    CHECK_MASK(&recs[0].uc_mask, &before);
    {
        sigset_t want = before;
        sigaddset(&want, sig);
        CHECK_MASK(&recs[0].mask, &want);
    }

    check_context = "gsignal";
    forget_recs();
    CHECK_EQ(gsignal(sig), 0);
    CHECK_EQ(n_recs(), 1);
    CHECK_INFO(&recs[0], sig, SI_TKILL, pid);

    check_context = "kill(getpid())";
    forget_recs();
    CHECK_EQ(kill(pid, sig), 0);
    CHECK_EQ(n_recs(), 1);
    CHECK_INFO(&recs[0], sig, SI_USER, pid);
    CHECK_EQ(recs[0].tid, tid);
    CHECK_MASK(&recs[0].uc_mask, &before);

    check_context = "pthread_kill(self)";
    forget_recs();
    CHECK_EQ(pthread_kill(pthread_self(), sig), 0);
    CHECK_EQ(n_recs(), 1);
    CHECK_INFO(&recs[0], sig, SI_TKILL, pid);

    check_context = "sigqueue to self";
    forget_recs();
    CHECK_EQ(sigqueue(pid, sig, (union sigval){ .sival_ptr = (void *)0x123456789abcLL }), 0);
    CHECK_EQ(n_recs(), 1);
    CHECK_INFO(&recs[0], sig, SI_QUEUE, pid);
    CHECK(recs[0].si.si_value.sival_ptr == (void *)0x123456789abcLL);

    check_context = "SA_NODEFER";
    forget_recs();
    CHECK_EQ(install(sig, on_info2, SA_SIGINFO | SA_NODEFER, &usr2_rt3), 0);
    CHECK_EQ(raise(sig), 0);
    CHECK_EQ(n_recs(), 1);
    CHECK_EQ(recs[0].which, 4);
    CHECK_INFO(&recs[0], sig, SI_TKILL, pid);
    {
        sigset_t add = stored_mask(&usr2_rt3);
        sigset_t want = union_of(&before, &add);
        CHECK_MASK(&recs[0].mask, &want);
    }
    forget_recs();
    CHECK_EQ(install(sig, on_plain2, SA_NODEFER, NULL), 0);
    CHECK_EQ(raise(sig), 0);
    CHECK_EQ(n_recs(), 1);
    CHECK_MASK(&recs[0].mask, &before);

    check_context = "signal() handler";
    forget_recs();
    CHECK_EQ(signal(sig, on_plain), on_plain2);
    CHECK_EQ(raise(sig), 0);
    CHECK_EQ(n_recs(), 1);
    CHECK_EQ(recs[0].which, 1);
    {
        sigset_t want = before;
        sigaddset(&want, sig);
        CHECK_MASK(&recs[0].mask, &want);
    }
    check_context = "sigset() handler";
    forget_recs();
    CHECK_EQ(sigset(sig, on_plain2), on_plain);
    CHECK_EQ(raise(sig), 0);
    CHECK_EQ(n_recs(), 1);
    CHECK_EQ(recs[0].which, 2);
    {
        sigset_t want = before;
        sigaddset(&want, sig);
        CHECK_MASK(&recs[0].mask, &want);
    }

    check_context = "errno left by the handler";
    CHECK_EQ(install(sig, on_errno, 0, NULL), 0);
    errno = 0;
    CHECK_EQ(raise(sig), 0);
    CHECK_EQ(errno, 12345);
    errno = 0;
    CHECK_EQ(kill(pid, sig), 0);
    CHECK_EQ(errno, 12345);
    errno = 0;
    CHECK_EQ(pthread_kill(pthread_self(), sig), 0);
    CHECK_EQ(errno, 12345);
    CHECK_EQ(install(sig, on_errno_info, SA_SIGINFO | SA_RESTART, NULL), 0);
    errno = 0;
    CHECK_EQ(raise(sig), 0);
    CHECK_EQ(errno, 23456);
    errno = 0;
    CHECK_EQ(sigqueue(pid, sig, (union sigval){ .sival_int = 1 }), 0);
    CHECK_EQ(errno, 23456);

    check_context = "sigsuspend";
    forget_recs();
    CHECK_EQ(install(sig, on_info, SA_SIGINFO, NULL), 0);
    sigset_t self = set_of(sig, 0);
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, &self, NULL), 0);
    sigset_t blocked = current_mask();
    CHECK_EQ(raise(sig), 0);
    CHECK_EQ(n_recs(), 0); // pending
    CHECK_ERRNO(sigsuspend(&none), -1, EINTR);
    CHECK_EQ(n_recs(), 1);
    CHECK_INFO(&recs[0], sig, SI_TKILL, pid);
    // The frame saved the mask from before sigsuspend.
    CHECK_MASK(&recs[0].uc_mask, &blocked);
    CHECK_MASK(&recs[0].mask, &self);
    after = current_mask();
    CHECK_MASK(&after, &blocked);
    CHECK_EQ(pthread_sigmask(SIG_UNBLOCK, &self, NULL), 0);

    check_context = "sigwaitinfo takes a handled signal";
    forget_recs();
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, &self, NULL), 0);
    CHECK_EQ(sigqueue(pid, sig, (union sigval){ .sival_int = 77 }), 0);
    {
        siginfo_t si;
        CHECK_EQ(sigwaitinfo(&self, &si), sig);
        CHECK_EQ(si.si_code, SI_QUEUE);
        CHECK_EQ(si.si_value.sival_int, 77);
    }
    CHECK_EQ(pthread_sigmask(SIG_UNBLOCK, &self, NULL), 0);
    CHECK_EQ(n_recs(), 0);

    CHECK_EQ(pthread_sigmask(SIG_UNBLOCK, &winch, NULL), 0);
    reset(sig);
}

/* SA_RESETHAND: the handler once, then SIG_DFL (flags and mask stay). */

static void resethand(void)
{
    // SIGWINCH and SIGURG are ignored by default: a second one is harmless.
    const int sig = SIGWINCH;
    sigset_t usr2 = set_of(SIGUSR2, 0);

    check_context = "SA_RESETHAND";
    forget_recs();
    CHECK_EQ(install(sig, on_plain, SA_RESETHAND, &usr2), 0);
    CHECK_EQ(raise(sig), 0);
    CHECK_EQ(raise(sig), 0);
    CHECK_EQ(n_recs(), 1);
    CHECK_EQ(recs[0].sig, sig);
    {
        // Not deferred: the signal is blocked in the handler.
        sigset_t want = set_of(sig, SIGUSR2, 0);
        CHECK_MASK(&recs[0].mask, &want);
    }
    CHECK_ACTION(sig, SIG_DFL, F(SA_RESETHAND), &usr2);

    check_context = "SA_RESETHAND | SA_SIGINFO";
    forget_recs();
    CHECK_EQ(install(sig, on_info, SA_SIGINFO | SA_RESETHAND, NULL), 0);
    CHECK_EQ(kill(getpid(), sig), 0);
    CHECK_EQ(raise(sig), 0);
    CHECK_EQ(n_recs(), 1);
    CHECK_INFO(&recs[0], sig, SI_USER, getpid());
    // Linux keeps SA_SIGINFO (POSIX would clear it).
    CHECK_ACTION(sig, SIG_DFL, F(SA_SIGINFO | SA_RESETHAND), NULL);

    check_context = "SA_RESETHAND | SA_NODEFER";
    forget_recs();
    CHECK_EQ(install(SIGURG, on_info2, SA_SIGINFO | SA_RESETHAND | SA_NODEFER, &usr2), 0);
    CHECK_EQ(raise(SIGURG), 0);
    CHECK_EQ(raise(SIGURG), 0);
    CHECK_EQ(n_recs(), 1);
    CHECK_MASK(&recs[0].mask, &usr2);
    CHECK_ACTION(SIGURG, SIG_DFL, F(SA_SIGINFO | SA_RESETHAND | SA_NODEFER), &usr2);

    check_context = "sysv_signal is one-shot";
    forget_recs();
    CHECK_EQ(sysv_signal(sig, on_plain2), SIG_DFL);
    CHECK_EQ(raise(sig), 0);
    CHECK_EQ(raise(sig), 0);
    CHECK_EQ(n_recs(), 1);
    CHECK_EQ(recs[0].which, 2);
    CHECK_MASK(&recs[0].mask, NULL);
    CHECK_ACTION(sig, SIG_DFL, F(SA_RESETHAND | SA_NODEFER | SA_INTERRUPT_), NULL);
    // The old action of the next call: SIG_DFL, the flags kept.
    {
        struct sigaction a = action(on_plain, 0, NULL), o;
        CHECK_EQ(sigaction(sig, &a, &o), 0);
        CHECK_SA(&o, SIG_DFL, F(SA_RESETHAND | SA_NODEFER | SA_INTERRUPT_), NULL);
    }
    reset(sig);
    reset(SIGURG);
}

/* Queued realtime signals. */

static void check_order_(const char *file, int line, const int *want_sig,
                         const int *want_val, int n)
{
    if (n_recs() != n)
        check_fail(file, line, "handler calls", n_recs(), n);
    for (int i = 0; i < n && i < n_recs(); i++) {
        char expr[80];
        if (recs[i].sig != want_sig[i]) {
            snprintf(expr, sizeof expr, "call %d: signal", i);
            check_fail(file, line, expr, recs[i].sig, want_sig[i]);
        }
        if (!recs[i].info || recs[i].si.si_value.sival_int != want_val[i]) {
            snprintf(expr, sizeof expr, "call %d: si_value", i);
            check_fail(file, line, expr, recs[i].si.si_value.sival_int, want_val[i]);
        }
        check_info_(file, line, &recs[i], want_sig[i], SI_QUEUE, getpid());
    }
}
#define CHECK_ORDER(sigs, vals, n) check_order_(__FILE__, __LINE__, sigs, vals, n)

static void queue_five_and_one(int a, int b)
{
    for (int i = 1; i <= 5; i++)
        CHECK_EQ(sigqueue(getpid(), a, (union sigval){ .sival_int = i * 7 }), 0);
    CHECK_EQ(sigqueue(getpid(), b, (union sigval){ .sival_int = 100 }), 0);
}

static void realtime(void)
{
    const int a = SIGRTMIN + 1, b = SIGRTMIN + 2;
    sigset_t both = set_of(a, b, 0), only_a = set_of(a, 0), only_b = set_of(b, 0);
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, &both, NULL), 0);

    // Lowest signal first, but each delivery whose signal the previous
    // handler does not block stacks on top of it: b's handler runs first,
    // inside a's first call; then a's five in order.
    check_context = "queued realtime signals";
    forget_recs();
    CHECK_EQ(install(a, on_info, SA_SIGINFO, NULL), 0);
    CHECK_EQ(install(b, on_info2, SA_SIGINFO | SA_RESTART, NULL), 0);
    queue_five_and_one(a, b);
    CHECK_EQ(n_recs(), 0);
    CHECK_EQ(pthread_sigmask(SIG_UNBLOCK, &both, NULL), 0);
    {
        const int sigs[] = { b, a, a, a, a, a }, vals[] = { 100, 7, 14, 21, 28, 35 };
        CHECK_ORDER(sigs, vals, 6);
        for (int i = 1; i < 6; i++)
            CHECK_MASK(&recs[i].mask, &only_a);
    }

    // a's handler blocking b: a's five, then b.
    check_context = "queued realtime signals, sa_mask";
    forget_recs();
    CHECK_EQ(install(a, on_info, SA_SIGINFO, &only_b), 0);
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, &both, NULL), 0);
    queue_five_and_one(a, b);
    CHECK_EQ(pthread_sigmask(SIG_UNBLOCK, &both, NULL), 0);
    {
        const int sigs[] = { a, a, a, a, a, b }, vals[] = { 7, 14, 21, 28, 35, 100 };
        CHECK_ORDER(sigs, vals, 6);
        for (int i = 0; i < 5; i++)
            CHECK_MASK(&recs[i].mask, &both);
        CHECK_MASK(&recs[5].mask, &only_b);
    }

    // SA_NODEFER: every delivery stacks on the previous one, so the handler
    // calls begin in reverse order.
    check_context = "queued realtime signals, SA_NODEFER";
    forget_recs();
    CHECK_EQ(install(a, on_info, SA_SIGINFO | SA_NODEFER, NULL), 0);
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, &both, NULL), 0);
    queue_five_and_one(a, b);
    CHECK_EQ(pthread_sigmask(SIG_UNBLOCK, &only_a, NULL), 0);
    {
        const int sigs[] = { a, a, a, a, a }, vals[] = { 35, 28, 21, 14, 7 };
        CHECK_ORDER(sigs, vals, 5);
        for (int i = 0; i < 5; i++)
            CHECK_MASK(&recs[i].mask, &only_b);
    }
    forget_recs();
    CHECK_EQ(pthread_sigmask(SIG_UNBLOCK, &only_b, NULL), 0);
    {
        const int sigs[] = { b }, vals[] = { 100 };
        CHECK_ORDER(sigs, vals, 1);
    }
    reset(a);
    reset(b);
}

/* SA_ONSTACK. */

static char altstack_mem[256 * 1024] __attribute__((aligned(64)));

static bool on_altstack(uintptr_t p)
{
    return p >= (uintptr_t)altstack_mem && p < (uintptr_t)altstack_mem + sizeof altstack_mem;
}

static void onstack(void)
{
    check_context = "SA_ONSTACK";
    const int sig = SIGUSR2;
    stack_t ss = { .ss_sp = altstack_mem, .ss_size = sizeof altstack_mem, .ss_flags = 0 };
    CHECK_EQ(sigaltstack(&ss, NULL), 0);

    forget_recs();
    CHECK_EQ(install(sig, on_info, SA_SIGINFO | SA_ONSTACK, NULL), 0);
    CHECK_EQ(raise(sig), 0);
    CHECK_EQ(n_recs(), 1);
    CHECK(on_altstack(recs[0].sp));
    CHECK_EQ(recs[0].ss_flags, SS_ONSTACK);
    CHECK(recs[0].uc_ss_sp == altstack_mem);
    CHECK_INFO(&recs[0], sig, SI_TKILL, getpid());

    forget_recs();
    CHECK_EQ(install(sig, on_plain, SA_ONSTACK | SA_RESTART, NULL), 0);
    CHECK_EQ(raise(sig), 0);
    CHECK_EQ(n_recs(), 1);
    CHECK(on_altstack(recs[0].sp));
    CHECK_EQ(recs[0].ss_flags, SS_ONSTACK);

    // Without SA_ONSTACK: the thread's own stack.
    forget_recs();
    CHECK_EQ(install(sig, on_info2, SA_SIGINFO, NULL), 0);
    CHECK_EQ(raise(sig), 0);
    CHECK_EQ(n_recs(), 1);
    CHECK(!on_altstack(recs[0].sp));
    CHECK_EQ(recs[0].ss_flags, 0);
    CHECK(recs[0].uc_ss_sp == altstack_mem);

    ss = (stack_t){ .ss_flags = SS_DISABLE };
    CHECK_EQ(sigaltstack(&ss, NULL), 0);
    reset(sig);
}

/* Another thread: pthread_kill, and a read() it interrupts. */

struct reader {
    int fd;
    atomic_int tid;
    ssize_t result;
    int err;
    char byte;
};

static void *reader_main(void *arg)
{
    struct reader *rd = arg;
    atomic_store(&rd->tid, gettid());
    errno = 0;
    rd->result = read(rd->fd, &rd->byte, 1);
    rd->err = errno;
    return NULL;
}

// A thread blocks in read() on an empty pipe; `sig` is sent to it; once the
// handler has run, a byte is written. Returns read's result (1: restarted;
// -1 with *err EINTR: interrupted). The handler's record is recs[0].
static ssize_t interrupted_read(int sig, int *err, pid_t *tid)
{
    int p[2];
    if (pipe(p) != 0) {
        perror("pipe");
        exit(2);
    }
    struct reader rd = { .fd = p[0], .result = -2 };
    forget_recs();
    pthread_t t = start_thread(reader_main, &rd);
    *tid = wait_tid(&rd.tid);
    CHECK(wait_blocked(*tid));
    CHECK_EQ(pthread_kill(t, sig), 0);
    CHECK(WAIT_UNTIL(n_recs() > 0, 10000));
    CHECK_EQ(write(p[1], "x", 1), 1);
    join_thread(t);
    close(p[0]);
    close(p[1]);
    *err = rd.err;
    CHECK_EQ(n_recs(), 1);
    CHECK_EQ(recs[0].tid, *tid);
    CHECK_EQ(recs[0].sig, sig);
    return rd.result;
}

static void restart(int sig)
{
    int err;
    pid_t tid;

    check_context = "SA_RESTART: read() goes on";
    CHECK_EQ(install(sig, on_plain, SA_RESTART, NULL), 0);
    CHECK_EQ(interrupted_read(sig, &err, &tid), 1);

    check_context = "SA_RESTART | SA_SIGINFO: read() goes on";
    CHECK_EQ(install(sig, on_info, SA_SIGINFO | SA_RESTART, NULL), 0);
    CHECK_EQ(interrupted_read(sig, &err, &tid), 1);
    CHECK_INFO(&recs[0], sig, SI_TKILL, getpid());

    check_context = "no SA_RESTART: read() fails with EINTR";
    CHECK_EQ(install(sig, on_plain2, 0, NULL), 0);
    CHECK_EQ(interrupted_read(sig, &err, &tid), -1);
    CHECK_EQ(err, EINTR);
    CHECK_EQ(install(sig, on_info2, SA_SIGINFO, NULL), 0);
    CHECK_EQ(interrupted_read(sig, &err, &tid), -1);
    CHECK_EQ(err, EINTR);
    CHECK_INFO(&recs[0], sig, SI_TKILL, getpid());

    check_context = "signal(): restarts";
    signal(sig, on_plain);
    CHECK_EQ(interrupted_read(sig, &err, &tid), 1);
    check_context = "signal() after siginterrupt(sig, 1): EINTR";
    CHECK_EQ(siginterrupt(sig, 1), 0);
    CHECK_EQ(interrupted_read(sig, &err, &tid), -1);
    CHECK_EQ(err, EINTR);
    signal(sig, on_plain2);
    CHECK_EQ(interrupted_read(sig, &err, &tid), -1);
    CHECK_EQ(err, EINTR);
    check_context = "siginterrupt(sig, 0): restarts";
    CHECK_EQ(siginterrupt(sig, 0), 0);
    CHECK_EQ(interrupted_read(sig, &err, &tid), 1);

    check_context = "sigset(): EINTR";
    sigset(sig, on_plain);
    CHECK_EQ(interrupted_read(sig, &err, &tid), -1);
    CHECK_EQ(err, EINTR);

    check_context = "sysv_signal(): EINTR";
    sysv_signal(sig, on_plain2);
    CHECK_EQ(interrupted_read(sig, &err, &tid), -1);
    CHECK_EQ(err, EINTR);
    CHECK_ACTION(sig, SIG_DFL, F(SA_RESETHAND | SA_NODEFER | SA_INTERRUPT_), NULL);
    reset(sig);
}

/* SIGCHLD's siginfo. */

static void sigchld(void)
{
    check_context = "SIGCHLD";
    sigset_t chld = set_of(SIGCHLD, 0);
    forget_recs();
    CHECK_EQ(install(SIGCHLD, on_info, SA_SIGINFO | SA_NOCLDSTOP | SA_RESTART, NULL), 0);
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, &chld, NULL), 0);
    pid_t child = fork();
    if (child == 0)
        _exit(7);
    CHECK(child > 0);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    CHECK_EQ(waitid(P_PID, (id_t)child, &si, WEXITED | WNOWAIT), 0);
    CHECK_EQ(n_recs(), 0);
    CHECK_EQ(pthread_sigmask(SIG_UNBLOCK, &chld, NULL), 0);
    CHECK_EQ(n_recs(), 1);
    CHECK_INFO(&recs[0], SIGCHLD, CLD_EXITED, child);
    CHECK_EQ(recs[0].si.si_status, 7);
    int status;
    CHECK_EQ(waitpid(child, &status, 0), child);
    reset(SIGCHLD);
}

/* Handlers that change dispositions, the ucontext, or leave by siglongjmp. */

static atomic_int self_calls;

// The SysV idiom: a one-shot handler that re-arms itself.
static void on_rearm(int sig)
{
    int saved = errno;
    atomic_fetch_add(&self_calls, 1);
    sysv_signal(sig, on_rearm);
    errno = saved;
}

// Replaces itself by on_plain2, checking what it replaces.
static void on_replace(int sig, siginfo_t *si, void *uc)
{
    record(7, sig, si, uc);
    struct sigaction a = action(on_plain2, SA_RESTART, NULL), o;
    CHECK_EQ(sigaction(sig, &a, &o), 0);
    CHECK_SA(&o, on_replace, F(SA_SIGINFO), NULL);
}

// Blocks SIGWINCH for the code it returns to.
static void on_edit_uc(int sig, siginfo_t *si, void *ucv)
{
    record(8, sig, si, ucv);
    ucontext_t *uc = ucv;
    sigaddset(&uc->uc_sigmask, SIGWINCH);
}

static sigjmp_buf jump_out;
static void on_jump(int sig)
{
    record(9, sig, NULL, NULL);
    siglongjmp(jump_out, sig);
}

static void changing_handlers(void)
{
    const int sig = SIGUSR1;

    check_context = "a sysv_signal handler that re-arms itself";
    atomic_store(&self_calls, 0);
    CHECK_EQ(sysv_signal(SIGWINCH, on_rearm), SIG_DFL);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(raise(SIGWINCH), 0);
    CHECK_EQ(atomic_load(&self_calls), 3);
    CHECK_ACTION(SIGWINCH, on_rearm, F(SA_RESETHAND | SA_NODEFER | SA_INTERRUPT_), NULL);
    reset(SIGWINCH);

    check_context = "a handler that replaces itself";
    forget_recs();
    CHECK_EQ(install(sig, on_replace, SA_SIGINFO, NULL), 0);
    CHECK_EQ(raise(sig), 0);
    CHECK_EQ(raise(sig), 0);
    CHECK_EQ(n_recs(), 2);
    CHECK_EQ(recs[0].which, 7);
    CHECK_INFO(&recs[0], sig, SI_TKILL, getpid());
    CHECK_EQ(recs[1].which, 2);
    CHECK_EQ(recs[1].sig, sig);
    CHECK_ACTION(sig, on_plain2, F(SA_RESTART), NULL);

    check_context = "a handler that edits uc_sigmask";
    forget_recs();
    sigset_t before = current_mask();
    CHECK_EQ(sigismember(&before, SIGWINCH), 0);
    CHECK_EQ(install(sig, on_edit_uc, SA_SIGINFO, NULL), 0);
    CHECK_EQ(raise(sig), 0);
    CHECK_EQ(n_recs(), 1);
    sigset_t now = current_mask(), want = before;
    sigaddset(&want, SIGWINCH);
    CHECK_MASK(&now, &want);
    CHECK_EQ(pthread_sigmask(SIG_SETMASK, &before, NULL), 0);

    check_context = "siglongjmp out of a handler";
    CHECK_EQ(install(sig, on_jump, 0, NULL), 0);
    for (int round = 0; round < 2; round++) { // the handler runs again after
        forget_recs();
        volatile int jumped = 0;
        if (sigsetjmp(jump_out, 1) == 0) {
            raise(sig);
            CHECK(!"raise returned after the handler's siglongjmp");
        } else {
            jumped = 1;
        }
        CHECK_EQ(jumped, 1);
        CHECK_EQ(n_recs(), 1);
        CHECK_EQ(recs[0].which, 9);
        now = current_mask();
        CHECK_MASK(&now, &before); // sigsetjmp's mask: sig unblocked again
    }
    reset(sig);
}

/* Handlers installed with the raw system call, around glibc's sigaction. */

static long raw_sigaction(int sig, const struct ksigaction *act, struct ksigaction *old)
{
    return syscall(SYS_rt_sigaction, sig, act, old, 8);
}

static void raw_installs(void)
{
    const int sig = SIGUSR2;
    check_context = "handlers installed by the raw system call";
#if defined(__x86_64__)
    struct ksigaction k = { .handler = (void *)on_info2,
                            .flags = SA_SIGINFO | SA_RESTART | SA_RESTORER_,
                            .restorer = (void *)glibc_restorer,
                            .mask = 1ULL << (SIGWINCH - 1) };
    sigset_t winch = set_of(SIGWINCH, 0);
    CHECK_EQ(raw_sigaction(sig, &k, NULL), 0);
    CHECK_ACTION(sig, on_info2, F(SA_SIGINFO | SA_RESTART), &winch);
    forget_recs();
    CHECK_EQ(raise(sig), 0);
    CHECK_EQ(n_recs(), 1);
    CHECK_EQ(recs[0].which, 4);
    CHECK_INFO(&recs[0], sig, SI_TKILL, getpid());
    CHECK_EQ((void *)signal(sig, on_plain), (void *)on_info2);

    // Over a handler glibc's sigaction installed: the raw one is what
    // sigaction reports and what runs.
    CHECK_EQ(install(sig, on_info, SA_SIGINFO, NULL), 0);
    k.handler = (void *)on_plain2;
    k.flags = SA_NODEFER | SA_RESTORER_;
    k.mask = 0;
    CHECK_EQ(raw_sigaction(sig, &k, NULL), 0);
    CHECK_ACTION(sig, on_plain2, F(SA_NODEFER), NULL);
    forget_recs();
    CHECK_EQ(raise(sig), 0);
    CHECK_EQ(n_recs(), 1);
    CHECK_EQ(recs[0].which, 2);
    {
        struct sigaction a = action(on_plain, 0, NULL), o;
        CHECK_EQ(sigaction(sig, &a, &o), 0);
        CHECK_SA(&o, on_plain2, F(SA_NODEFER), NULL);
    }
    // The raw SIG_IGN and SIG_DFL, over a glibc-installed handler.
    k = (struct ksigaction){ .handler = (void *)SIG_IGN };
    CHECK_EQ(raw_sigaction(sig, &k, NULL), 0);
    CHECK_ACTION(sig, SIG_IGN, 0, NULL);
    CHECK_EQ(raise(sig), 0); // ignored
    CHECK_EQ(install(sig, on_plain, SA_RESTART, NULL), 0);
    k = (struct ksigaction){ .handler = (void *)SIG_DFL };
    CHECK_EQ(raw_sigaction(sig, &k, NULL), 0);
    CHECK_ACTION(sig, SIG_DFL, 0, NULL);
    CHECK_EQ((void *)sigset(sig, SIG_DFL), (void *)SIG_DFL);

    // An action saved with the raw call (whatever the kernel holds) and put
    // back through sigaction after a change: the handler runs again.
    check_context = "an action saved raw, restored through sigaction";
    CHECK_EQ(install(sig, on_plain, SA_RESTART, NULL), 0);
    struct ksigaction saved;
    CHECK_EQ(raw_sigaction(sig, NULL, &saved), 0);
    CHECK_EQ(install(sig, SIG_IGN, 0, NULL), 0);
    {
        struct sigaction back;
        memset(&back, 0, sizeof back);
        back.sa_handler = (void (*)(int))saved.handler;
        back.sa_flags = (int)(saved.flags & ~(unsigned long)SA_RESTORER_);
        sigemptyset(&back.sa_mask);
        memcpy(&back.sa_mask, &saved.mask, sizeof saved.mask);
        CHECK_EQ(sigaction(sig, &back, NULL), 0);
    }
    CHECK_ACTION(sig, on_plain, F(SA_RESTART), NULL);
    forget_recs();
    CHECK_EQ(raise(sig), 0);
    CHECK_EQ(n_recs(), 1);
    CHECK_EQ(recs[0].which, 1);
#endif
    reset(sig);
}

/* system() and posix_spawn(). */

static void spawning(const char *self)
{
    check_context = "system() keeps the SIGQUIT handler";
    sigset_t usr2 = set_of(SIGUSR2, 0);
    CHECK_EQ(install(SIGQUIT, on_info, SA_SIGINFO | SA_RESTART, &usr2), 0);
    int st = system("exit 3");
    CHECK(WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 3);
    CHECK_ACTION(SIGQUIT, on_info, F(SA_SIGINFO | SA_RESTART), &usr2);
    forget_recs();
    CHECK_EQ(raise(SIGQUIT), 0);
    CHECK_EQ(n_recs(), 1);
    CHECK_INFO(&recs[0], SIGQUIT, SI_TKILL, getpid());
    reset(SIGQUIT);

    check_context = "posix_spawn of this program with handlers installed";
    CHECK_EQ(install(SIGUSR1, on_info, SA_SIGINFO | SA_RESTART, &usr2), 0);
    CHECK_EQ(install(SIGRTMIN + 1, on_plain, SA_NODEFER, NULL), 0);
    CHECK_EQ(install(SIGUSR2, SIG_IGN, SA_RESTART, NULL), 0);
    posix_spawnattr_t attr;
    CHECK_EQ(posix_spawnattr_init(&attr), 0);
    sigset_t winch = set_of(SIGWINCH, 0);
    CHECK_EQ(posix_spawnattr_setsigmask(&attr, &winch), 0);
    CHECK_EQ(posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK), 0);
    char *argv[] = { (char *)self, "--after-exec", NULL };
    pid_t child = -1;
    CHECK_EQ(posix_spawn(&child, self, NULL, &attr, argv, environ), 0);
    CHECK_EQ(posix_spawnattr_destroy(&attr), 0);
    int status = -1;
    CHECK_EQ(waitpid(child, &status, 0), child);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK_ACTION(SIGUSR1, on_info, F(SA_SIGINFO | SA_RESTART), &usr2);
    reset(SIGUSR1);
    reset(SIGUSR2);
    reset(SIGRTMIN + 1);
}

/* fork and exec. */

static int after_exec(void)
{
    probe();
    check_context = "after exec";
    // Handlers reset to SIG_DFL, ignored signals stay ignored; the flags
    // and masks are gone either way. The blocked mask stays.
    CHECK_ACTION(SIGUSR1, SIG_DFL, 0, NULL);
    CHECK_ACTION(SIGRTMIN + 1, SIG_DFL, 0, NULL);
    CHECK_ACTION(SIGUSR2, SIG_IGN, 0, NULL);
    sigset_t now = current_mask();
    CHECK_EQ(sigismember(&now, SIGWINCH), 1);
    return check_finish();
}

static void fork_exec(const char *self)
{
    check_context = "fork";
    sigset_t usr2 = set_of(SIGUSR2, 0);
    CHECK_EQ(install(SIGUSR1, on_info, SA_SIGINFO | SA_RESTART, &usr2), 0);
    CHECK_EQ(install(SIGRTMIN + 1, on_plain, SA_NODEFER, NULL), 0);
    CHECK_EQ(install(SIGUSR2, SIG_IGN, SA_RESTART, NULL), 0);
    pid_t child = fork();
    if (child == 0) {
        atomic_store(&check_failures, 0); // the child's own verdict
        check_context = "in the forked child";
        CHECK_ACTION(SIGUSR1, on_info, F(SA_SIGINFO | SA_RESTART), &usr2);
        CHECK_ACTION(SIGRTMIN + 1, on_plain, F(SA_NODEFER), NULL);
        CHECK_ACTION(SIGUSR2, SIG_IGN, F(SA_RESTART), NULL);
        forget_recs();
        CHECK_EQ(raise(SIGUSR1), 0);
        CHECK_EQ(n_recs(), 1);
        CHECK_INFO(&recs[0], SIGUSR1, SI_TKILL, getpid());
        CHECK_EQ(recs[0].tid, getpid());
        forget_recs();
        CHECK_EQ(sigqueue(getpid(), SIGRTMIN + 1, (union sigval){ .sival_int = 5 }), 0);
        CHECK_EQ(n_recs(), 1);
        CHECK_EQ(recs[0].which, 1);
        CHECK_EQ(recs[0].sig, SIGRTMIN + 1);
        // Replacing works there too.
        CHECK_EQ((void *)signal(SIGUSR1, on_plain2), (void *)on_info);
        _exit(check_finish());
    }
    CHECK(child > 0);
    int status = -1;
    CHECK_EQ(waitpid(child, &status, 0), child);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    // The parent's are unchanged.
    CHECK_ACTION(SIGUSR1, on_info, F(SA_SIGINFO | SA_RESTART), &usr2);

    check_context = "exec /bin/true with handlers installed";
    child = fork();
    if (child == 0) {
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    CHECK(child > 0);
    status = -1;
    CHECK_EQ(waitpid(child, &status, 0), child);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);

    check_context = "exec of this program with handlers installed";
    child = fork();
    if (child == 0) {
        sigset_t winch = set_of(SIGWINCH, 0);
        pthread_sigmask(SIG_BLOCK, &winch, NULL);
        execl(self, self, "--after-exec", (char *)NULL);
        _exit(127);
    }
    CHECK(child > 0);
    status = -1;
    CHECK_EQ(waitpid(child, &status, 0), child);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);

    reset(SIGUSR1);
    reset(SIGUSR2);
    reset(SIGRTMIN + 1);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--after-exec") == 0)
        return after_exec();
    probe();
    readback();
    errors();
    // SIGINT and SIGTERM too: the profiler hooks them when they are at
    // SIG_DFL, and must not show.
    const int family_sigs[] = { SIGUSR1, SIGINT, SIGTERM };
    for (size_t i = 0; i < sizeof family_sigs / sizeof family_sigs[0]; i++)
        family(family_sigs[i]);
    delivery();
    resethand();
    realtime();
    onstack();
    for (size_t i = 0; i < sizeof family_sigs / sizeof family_sigs[0]; i++)
        restart(family_sigs[i]);
    sigchld();
    changing_handlers();
    raw_installs();
    fork_exec("/proc/self/exe");
    spawning("/proc/self/exe");
    return check_finish();
}
