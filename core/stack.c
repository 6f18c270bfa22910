// Stack capture (see stack.h).
#define UNW_LOCAL_ONLY
#include "stack.h"

#include <libunwind.h>

#include "prof.h"

int plk_stack_capture(uintptr_t *frames, int max)
{
    // unw_backtrace's fast path caches the unwind rules per return address:
    // about 20 ns a frame once warm.
    void *buf[PLK_PROF_MAX_DEPTH + 1];
    if (max <= 0)
        return 0;
    if (max > PLK_PROF_MAX_DEPTH)
        max = PLK_PROF_MAX_DEPTH;
    int n = unw_backtrace(buf, max + 1);
    // buf[0] is the address in this function itself.
    int out = 0;
    for (int i = 1; i < n && out < max; i++)
        frames[out++] = (uintptr_t)buf[i];
    return out;
}
