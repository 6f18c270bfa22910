// Locks of one or more profiles grouped by what identifies them across runs:
// their name (symbol or site), never their address, which changes from run
// to run. `diff` matches two tables row by row; `compare` sums the profiles
// of all processes of one run. Also the lock labels and sort orders that
// `report` shares.
#ifndef PLK_CLI_LOCKTABLE_H
#define PLK_CLI_LOCKTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli_profile.h"

enum plk_sort { PLK_SORT_WAIT, PLK_SORT_CONTENDED, PLK_SORT_MAX, PLK_SORT_P99,
                PLK_SORT_ACQUIRED };
extern const char *const plk_sort_names[]; // "wait", ..., NULL

struct plk_lock_row {
    char *key;        // name, else the first own site frame, else the address
    size_t n_locks;   // locks folded into this row
    int64_t acquired; // -1 when no lock of the row counted acquisitions
    int64_t contended, parked, timeouts;
    int64_t wait_total, wait_max, wait_p99; // max and p99: the largest lock's
};

struct plk_lock_table {
    struct plk_lock_row *rows;
    size_t n, cap;
};

// Whether a module is libc's or parklock's own: their frames are on every
// lock's stack and name nothing.
bool plk_runtime_module(const char *module);

// The matching key of a lock: its name; unnamed, the first site frame
// outside libc/libparklock as "function" or "module+0xoffset"; else
// "lock@0xaddress" (matches nothing in another run).
void plk_lock_key(const struct plk_lock *l, char *buf, size_t size);

// A frame for people: "function+0x5f (file.c:281)" or "module+0x3234f".
void plk_frame_label(const struct plk_frame *f, char *buf, size_t size);

// Adds every lock of `p`; false when out of memory.
bool plk_lock_table_add(struct plk_lock_table *t, const struct plk_profile *p);
const struct plk_lock_row *plk_lock_table_find(const struct plk_lock_table *t,
                                               const char *key);
void plk_lock_table_sort(struct plk_lock_table *t, enum plk_sort by);
void plk_lock_table_free(struct plk_lock_table *t);

// The value a sort order ranks by, for a single lock.
int64_t plk_lock_sort_value(const struct plk_lock *l, enum plk_sort by);

#endif
