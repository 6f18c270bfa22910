// C11 <threads.h> mutexes and condition variables. glibc's own mtx_*/cnd_*
// call its internal pthread functions and would bypass parklock, so they are
// redefined here over the interposed pthread entry points, with glibc's
// exact type mapping and error translation.
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <threads.h>

#include "export.h"
#include "internal.h"

_Static_assert(sizeof(mtx_t) == sizeof(pthread_mutex_t), "mtx_t is a pthread mutex");
_Static_assert(sizeof(cnd_t) == sizeof(pthread_cond_t), "cnd_t is a pthread cond");

// glibc's thrd_err_map.
static int to_thrd(int err)
{
    switch (err) {
    case 0:
        return thrd_success;
    case ENOMEM:
        return thrd_nomem;
    case ETIMEDOUT:
        return thrd_timedout;
    case EBUSY:
        return thrd_busy;
    default:
        return thrd_error;
    }
}

PLK_EXPORT int mtx_init(mtx_t *m, int type)
{
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    // As glibc: recursive when asked, otherwise (any other value too) normal.
    bool recursive = type == (mtx_plain | mtx_recursive) ||
                     type == (mtx_timed | mtx_recursive);
    pthread_mutexattr_settype(&attr, recursive ? PTHREAD_MUTEX_RECURSIVE
                                               : PTHREAD_MUTEX_NORMAL);
    return to_thrd(plk_pthread_mutex_init((pthread_mutex_t *)m, &attr));
}

PLK_EXPORT void mtx_destroy(mtx_t *m)
{
    plk_pthread_mutex_destroy((pthread_mutex_t *)m);
}

PLK_EXPORT int mtx_lock(mtx_t *m)
{
    return to_thrd(plk_pthread_mutex_lock((pthread_mutex_t *)m));
}

PLK_EXPORT int mtx_trylock(mtx_t *m)
{
    return to_thrd(plk_pthread_mutex_trylock((pthread_mutex_t *)m));
}

PLK_EXPORT int mtx_timedlock(mtx_t *restrict m, const struct timespec *restrict t)
{
    return to_thrd(plk_pthread_mutex_timedlock((pthread_mutex_t *)m, t));
}

PLK_EXPORT int mtx_unlock(mtx_t *m)
{
    return to_thrd(plk_pthread_mutex_unlock((pthread_mutex_t *)m));
}

PLK_EXPORT int cnd_init(cnd_t *c)
{
    return to_thrd(plk_pthread_cond_init((pthread_cond_t *)c, NULL));
}

PLK_EXPORT void cnd_destroy(cnd_t *c)
{
    plk_pthread_cond_destroy((pthread_cond_t *)c);
}

PLK_EXPORT int cnd_signal(cnd_t *c)
{
    return to_thrd(plk_pthread_cond_signal((pthread_cond_t *)c));
}

PLK_EXPORT int cnd_broadcast(cnd_t *c)
{
    return to_thrd(plk_pthread_cond_broadcast((pthread_cond_t *)c));
}

PLK_EXPORT int cnd_wait(cnd_t *c, mtx_t *m)
{
    return to_thrd(plk_pthread_cond_wait((pthread_cond_t *)c, (pthread_mutex_t *)m));
}

PLK_EXPORT int cnd_timedwait(cnd_t *restrict c, mtx_t *restrict m,
                             const struct timespec *restrict t)
{
    return to_thrd(plk_pthread_cond_timedwait((pthread_cond_t *)c,
                                              (pthread_mutex_t *)m, t));
}
