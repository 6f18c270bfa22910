// Time helpers: monotonic nanoseconds and absolute deadlines.
#ifndef PLK_CLOCK_H
#define PLK_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define PLK_NS_PER_SEC 1000000000LL

// An absolute point in time on CLOCK_MONOTONIC or CLOCK_REALTIME. The core
// accepts only normalised values (0 <= tv_nsec < 1e9); the interposer rejects
// the rest with EINVAL before they reach here. A negative tv_sec is valid and
// simply lies in the past.
struct plk_deadline {
    struct timespec when;
    clockid_t clock;
};

// Nanoseconds on CLOCK_MONOTONIC (vDSO, no syscall on x86-64).
int64_t plk_clock_now_ns(void);

// Nanoseconds on `clock` (CLOCK_MONOTONIC or CLOCK_REALTIME).
int64_t plk_clock_now_ns_on(clockid_t clock);

// A deadline `timeout_ns` from now on CLOCK_MONOTONIC (saturating).
struct plk_deadline plk_deadline_after_ns(int64_t timeout_ns);

// True when `d` is at or before the current time on its clock.
bool plk_deadline_passed(const struct plk_deadline *d);

#endif
