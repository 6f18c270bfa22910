// Folded stacks (docs/dump-format.md): one line per stack, outermost frame
// first, frames separated by ';', then the weight in ns. speedscope and
// flamegraph.pl read it as is.
#include "dump_model.h"

// A frame's text may hold neither the separator nor a line break.
static void frame_text(struct plk_out *o, const char *s)
{
    for (; *s; s++) {
        char c = *s;
        plk_out_char(o, c == ';' || c == '\n' || c == '\r' ? '_' : c);
    }
}

static void frame(struct plk_out *o, const struct plk_dump_frame *f)
{
    if (f->sym.function) {
        frame_text(o, f->sym.function);
        return;
    }
    if (f->module)
        frame_text(o, plk_module_basename(f->module));
    else
        plk_out_str(o, "?");
    plk_out_char(o, '+');
    plk_out_hex(o, f->offset);
}

static void line_end(struct plk_out *o, const char *tag, const char *label, uint64_t weight)
{
    plk_out_str(o, tag);
    frame_text(o, label);
    plk_out_char(o, ' ');
    plk_out_u64(o, weight);
    plk_out_char(o, '\n');
}

// One line per stack of `role`. For waiters, the wait no stack accounts for
// (waits that never slept record none; PARKLOCK_STACK_DEPTH=0 records none
// at all; full stack table) follows as a line of its own without frames, so
// that the [wait] and [cond] lines add up to the total wait.
static void stack_lines(struct plk_out *o, const struct plk_dump_model *m,
                        const struct plk_dump_item *it, enum plk_prof_role role,
                        const char *tag, const char *label)
{
    const struct plk_dump_stack *s;
    size_t n = plk_dump_stacks_of(m, it, role, &s);
    uint64_t stacked = 0;
    for (size_t i = 0; i < n; i++)
        stacked += s[i].weight;
    if (role == PLK_PROF_WAITER && it->wait_ns > stacked)
        line_end(o, tag, label, it->wait_ns - stacked);
    for (size_t i = 0; i < n; i++) {
        if (s[i].weight == 0)
            continue; // adds nothing to a flame graph
        for (int k = s[i].s->depth; k-- > 0;) {
            struct plk_dump_frame f;
            plk_dump_frame(m, s[i].s, k, &f);
            frame(o, &f);
            plk_out_char(o, ';');
        }
        line_end(o, tag, label, s[i].weight);
    }
}

void plk_dump_write_folded(struct plk_out *o, const struct plk_dump_model *m)
{
    char label[512];
    for (size_t i = 0; i < m->nlocks; i++) {
        const struct plk_dump_item *it = &m->locks[i];
        if (it->n == 0 && it->wait_ns == 0)
            continue;
        plk_dump_label(m, it, label, sizeof label);
        stack_lines(o, m, it, PLK_PROF_WAITER, "[wait] ", label);
        stack_lines(o, m, it, PLK_PROF_HOLDER, "[holder] ", label);
    }
    for (size_t i = 0; i < m->nconds; i++) {
        const struct plk_dump_item *it = &m->conds[i];
        if (it->n == 0 && it->wait_ns == 0)
            continue;
        plk_dump_label(m, it, label, sizeof label);
        stack_lines(o, m, it, PLK_PROF_WAITER, "[cond] ", label);
    }
}
