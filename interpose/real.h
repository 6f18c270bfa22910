// glibc's own implementations of the functions parklock replaces, looked up
// with dlvsym(RTLD_NEXT, name, version) at the version a program built today
// binds to: in the constructor, or lazily if called before it. (parklock
// also defines glibc's old __pthread_mutex_* aliases, so it cannot bind to
// those at link time: they would resolve to itself.)
#ifndef PLK_REAL_H
#define PLK_REAL_H

#include <pthread.h>
#include <time.h>

int real_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *attr);
int real_mutex_destroy(pthread_mutex_t *m);
int real_mutex_lock(pthread_mutex_t *m);
int real_mutex_trylock(pthread_mutex_t *m);
int real_mutex_unlock(pthread_mutex_t *m);
int real_mutex_timedlock(pthread_mutex_t *m, const struct timespec *abstime);
int real_mutex_clocklock(pthread_mutex_t *m, clockid_t clock,
                         const struct timespec *abstime);
int real_mutex_consistent(pthread_mutex_t *m);
int real_mutex_getprioceiling(const pthread_mutex_t *m, int *ceiling);
int real_mutex_setprioceiling(pthread_mutex_t *m, int ceiling, int *old);

int real_cond_init(pthread_cond_t *c, const pthread_condattr_t *attr);
int real_cond_destroy(pthread_cond_t *c);
int real_cond_signal(pthread_cond_t *c);
int real_cond_broadcast(pthread_cond_t *c);
int real_cond_wait(pthread_cond_t *c, pthread_mutex_t *m);
int real_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
                        const struct timespec *abstime);
int real_cond_clockwait(pthread_cond_t *c, pthread_mutex_t *m, clockid_t clock,
                        const struct timespec *abstime);

// Resolves every lazily looked-up function now (from the constructor), so
// that later calls never run dlvsym.
void real_resolve_all(void);

#endif
