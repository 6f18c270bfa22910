// The JSON dump: docs/dump-format.md, schema version 1.
#include "dump_model.h"
#include "profile.h"

static void key(struct plk_out *o, const char *k)
{
    plk_out_char(o, '"');
    plk_out_str(o, k);
    plk_out_str(o, "\":");
}

static void u64_field(struct plk_out *o, const char *k, uint64_t v)
{
    key(o, k);
    plk_out_u64(o, v);
}

static void hex_field(struct plk_out *o, const char *k, uint64_t v)
{
    key(o, k);
    plk_out_char(o, '"');
    plk_out_hex(o, v);
    plk_out_char(o, '"');
}

static void str_field(struct plk_out *o, const char *k, const char *v)
{
    key(o, k);
    plk_out_json_str(o, v);
}

static void bool_field(struct plk_out *o, const char *k, bool v)
{
    key(o, k);
    plk_out_str(o, v ? "true" : "false");
}

static void frames(struct plk_out *o, const struct plk_dump_model *m,
                   const struct plk_prof_stack *s)
{
    plk_out_char(o, '[');
    for (int i = 0; s && i < s->depth; i++) {
        struct plk_dump_frame f;
        plk_dump_frame(m, s, i, &f);
        plk_out_str(o, i ? ",\n        {" : "\n        {");
        hex_field(o, "ip", f.ip);
        plk_out_char(o, ',');
        str_field(o, "module", f.module ? f.module->path : NULL);
        plk_out_char(o, ',');
        hex_field(o, "offset", f.offset);
        if (f.sym.function) {
            plk_out_char(o, ',');
            str_field(o, "function", f.sym.function);
            plk_out_char(o, ',');
            u64_field(o, "function_offset", f.sym.function_offset);
        }
        if (f.sym.file) {
            plk_out_char(o, ',');
            str_field(o, "file", f.sym.file);
            plk_out_char(o, ',');
            u64_field(o, "line", (uint64_t)f.sym.line);
        }
        plk_out_char(o, '}');
    }
    plk_out_char(o, ']');
}

// "waiters" / "holders": each stack with its count and weight.
static void stacks(struct plk_out *o, const struct plk_dump_model *m,
                   const struct plk_dump_item *it, enum plk_prof_role role,
                   const char *name, const char *weight_name)
{
    const struct plk_dump_stack *s;
    size_t n = plk_dump_stacks_of(m, it, role, &s);
    plk_out_str(o, ",\n    ");
    key(o, name);
    plk_out_char(o, '[');
    for (size_t i = 0; i < n; i++) {
        plk_out_str(o, i ? ",\n      {" : "\n      {");
        u64_field(o, "count", s[i].count);
        plk_out_char(o, ',');
        u64_field(o, weight_name, s[i].weight);
        plk_out_char(o, ',');
        key(o, "frames");
        frames(o, m, s[i].s);
        plk_out_char(o, '}');
    }
    plk_out_char(o, ']');
}

static void wait_stats(struct plk_out *o, const struct plk_prof_entry *e, uint64_t total,
                       uint64_t events)
{
    key(o, "wait_ns");
    plk_out_char(o, '{');
    u64_field(o, "total", total);
    plk_out_char(o, ',');
    u64_field(o, "max", plk_dump_load(&e->wait_max_ns));
    plk_out_char(o, ',');
    u64_field(o, "avg", events ? total / events : 0);
    plk_out_char(o, ',');
    u64_field(o, "p50", events ? plk_prof_quantile(e, 0.5) : 0);
    plk_out_char(o, ',');
    u64_field(o, "p90", events ? plk_prof_quantile(e, 0.9) : 0);
    plk_out_char(o, ',');
    u64_field(o, "p99", events ? plk_prof_quantile(e, 0.99) : 0);
    plk_out_str(o, "},\n    ");
    key(o, "histogram");
    plk_out_char(o, '[');
    bool first = true;
    for (unsigned b = 0; b < PLK_PROF_HIST_BUCKETS; b++) {
        uint64_t c = plk_dump_load(&e->hist[b]);
        if (!c)
            continue;
        plk_out_str(o, first ? "{" : ", {");
        first = false;
        u64_field(o, "le_ns", plk_prof_bucket_limit(b));
        plk_out_char(o, ',');
        u64_field(o, "count", c);
        plk_out_char(o, '}');
    }
    plk_out_char(o, ']');
}

// The fields every entry starts with: id .. destroyed.
static void entry_head(struct plk_out *o, const struct plk_dump_model *m,
                       const struct plk_dump_item *it)
{
    const struct plk_prof_entry *e = it->e;
    char name[512];
    enum plk_dump_name_source src = plk_dump_name(m, it, name, sizeof name);
    u64_field(o, "id", e->id);
    plk_out_char(o, ',');
    hex_field(o, "address", atomic_load_explicit(&e->address, memory_order_relaxed));
    plk_out_char(o, ',');
    str_field(o, "name", src == PLK_NAME_NONE ? NULL : name);
    plk_out_char(o, ',');
    str_field(o, "name_source", plk_dump_name_source_name(src));
    plk_out_str(o, ",\n    ");
    if (e->kind == PLK_PROF_MUTEX) {
        str_field(o, "type", plk_dump_type_name(e));
        plk_out_char(o, ',');
        str_field(o, "engine", plk_dump_glibc_ran(e) ? "glibc" : "parkinglot");
        plk_out_char(o, ',');
    }
    u64_field(o, "generation", e->generation);
    plk_out_char(o, ',');
    bool_field(o, "destroyed",
               atomic_load_explicit(&e->state, memory_order_relaxed) == PLK_PROF_RETIRED);
}

static void lock(struct plk_out *o, const struct plk_dump_model *m,
                 const struct plk_dump_item *it)
{
    const struct plk_prof_entry *e = it->e;
    bool counted = atomic_load_explicit(&e->acquired_counted, memory_order_relaxed);
    uint64_t acquired = plk_dump_load(&e->acquired);
    uint64_t contended = plk_dump_load(&e->contended);

    plk_out_str(o, "\n   {");
    entry_head(o, m, it);
    plk_out_str(o, ",\n    ");
    key(o, "acquired");
    if (counted)
        plk_out_u64(o, acquired);
    else
        plk_out_str(o, "null");
    plk_out_char(o, ',');
    // docs/profiler.md: exact for the mutexes parklock runs; for those glibc
    // runs the count is kept in memory glibc may also use.
    bool_field(o, "acquired_exact", counted && !plk_dump_glibc_ran(e));
    plk_out_char(o, ',');
    u64_field(o, "contended", contended);
    plk_out_char(o, ',');
    key(o, "contention_pct");
    if (counted && acquired) {
        char pct[32];
        plk_fmt_pct(pct, sizeof pct, contended, acquired, 3);
        plk_out_str(o, pct);
    } else {
        plk_out_str(o, "null");
    }
    plk_out_char(o, ',');
    u64_field(o, "parked", plk_dump_load(&e->parked));
    plk_out_char(o, ',');
    u64_field(o, "timeouts", plk_dump_load(&e->timeouts));
    plk_out_str(o, ",\n    ");
    wait_stats(o, e, it->wait_ns, contended);
    plk_out_str(o, ",\n    ");
    key(o, "site");
    frames(o, m, plk_dump_site(it));
    stacks(o, m, it, PLK_PROF_WAITER, "waiters", "wait_ns");
    stacks(o, m, it, PLK_PROF_HOLDER, "holders", "delay_ns");
    plk_out_char(o, '}');
}

static void cond(struct plk_out *o, const struct plk_dump_model *m,
                 const struct plk_dump_item *it)
{
    const struct plk_prof_entry *e = it->e;
    uint64_t waits = plk_dump_load(&e->waits);
    plk_out_str(o, "\n   {");
    entry_head(o, m, it);
    plk_out_str(o, ",\n    ");
    u64_field(o, "waits", waits);
    plk_out_char(o, ',');
    u64_field(o, "timed_waits", plk_dump_load(&e->timed_waits));
    plk_out_char(o, ',');
    u64_field(o, "timeouts", plk_dump_load(&e->timeouts));
    plk_out_char(o, ',');
    u64_field(o, "signals", plk_dump_load(&e->signals));
    plk_out_char(o, ',');
    u64_field(o, "broadcasts", plk_dump_load(&e->broadcasts));
    plk_out_char(o, ',');
    u64_field(o, "wakeups", plk_dump_load(&e->wakeups));
    plk_out_str(o, ",\n    ");
    wait_stats(o, e, it->wait_ns, waits);
    plk_out_str(o, ",\n    ");
    key(o, "site");
    frames(o, m, plk_dump_site(it));
    stacks(o, m, it, PLK_PROF_WAITER, "waiters", "wait_ns");
    plk_out_char(o, '}');
}

void plk_dump_write_json(struct plk_out *o, const struct plk_dump_model *m)
{
    const struct plk_profile_settings *st = &plk_profile_settings;
    uint64_t contended = plk_dump_load(&m->other->contended);
    uint64_t wait = plk_dump_load(&m->other->wait_total_ns);
    for (size_t i = 0; i < m->nlocks; i++) {
        contended += plk_dump_load(&m->locks[i].e->contended);
        wait += m->locks[i].wait_ns;
    }

    plk_out_str(o, "{");
    str_field(o, "format", "parklock-profile");
    plk_out_char(o, ',');
    u64_field(o, "version", 1);
    plk_out_str(o, ",\n ");
    u64_field(o, "pid", (uint64_t)m->pid);
    plk_out_char(o, ',');
    str_field(o, "program", m->program[0] ? m->program : NULL);
    plk_out_char(o, ',');
    str_field(o, "engine", plk_profile_engine_name());
    plk_out_char(o, ',');
    str_field(o, "reason", plk_dump_reason_name(m->reason));
    plk_out_char(o, ',');
    bool_field(o, "symbolized", m->symbolized);
    plk_out_char(o, ',');
    u64_field(o, "duration_ns", m->duration_ns);
    plk_out_str(o, ",\n ");
    key(o, "settings");
    plk_out_char(o, '{');
    u64_field(o, "stack_depth", (uint64_t)plk_prof_stack_depth());
    plk_out_char(o, ',');
    u64_field(o, "table_size", st->table_size);
    plk_out_char(o, ',');
    u64_field(o, "top", (uint64_t)st->top);
    plk_out_str(o, "},\n ");
    key(o, "totals");
    plk_out_char(o, '{');
    u64_field(o, "locks_tracked", m->nlocks);
    plk_out_char(o, ',');
    u64_field(o, "conds_tracked", m->nconds);
    plk_out_char(o, ',');
    u64_field(o, "contended", contended);
    plk_out_char(o, ',');
    u64_field(o, "wait_ns", wait);
    plk_out_char(o, ',');
    u64_field(o, "dropped_locks", m->totals.dropped_entries);
    plk_out_char(o, ',');
    u64_field(o, "dropped_stacks", m->totals.dropped_stacks);
    plk_out_str(o, "},\n ");
    key(o, "other");
    plk_out_char(o, '{');
    u64_field(o, "contended", plk_dump_load(&m->other->contended));
    plk_out_char(o, ',');
    u64_field(o, "wait_ns", plk_dump_load(&m->other->wait_total_ns));
    plk_out_char(o, ',');
    u64_field(o, "cond_waits", plk_dump_load(&m->other->waits));
    plk_out_str(o, "},\n ");

    key(o, "modules");
    plk_out_char(o, '[');
    for (size_t i = 0; i < plk_modules_count(); i++) {
        const struct plk_module *mod = plk_module_at(i);
        plk_out_str(o, i ? ",\n  {" : "\n  {");
        str_field(o, "path", mod->path);
        plk_out_char(o, ',');
        hex_field(o, "start", mod->start);
        plk_out_char(o, ',');
        hex_field(o, "end", mod->end);
        plk_out_char(o, ',');
        hex_field(o, "offset", mod->offset);
        plk_out_char(o, '}');
    }
    plk_out_str(o, "],\n ");

    key(o, "locks");
    plk_out_char(o, '[');
    for (size_t i = 0; i < m->nlocks; i++) {
        if (i)
            plk_out_char(o, ',');
        lock(o, m, &m->locks[i]);
    }
    plk_out_str(o, "],\n ");
    key(o, "conds");
    plk_out_char(o, '[');
    for (size_t i = 0; i < m->nconds; i++) {
        if (i)
            plk_out_char(o, ',');
        cond(o, m, &m->conds[i]);
    }
    plk_out_str(o, "]}\n");
}
