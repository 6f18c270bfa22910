// Bookkeeping of glibc's mutex fields around the parking-lot lock word,
// shared by the mutex and condition-variable entry points.
#ifndef PLK_MUTEX_STATE_H
#define PLK_MUTEX_STATE_H

#include <errno.h>
#include <limits.h>
#include <stdbool.h>

#include "layout.h"
#include "settings.h"
#include "thread_id.h"

enum {
    TYPE_NORMAL = PTHREAD_MUTEX_NORMAL,         // also glibc's default "timed"
    TYPE_RECURSIVE = PTHREAD_MUTEX_RECURSIVE,
    TYPE_ERRORCHECK = PTHREAD_MUTEX_ERRORCHECK,
    TYPE_ADAPTIVE = PTHREAD_MUTEX_ADAPTIVE_NP,
};

// Whether the mutex's acquisition counter (layout.h) is kept for `kind`:
// always for parking-lot mutexes; for mutexes glibc runs only while profiling,
// and only for the kinds it profiles (not robust, PI or PP) whose
// __spins/__elision glibc 2.36 never reads (it reads them for adaptive and
// elision mutexes only).
static inline bool mutex_counts_acquisitions(int kind)
{
    if (kind_is_parkinglot(kind) && !use_glibc())
        return true;
    return kind >= 0 && (kind & ~(KIND_TYPE_MASK | KIND_NO_ELISION | KIND_PSHARED)) == 0 &&
           kind_type(kind) != TYPE_ADAPTIVE;
}

// The first acquisition of a mutex since its initialisation (its counter was
// 0), and every 2^30th after it: the profiler starts tracking it, then folds
// the counter in often enough that a 32-bit counter never laps a fold.
// Returns 0.
#define ACQUISITION_FOLD_MASK 0x3fffffffu
int plk_profile_first_acquisition(pthread_mutex_t *m) __attribute__((visibility("hidden")));

// Counts one acquisition by the new holder; true when the profiler must
// look (plk_profile_first_acquisition).
static inline bool bump_acquisitions(pthread_mutex_t *m)
{
    return __builtin_expect(((*mutex_acquisitions(m))++ & ACQUISITION_FOLD_MASK) == 0, 0);
}

static inline void count_acquisition(pthread_mutex_t *m)
{
    if (bump_acquisitions(m))
        plk_profile_first_acquisition(m);
}

// The caller now holds the lock word: record ownership as glibc does.
static inline void note_locked(pthread_mutex_t *m, int type, pid_t tid)
{
    m->__data.__owner = tid;
    m->__data.__nusers++;
    if (type == TYPE_RECURSIVE)
        m->__data.__count = 1;
    count_acquisition(m);
}

// Before the caller releases the lock word (unlock proper).
static inline void note_unlocking(pthread_mutex_t *m)
{
    m->__data.__owner = 0;
    m->__data.__nusers--;
}

// glibc's answer for "the caller may release this mutex", or 0. Errorcheck
// mutexes must be locked and owned; recursive ones owned; normal and
// adaptive ones are never checked.
static inline int check_owner(const pthread_mutex_t *m, int type, pid_t tid)
{
    if (type == TYPE_RECURSIVE && m->__data.__owner != tid)
        return EPERM;
    if (type == TYPE_ERRORCHECK &&
        (m->__data.__owner != tid ||
         !plk_mutex_is_locked((const struct plk_mutex *)&m->__data.__lock)))
        return EPERM;
    return 0;
}

// A relock by the owner: EDEADLK for errorcheck, one level deeper for
// recursive (EAGAIN when the count would wrap), -1 when the caller must take
// the lock word.
static inline int relock_by_owner(pthread_mutex_t *m, int type, pid_t tid)
{
    if (m->__data.__owner != tid)
        return -1;
    if (type == TYPE_ERRORCHECK)
        return EDEADLK;
    if (type == TYPE_RECURSIVE) {
        if (m->__data.__count + 1 == 0)
            return EAGAIN;
        m->__data.__count++;
        return 0;
    }
    return -1; // normal and adaptive: deadlock, as in glibc
}

static inline bool valid_nsec(const struct timespec *t)
{
    return t->tv_nsec >= 0 && t->tv_nsec < 1000000000;
}

static inline bool valid_clock(clockid_t clock)
{
    return clock == CLOCK_REALTIME || clock == CLOCK_MONOTONIC;
}

#endif
