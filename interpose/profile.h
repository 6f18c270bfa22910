// The profiler's side of the interposer: settings, the thread-local guard,
// and the hooks the lock entry points call on their slow paths (see
// core/prof.h for the tables and dump.h for the report).
#ifndef PLK_PROFILE_H
#define PLK_PROFILE_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "prof.h"

enum plk_format {
    PLK_FORMAT_TEXT,
    PLK_FORMAT_JSON,
    PLK_FORMAT_FOLDED,
};

// PARKLOCK_* profiler settings, read once by plk_profile_init.
struct plk_profile_settings {
    bool enabled;             // PARKLOCK_PROFILE (default on)
    char output[PATH_MAX];    // PARKLOCK_OUTPUT template; "" = stderr
    enum plk_format format;   // PARKLOCK_FORMAT (default text)
    int top;                  // PARKLOCK_TOP (default 10)
    int stack_depth;          // PARKLOCK_STACK_DEPTH (default 16, 0..64)
    int dump_signal;          // PARKLOCK_DUMP_SIGNAL (0: none)
    size_t table_size;        // PARKLOCK_TABLE_SIZE (default 4096 locks)
};

extern struct plk_profile_settings plk_profile_settings
    __attribute__((visibility("hidden")));

// True while profiling records events (settings on, tables mapped). Tested
// only on slow paths.
extern _Atomic bool plk_profiling_on __attribute__((visibility("hidden")));

// Set while this thread is inside the profiler (recording, unwinding,
// dumping): locks it takes meanwhile -- libunwind's, libdw's, malloc's --
// are not recorded, so the profiler never recurses into itself.
extern __thread bool plk_in_profiler __attribute__((tls_model("initial-exec"), visibility("hidden")));

static inline bool profiling(void)
{
    return __builtin_expect(atomic_load_explicit(&plk_profiling_on, memory_order_relaxed), 0) &&
           !plk_in_profiler;
}

// From the constructor (after the engine is chosen): reads the settings,
// maps the tables, arms the dump triggers (dump.h).
void plk_profile_init(void);

// Fork handlers: prepare waits until no thread is unwinding (libunwind's
// lock must not be held across fork), parent and child resume; the child
// also starts a fresh profile.
void plk_profile_fork_prepare(void);
void plk_profile_fork_parent(void);
void plk_profile_fork_child(void);

// Monotonic nanoseconds, for wait times.
int64_t plk_profile_now(void);

// Captures the calling thread's stack, innermost first, leaving out
// libparklock's own frames; returns the number of frames (0 when stacks are
// off). Sets the guard while unwinding.
int plk_profile_stack(uintptr_t *frames, int max);

// Before a dump: folds the acquisition counters of live mutexes into their
// entries, reading each mutex's memory only if it is still mapped and still
// looks like the same mutex.
void plk_profile_refresh_acquired(void);

// Names for the report.
const char *plk_profile_type_name(enum plk_prof_type type);
const char *plk_profile_engine_name(void);

// Hooks of the entry points, all called only when profiling() is true.

// A parking-lot mutex found held: waits for it like plk_mutex_lock_slow
// (deadline NULL: forever), recording the wait, the waiter's stack if it
// parks, and the lock's naming site. Returns whether it was acquired.
bool plk_profile_lock_word(pthread_mutex_t *m, const struct plk_deadline *deadline);
// A timed lock of a held mutex whose deadline had passed (tv_sec < 0).
void plk_profile_timed_out_at_once(pthread_mutex_t *m);
// The caller released `m` to a sleeping waiter that began waiting at
// `waiter_since_ns`: holder blame. `m` is only a key here (it may be freed).
void plk_profile_released_to_waiter(const pthread_mutex_t *m, int64_t waiter_since_ns);
// Starts tracking a mutex at its first acquisition.
void plk_profile_track_mutex(pthread_mutex_t *m);

// A wait timed by the entry points: a blocking call into glibc for a mutex
// it runs, or a condition-variable wait.
struct plk_profile_wait {
    struct plk_prof_entry *entry; // NULL: not profiled
    int64_t since_ns;
};
void plk_profile_glibc_wait_begin(struct plk_profile_wait *w, pthread_mutex_t *m);
void plk_profile_glibc_wait_end(struct plk_profile_wait *w, int result);

// Condition variables: a wait (begin before it, end with its result once it
// returned with the mutex held), and signal / broadcast calls.
void plk_profile_cond_wait_begin(struct plk_profile_wait *w, pthread_cond_t *c);
void plk_profile_cond_wait_end(struct plk_profile_wait *w, bool timed, int result);
void plk_profile_cond_notify(pthread_cond_t *c, bool broadcast);

struct plk_prof_entry *plk_profile_mutex(pthread_mutex_t *m);
void plk_profile_mutex_init(pthread_mutex_t *m);    // init: retire the old entry
void plk_profile_mutex_destroy(pthread_mutex_t *m); // destroy: final counts, retire
void plk_profile_cond_init(pthread_cond_t *c);
void plk_profile_cond_destroy(pthread_cond_t *c);

#endif
