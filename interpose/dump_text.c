// The text report, for people: a header, a summary, the top mutexes by total
// wait in a table, their heaviest waiter and holder stacks, then the
// condition variables. Its layout is not a format: parse the JSON instead.
#include <string.h>

#include "dump_model.h"
#include "profile.h"

#define TEXT_STACKS 3  // waiter and holder stacks shown per lock
#define TEXT_FRAMES 10 // frames shown per stack

static const char *reason_text(enum plk_dump_reason r)
{
    switch (r) {
    case PLK_DUMP_EXIT:
        return "at exit";
    case PLK_DUMP_API:
        return "on parklock_dump()";
    case PLK_DUMP_SIGNAL:
        return "on signal";
    default:
        return "on fatal signal";
    }
}

static void cell_u64(struct plk_out *o, uint64_t v, int width)
{
    char b[24];
    plk_fmt_u64(b, sizeof b, v);
    plk_out_pad(o, b, width);
}

static void cell_duration(struct plk_out *o, uint64_t ns, int width)
{
    char b[32];
    plk_fmt_duration(b, sizeof b, ns);
    plk_out_pad(o, b, width);
}

static void duration(struct plk_out *o, uint64_t ns)
{
    cell_duration(o, ns, 0);
}

// "1 lock", "2 locks".
static void count(struct plk_out *o, uint64_t n, const char *one, const char *many)
{
    plk_out_u64(o, n);
    plk_out_char(o, ' ');
    plk_out_str(o, n == 1 ? one : many);
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static void frame_line(struct plk_out *o, const struct plk_dump_frame *f)
{
    plk_out_str(o, "        ");
    if (f->sym.function) {
        plk_out_str(o, f->sym.function);
        plk_out_char(o, '+');
        plk_out_hex(o, f->sym.function_offset);
        if (f->sym.file) {
            plk_out_str(o, " (");
            plk_out_str(o, base_name(f->sym.file));
            plk_out_char(o, ':');
            plk_out_u64(o, (uint64_t)f->sym.line);
            plk_out_char(o, ')');
        } else if (f->module) {
            plk_out_str(o, " in ");
            plk_out_str(o, plk_module_basename(f->module));
        }
    } else {
        plk_out_str(o, f->module ? plk_module_basename(f->module) : "?");
        plk_out_char(o, '+');
        plk_out_hex(o, f->offset);
    }
    plk_out_char(o, '\n');
}

static void stack_block(struct plk_out *o, const struct plk_dump_model *m,
                        const struct plk_dump_item *it, enum plk_prof_role role)
{
    const struct plk_dump_stack *s;
    size_t n = plk_dump_stacks_of(m, it, role, &s);
    if (n == 0)
        return;
    plk_out_str(o, role == PLK_PROF_WAITER ? "    waiting threads"
                                           : "    holders that made threads wait");
    plk_out_str(o, " (");
    if (n > TEXT_STACKS) {
        plk_out_str(o, "top ");
        plk_out_u64(o, TEXT_STACKS);
        plk_out_str(o, " of ");
    }
    count(o, n, "stack", "stacks");
    plk_out_str(o, "):\n");
    for (size_t i = 0; i < n && i < TEXT_STACKS; i++) {
        plk_out_str(o, "      ");
        duration(o, s[i].weight);
        plk_out_str(o, role == PLK_PROF_WAITER ? " waited, " : " of waits caused, ");
        count(o, s[i].count, "time", "times");
        plk_out_str(o, ":\n");
        int depth = s[i].s->depth;
        for (int k = 0; k < depth && k < TEXT_FRAMES; k++) {
            struct plk_dump_frame f;
            plk_dump_frame(m, s[i].s, k, &f);
            frame_line(o, &f);
        }
        if (depth > TEXT_FRAMES) {
            plk_out_str(o, "        ... ");
            plk_out_u64(o, (uint64_t)(depth - TEXT_FRAMES));
            plk_out_str(o, " more frames\n");
        }
    }
}

static bool shown(const struct plk_dump_item *it)
{
    return plk_dump_load(&it->e->contended) > 0 || plk_dump_load(&it->e->timeouts) > 0;
}

static void locks(struct plk_out *o, const struct plk_dump_model *m, size_t top)
{
    size_t ncontended = 0;
    for (size_t i = 0; i < m->nlocks; i++)
        ncontended += shown(&m->locks[i]);
    if (ncontended == 0) {
        plk_out_str(o, "\nno mutex contention\n");
        return;
    }
    size_t n = ncontended < top ? ncontended : top;
    plk_out_str(o, "\nmutexes by total wait");
    if (n < ncontended) {
        plk_out_str(o, " (top ");
        plk_out_u64(o, n);
        plk_out_str(o, " of ");
        plk_out_u64(o, ncontended);
        plk_out_str(o, " contended)");
    }
    plk_out_str(o, ":\n\n");
    plk_out_str(o, "   #    acquired   contended  contention      total        avg        p99"
                   "        max  timeouts  type        lock\n");
    char label[512];
    // Contended mutexes come first: the list is sorted by total wait and
    // only contended ones have any.
    for (size_t i = 0, shown_n = 0; i < m->nlocks && shown_n < n; i++) {
        const struct plk_dump_item *it = &m->locks[i];
        if (!shown(it))
            continue;
        shown_n++;
        const struct plk_prof_entry *e = it->e;
        bool counted = atomic_load_explicit(&e->acquired_counted, memory_order_relaxed);
        uint64_t acquired = plk_dump_load(&e->acquired);
        uint64_t contended = plk_dump_load(&e->contended);
        cell_u64(o, shown_n, 4);
        if (counted)
            cell_u64(o, acquired, 12);
        else
            plk_out_pad(o, "-", 12);
        cell_u64(o, contended, 12);
        char pct[32] = "-";
        if (counted && acquired) {
            plk_fmt_pct(pct, sizeof pct, contended, acquired, 2);
            plk_fmt_cat(pct, sizeof pct, "%", NULL);
        }
        plk_out_pad(o, pct, 12);
        cell_duration(o, it->wait_ns, 11);
        cell_duration(o, contended ? it->wait_ns / contended : 0, 11);
        cell_duration(o, contended ? plk_prof_quantile(e, 0.99) : 0, 11);
        cell_duration(o, plk_dump_load(&e->wait_max_ns), 11);
        cell_u64(o, plk_dump_load(&e->timeouts), 10);
        plk_out_str(o, "  ");
        plk_out_pad(o, plk_dump_type_name(e), -10);
        plk_out_str(o, "  ");
        plk_dump_label(m, it, label, sizeof label);
        plk_out_str(o, label);
        plk_out_char(o, '\n');
    }
    for (size_t i = 0, shown_n = 0; i < m->nlocks && shown_n < n; i++) {
        const struct plk_dump_item *it = &m->locks[i];
        if (!shown(it))
            continue;
        shown_n++;
        plk_out_str(o, "\n#");
        plk_out_u64(o, shown_n);
        plk_out_char(o, ' ');
        plk_dump_label(m, it, label, sizeof label);
        plk_out_str(o, label);
        plk_out_str(o, " (");
        plk_out_hex(o, atomic_load_explicit(&it->e->address, memory_order_relaxed));
        if (it->e->generation) {
            plk_out_str(o, ", generation ");
            plk_out_u64(o, it->e->generation);
        }
        if (atomic_load_explicit(&it->e->state, memory_order_relaxed) == PLK_PROF_RETIRED)
            plk_out_str(o, ", destroyed");
        plk_out_str(o, "): ");
        duration(o, it->wait_ns);
        plk_out_str(o, " waited in ");
        count(o, plk_dump_load(&it->e->contended), "contended acquisition",
              "contended acquisitions");
        plk_out_char(o, '\n');
        stack_block(o, m, it, PLK_PROF_WAITER);
        stack_block(o, m, it, PLK_PROF_HOLDER);
    }
}

static void conds(struct plk_out *o, const struct plk_dump_model *m, size_t top)
{
    size_t nused = 0;
    for (size_t i = 0; i < m->nconds; i++)
        nused += plk_dump_load(&m->conds[i].e->waits) > 0;
    if (nused == 0)
        return;
    size_t n = nused < top ? nused : top;
    plk_out_str(o, "\ncondition variables by wait time");
    if (n < nused) {
        plk_out_str(o, " (top ");
        plk_out_u64(o, n);
        plk_out_str(o, " of ");
        plk_out_u64(o, nused);
        plk_out_char(o, ')');
    }
    plk_out_str(o, ":\n\n");
    plk_out_str(o, "   #       waits     signals  broadcasts     wakeups  timeouts      total"
                   "        avg        p99        max  cond\n");
    char label[512];
    for (size_t i = 0, shown_n = 0; i < m->nconds && shown_n < n; i++) {
        const struct plk_dump_item *it = &m->conds[i];
        const struct plk_prof_entry *e = it->e;
        uint64_t waits = plk_dump_load(&e->waits);
        if (!waits)
            continue;
        shown_n++;
        cell_u64(o, shown_n, 4);
        cell_u64(o, waits, 12);
        cell_u64(o, plk_dump_load(&e->signals), 12);
        cell_u64(o, plk_dump_load(&e->broadcasts), 12);
        cell_u64(o, plk_dump_load(&e->wakeups), 12);
        cell_u64(o, plk_dump_load(&e->timeouts), 10);
        cell_duration(o, it->wait_ns, 11);
        cell_duration(o, it->wait_ns / waits, 11);
        cell_duration(o, plk_prof_quantile(e, 0.99), 11);
        cell_duration(o, plk_dump_load(&e->wait_max_ns), 11);
        plk_out_str(o, "  ");
        plk_dump_label(m, it, label, sizeof label);
        plk_out_str(o, label);
        plk_out_char(o, '\n');
    }
}

void plk_dump_write_text(struct plk_out *o, const struct plk_dump_model *m)
{
    uint64_t contended = plk_dump_load(&m->other->contended);
    uint64_t wait = plk_dump_load(&m->other->wait_total_ns);
    size_t locks_contended = 0;
    bool cond_waits = plk_dump_load(&m->other->waits) > 0;
    for (size_t i = 0; i < m->nlocks; i++) {
        contended += plk_dump_load(&m->locks[i].e->contended);
        wait += m->locks[i].wait_ns;
        locks_contended += shown(&m->locks[i]);
    }
    for (size_t i = 0; i < m->nconds; i++)
        cond_waits |= plk_dump_load(&m->conds[i].e->waits) > 0;

    if (contended == 0 && !cond_waits && m->totals.dropped_entries == 0) {
        plk_out_str(o, "parklock: no lock contention (");
        plk_out_u64(o, m->nlocks);
        plk_out_str(o, m->nlocks == 1 ? " lock, " : " locks, ");
        plk_out_u64(o, m->nconds);
        plk_out_str(o, m->nconds == 1 ? " cond seen)\n" : " conds seen)\n");
        return;
    }

    plk_out_str(o, "parklock: contention profile of ");
    plk_out_str(o, m->program[0] ? m->program : "?");
    plk_out_str(o, " (pid ");
    plk_out_u64(o, (uint64_t)m->pid);
    plk_out_str(o, "), engine ");
    plk_out_str(o, plk_profile_engine_name());
    plk_out_str(o, ", ");
    duration(o, m->duration_ns);
    plk_out_char(o, ' ');
    plk_out_str(o, reason_text(m->reason));
    if (!m->symbolized)
        plk_out_str(o, " (raw frames: module+offset; PARKLOCK_FORMAT=json and "
                       "`parklock report` name them)");
    plk_out_str(o, "\nparklock: ");
    count(o, m->nlocks, "lock", "locks");
    plk_out_str(o, " tracked, ");
    plk_out_u64(o, locks_contended);
    plk_out_str(o, " contended; ");
    count(o, contended, "contended acquisition", "contended acquisitions");
    plk_out_str(o, ", ");
    duration(o, wait);
    plk_out_str(o, " total wait; ");
    count(o, m->nconds, "cond", "conds");
    plk_out_str(o, "; dropped: ");
    count(o, m->totals.dropped_entries, "event", "events");
    plk_out_str(o, ", ");
    count(o, m->totals.dropped_stacks, "stack", "stacks");
    plk_out_char(o, '\n');
    if (plk_dump_load(&m->other->contended) || plk_dump_load(&m->other->waits)) {
        plk_out_str(o, "parklock: locks beyond the table (PARKLOCK_TABLE_SIZE): ");
        plk_out_u64(o, plk_dump_load(&m->other->contended));
        plk_out_str(o, " contended, ");
        duration(o, plk_dump_load(&m->other->wait_total_ns));
        plk_out_str(o, " waited, ");
        plk_out_u64(o, plk_dump_load(&m->other->waits));
        plk_out_str(o, " cond waits\n");
    }
    size_t top = plk_profile_settings.top > 0 ? (size_t)plk_profile_settings.top : 10;
    locks(o, m, top);
    conds(o, m, top);
}
