// PARKLOCK_* settings, read once on first use (possibly before parklock's
// constructor, from another library's constructor): no malloc, no stdio.
#ifndef PLK_SETTINGS_H
#define PLK_SETTINGS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum plk_engine {
    PLK_ENGINE_UNSET = 0,
    PLK_ENGINE_PARKINGLOT, // default: the parking lot
    PLK_ENGINE_GLIBC,      // forward every call to glibc unchanged
};

extern _Atomic int plk_engine_selected __attribute__((visibility("hidden")));

// A decimal integer in [0, max], the whole string; false otherwise.
bool plk_parse_decimal(const char *s, int64_t max, int64_t *out);

// Reads the environment (once per process; later calls wait for the first)
// and returns the engine.
int plk_settings_load(void);

// True when every call must go to glibc (PARKLOCK_ENGINE=glibc).
static inline bool use_glibc(void)
{
    int e = atomic_load_explicit(&plk_engine_selected, memory_order_relaxed);
    if (__builtin_expect(e == PLK_ENGINE_UNSET, 0))
        e = plk_settings_load();
    return e == PLK_ENGINE_GLIBC;
}

#endif
