#include "cli_locktable.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char *const plk_sort_names[] = { "wait", "contended", "max", "p99", "acquired", NULL };

bool plk_runtime_module(const char *module)
{
    if (!module)
        return false;
    const char *base = cli_basename(module);
    return strncmp(base, "libc.so", 7) == 0 || strncmp(base, "libc-", 5) == 0 ||
           strncmp(base, "libpthread", 10) == 0 || strncmp(base, "libparklock", 11) == 0;
}

void plk_lock_key(const struct plk_lock *l, char *buf, size_t size)
{
    if (l->name) {
        snprintf(buf, size, "%s", l->name);
        return;
    }
    for (size_t i = 0; i < l->n_site; i++) {
        const struct plk_frame *f = &l->site[i];
        if (plk_runtime_module(f->module))
            continue;
        if (f->function)
            snprintf(buf, size, "%s", f->function);
        else if (f->module && f->has_offset)
            snprintf(buf, size, "%s+0x%" PRIx64, cli_basename(f->module), f->offset);
        else
            break;
        return;
    }
    snprintf(buf, size, "lock@0x%" PRIx64, l->address);
}

void plk_frame_label(const struct plk_frame *f, char *buf, size_t size)
{
    int n;
    if (f->function && f->function_offset > 0)
        n = snprintf(buf, size, "%s+0x%" PRIx64, f->function, (uint64_t)f->function_offset);
    else if (f->function)
        n = snprintf(buf, size, "%s", f->function);
    else if (f->module && f->has_offset)
        n = snprintf(buf, size, "%s+0x%" PRIx64, cli_basename(f->module), f->offset);
    else
        n = snprintf(buf, size, "0x%" PRIx64, f->ip);
    if (n < 0 || (size_t)n >= size)
        return;
    if (f->file && f->line > 0)
        snprintf(buf + n, size - (size_t)n, " (%s:%" PRId64 ")", f->file, f->line);
    else if (f->function && f->module)
        snprintf(buf + n, size - (size_t)n, " [%s]", cli_basename(f->module));
}

static struct plk_lock_row *find_row(const struct plk_lock_table *t, const char *key)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->rows[i].key, key) == 0)
            return &t->rows[i];
    return NULL;
}

const struct plk_lock_row *plk_lock_table_find(const struct plk_lock_table *t, const char *key)
{
    return find_row(t, key);
}

static struct plk_lock_row *new_row(struct plk_lock_table *t, const char *key)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 16;
        struct plk_lock_row *rows = realloc(t->rows, cap * sizeof *rows);
        if (!rows)
            return NULL;
        t->rows = rows;
        t->cap = cap;
    }
    struct plk_lock_row *r = &t->rows[t->n];
    memset(r, 0, sizeof *r);
    r->key = strdup(key);
    if (!r->key)
        return NULL;
    r->acquired = -1;
    t->n++;
    return r;
}

static void add_lock(struct plk_lock_row *r, const struct plk_lock *l)
{
    r->n_locks++;
    if (l->acquired >= 0)
        r->acquired = (r->acquired < 0 ? 0 : r->acquired) + l->acquired;
    r->contended += l->contended;
    r->parked += l->parked;
    r->timeouts += l->timeouts;
    r->wait_total += l->wait.total;
    if (l->wait.max > r->wait_max)
        r->wait_max = l->wait.max;
    if (l->wait.p99 > r->wait_p99)
        r->wait_p99 = l->wait.p99;
}

bool plk_lock_table_add(struct plk_lock_table *t, const struct plk_profile *p)
{
    for (size_t i = 0; i < p->n_locks; i++) {
        char key[512];
        plk_lock_key(&p->locks[i], key, sizeof key);
        struct plk_lock_row *r = find_row(t, key);
        if (!r && !(r = new_row(t, key)))
            return false;
        add_lock(r, &p->locks[i]);
    }
    return true;
}

static int64_t row_value(const struct plk_lock_row *r, enum plk_sort by)
{
    switch (by) {
    case PLK_SORT_WAIT: return r->wait_total;
    case PLK_SORT_CONTENDED: return r->contended;
    case PLK_SORT_MAX: return r->wait_max;
    case PLK_SORT_P99: return r->wait_p99;
    case PLK_SORT_ACQUIRED: return r->acquired;
    }
    return 0;
}

int64_t plk_lock_sort_value(const struct plk_lock *l, enum plk_sort by)
{
    switch (by) {
    case PLK_SORT_WAIT: return l->wait.total;
    case PLK_SORT_CONTENDED: return l->contended;
    case PLK_SORT_MAX: return l->wait.max;
    case PLK_SORT_P99: return l->wait.p99;
    case PLK_SORT_ACQUIRED: return l->acquired;
    }
    return 0;
}

static enum plk_sort sort_by;

// Descending by the chosen value, then by total wait, then by key: the
// order must not depend on qsort's whims, tests compare it.
static int compare_rows(const void *a, const void *b)
{
    const struct plk_lock_row *x = a, *y = b;
    int64_t vx = row_value(x, sort_by), vy = row_value(y, sort_by);
    if (vx != vy)
        return vx > vy ? -1 : 1;
    if (x->wait_total != y->wait_total)
        return x->wait_total > y->wait_total ? -1 : 1;
    return strcmp(x->key, y->key);
}

void plk_lock_table_sort(struct plk_lock_table *t, enum plk_sort by)
{
    sort_by = by;
    if (t->n)
        qsort(t->rows, t->n, sizeof *t->rows, compare_rows);
}

void plk_lock_table_free(struct plk_lock_table *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->rows[i].key);
    free(t->rows);
    memset(t, 0, sizeof *t);
}
