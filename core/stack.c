// Stack capture (see stack.h).
#include "stack.h"

#include <stdatomic.h>

#include "prof.h"

static _Atomic plk_backtrace_fn unwinder;

void plk_stack_set_backtrace(plk_backtrace_fn backtrace)
{
    atomic_store_explicit(&unwinder, backtrace, memory_order_release);
}

int plk_stack_capture(uintptr_t *frames, int max)
{
    plk_backtrace_fn backtrace = atomic_load_explicit(&unwinder, memory_order_acquire);
    void *buf[PLK_PROF_MAX_DEPTH + 1];
    if (!backtrace || max <= 0)
        return 0;
    if (max > PLK_PROF_MAX_DEPTH)
        max = PLK_PROF_MAX_DEPTH;
    int n = backtrace(buf, max + 1);
    // buf[0] is the address in this function itself.
    int out = 0;
    for (int i = 1; i < n && out < max; i++)
        frames[out++] = (uintptr_t)buf[i];
    return out;
}
