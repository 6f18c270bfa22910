// Atomics and CPU hints shared by the core.
//
// The core uses <stdatomic.h> directly with an explicit memory order on every
// access; this header only adds what C11 lacks.
#ifndef PLK_ATOMIC_H
#define PLK_ATOMIC_H

#include <stdatomic.h>

#define PLK_CACHE_LINE 64

// One spin-wait hint (x86 PAUSE); a compiler barrier elsewhere.
static inline void plk_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

#endif
