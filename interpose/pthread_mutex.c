// pthread_mutex_* on the parking lot (see layout.h for the field roles).
//
// Normal, adaptive, errorcheck and recursive mutexes run on the parking lot;
// every other kind (process-shared, robust, priority-inherit/protect,
// destroyed, garbage) and every call under PARKLOCK_ENGINE=glibc goes to
// glibc. The kind is fixed at initialisation, so the choice is stable.
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "export.h"
#include "internal.h"
#include "layout.h"
#include "mutex_state.h"
#include "profile.h"
#include "real.h"
#include "settings.h"

static inline bool on_parkinglot(int kind)
{
    return kind_is_parkinglot(kind) && !use_glibc();
}

// glibc's pthread_mutexattr_t is one int: the type in the low bits, these
// flags above (nptl/pthreadP.h).
#define MUTEXATTR_FLAG_BITS 0xf0fff000 // robust, pshared, protocol, ceiling

// The __kind glibc's init would store for `attr` when it is an ordinary
// private mutex (the attribute read through its public getters, the type
// bits taken as glibc takes them); false for anything else.
static bool ordinary_kind(const pthread_mutexattr_t *attr, int *kind)
{
    if (!attr) {
        *kind = 0;
        return true;
    }
    int pshared, robust, protocol;
    if (pthread_mutexattr_getpshared(attr, &pshared) ||
        pshared != PTHREAD_PROCESS_PRIVATE ||
        pthread_mutexattr_getrobust(attr, &robust) || robust != PTHREAD_MUTEX_STALLED ||
        pthread_mutexattr_getprotocol(attr, &protocol) || protocol != PTHREAD_PRIO_NONE)
        return false;
    int raw;
    memcpy(&raw, attr, sizeof raw);
    *kind = raw & ~MUTEXATTR_FLAG_BITS;
    return kind_is_parkinglot(*kind);
}

int plk_pthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *attr)
{
    // Ordinary mutexes are laid out here, as glibc would (all zero but
    // __kind), so that a malloc initialising its mutexes before parklock's
    // constructor never needs a symbol lookup. glibc validates and lays out
    // everything else (robust, shared, PI, PP with its ceiling in __lock).
    if (profiling())
        plk_profile_mutex_init(m);
    int kind;
    if (!use_glibc() && ordinary_kind(attr, &kind)) {
        memset(m, 0, sizeof *m);
        __atomic_store_n(&m->__data.__kind, kind, __ATOMIC_RELAXED);
        return 0;
    }
    return real_mutex_init(m, attr);
}

int plk_pthread_mutex_destroy(pthread_mutex_t *m)
{
    if (profiling() && m->__data.__nusers == 0)
        plk_profile_mutex_destroy(m);
    // glibc's destroy reads only __kind and __nusers, which we keep as it
    // does: EBUSY while locked (or while a cond wait holds it), then kind -1.
    return real_mutex_destroy(m);
}

// Locks a parking-lot mutex of `kind`; `abstime` NULL waits forever.
static int lock_slow(pthread_mutex_t *m, int kind, clockid_t clock,
                     const struct timespec *abstime)
{
    int type = kind_type(kind);
    pid_t tid = self_tid();
    int r = relock_by_owner(m, type, tid);
    if (r >= 0)
        return r;
    struct plk_mutex *word = mutex_word(m);
    if (!plk_mutex_trylock(word)) {
        struct plk_deadline d, *deadline = NULL;
        if (abstime) {
            // glibc looks at the timeout only once it has to wait, and then
            // at a negative tv_sec (a past deadline) before tv_nsec.
            if (abstime->tv_sec < 0) {
                if (profiling())
                    plk_profile_timed_out_at_once(m);
                return ETIMEDOUT;
            }
            if (!valid_nsec(abstime))
                return EINVAL;
            d = (struct plk_deadline){ .when = *abstime, .clock = clock };
            deadline = &d;
        }
        bool acquired = profiling() ? plk_profile_lock_word(m, deadline)
                                    : plk_mutex_lock_slow(word, deadline, NULL);
        if (!acquired)
            return ETIMEDOUT;
    }
    note_locked(m, type, tid);
    return 0;
}

// Kinds whose glibc trylock is a clean subset of lock, so that trying
// first changes nothing. Not robust ones: glibc 2.36's trylock of a robust
// mutex made unrecoverable returns ENOTRECOVERABLE but leaves it locked.
// Nor PI/PP ones, whose trylock takes other kernel paths.
static bool glibc_try_first_ok(int kind)
{
    return kind >= 0 &&
           (kind & ~(KIND_TYPE_MASK | KIND_PSHARED | KIND_ELISION | KIND_NO_ELISION)) == 0;
}

// A mutex glibc runs (its kind, or PARKLOCK_ENGINE=glibc) while profiling:
// try first, time the blocking call; count acquisitions where glibc leaves
// the counter's bytes alone. Robust, PI and PP mutexes are not profiled.
static int glibc_lock_profiled(pthread_mutex_t *m, clockid_t clock,
                               const struct timespec *abstime, bool clocked)
{
    int kind = mutex_kind(m);
    int r = glibc_try_first_ok(kind) &&
                    !(kind_type(kind) == TYPE_ERRORCHECK && m->__data.__owner == self_tid())
                ? real_mutex_trylock(m)
                : -1;
    if (r != 0 && r != EBUSY) { // glibc's lock gives its own answer
        if (!abstime)
            return real_mutex_lock(m);
        return clocked ? real_mutex_clocklock(m, clock, abstime)
                       : real_mutex_timedlock(m, abstime);
    }
    if (r == EBUSY) {
        struct plk_profile_wait w;
        plk_profile_glibc_wait_begin(&w, m);
        if (!abstime)
            r = real_mutex_lock(m);
        else if (clocked)
            r = real_mutex_clocklock(m, clock, abstime);
        else
            r = real_mutex_timedlock(m, abstime);
        plk_profile_glibc_wait_end(&w, r);
    }
    if ((r == 0 || r == EOWNERDEAD) && mutex_counts_acquisitions(mutex_kind(m)))
        count_acquisition(m);
    return r;
}

int plk_profile_first_acquisition(pthread_mutex_t *m)
{
    if (profiling())
        plk_profile_track_mutex(m);
    return 0;
}

// Normal and adaptive mutexes on the parking lot: the only kinds whose
// uncontended lock and unlock need no ownership check.
static inline bool simple_fast_path(int kind)
{
    int k = kind & ~KIND_NO_ELISION;
    return (k == TYPE_NORMAL || k == TYPE_ADAPTIVE) &&
           atomic_load_explicit(&plk_engine_selected, memory_order_relaxed) ==
               PLK_ENGINE_PARKINGLOT;
}

static __attribute__((noinline)) int lock_dispatch(pthread_mutex_t *m)
{
    int kind = mutex_kind(m);
    if (!on_parkinglot(kind))
        return profiling() ? glibc_lock_profiled(m, CLOCK_REALTIME, NULL, false)
                           : real_mutex_lock(m);
    return lock_slow(m, kind, CLOCK_REALTIME, NULL);
}

// The fast path is a leaf ending in tail calls: no stack frame when the CAS
// succeeds.
int plk_pthread_mutex_lock(pthread_mutex_t *m)
{
    if (__builtin_expect(simple_fast_path(mutex_kind(m)), 1)) {
        pid_t tid = descriptor_tid();
        uint32_t expected = 0;
        if (__builtin_expect(tid != 0, 1) &&
            atomic_compare_exchange_strong_explicit(&mutex_word(m)->word, &expected,
                                                    PLK_MUTEX_LOCKED,
                                                    memory_order_acquire,
                                                    memory_order_relaxed)) {
            m->__data.__owner = tid;
            m->__data.__nusers++;
            if (bump_acquisitions(m))
                return plk_profile_first_acquisition(m);
            return 0;
        }
    }
    return lock_dispatch(m);
}

int plk_pthread_mutex_trylock(pthread_mutex_t *m)
{
    int kind = mutex_kind(m);
    if (!on_parkinglot(kind)) {
        int r = real_mutex_trylock(m);
        if (r == 0 && profiling() && glibc_try_first_ok(kind) &&
            mutex_counts_acquisitions(kind))
            count_acquisition(m);
        return r;
    }
    int type = kind_type(kind);
    pid_t tid = self_tid();
    if (type == TYPE_RECURSIVE) {
        int r = relock_by_owner(m, type, tid);
        if (r >= 0)
            return r;
    }
    // An errorcheck owner gets EBUSY, like everyone else (glibc does so).
    if (!plk_mutex_trylock(mutex_word(m)))
        return EBUSY;
    note_locked(m, type, tid);
    return 0;
}

int plk_pthread_mutex_clocklock(pthread_mutex_t *m, clockid_t clock,
                                const struct timespec *abstime)
{
    if (!valid_clock(clock))
        return EINVAL;
    int kind = mutex_kind(m);
    if (!on_parkinglot(kind))
        return profiling() ? glibc_lock_profiled(m, clock, abstime, true)
                           : real_mutex_clocklock(m, clock, abstime);
    return lock_slow(m, kind, clock, abstime);
}

int plk_pthread_mutex_timedlock(pthread_mutex_t *m, const struct timespec *abstime)
{
    int kind = mutex_kind(m);
    if (!on_parkinglot(kind))
        return profiling() ? glibc_lock_profiled(m, CLOCK_REALTIME, abstime, false)
                           : real_mutex_timedlock(m, abstime);
    return lock_slow(m, kind, CLOCK_REALTIME, abstime);
}

// The unlock of a word with PARKED set: wakes a waiter, and, while
// profiling, charges the caller's stack with the delay that waiter suffered.
static __attribute__((noinline)) int unlock_wake(pthread_mutex_t *m)
{
    int64_t waiter_since = plk_mutex_unlock_slow(mutex_word(m), false);
    if (waiter_since && profiling())
        plk_profile_released_to_waiter(m, waiter_since);
    return 0;
}

static inline int release_word(pthread_mutex_t *m)
{
    uint32_t expected = PLK_MUTEX_LOCKED;
    if (__builtin_expect(atomic_compare_exchange_strong_explicit(
                             &mutex_word(m)->word, &expected, 0,
                             memory_order_release, memory_order_relaxed),
                         1))
        return 0; // last access to *m
    return unlock_wake(m);
}

static __attribute__((noinline)) int unlock_dispatch(pthread_mutex_t *m)
{
    int kind = mutex_kind(m);
    if (!on_parkinglot(kind))
        return real_mutex_unlock(m);
    int type = kind_type(kind);
    if (type != TYPE_NORMAL && type != TYPE_ADAPTIVE) {
        int r = check_owner(m, type, self_tid());
        if (r)
            return r;
        if (type == TYPE_RECURSIVE && --m->__data.__count != 0)
            return 0;
    }
    note_unlocking(m);
    return release_word(m);
}

int plk_pthread_mutex_unlock(pthread_mutex_t *m)
{
    if (__builtin_expect(!simple_fast_path(mutex_kind(m)), 0))
        return unlock_dispatch(m);
    note_unlocking(m);
    return release_word(m);
}

// Robust and priority-protect operations only make sense for kinds glibc
// runs; for ours glibc's answer (EINVAL) comes from the same fields.
int plk_pthread_mutex_consistent(pthread_mutex_t *m)
{
    return real_mutex_consistent(m);
}

int plk_pthread_mutex_getprioceiling(const pthread_mutex_t *m, int *ceiling)
{
    return real_mutex_getprioceiling(m, ceiling);
}

int plk_pthread_mutex_setprioceiling(pthread_mutex_t *m, int ceiling, int *old)
{
    return real_mutex_setprioceiling(m, ceiling, old);
}

PLK_EXPORT_ALIAS(pthread_mutex_init, plk_pthread_mutex_init);
PLK_EXPORT_ALIAS(pthread_mutex_destroy, plk_pthread_mutex_destroy);
PLK_EXPORT_ALIAS(pthread_mutex_lock, plk_pthread_mutex_lock);
PLK_EXPORT_ALIAS(pthread_mutex_trylock, plk_pthread_mutex_trylock);
PLK_EXPORT_ALIAS(pthread_mutex_timedlock, plk_pthread_mutex_timedlock);
PLK_EXPORT_ALIAS(pthread_mutex_clocklock, plk_pthread_mutex_clocklock);
PLK_EXPORT_ALIAS(pthread_mutex_unlock, plk_pthread_mutex_unlock);
PLK_EXPORT_ALIAS(pthread_mutex_consistent, plk_pthread_mutex_consistent);

// glibc's old aliases, still exported for binaries linked against the
// libpthread of glibc < 2.34: left to glibc, a thread blocked in one of
// them would never be woken by parklock's unlock.
PLK_EXPORT_ALIAS(__pthread_mutex_init, plk_pthread_mutex_init);
PLK_EXPORT_ALIAS(__pthread_mutex_destroy, plk_pthread_mutex_destroy);
PLK_EXPORT_ALIAS(__pthread_mutex_lock, plk_pthread_mutex_lock);
PLK_EXPORT_ALIAS(__pthread_mutex_trylock, plk_pthread_mutex_trylock);
PLK_EXPORT_ALIAS(__pthread_mutex_unlock, plk_pthread_mutex_unlock);
// <pthread.h> redirects the deprecated _np name, so it is spelled in asm.
extern __typeof__(plk_pthread_mutex_consistent) plk_consistent_np
    __asm__("pthread_mutex_consistent_np")
    __attribute__((alias("plk_pthread_mutex_consistent"), visibility("default")));
PLK_EXPORT_ALIAS(pthread_mutex_getprioceiling, plk_pthread_mutex_getprioceiling);
PLK_EXPORT_ALIAS(pthread_mutex_setprioceiling, plk_pthread_mutex_setprioceiling);
