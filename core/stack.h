// Call stacks for the profiler, with libunwind (local unwinding only).
#ifndef PLK_STACK_H
#define PLK_STACK_H

#include <stdint.h>

// Stores up to `max` return addresses of the calling thread, innermost
// first: the return address into plk_stack_capture's caller, then its
// caller's, and so on. Returns how many.
// libunwind may take locks and allocate: callers guard against recursion.
int plk_stack_capture(uintptr_t *frames, int max);

#endif
