// The calling thread's kernel tid, as glibc stores it in __owner.
#ifndef PLK_THREAD_ID_H
#define PLK_THREAD_ID_H

#include <sys/types.h>
#include <unistd.h>

extern __thread pid_t plk_cached_tid
    __attribute__((tls_model("initial-exec"), visibility("hidden")));

static inline pid_t self_tid(void)
{
    pid_t tid = plk_cached_tid;
    if (__builtin_expect(tid == 0, 0))
        plk_cached_tid = tid = gettid();
    return tid;
}

// In the child after fork: the forking thread has a new tid there.
static inline void forget_tid(void)
{
    plk_cached_tid = 0;
}

#endif
