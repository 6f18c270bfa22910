// What a dump reports, taken from the profile tables (core/prof.h) without
// malloc: the entries sorted by total wait, each with its stacks sorted by
// weight, in scratch memory mapped for the dump (mmap is fine in a signal
// handler). The three formats (dump_text.c, dump_json.c, dump_folded.c)
// write a model.
//
// Counters are read while other threads keep recording: a dump made during
// activity may be off by the events in flight. The sort keys are read once,
// so the order is consistent even then.
#ifndef PLK_DUMP_MODEL_H
#define PLK_DUMP_MODEL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dump.h"
#include "dump_out.h"
#include "modules.h"
#include "prof.h"
#include "symbolize.h"

// One stack of one entry, with its counters as read once.
struct plk_dump_stack {
    const struct plk_prof_stack *s;
    uint32_t entry_slot;
    uint8_t role;     // enum plk_prof_role
    uint64_t weight;  // ns waited (waiters, sites) or delay caused (holders)
    uint64_t count;
};

// One entry (mutex or condition variable).
struct plk_dump_item {
    struct plk_prof_entry *e;
    uint32_t slot;      // index in the entry table
    uint64_t wait_ns;   // total wait, read once: the sort key
    uint32_t first, n;  // its stacks: model.stacks[first, first + n), by
                        // role, then weight descending
};

struct plk_dump_model {
    enum plk_dump_reason reason;
    bool symbolized; // frames and names from symbolize.h (not in signal dumps)
    int pid;
    uint64_t duration_ns;
    char program[PATH_MAX]; // /proc/self/exe, "" if unknown

    struct plk_dump_item *locks; // sorted by wait_ns descending, then id
    size_t nlocks;
    struct plk_dump_item *conds; // likewise
    size_t nconds;
    struct plk_dump_stack *stacks;
    size_t nstacks;
    struct plk_prof_totals totals;
    struct plk_prof_entry *other;

    // Private: the scratch mapping, and the modules holding the runtime
    // (libparklock, libc) that naming by site skips.
    void *scratch;
    size_t scratch_len;
    const char *self_path;
};

// Builds the model from the tables (modules must be loaded first). False
// when the scratch memory cannot be mapped.
bool plk_dump_model_build(struct plk_dump_model *m, enum plk_dump_reason reason,
                          bool symbolized, uint64_t duration_ns);
void plk_dump_model_free(struct plk_dump_model *m);

// The stacks of `it` in `role`: returns how many, *first the first of them.
size_t plk_dump_stacks_of(const struct plk_dump_model *m, const struct plk_dump_item *it,
                          enum plk_prof_role role, const struct plk_dump_stack **first);

// The stack where `it` was first contended, or NULL.
const struct plk_prof_stack *plk_dump_site(const struct plk_dump_item *it);

// Frame `i` of a stack, resolved.
struct plk_dump_frame {
    uintptr_t ip;                     // inside the instruction (see ip rule)
    const struct plk_module *module;  // NULL: outside every mapped file
    uintptr_t offset;                 // ip - module base (ip without module)
    struct plk_sym sym;               // all zero unless symbolised
};
void plk_dump_frame(const struct plk_dump_model *m, const struct plk_prof_stack *s, int i,
                    struct plk_dump_frame *f);

enum plk_dump_name_source {
    PLK_NAME_NONE,
    PLK_NAME_SYMBOL,
    PLK_NAME_SITE,
};

// The entry's name (docs/dump-format.md): the variable that holds it, else
// the function of the first frame of its site outside libc/libparklock (or,
// in a stripped module, "module+0xoffset").
// Writes it to buf (NUL-terminated; "" for none).
enum plk_dump_name_source plk_dump_name(const struct plk_dump_model *m,
                                        const struct plk_dump_item *it, char *buf,
                                        size_t len);
const char *plk_dump_name_source_name(enum plk_dump_name_source s);

// The entry's name for people: its name, else its address.
void plk_dump_label(const struct plk_dump_model *m, const struct plk_dump_item *it,
                    char *buf, size_t len);

// Whether glibc ran the mutex: its type (robust, shared, PI, PP), or every
// mutex under PARKLOCK_ENGINE=glibc. Such mutexes are reported with type
// and engine "glibc", and their acquisition counts as not exact.
bool plk_dump_glibc_ran(const struct plk_prof_entry *e);

// The report's name of a mutex's type.
const char *plk_dump_type_name(const struct plk_prof_entry *e);

// The three formats.
void plk_dump_write_text(struct plk_out *o, const struct plk_dump_model *m);
void plk_dump_write_json(struct plk_out *o, const struct plk_dump_model *m);
void plk_dump_write_folded(struct plk_out *o, const struct plk_dump_model *m);

// Relaxed reads of the table's counters, for the formats.
static inline uint64_t plk_dump_load(const _Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

#endif
