#include "settings.h"

#include <limits.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "cond.h"
#include "mutex.h"

_Atomic int plk_engine_selected = PLK_ENGINE_UNSET;

// Guards the one-time parse; the engine is published last.
static _Atomic int loading;

static int parse_engine(void)
{
    const char *v = secure_getenv("PARKLOCK_ENGINE");
    if (!v || strcmp(v, "parkinglot") == 0)
        return PLK_ENGINE_PARKINGLOT;
    if (strcmp(v, "glibc") == 0)
        return PLK_ENGINE_GLIBC;
    plk_warn("PARKLOCK_ENGINE=", v,
             ": unknown engine (expected parkinglot or glibc); using parkinglot",
             NULL);
    return PLK_ENGINE_PARKINGLOT;
}

bool plk_parse_decimal(const char *s, int64_t max, int64_t *out)
{
    int64_t v = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (max - (*s - '0')) / 10)
            return false;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return true;
}

// A spin budget setting: nanoseconds in 0..1 s.
static void parse_spin(const char *name, void (*set)(int64_t))
{
    const char *v = secure_getenv(name);
    if (!v)
        return;
    int64_t ns;
    if (plk_parse_decimal(v, 1000000000, &ns))
        set(ns);
    else
        plk_warn(name, "=", v,
                 ": not a number of nanoseconds in 0..1000000000; using the default",
                 NULL);
}

int plk_settings_load(void)
{
    int expected = 0;
    if (atomic_compare_exchange_strong(&loading, &expected, 1)) {
        parse_spin("PARKLOCK_SPIN_NS", plk_mutex_set_spin_ns);
        parse_spin("PARKLOCK_COND_SPIN_NS", plk_cond_set_spin_ns);
        atomic_store(&plk_engine_selected, parse_engine());
    }
    int e;
    while ((e = atomic_load(&plk_engine_selected)) == PLK_ENGINE_UNSET)
        sched_yield();
    return e;
}
