// A JSON contention profile (docs/dump-format.md, schema version 1) loaded
// into structs. Strings point into the parsed JSON tree, which the profile
// keeps (`root`) so that `report --format json` can write it back with
// what symbolisation added.
#ifndef PLK_CLI_PROFILE_H
#define PLK_CLI_PROFILE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PLK_PROFILE_VERSION 1

struct plk_frame {
    uint64_t ip;
    const char *module;   // NULL: outside every mapped file
    uint64_t offset;      // module-relative; valid if has_offset
    bool has_offset;
    const char *function; // NULL when unknown
    int64_t function_offset; // -1 when unknown
    const char *file;     // NULL when unknown
    int64_t line;         // 0 when unknown
    json_t *json;
};

struct plk_stack {
    int64_t count;
    int64_t ns; // wait_ns for waiters, delay_ns for holders
    struct plk_frame *frames;
    size_t n_frames;
};

struct plk_wait {
    int64_t total, max, avg, p50, p90, p99;
};

struct plk_lock {
    int64_t id;
    uint64_t address;
    const char *name;        // NULL when unnamed
    const char *name_source; // "symbol", "site" or "none"
    const char *type;
    const char *engine;
    int64_t generation;
    bool destroyed;
    int64_t acquired;  // -1: null (not counted)
    bool acquired_exact;
    int64_t contended, parked, timeouts;
    double contention_pct; // < 0: null
    struct plk_wait wait;
    struct plk_frame *site;
    size_t n_site;
    struct plk_stack *waiters, *holders;
    size_t n_waiters, n_holders;
    json_t *json;
};

struct plk_cond {
    int64_t id;
    uint64_t address;
    const char *name;
    const char *name_source;
    int64_t generation;
    bool destroyed;
    int64_t waits, timed_waits, timeouts, signals, broadcasts, wakeups;
    struct plk_wait wait;
    struct plk_frame *site;
    size_t n_site;
    struct plk_stack *waiters;
    size_t n_waiters;
    json_t *json;
};

struct plk_module {
    const char *path;
    uint64_t start, end, offset;
};

struct plk_profile {
    const char *source; // the file name it was read from
    json_t *root;
    int64_t version, pid;
    const char *program, *engine, *reason;
    bool symbolized;
    int64_t duration_ns;
    int64_t stack_depth, table_size, top; // settings; -1 when absent
    struct {
        int64_t locks_tracked, conds_tracked, contended, wait_ns;
        int64_t dropped_locks, dropped_stacks;
    } totals;
    struct {
        int64_t contended, wait_ns, cond_waits;
    } other;
    struct plk_module *modules;
    size_t n_modules;
    struct plk_lock *locks;
    size_t n_locks;
    struct plk_cond *conds;
    size_t n_conds;
};

// Reads `path` ("-": stdin). NULL after an error message: the file cannot
// be read, is not JSON (file:line:column and the parser's reason), or does
// not follow the schema (the field's path, e.g. locks[3].wait_ns.total, and
// what was expected).
struct plk_profile *plk_profile_load(const char *path);
void plk_profile_free(struct plk_profile *p);

// Setters that keep the JSON tree in step with the struct.
void plk_frame_set_symbol(struct plk_frame *f, const char *function,
                          int64_t function_offset);
void plk_frame_set_source(struct plk_frame *f, const char *file, int64_t line);
void plk_lock_set_name(struct plk_lock *l, const char *name, const char *source);
void plk_cond_set_name(struct plk_cond *c, const char *name, const char *source);

#endif
