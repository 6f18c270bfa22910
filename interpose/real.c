#include "real.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "log.h"

/* Lazily resolved functions. Racing resolvers store the same pointer. */

// A lookup that needed one of these functions itself would recurse forever;
// glibc's dlvsym does not (it allocates only to report errors), and the
// constructor resolves everything early. Should it ever happen, say so.
static __thread bool resolving __attribute__((tls_model("initial-exec")));

static void *lookup(void *_Atomic *slot, const char *name, const char *version)
{
    void *fn = atomic_load_explicit(slot, memory_order_acquire);
    if (fn)
        return fn;
    if (resolving)
        plk_fatal("recursion while looking up glibc's ", name, NULL);
    resolving = true;
    fn = dlvsym(RTLD_NEXT, name, version);
    resolving = false;
    if (!fn)
        plk_fatal("cannot find glibc's ", name, "@", version, NULL);
    atomic_store_explicit(slot, fn, memory_order_release);
    return fn;
}

// Defines real_<name>(params) calling glibc's <symbol>@<version>.
#define LAZY(ret, name, symbol, version, params, args)                        \
    static void *_Atomic name##_slot;                                         \
    ret real_##name params                                                    \
    {                                                                         \
        ret(*fn) params = lookup(&name##_slot, symbol, version);              \
        return fn args;                                                       \
    }

// Every lazily resolved function: return type, name, glibc symbol, version,
// parameters, arguments.
#define LAZY_FUNCTIONS(X)                                                          \
    X(int, mutex_init, "pthread_mutex_init", "GLIBC_2.2.5",                        \
      (pthread_mutex_t * m, const pthread_mutexattr_t *a), (m, a))                 \
    X(int, mutex_destroy, "pthread_mutex_destroy", "GLIBC_2.2.5",                  \
      (pthread_mutex_t * m), (m))                                                  \
    X(int, mutex_lock, "pthread_mutex_lock", "GLIBC_2.2.5",                        \
      (pthread_mutex_t * m), (m))                                                  \
    X(int, mutex_trylock, "pthread_mutex_trylock", "GLIBC_2.34",                   \
      (pthread_mutex_t * m), (m))                                                  \
    X(int, mutex_unlock, "pthread_mutex_unlock", "GLIBC_2.2.5",                    \
      (pthread_mutex_t * m), (m))                                                  \
    X(int, mutex_timedlock, "pthread_mutex_timedlock", "GLIBC_2.34",               \
      (pthread_mutex_t * m, const struct timespec *t), (m, t))                     \
    X(int, mutex_clocklock, "pthread_mutex_clocklock", "GLIBC_2.34",               \
      (pthread_mutex_t * m, clockid_t c, const struct timespec *t), (m, c, t))     \
    X(int, mutex_consistent, "pthread_mutex_consistent", "GLIBC_2.34",             \
      (pthread_mutex_t * m), (m))                                                  \
    X(int, mutex_getprioceiling, "pthread_mutex_getprioceiling", "GLIBC_2.34",     \
      (const pthread_mutex_t *m, int *c), (m, c))                                  \
    X(int, mutex_setprioceiling, "pthread_mutex_setprioceiling", "GLIBC_2.34",     \
      (pthread_mutex_t * m, int c, int *o), (m, c, o))                             \
    X(int, cond_init, "pthread_cond_init", "GLIBC_2.3.2",                          \
      (pthread_cond_t * c, const pthread_condattr_t *a), (c, a))                   \
    X(int, cond_destroy, "pthread_cond_destroy", "GLIBC_2.3.2",                    \
      (pthread_cond_t * c), (c))                                                   \
    X(int, cond_signal, "pthread_cond_signal", "GLIBC_2.3.2",                      \
      (pthread_cond_t * c), (c))                                                   \
    X(int, cond_broadcast, "pthread_cond_broadcast", "GLIBC_2.3.2",                \
      (pthread_cond_t * c), (c))                                                   \
    X(int, cond_wait, "pthread_cond_wait", "GLIBC_2.3.2",                          \
      (pthread_cond_t * c, pthread_mutex_t *m), (c, m))                            \
    X(int, cond_timedwait, "pthread_cond_timedwait", "GLIBC_2.3.2",                \
      (pthread_cond_t * c, pthread_mutex_t *m, const struct timespec *t),          \
      (c, m, t))                                                                   \
    X(int, cond_clockwait, "pthread_cond_clockwait", "GLIBC_2.34",                 \
      (pthread_cond_t * c, pthread_mutex_t *m, clockid_t k,                        \
       const struct timespec *t),                                                  \
      (c, m, k, t))

LAZY_FUNCTIONS(LAZY)

void real_resolve_all(void)
{
#define RESOLVE(ret, name, symbol, version, params, args)                         \
    lookup(&name##_slot, symbol, version);
    LAZY_FUNCTIONS(RESOLVE)
#undef RESOLVE
}
