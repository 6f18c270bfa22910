// Raw futex wait and wake on a private 32-bit word.
//
// These are the only blocking primitives of the core: no pthread_*, no sem_*.
#ifndef PLK_FUTEX_H
#define PLK_FUTEX_H

#include <stdatomic.h>
#include <stdint.h>

#include "clock.h"

// Sleeps while *word == expected, until woken or until `deadline` (absolute;
// NULL waits forever). Returns 0 when woken (possibly spuriously), EAGAIN when
// *word != expected on entry, EINTR on a signal, ETIMEDOUT past the deadline.
int plk_futex_wait(_Atomic uint32_t *word, uint32_t expected,
                   const struct plk_deadline *deadline);

// Wakes up to `count` threads sleeping on `word`. Only the address is used:
// the memory may already be reused, which at worst wakes a futex waiter there
// spuriously (every futex user must tolerate that).
void plk_futex_wake(_Atomic uint32_t *word, int count);

#endif
