// The interposer's entry points under hidden names, for internal callers
// (C11 threads) that must not go through the PLT or be interposed again.
#ifndef PLK_INTERNAL_H
#define PLK_INTERNAL_H

#include <pthread.h>
#include <time.h>

int plk_pthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *attr);
int plk_pthread_mutex_destroy(pthread_mutex_t *m);
int plk_pthread_mutex_lock(pthread_mutex_t *m);
int plk_pthread_mutex_trylock(pthread_mutex_t *m);
int plk_pthread_mutex_timedlock(pthread_mutex_t *m, const struct timespec *abstime);
int plk_pthread_mutex_clocklock(pthread_mutex_t *m, clockid_t clock,
                                const struct timespec *abstime);
int plk_pthread_mutex_unlock(pthread_mutex_t *m);

int plk_pthread_cond_init(pthread_cond_t *c, const pthread_condattr_t *attr);
int plk_pthread_cond_destroy(pthread_cond_t *c);
int plk_pthread_cond_signal(pthread_cond_t *c);
int plk_pthread_cond_broadcast(pthread_cond_t *c);
int plk_pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m);
int plk_pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
                               const struct timespec *abstime);

// init.c: fork hooks and cancellation hooks, installed by the constructor.
void plk_interpose_init(void);

#endif
