// The calling thread's kernel tid, as glibc stores it in __owner.
//
// glibc keeps the tid in its thread descriptor, which the x86-64 thread
// pointer (%fs) addresses; the kernel rewrites it in the child of any fork
// (CLONE_CHILD_SETTID), even one that runs no atfork handler (_Fork). The
// field's offset is private to glibc, so it is found at start-up by
// scanning the descriptor for gettid()'s value, and checked again in every
// thread's first slow-path call; if a check ever fails, parklock falls back
// to a TLS cache that only the atfork child handler resets.
#ifndef PLK_THREAD_ID_H
#define PLK_THREAD_ID_H

#include <sys/types.h>
#include <unistd.h>

// Byte offset of the tid in glibc's thread descriptor; 0 while unknown or
// after a failed check.
extern int plk_tid_offset __attribute__((visibility("hidden")));

extern __thread pid_t plk_cached_tid
    __attribute__((tls_model("initial-exec"), visibility("hidden")));

// Finds plk_tid_offset (constructor; also lazily). Never fails: at worst the
// offset stays 0.
void plk_tid_init(void) __attribute__((visibility("hidden")));

// The slow path: checks or fills the cache, the first time in a thread.
pid_t plk_tid_slow(void) __attribute__((visibility("hidden")));

// glibc's tid of the calling thread read from its descriptor, or 0.
static inline pid_t descriptor_tid(void)
{
    long off = __atomic_load_n(&plk_tid_offset, __ATOMIC_RELAXED);
    if (__builtin_expect(off == 0, 0))
        return 0;
    pid_t tid;
    __asm__("movl %%fs:(%1), %0" : "=r"(tid) : "r"(off));
    return tid;
}

// The calling thread's tid. Cheap: one TLS load (after the first call).
static inline pid_t self_tid(void)
{
    pid_t tid = plk_cached_tid;
    if (__builtin_expect(tid != 0, 1)) {
        pid_t d = descriptor_tid();
        if (__builtin_expect(d != 0, 1))
            return d;
        return tid;
    }
    return plk_tid_slow();
}

// In the child after fork (atfork handler): the forking thread's cached tid
// is the parent's.
static inline void forget_tid(void)
{
    plk_cached_tid = 0;
}

#endif
