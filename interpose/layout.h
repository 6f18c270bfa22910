// How parklock's state maps onto glibc's pthread types (x86-64, glibc 2.36).
//
// A mutex keeps glibc's field roles, so that gdb, core dumps and glibc's own
// destroy see what they expect:
//   __lock    the parking-lot lock word (struct plk_mutex: LOCKED|PARKED)
//   __owner   tid of the owner (all types, as glibc stores it)
//   __count   recursion depth (recursive mutexes)
//   __nusers  owners minus unlocks, not decremented by a cond wait (glibc's
//             destroy answers EBUSY from it)
//   __kind    written only by glibc's pthread_mutex_init/destroy and the
//             static initializers; read here to pick the engine
//   __spins and __elision (16 bits each, unused by glibc for these kinds)
//             together: a 32-bit count of acquisitions since initialisation,
//             incremented by each new holder, read by the profiler
// A condition variable keeps its parking-lot state (struct plk_cond) in its
// first 8 bytes (__wseq) and reads the attribute bits glibc's init leaves in
// __wrefs. Process-shared conds are glibc's entirely.
#ifndef PLK_LAYOUT_H
#define PLK_LAYOUT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "cond.h"
#include "mutex.h"

// __kind bits (glibc nptl/pthreadP.h).
enum {
    KIND_TYPE_MASK = 3, // PTHREAD_MUTEX_{NORMAL(TIMED),RECURSIVE,ERRORCHECK,ADAPTIVE}_NP
    KIND_ROBUST = 16,
    KIND_PRIO_INHERIT = 32,
    KIND_PRIO_PROTECT = 64,
    KIND_PSHARED = 128,
    KIND_ELISION = 256,
    KIND_NO_ELISION = 512,
};

// Kinds that run on the parking lot: the four types, with or without the
// no-elision hint. Everything else -- process-shared, robust,
// priority-inherit, priority-protect, destroyed (-1), garbage, and the
// elision kind (256: glibc's init sets it only when its elision tunable is
// on, never for the mutexes parklock initialises; glibc keeps no owner or
// user count for it, and with another type it answers EINVAL) -- is handed
// to glibc, which answers exactly as it always would.
#define KIND_PARKINGLOT_MASK (KIND_TYPE_MASK | KIND_NO_ELISION)

static inline bool kind_is_parkinglot(int kind)
{
    return (kind & ~KIND_PARKINGLOT_MASK) == 0;
}

static inline int kind_type(int kind)
{
    return kind & KIND_TYPE_MASK;
}

// __wrefs bits (glibc nptl/pthread_cond_common.c).
enum {
    COND_PSHARED = 1,
    COND_MONOTONIC = 2,
};

static inline struct plk_mutex *mutex_word(pthread_mutex_t *m)
{
    return (struct plk_mutex *)&m->__data.__lock;
}

typedef uint32_t __attribute__((may_alias)) plk_alias_u32;

static inline plk_alias_u32 *mutex_acquisitions(pthread_mutex_t *m)
{
    return (plk_alias_u32 *)&m->__data.__spins;
}

static inline int mutex_kind(const pthread_mutex_t *m)
{
    return __atomic_load_n(&m->__data.__kind, __ATOMIC_RELAXED);
}

static inline struct plk_cond *cond_state(pthread_cond_t *c)
{
    return (struct plk_cond *)c;
}

static inline unsigned cond_flags(const pthread_cond_t *c)
{
    return __atomic_load_n(&c->__data.__wrefs, __ATOMIC_RELAXED);
}

_Static_assert(offsetof(pthread_mutex_t, __data.__lock) == 0, "__lock at 0");
_Static_assert(sizeof(struct plk_mutex) == sizeof(int), "lock word fits __lock");
_Static_assert(offsetof(pthread_mutex_t, __data.__count) == 4, "__count at 4");
_Static_assert(offsetof(pthread_mutex_t, __data.__owner) == 8, "__owner at 8");
_Static_assert(offsetof(pthread_mutex_t, __data.__kind) == 16, "__kind at 16");
_Static_assert(offsetof(pthread_mutex_t, __data.__spins) == 20 &&
                   offsetof(pthread_mutex_t, __data.__elision) == 22 &&
                   offsetof(pthread_mutex_t, __data.__list) == 24,
               "__spins and __elision: 4 bytes at 20");
_Static_assert(sizeof(struct plk_cond) <= offsetof(pthread_cond_t, __data.__wrefs),
               "cond state stays clear of __wrefs");
_Static_assert(_Alignof(pthread_cond_t) >= _Alignof(struct plk_cond), "cond alignment");
_Static_assert(offsetof(pthread_cond_t, __data.__wrefs) == 36, "__wrefs at 36");

#endif
