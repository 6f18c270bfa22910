// The profiler's settings, guard, stacks and lifecycle hooks (profile.h).
#include "profile.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "clock.h"
#include "dump.h"
#include "layout.h"
#include "log.h"
#include "mutex_state.h"
#include "prof.h"
#include "settings.h"
#include "stack.h"

#define UNW_LOCAL_ONLY
#include <libunwind.h>

struct plk_profile_settings plk_profile_settings = {
    .enabled = true,
    .format = PLK_FORMAT_TEXT,
    .top = 10,
    .stack_depth = 16,
    .table_size = 4096,
};

_Atomic bool plk_profiling_on;
__thread bool plk_in_profiler __attribute__((tls_model("initial-exec")));

/* Settings. */

static void parse_int_setting(const char *name, long min, long max, long *out)
{
    const char *v = secure_getenv(name);
    if (!v)
        return;
    int64_t n;
    if (plk_parse_decimal(v, max, &n) && n >= min) {
        *out = n;
        return;
    }
    char range[64], *p = range;
    // "min..max" without stdio.
    long bounds[2] = { min, max };
    for (int k = 0; k < 2; k++) {
        char digits[24];
        int d = 0;
        long b = bounds[k];
        do {
            digits[d++] = (char)('0' + b % 10);
            b /= 10;
        } while (b);
        while (d)
            *p++ = digits[--d];
        if (k == 0) {
            *p++ = '.';
            *p++ = '.';
        }
    }
    *p = 0;
    plk_warn(name, "=", v, ": not a number in ", range, "; using the default", NULL);
}

static const struct {
    const char *name;
    int number;
} signal_names[] = {
    { "HUP", SIGHUP },   { "INT", SIGINT },       { "QUIT", SIGQUIT }, { "USR1", SIGUSR1 },
    { "USR2", SIGUSR2 }, { "PIPE", SIGPIPE },     { "ALRM", SIGALRM }, { "TERM", SIGTERM },
    { "URG", SIGURG },   { "XCPU", SIGXCPU },     { "XFSZ", SIGXFSZ }, { "VTALRM", SIGVTALRM },
    { "PROF", SIGPROF }, { "WINCH", SIGWINCH },   { "IO", SIGIO },     { "PWR", SIGPWR },
    { "SYS", SIGSYS },   { "TTIN", SIGTTIN },     { "TTOU", SIGTTOU }, { "TSTP", SIGTSTP },
    { "CONT", SIGCONT }, { "CHLD", SIGCHLD },
};

// "USR2", "SIGUSR2", "12", "RTMIN+3" or "SIGRTMIN+3"; 0 when invalid.
static int parse_signal(const char *v)
{
    if (strncmp(v, "SIG", 3) == 0)
        v += 3;
    int64_t n;
    if (plk_parse_decimal(v, 1000, &n))
        return n >= 1 && n <= SIGRTMAX && n != SIGKILL && n != SIGSTOP ? (int)n : 0;
    if (strncmp(v, "RTMIN", 5) == 0) {
        if (v[5] == 0)
            return SIGRTMIN;
        if (v[5] == '+' && plk_parse_decimal(v + 6, 1000, &n) && SIGRTMIN + n <= SIGRTMAX)
            return SIGRTMIN + (int)n;
        return 0;
    }
    for (size_t i = 0; i < sizeof signal_names / sizeof signal_names[0]; i++)
        if (strcmp(v, signal_names[i].name) == 0)
            return signal_names[i].number;
    return 0;
}

static void load_settings(void)
{
    struct plk_profile_settings *s = &plk_profile_settings;
    const char *v = secure_getenv("PARKLOCK_PROFILE");
    if (v) {
        if (strcmp(v, "0") == 0 || strcmp(v, "off") == 0 || strcmp(v, "no") == 0)
            s->enabled = false;
        else if (strcmp(v, "1") != 0 && strcmp(v, "on") != 0 && strcmp(v, "yes") != 0)
            plk_warn("PARKLOCK_PROFILE=", v, ": expected 0 or 1; profiling stays on", NULL);
    }
    v = secure_getenv("PARKLOCK_OUTPUT");
    if (v) {
        if (strcmp(v, "stderr") == 0)
            s->output[0] = 0;
        else if (!*v || strlen(v) >= sizeof s->output)
            plk_warn("PARKLOCK_OUTPUT=", v, ": empty or too long; writing to stderr", NULL);
        else
            strcpy(s->output, v);
    }
    v = secure_getenv("PARKLOCK_FORMAT");
    if (v) {
        if (strcmp(v, "text") == 0)
            s->format = PLK_FORMAT_TEXT;
        else if (strcmp(v, "json") == 0)
            s->format = PLK_FORMAT_JSON;
        else if (strcmp(v, "folded") == 0)
            s->format = PLK_FORMAT_FOLDED;
        else
            plk_warn("PARKLOCK_FORMAT=", v,
                     ": unknown format (expected text, json or folded); using text", NULL);
    }
    long n = s->top;
    parse_int_setting("PARKLOCK_TOP", 1, 1000000, &n);
    s->top = (int)n;
    n = s->stack_depth;
    parse_int_setting("PARKLOCK_STACK_DEPTH", 0, PLK_PROF_MAX_DEPTH, &n);
    s->stack_depth = (int)n;
    n = (long)s->table_size;
    parse_int_setting("PARKLOCK_TABLE_SIZE", 16, 1 << 24, &n);
    s->table_size = (size_t)n;
    v = secure_getenv("PARKLOCK_DUMP_SIGNAL");
    if (v && *v) {
        s->dump_signal = parse_signal(v);
        if (!s->dump_signal)
            plk_warn("PARKLOCK_DUMP_SIGNAL=", v,
                     ": not a catchable signal name or number; no dump signal", NULL);
    }
}

static int find_unwinder_data(struct dl_phdr_info *info, size_t size, void *arg);

/* Stacks: libparklock's own frames are left out. */

static uintptr_t own_start, own_end;

static int find_own_text(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    uintptr_t self = (uintptr_t)arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (self >= start && self < start + ph->p_memsz) {
            own_start = start;
            own_end = start + ph->p_memsz;
            return 1;
        }
    }
    return 0;
}

/* Unwinding and fork. libunwind locks a global cache mutex while it
 * unwinds; a fork while another thread holds it would leave it held forever
 * in the child, whose first unwind would then hang. So fork waits (in an
 * atfork prepare handler) until no unwind is in flight, and unwinds that
 * start meanwhile are skipped (no stack) rather than waited for: nothing is
 * held across the fork. (A _Fork, which runs no handlers, is not covered.) */
static _Atomic int unwinds_in_flight;
static _Atomic bool forking;

void plk_profile_fork_prepare(void)
{
    atomic_store(&forking, true);
    while (atomic_load(&unwinds_in_flight) != 0)
        sched_yield();
}

void plk_profile_fork_parent(void)
{
    atomic_store(&forking, false);
}

int plk_profile_stack(uintptr_t *frames, int max)
{
    int depth = plk_prof_stack_depth();
    if (max > depth)
        max = depth;
    if (max <= 0)
        return 0;
    atomic_fetch_add(&unwinds_in_flight, 1);
    if (atomic_load(&forking)) {
        atomic_fetch_sub(&unwinds_in_flight, 1);
        return 0;
    }
    uintptr_t raw[PLK_PROF_MAX_DEPTH + 8];
    bool was = plk_in_profiler;
    plk_in_profiler = true;
    int saved_errno = errno; // libunwind's address checks may set it
    // libunwind checks addresses with read() on a pipe, a cancellation
    // point: without this, a profiled mutex unlock could act on a pending
    // cancellation (found by preload.cancel_points).
    int cancel_state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
    // A few extra frames for our own, which are dropped.
    int n = plk_stack_capture(raw, max + 8 < PLK_PROF_MAX_DEPTH ? max + 8 : PLK_PROF_MAX_DEPTH);
    pthread_setcancelstate(cancel_state, NULL);
    errno = saved_errno;
    plk_in_profiler = was;
    atomic_fetch_sub(&unwinds_in_flight, 1);
    int i = 0;
    while (i < n && raw[i] - 1 >= own_start && raw[i] - 1 < own_end)
        i++;
    int out = 0;
    for (; i < n && out < max; i++)
        frames[out++] = raw[i] - 1; // the call instruction, not the next one
    return out;
}

// libunwind is linked (a DT_NEEDED after libgcc_s, see CMakeLists.txt) so
// that it is loaded at start-up: its thread-local caches are then static TLS.
// Loaded later with dlopen, each thread's first unwind would allocate them
// with malloc -- a deadlock when that thread holds a lock malloc needs (an
// allocator built on pthread mutexes, such as jemalloc, contending on its
// own locks).
static void start_unwinder(void)
{
    // Per-thread caches: unwinding then takes no lock (the global cache
    // has a pthread mutex). The first backtrace sets up libunwind's own
    // state (a pthread key among others) now, not inside a lock path.
    plk_in_profiler = true;
    unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
    void *warm[4];
    unw_backtrace(warm, 4);
    plk_in_profiler = false;
    plk_stack_set_backtrace(unw_backtrace);
}

int64_t plk_profile_now(void)
{
    return plk_clock_now_ns();
}

/* Lifecycle. */

void plk_profile_init(void)
{
    load_settings();
    if (!plk_profile_settings.enabled)
        return;
    dl_iterate_phdr(find_own_text, (void *)(uintptr_t)plk_profile_init);
    dl_iterate_phdr(find_unwinder_data, NULL);
    if (plk_profile_settings.stack_depth > 0)
        start_unwinder();
    if (!plk_prof_init(plk_profile_settings.table_size, plk_profile_settings.stack_depth)) {
        plk_warn("PARKLOCK_TABLE_SIZE: cannot map the profile tables; profiling off", NULL);
        return;
    }
    plk_dump_init();
    atomic_store_explicit(&plk_profiling_on, true, memory_order_release);
}

void plk_profile_fork_child(void)
{
    atomic_store(&unwinds_in_flight, 0); // the child's only thread is here
    atomic_store(&forking, false);
    if (!atomic_load_explicit(&plk_profiling_on, memory_order_relaxed))
        return;
    plk_prof_reset();
    plk_dump_fork_child();
}

const char *plk_profile_type_name(enum plk_prof_type type)
{
    switch (type) {
    case PLK_PROF_NORMAL:
        return "normal";
    case PLK_PROF_RECURSIVE:
        return "recursive";
    case PLK_PROF_ERRORCHECK:
        return "errorcheck";
    case PLK_PROF_ADAPTIVE:
        return "adaptive";
    case PLK_PROF_GLIBC:
        return "glibc";
    case PLK_PROF_CONDVAR:
        return "cond";
    }
    return "unknown";
}

const char *plk_profile_engine_name(void)
{
    return use_glibc() ? "glibc" : "parkinglot";
}

/* Entries for mutexes and condition variables. */

static enum plk_prof_type mutex_type(int kind)
{
    if (!kind_is_parkinglot(kind))
        return PLK_PROF_GLIBC;
    switch (kind_type(kind)) {
    case TYPE_RECURSIVE:
        return PLK_PROF_RECURSIVE;
    case TYPE_ERRORCHECK:
        return PLK_PROF_ERRORCHECK;
    case TYPE_ADAPTIVE:
        return PLK_PROF_ADAPTIVE;
    default:
        return PLK_PROF_NORMAL;
    }
}

struct plk_prof_entry *plk_profile_mutex(pthread_mutex_t *m)
{
    return plk_prof_lookup(m, PLK_PROF_MUTEX, mutex_type(mutex_kind(m)));
}

void plk_profile_mutex_init(pthread_mutex_t *m)
{
    plk_prof_retire(plk_prof_find(m, PLK_PROF_MUTEX));
}

void plk_profile_mutex_destroy(pthread_mutex_t *m)
{
    struct plk_prof_entry *e = plk_prof_find(m, PLK_PROF_MUTEX);
    if (!e)
        return;
    if (mutex_counts_acquisitions(mutex_kind(m)))
        plk_prof_note_acquired(e, *mutex_acquisitions(m));
    plk_prof_retire(e);
}

void plk_profile_cond_init(pthread_cond_t *c)
{
    plk_prof_retire(plk_prof_find(c, PLK_PROF_COND));
}

void plk_profile_cond_destroy(pthread_cond_t *c)
{
    plk_prof_retire(plk_prof_find(c, PLK_PROF_COND));
}

// Reads a live mutex's memory without faulting if it was unmapped meanwhile.
static bool read_mutex(const void *address, pthread_mutex_t *copy)
{
    struct iovec local = { copy, sizeof *copy };
    struct iovec remote = { (void *)address, sizeof *copy };
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)sizeof *copy;
}

void plk_profile_refresh_acquired(void)
{
    size_t slots = plk_prof_entry_slots();
    for (size_t i = 0; i < slots; i++) {
        struct plk_prof_entry *e = plk_prof_entry_at(i);
        uintptr_t a = atomic_load_explicit(&e->address, memory_order_acquire);
        if (!a || e->kind != PLK_PROF_MUTEX ||
            atomic_load_explicit(&e->state, memory_order_acquire) != PLK_PROF_LIVE)
            continue;
        pthread_mutex_t copy;
        // Only if it still looks like the mutex the entry was made for: a
        // freed and reused block is left with its last folded count.
        if (read_mutex((const void *)a, &copy) && mutex_counts_acquisitions(copy.__data.__kind) &&
            mutex_type(copy.__data.__kind) == e->type)
            plk_prof_note_acquired(e, *mutex_acquisitions(&copy));
    }
}

/* Slow-path hooks. */

// A parking-lot wait observed by the core (plk_mutex_wait): the stack is
// taken just before the thread first parks, outside every lock.
struct observed_wait {
    struct plk_mutex_wait w;
    int depth;
    uintptr_t frames[PLK_PROF_MAX_DEPTH];
};

static void capture_on_park(struct plk_mutex_wait *w)
{
    struct observed_wait *o = (struct observed_wait *)w;
    o->depth = plk_profile_stack(o->frames, PLK_PROF_MAX_DEPTH);
}

/* libunwind's own mutexes (its caches, pools and one-time set-up, all in
 * its data segments) are never profiled: unwinding on their slow paths
 * would need them again -- Debian's libunwind has no per-thread cache and
 * takes its global cache's mutex while unwinding. */
static uintptr_t unwinder_data_start, unwinder_data_end;

static int find_unwinder_data(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    (void)arg;
    if (!info->dlpi_name || !strstr(info->dlpi_name, "libunwind"))
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || (ph->p_flags & PF_X))
            continue;
        uintptr_t start = info->dlpi_addr + ph->p_vaddr, end = start + ph->p_memsz;
        if (!unwinder_data_start || start < unwinder_data_start)
            unwinder_data_start = start;
        if (end > unwinder_data_end)
            unwinder_data_end = end;
    }
    return 1;
}

static inline bool unwinder_owns(const void *m)
{
    return (uintptr_t)m >= unwinder_data_start && (uintptr_t)m < unwinder_data_end;
}

bool plk_profile_lock_word(pthread_mutex_t *m, const struct plk_deadline *deadline)
{
    if (unwinder_owns(m))
        return plk_mutex_lock_slow(mutex_word(m), deadline, NULL);
    struct plk_prof_entry *e = plk_profile_mutex(m);
    // A lock's first contention names it when no sleeping waiter does: its
    // stack is taken now, before the lock is held (never unwind holding it).
    uintptr_t site[PLK_PROF_MAX_DEPTH];
    int site_depth = 0;
    if (!atomic_load_explicit(&e->site, memory_order_relaxed) && e != plk_prof_other())
        site_depth = plk_profile_stack(site, PLK_PROF_MAX_DEPTH);
    struct observed_wait o = {
        .w = { .since_ns = plk_profile_now(), .on_park = capture_on_park },
    };
    bool acquired = plk_mutex_lock_slow(mutex_word(m), deadline, &o.w);
    uint64_t waited = (uint64_t)(plk_profile_now() - o.w.since_ns);
    plk_prof_record_contention(e, (int64_t)waited, o.w.parked, !acquired);
    if (o.depth > 0)
        plk_prof_record_stack(e, PLK_PROF_WAITER, o.frames, o.depth, waited);
    else if (site_depth > 0)
        plk_prof_record_stack(e, PLK_PROF_SITE, site, site_depth, waited);
    return acquired;
}

void plk_profile_timed_out_at_once(pthread_mutex_t *m)
{
    plk_prof_record_contention(plk_profile_mutex(m), 0, false, true);
}

void plk_profile_released_to_waiter(const pthread_mutex_t *m, int64_t waiter_since_ns)
{
    struct plk_prof_entry *e = plk_prof_find(m, PLK_PROF_MUTEX);
    if (!e || unwinder_owns(m))
        return;
    int64_t delay = plk_profile_now() - waiter_since_ns;
    uintptr_t frames[PLK_PROF_MAX_DEPTH];
    int n = plk_profile_stack(frames, PLK_PROF_MAX_DEPTH);
    plk_prof_record_stack(e, PLK_PROF_HOLDER, frames, n, delay > 0 ? (uint64_t)delay : 0);
}

void plk_profile_track_mutex(pthread_mutex_t *m)
{
    if (unwinder_owns(m))
        return;
    struct plk_prof_entry *e = plk_profile_mutex(m);
    uint32_t counter = *mutex_acquisitions(m);
    if (e != plk_prof_other() && !plk_prof_note_acquired(e, counter)) {
        // The counter went backwards: a new mutex at this address, the old
        // one freed without pthread_mutex_destroy (std::mutex never calls
        // it). Report them apart.
        plk_prof_retire(e);
        e = plk_profile_mutex(m);
        plk_prof_note_acquired(e, counter);
    }
}
// Waits whose end is seen but not their sleep (cond waits, glibc's mutex
// waits) record the waiter's stack after the fact, sampled by duration as
// Go's block profile does: every wait of SAMPLE_NS or more, a shorter one
// with probability wait / SAMPLE_NS, weighted SAMPLE_NS then, so that the
// weights still add up to the total wait on average. Unwinding on every
// short wait (a cond ping-pong waits about a microsecond) would double it.
#define SAMPLE_NS 100000

static __thread uint64_t sample_state __attribute__((tls_model("initial-exec")));

static bool sample_wait(uint64_t waited, uint64_t *weight)
{
    if (waited >= SAMPLE_NS) {
        *weight = waited;
        return true;
    }
    uint64_t x = sample_state;
    if (x == 0)
        x = (uint64_t)plk_profile_now() | 1;
    x ^= x << 13; // xorshift64
    x ^= x >> 7;
    x ^= x << 17;
    sample_state = x;
    *weight = SAMPLE_NS;
    return x % SAMPLE_NS < waited;
}

static void record_waiter_sampled(struct plk_prof_entry *e, uint64_t waited)
{
    uint64_t weight;
    if (!sample_wait(waited, &weight))
        return;
    uintptr_t frames[PLK_PROF_MAX_DEPTH];
    int n = plk_profile_stack(frames, PLK_PROF_MAX_DEPTH);
    plk_prof_record_stack(e, PLK_PROF_WAITER, frames, n, weight);
}

void plk_profile_glibc_wait_begin(struct plk_profile_wait *w, pthread_mutex_t *m)
{
    w->entry = unwinder_owns(m) ? NULL : plk_profile_mutex(m);
    w->since_ns = plk_profile_now();
}

// glibc's wait cannot be observed from inside: the stack is sampled after
// it, holding the mutex -- safe, since libunwind's own mutexes (the only
// ones it may need while unwinding) are never profiled.
void plk_profile_glibc_wait_end(struct plk_profile_wait *w, int result)
{
    if (!w->entry || (result != 0 && result != ETIMEDOUT && result != EOWNERDEAD))
        return; // an error (EDEADLK, EINVAL...): not a wait
    uint64_t waited = (uint64_t)(plk_profile_now() - w->since_ns);
    plk_prof_record_contention(w->entry, (int64_t)waited, false, result == ETIMEDOUT);
    record_waiter_sampled(w->entry, waited);
}

void plk_profile_cond_wait_begin(struct plk_profile_wait *w, pthread_cond_t *c)
{
    w->entry = plk_prof_lookup(c, PLK_PROF_COND, PLK_PROF_CONDVAR);
    w->since_ns = plk_profile_now();
}

void plk_profile_cond_wait_end(struct plk_profile_wait *w, bool timed, int result)
{
    if (result != 0 && result != ETIMEDOUT)
        return; // EPERM, EINVAL...: no wait happened
    uint64_t waited = (uint64_t)(plk_profile_now() - w->since_ns);
    plk_prof_record_cond_wait(w->entry, (int64_t)waited, timed, result == ETIMEDOUT);
    record_waiter_sampled(w->entry, waited);
}

void plk_profile_cond_notify(pthread_cond_t *c, bool broadcast)
{
    struct plk_prof_entry *e = plk_prof_lookup(c, PLK_PROF_COND, PLK_PROF_CONDVAR);
    atomic_fetch_add_explicit(broadcast ? &e->broadcasts : &e->signals, 1,
                              memory_order_relaxed);
}
