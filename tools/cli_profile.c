// Loading a JSON profile with jansson and checking it against the schema as
// it is copied into structs. Unknown fields are ignored (the schema may add
// fields); a field of the wrong type is an error naming the field's path.
#include "cli_profile.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct reader {
    const char *file;
    bool failed;
};

// Only the first schema error is printed: later ones are usually its echo.
static void fail(struct reader *r, const char *where, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail(struct reader *r, const char *where, const char *key, const char *fmt, ...)
{
    if (r->failed)
        return;
    r->failed = true;
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    cli_error("%s: %s%s%s: %s", r->file, where, *where && *key ? "." : "", key, what);
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

// A field that is absent or null; `required` makes that an error.
static json_t *field(struct reader *r, json_t *obj, const char *where, const char *key,
                     bool required)
{
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (v && !json_is_null(v))
        return v;
    if (required)
        fail(r, where, key, "missing");
    return NULL;
}

static int64_t get_int(struct reader *r, json_t *obj, const char *where, const char *key,
                       bool required, int64_t absent)
{
    json_t *v = field(r, obj, where, key, required);
    if (!v)
        return absent;
    if (json_is_integer(v))
        return json_integer_value(v);
    // Writers that go through doubles print 1e+06 or 5.0: accept integral reals.
    double d = json_is_real(v) ? json_real_value(v) : NAN;
    if (d == floor(d) && fabs(d) < 9.2e18)
        return (int64_t)d;
    fail(r, where, key, "expected an integer, got %s", type_name(v));
    return absent;
}

static double get_real(struct reader *r, json_t *obj, const char *where, const char *key,
                       double absent)
{
    json_t *v = field(r, obj, where, key, false);
    if (!v)
        return absent;
    if (json_is_number(v))
        return json_number_value(v);
    fail(r, where, key, "expected a number, got %s", type_name(v));
    return absent;
}

static const char *get_str(struct reader *r, json_t *obj, const char *where,
                           const char *key, bool required)
{
    json_t *v = field(r, obj, where, key, required);
    if (!v)
        return NULL;
    if (json_is_string(v))
        return json_string_value(v);
    fail(r, where, key, "expected a string, got %s", type_name(v));
    return NULL;
}

static bool get_bool(struct reader *r, json_t *obj, const char *where, const char *key,
                     bool absent)
{
    json_t *v = field(r, obj, where, key, false);
    if (!v)
        return absent;
    if (json_is_boolean(v))
        return json_is_true(v);
    fail(r, where, key, "expected true or false, got %s", type_name(v));
    return absent;
}

// Addresses are strings "0x..." (they do not fit a double).
static uint64_t get_addr(struct reader *r, json_t *obj, const char *where, const char *key,
                         bool required, bool *present)
{
    const char *s = get_str(r, obj, where, key, required);
    if (present)
        *present = false;
    if (!s)
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 16);
    if (strncmp(s, "0x", 2) != 0 || s[2] == '\0' || *end != '\0' || errno == ERANGE) {
        fail(r, where, key, "expected an address \"0x...\", got \"%s\"", s);
        return 0;
    }
    if (present)
        *present = true;
    return v;
}

static json_t *get_kind(struct reader *r, json_t *obj, const char *where, const char *key,
                        bool required, json_type type)
{
    json_t *v = field(r, obj, where, key, required);
    if (v && json_typeof(v) != type) {
        fail(r, where, key, "expected %s, got %s",
             type == JSON_ARRAY ? "an array" : "an object", type_name(v));
        return NULL;
    }
    return v;
}

static void load_frame(struct reader *r, json_t *j, const char *where, struct plk_frame *f)
{
    if (!json_is_object(j)) {
        fail(r, where, "", "expected a frame object, got %s", type_name(j));
        return;
    }
    f->json = j;
    f->ip = get_addr(r, j, where, "ip", true, NULL);
    f->module = get_str(r, j, where, "module", false);
    f->offset = get_addr(r, j, where, "offset", false, &f->has_offset);
    f->function = get_str(r, j, where, "function", false);
    f->function_offset = get_int(r, j, where, "function_offset", false, -1);
    f->file = get_str(r, j, where, "file", false);
    f->line = get_int(r, j, where, "line", false, 0);
}

static struct plk_frame *load_frames(struct reader *r, json_t *obj, const char *where,
                                     const char *key, size_t *n)
{
    *n = 0;
    json_t *arr = get_kind(r, obj, where, key, false, JSON_ARRAY);
    if (!arr || json_array_size(arr) == 0)
        return NULL;
    struct plk_frame *frames = calloc(json_array_size(arr), sizeof *frames);
    if (!frames) {
        fail(r, where, key, "out of memory");
        return NULL;
    }
    *n = json_array_size(arr);
    for (size_t i = 0; i < *n; i++) {
        char w[256];
        snprintf(w, sizeof w, "%s%s%s[%zu]", where, *where ? "." : "", key, i);
        load_frame(r, json_array_get(arr, i), w, &frames[i]);
    }
    return frames;
}

// waiters / holders: [{count, <ns_key>, frames}]
static struct plk_stack *load_stacks(struct reader *r, json_t *obj, const char *where,
                                     const char *key, const char *ns_key, size_t *n)
{
    *n = 0;
    json_t *arr = get_kind(r, obj, where, key, false, JSON_ARRAY);
    if (!arr || json_array_size(arr) == 0)
        return NULL;
    struct plk_stack *stacks = calloc(json_array_size(arr), sizeof *stacks);
    if (!stacks) {
        fail(r, where, key, "out of memory");
        return NULL;
    }
    *n = json_array_size(arr);
    for (size_t i = 0; i < *n; i++) {
        char w[256];
        snprintf(w, sizeof w, "%s.%s[%zu]", where, key, i);
        json_t *j = json_array_get(arr, i);
        if (!json_is_object(j)) {
            fail(r, w, "", "expected an object, got %s", type_name(j));
            continue;
        }
        stacks[i].count = get_int(r, j, w, "count", false, 0);
        stacks[i].ns = get_int(r, j, w, ns_key, false, 0);
        stacks[i].frames = load_frames(r, j, w, "frames", &stacks[i].n_frames);
    }
    return stacks;
}

static void load_wait(struct reader *r, json_t *obj, const char *where, struct plk_wait *w)
{
    char sub[256];
    snprintf(sub, sizeof sub, "%s.wait_ns", where);
    json_t *j = get_kind(r, obj, where, "wait_ns", true, JSON_OBJECT);
    w->total = get_int(r, j, sub, "total", j != NULL, 0);
    w->max = get_int(r, j, sub, "max", false, 0);
    w->avg = get_int(r, j, sub, "avg", false, 0);
    w->p50 = get_int(r, j, sub, "p50", false, 0);
    w->p90 = get_int(r, j, sub, "p90", false, 0);
    w->p99 = get_int(r, j, sub, "p99", false, 0);
}

static void load_lock(struct reader *r, json_t *j, const char *w, struct plk_lock *l)
{
    if (!json_is_object(j)) {
        fail(r, w, "", "expected a lock object, got %s", type_name(j));
        return;
    }
    l->json = j;
    l->id = get_int(r, j, w, "id", false, -1);
    l->address = get_addr(r, j, w, "address", true, NULL);
    l->name = get_str(r, j, w, "name", false);
    l->name_source = get_str(r, j, w, "name_source", false);
    if (!l->name_source)
        l->name_source = l->name ? "symbol" : "none";
    l->type = get_str(r, j, w, "type", false);
    l->engine = get_str(r, j, w, "engine", false);
    l->generation = get_int(r, j, w, "generation", false, 0);
    l->destroyed = get_bool(r, j, w, "destroyed", false);
    l->acquired = get_int(r, j, w, "acquired", false, -1);
    l->acquired_exact = get_bool(r, j, w, "acquired_exact", true);
    l->contended = get_int(r, j, w, "contended", true, 0);
    l->parked = get_int(r, j, w, "parked", false, 0);
    l->timeouts = get_int(r, j, w, "timeouts", false, 0);
    l->contention_pct = get_real(r, j, w, "contention_pct", -1);
    load_wait(r, j, w, &l->wait);
    l->site = load_frames(r, j, w, "site", &l->n_site);
    l->waiters = load_stacks(r, j, w, "waiters", "wait_ns", &l->n_waiters);
    l->holders = load_stacks(r, j, w, "holders", "delay_ns", &l->n_holders);
}

static void load_cond(struct reader *r, json_t *j, const char *w, struct plk_cond *c)
{
    if (!json_is_object(j)) {
        fail(r, w, "", "expected a condition variable object, got %s", type_name(j));
        return;
    }
    c->json = j;
    c->id = get_int(r, j, w, "id", false, -1);
    c->address = get_addr(r, j, w, "address", true, NULL);
    c->name = get_str(r, j, w, "name", false);
    c->name_source = get_str(r, j, w, "name_source", false);
    if (!c->name_source)
        c->name_source = c->name ? "symbol" : "none";
    c->generation = get_int(r, j, w, "generation", false, 0);
    c->destroyed = get_bool(r, j, w, "destroyed", false);
    c->waits = get_int(r, j, w, "waits", false, 0);
    c->timed_waits = get_int(r, j, w, "timed_waits", false, 0);
    c->timeouts = get_int(r, j, w, "timeouts", false, 0);
    c->signals = get_int(r, j, w, "signals", false, 0);
    c->broadcasts = get_int(r, j, w, "broadcasts", false, 0);
    c->wakeups = get_int(r, j, w, "wakeups", false, 0);
    load_wait(r, j, w, &c->wait);
    c->site = load_frames(r, j, w, "site", &c->n_site);
    c->waiters = load_stacks(r, j, w, "waiters", "wait_ns", &c->n_waiters);
}

static void load_module(struct reader *r, json_t *j, const char *w, struct plk_module *m)
{
    if (!json_is_object(j)) {
        fail(r, w, "", "expected a module object, got %s", type_name(j));
        return;
    }
    m->path = get_str(r, j, w, "path", true);
    m->start = get_addr(r, j, w, "start", true, NULL);
    m->end = get_addr(r, j, w, "end", false, NULL);
    m->offset = get_addr(r, j, w, "offset", false, NULL);
}

// Allocates and fills *out from the array `key` with `load` per element.
#define LOAD_ARRAY(r, root, key, required, out, n, load)                        \
    do {                                                                        \
        json_t *arr_ = get_kind(r, root, "", key, required, JSON_ARRAY);        \
        size_t len_ = arr_ ? json_array_size(arr_) : 0;                         \
        *(out) = len_ ? calloc(len_, sizeof **(out)) : NULL;                    \
        if (len_ && !*(out)) {                                                  \
            fail(r, "", key, "out of memory");                                  \
            break;                                                              \
        }                                                                       \
        *(n) = len_;                                                            \
        for (size_t i_ = 0; i_ < len_; i_++) {                                  \
            char w_[64];                                                        \
            snprintf(w_, sizeof w_, "%s[%zu]", key, i_);                        \
            load(r, json_array_get(arr_, i_), w_, &(*(out))[i_]);               \
        }                                                                       \
    } while (0)

static void load_header(struct reader *r, json_t *root, struct plk_profile *p)
{
    p->pid = get_int(r, root, "", "pid", false, -1);
    p->program = get_str(r, root, "", "program", false);
    p->engine = get_str(r, root, "", "engine", false);
    p->reason = get_str(r, root, "", "reason", false);
    p->symbolized = get_bool(r, root, "", "symbolized", false);
    p->duration_ns = get_int(r, root, "", "duration_ns", false, -1);

    json_t *s = get_kind(r, root, "", "settings", false, JSON_OBJECT);
    p->stack_depth = get_int(r, s, "settings", "stack_depth", false, -1);
    p->table_size = get_int(r, s, "settings", "table_size", false, -1);
    p->top = get_int(r, s, "settings", "top", false, -1);

    json_t *t = get_kind(r, root, "", "totals", false, JSON_OBJECT);
    p->totals.locks_tracked = get_int(r, t, "totals", "locks_tracked", false, -1);
    p->totals.conds_tracked = get_int(r, t, "totals", "conds_tracked", false, -1);
    p->totals.contended = get_int(r, t, "totals", "contended", false, -1);
    p->totals.wait_ns = get_int(r, t, "totals", "wait_ns", false, -1);
    p->totals.dropped_locks = get_int(r, t, "totals", "dropped_locks", false, 0);
    p->totals.dropped_stacks = get_int(r, t, "totals", "dropped_stacks", false, 0);

    json_t *o = get_kind(r, root, "", "other", false, JSON_OBJECT);
    p->other.contended = get_int(r, o, "other", "contended", false, 0);
    p->other.wait_ns = get_int(r, o, "other", "wait_ns", false, 0);
    p->other.cond_waits = get_int(r, o, "other", "cond_waits", false, 0);
}

// The identification fields first: a file that is not a profile at all
// gets one clear message rather than a list of missing fields.
static bool check_format(struct reader *r, json_t *root, struct plk_profile *p)
{
    if (!json_is_object(root)) {
        cli_error("%s: not a parklock profile (the JSON value is %s, not an object)",
                  r->file, type_name(root));
        return false;
    }
    const char *format = get_str(r, root, "", "format", false);
    if (!format || strcmp(format, "parklock-profile") != 0) {
        if (!r->failed)
            cli_error("%s: not a parklock profile (\"format\" is %s%s%s, "
                      "expected \"parklock-profile\")",
                      r->file, format ? "\"" : "", format ? format : "missing",
                      format ? "\"" : "");
        return false;
    }
    p->version = get_int(r, root, "", "version", true, 0);
    if (r->failed)
        return false;
    if (p->version != PLK_PROFILE_VERSION) {
        cli_error("%s: profile schema version %" PRId64 " is not supported "
                  "(this parklock reads version %d)",
                  r->file, p->version, PLK_PROFILE_VERSION);
        return false;
    }
    return true;
}

// `name` is how messages call the file ("<stdin>" for "-").
static json_t *parse_file(const char *path, const char *name)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) {
        cli_error("%s: cannot open: %m", name);
        return NULL;
    }
    json_error_t err;
    json_t *root = json_loadf(f, 0, &err);
    if (!root) {
        if (ferror(f))
            cli_error("%s: cannot read: %m", name);
        else
            // Not JSON from the first line: most likely a text or folded dump.
            cli_error("%s:%d:%d: malformed JSON: %s%s", name, err.line, err.column, err.text,
                      err.line == 1 ? " (report reads JSON profiles: PARKLOCK_FORMAT=json, "
                                      "parklock run -f json)"
                                    : "");
    }
    if (f != stdin)
        fclose(f);
    return root;
}

struct plk_profile *plk_profile_load(const char *path)
{
    const char *name = strcmp(path, "-") == 0 ? "<stdin>" : path;
    json_t *root = parse_file(path, name);
    if (!root)
        return NULL;
    struct plk_profile *p = calloc(1, sizeof *p);
    if (!p) {
        cli_error("out of memory");
        json_decref(root);
        return NULL;
    }
    p->root = root;
    p->source = name;
    struct reader r = { .file = p->source };
    if (check_format(&r, root, p)) {
        load_header(&r, root, p);
        LOAD_ARRAY(&r, root, "modules", false, &p->modules, &p->n_modules, load_module);
        LOAD_ARRAY(&r, root, "locks", true, &p->locks, &p->n_locks, load_lock);
        LOAD_ARRAY(&r, root, "conds", false, &p->conds, &p->n_conds, load_cond);
    } else {
        r.failed = true;
    }
    if (r.failed) {
        plk_profile_free(p);
        return NULL;
    }
    return p;
}

static void free_stacks(struct plk_stack *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(s[i].frames);
    free(s);
}

void plk_profile_free(struct plk_profile *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_locks; i++) {
        free(p->locks[i].site);
        free_stacks(p->locks[i].waiters, p->locks[i].n_waiters);
        free_stacks(p->locks[i].holders, p->locks[i].n_holders);
    }
    for (size_t i = 0; i < p->n_conds; i++) {
        free(p->conds[i].site);
        free_stacks(p->conds[i].waiters, p->conds[i].n_waiters);
    }
    free(p->locks);
    free(p->conds);
    free(p->modules);
    json_decref(p->root);
    free(p);
}

// Stores `value` under `key` and returns the tree's copy of the string.
static const char *set_string(json_t *obj, const char *key, const char *value)
{
    if (!obj)
        return value;
    json_object_set_new(obj, key, value ? json_string(value) : json_null());
    return value ? json_string_value(json_object_get(obj, key)) : NULL;
}

void plk_frame_set_symbol(struct plk_frame *f, const char *function, int64_t function_offset)
{
    f->function = set_string(f->json, "function", function);
    f->function_offset = function_offset;
    if (f->json)
        json_object_set_new(f->json, "function_offset", json_integer(function_offset));
}

void plk_frame_set_source(struct plk_frame *f, const char *file, int64_t line)
{
    f->file = set_string(f->json, "file", file);
    f->line = line;
    if (f->json)
        json_object_set_new(f->json, "line", json_integer(line));
}

void plk_lock_set_name(struct plk_lock *l, const char *name, const char *source)
{
    l->name = set_string(l->json, "name", name);
    l->name_source = set_string(l->json, "name_source", source);
}

void plk_cond_set_name(struct plk_cond *c, const char *name, const char *source)
{
    c->name = set_string(c->json, "name", name);
    c->name_source = set_string(c->json, "name_source", source);
}
