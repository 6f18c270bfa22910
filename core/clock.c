#include "clock.h"

int64_t plk_clock_now_ns_on(clockid_t clock)
{
    struct timespec ts;
    // clock_gettime cannot fail for these two clocks; there is no error path.
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * PLK_NS_PER_SEC + ts.tv_nsec;
}

int64_t plk_clock_now_ns(void)
{
    return plk_clock_now_ns_on(CLOCK_MONOTONIC);
}

struct plk_deadline plk_deadline_after_ns(int64_t timeout_ns)
{
    struct plk_deadline d = { .clock = CLOCK_MONOTONIC };
    clock_gettime(CLOCK_MONOTONIC, &d.when);
    if (timeout_ns < 0)
        timeout_ns = 0;
    int64_t sec = timeout_ns / PLK_NS_PER_SEC;
    long nsec = (long)(timeout_ns % PLK_NS_PER_SEC);
    if (d.when.tv_sec > INT64_MAX - sec - 1) {
        d.when.tv_sec = INT64_MAX;
        d.when.tv_nsec = PLK_NS_PER_SEC - 1;
        return d;
    }
    d.when.tv_sec += sec;
    d.when.tv_nsec += nsec;
    if (d.when.tv_nsec >= PLK_NS_PER_SEC) {
        d.when.tv_nsec -= PLK_NS_PER_SEC;
        d.when.tv_sec++;
    }
    return d;
}

bool plk_deadline_passed(const struct plk_deadline *d)
{
    if (d->when.tv_sec < 0)
        return true;
    struct timespec now;
    clock_gettime(d->clock, &now);
    if (now.tv_sec != d->when.tv_sec)
        return now.tv_sec > d->when.tv_sec;
    return now.tv_nsec >= d->when.tv_nsec;
}
