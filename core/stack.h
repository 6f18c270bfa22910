// Call stacks for the profiler. The unwinder itself (libunwind's
// unw_backtrace) is installed by the interposer, which links libunwind; the
// core and its unit tests do not.
#ifndef PLK_STACK_H
#define PLK_STACK_H

#include <stdint.h>

// unw_backtrace's signature: return addresses of the calling thread,
// innermost first, the first being inside the unwinder's caller.
typedef int (*plk_backtrace_fn)(void **buffer, int size);

// Installs the unwinder (NULL: none; captures then return 0 frames).
void plk_stack_set_backtrace(plk_backtrace_fn backtrace);

// Stores up to `max` return addresses of the calling thread, innermost
// first: the return address into plk_stack_capture's caller, then its
// caller's, and so on. Returns how many. The unwinder may take locks and
// allocate: callers guard against recursion.
int plk_stack_capture(uintptr_t *frames, int max);

#endif
