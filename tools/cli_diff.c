// `parklock diff A B`: two profiles side by side, typically the same program
// on --engine glibc and on parkinglot. Locks are matched by name (symbol or
// site, see cli_locktable.h), never by address: addresses change per run.
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_locktable.h"
#include "cli_profile.h"
#include "cli_symbolize.h"

static const char diff_help[] =
    "Usage: parklock diff [OPTIONS] A B\n"
    "\n"
    "Compare two JSON profiles (typically one run with --engine glibc and one\n"
    "with parkinglot): per lock, contended acquisitions and total wait in A and\n"
    "in B and the change from A to B. Locks are matched by name (the variable,\n"
    "else the function that first contended them), not by address; locks of\n"
    "the same name are summed (the row says how many).\n"
    "\n"
    "Options:\n"
    "  -n, --top N        rows shown, by the larger total wait; 0: all (default 20)\n"
    "  -f, --format FMT   text (default) or json\n"
    "      --no-symbols   do not read module files to name locks\n"
    "  -h, --help         this help\n"
    "\n"
    "Exit status: 0 done, 1 a profile unreadable or malformed, 2 usage error.\n";

struct diff_options {
    long top;
    bool json, no_symbols;
    const char *files[2];
};

struct side {
    struct plk_profile *p;
    struct plk_lock_table t;
};

struct diff_row {
    const char *key;
    const struct plk_lock_row *r[2]; // NULL: not in that profile
};

static int64_t row_wait(const struct diff_row *d, int i)
{
    return d->r[i] ? d->r[i]->wait_total : 0;
}

static int64_t larger_wait(const struct diff_row *d)
{
    int64_t a = row_wait(d, 0), b = row_wait(d, 1);
    return a > b ? a : b;
}

static int compare_diff_rows(const void *x, const void *y)
{
    const struct diff_row *a = x, *b = y;
    int64_t wa = larger_wait(a), wb = larger_wait(b);
    if (wa != wb)
        return wa > wb ? -1 : 1;
    int64_t ca = (a->r[0] ? a->r[0]->contended : 0) + (a->r[1] ? a->r[1]->contended : 0);
    int64_t cb = (b->r[0] ? b->r[0]->contended : 0) + (b->r[1] ? b->r[1]->contended : 0);
    if (ca != cb)
        return ca > cb ? -1 : 1;
    return strcmp(a->key, b->key);
}

// The union of both tables' keys, A's order first.
static struct diff_row *match_rows(const struct side s[2], size_t *n)
{
    struct diff_row *rows = calloc(s[0].t.n + s[1].t.n + 1, sizeof *rows);
    if (!rows)
        return NULL;
    *n = 0;
    for (size_t i = 0; i < s[0].t.n; i++) {
        const struct plk_lock_row *a = &s[0].t.rows[i];
        rows[(*n)++] = (struct diff_row){ a->key, { a, plk_lock_table_find(&s[1].t, a->key) } };
    }
    for (size_t i = 0; i < s[1].t.n; i++) {
        const struct plk_lock_row *b = &s[1].t.rows[i];
        if (!plk_lock_table_find(&s[0].t, b->key))
            rows[(*n)++] = (struct diff_row){ b->key, { NULL, b } };
    }
    qsort(rows, *n, sizeof *rows, compare_diff_rows);
    return rows;
}

static bool contended_anywhere(const struct diff_row *d)
{
    return (d->r[0] && d->r[0]->contended) || (d->r[1] && d->r[1]->contended);
}

// ---- text ----------------------------------------------------------------

static void change(bool in_a, int64_t a, bool in_b, int64_t b, char *buf, size_t size)
{
    if (!in_a)
        snprintf(buf, size, "only B");
    else if (!in_b)
        snprintf(buf, size, "only A");
    else if (a == b)
        snprintf(buf, size, "=");
    else if (a == 0)
        snprintf(buf, size, "from 0");
    else
        snprintf(buf, size, "%+.1f%%", 100.0 * ((double)b - (double)a) / (double)a);
}

static void count_cell(const struct plk_lock_row *r, char *buf, size_t size)
{
    if (r)
        snprintf(buf, size, "%" PRId64, r->contended);
    else
        snprintf(buf, size, "-");
}

static void wait_cell(const struct plk_lock_row *r, char *buf, size_t size)
{
    if (r)
        cli_format_ns((double)r->wait_total, buf, size);
    else
        snprintf(buf, size, "-");
}

static void print_side(const char *tag, const char *file, const struct plk_profile *p)
{
    char b[32] = "?";
    if (p->duration_ns >= 0)
        cli_format_ns((double)p->duration_ns, b, sizeof b);
    printf("%s: %s: %s", tag, file, p->program ? p->program : "(program unknown)");
    if (p->pid >= 0)
        printf(" (pid %" PRId64 ")", p->pid);
    printf(", engine %s, ran %s\n", p->engine ? p->engine : "?", b);
}

static void print_row(const char *label, int w, const struct plk_lock_row *a,
                      const struct plk_lock_row *b)
{
    char ca[24], cb[24], wa[32], wb[32], dc[24], dw[24];
    count_cell(a, ca, sizeof ca);
    count_cell(b, cb, sizeof cb);
    wait_cell(a, wa, sizeof wa);
    wait_cell(b, wb, sizeof wb);
    change(a, a ? a->contended : 0, b, b ? b->contended : 0, dc, sizeof dc);
    change(a, a ? a->wait_total : 0, b, b ? b->wait_total : 0, dw, sizeof dw);
    printf("%-*.*s %12s %12s %9s %11s %11s %9s\n", w, w, label, ca, cb, dc, wa, wb, dw);
}

// Totals from the dumps' own totals (they include untracked locks), else
// summed over the locks.
static struct plk_lock_row total_row(const struct side *s)
{
    struct plk_lock_row r = { .contended = s->p->totals.contended,
                              .wait_total = s->p->totals.wait_ns };
    if (r.contended < 0 || r.wait_total < 0) {
        r.contended = r.wait_total = 0;
        for (size_t i = 0; i < s->t.n; i++) {
            r.contended += s->t.rows[i].contended;
            r.wait_total += s->t.rows[i].wait_total;
        }
    }
    return r;
}

static void print_text(const struct side s[2], const struct diff_options *o,
                       const struct diff_row *rows, size_t n)
{
    print_side("A", o->files[0], s[0].p);
    print_side("B", o->files[1], s[1].p);
    int w = 24;
    size_t shown = 0, quiet = 0;
    printf("\n%-*s %12s %12s %9s %11s %11s %9s\n", w, "lock", "contended A", "contended B",
           "change", "wait A", "wait B", "change");
    for (size_t i = 0; i < n; i++) {
        if (!contended_anywhere(&rows[i])) {
            quiet++;
            continue;
        }
        if (o->top && shown == (size_t)o->top)
            continue;
        shown++;
        char label[600];
        size_t locks = rows[i].r[0] ? rows[i].r[0]->n_locks : rows[i].r[1]->n_locks;
        if (locks > 1)
            snprintf(label, sizeof label, "%s (%zu locks)", rows[i].key, locks);
        else
            snprintf(label, sizeof label, "%s", rows[i].key);
        print_row(label, w, rows[i].r[0], rows[i].r[1]);
    }
    struct plk_lock_row ta = total_row(&s[0]), tb = total_row(&s[1]);
    print_row("total", w, &ta, &tb);
    size_t contended = n - quiet;
    if (shown < contended)
        printf("(%zu more contended locks: --top 0 shows all)\n", contended - shown);
    if (quiet)
        printf("(%zu lock%s without contention in either profile not shown)\n", quiet,
               quiet == 1 ? "" : "s");
}

// ---- json ----------------------------------------------------------------

static json_t *side_json(const char *file, const struct plk_profile *p)
{
    return json_pack("{s:s, s:s?, s:I, s:s?, s:I}", "file", file, "program", p->program,
                     "pid", (json_int_t)p->pid, "engine", p->engine, "duration_ns",
                     (json_int_t)p->duration_ns);
}

static json_t *row_side_json(const struct plk_lock_row *r)
{
    if (!r)
        return json_null();
    return json_pack("{s:I, s:I, s:I, s:I}", "locks", (json_int_t)r->n_locks, "contended",
                     (json_int_t)r->contended, "wait_ns", (json_int_t)r->wait_total,
                     "max_ns", (json_int_t)r->wait_max);
}

static int print_json(const struct side s[2], const struct diff_options *o,
                      const struct diff_row *rows, size_t n)
{
    json_t *locks = json_array();
    size_t shown = 0;
    for (size_t i = 0; i < n && (!o->top || shown < (size_t)o->top); i++) {
        if (!contended_anywhere(&rows[i]))
            continue;
        shown++;
        json_array_append_new(locks, json_pack("{s:s, s:o, s:o}", "key", rows[i].key, "a",
                                               row_side_json(rows[i].r[0]), "b",
                                               row_side_json(rows[i].r[1])));
    }
    json_t *root = json_pack("{s:s, s:o, s:o, s:o}", "format", "parklock-diff", "a",
                             side_json(o->files[0], s[0].p), "b",
                             side_json(o->files[1], s[1].p), "locks", locks);
    int rc = root ? json_dumpf(root, stdout, JSON_INDENT(2)) : -1;
    putchar('\n');
    json_decref(root);
    return rc == 0 ? CLI_OK : CLI_FAIL;
}

// ---- command -------------------------------------------------------------

enum { OPT_NO_SYMBOLS = 256 };

static const struct option diff_long_options[] = {
    { "top", required_argument, NULL, 'n' },
    { "format", required_argument, NULL, 'f' },
    { "no-symbols", no_argument, NULL, OPT_NO_SYMBOLS },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

static const char *const diff_formats[] = { "text", "json", NULL };

static bool take_option(int c, const char *arg, void *ctx)
{
    struct diff_options *o = ctx;
    int index;
    switch (c) {
    case 'n':
        return cli_parse_int("--top", arg, 0, INT_MAX, &o->top);
    case 'f':
        if (!cli_parse_choice("--format", arg, diff_formats, &index))
            return false;
        o->json = index == 1;
        return true;
    case OPT_NO_SYMBOLS:
        o->no_symbols = true;
        return true;
    }
    return false;
}

static int parse_diff_options(int argc, char **argv, struct diff_options *o)
{
    switch (cli_parse_options(argc, argv, ":n:f:h", diff_long_options, diff_help, take_option,
                              o)) {
    case CLI_OPTIONS_HELP:
        return CLI_OK;
    case CLI_OPTIONS_BAD:
        return CLI_USAGE;
    }
    if (argc - optind != 2) {
        cli_usage_error("expected two profiles, A and B");
        return CLI_USAGE;
    }
    o->files[0] = argv[optind];
    o->files[1] = argv[optind + 1];
    return -1;
}

static bool load_side(const char *file, bool symbols, struct side *s)
{
    s->p = plk_profile_load(file);
    if (!s->p)
        return false;
    if (symbols) {
        struct plk_symbolizer *sym = plk_symbolizer_new();
        if (sym)
            plk_symbolize_profile(sym, s->p);
        plk_symbolizer_free(sym);
    }
    if (!plk_lock_table_add(&s->t, s->p)) {
        cli_error("out of memory");
        return false;
    }
    return true;
}

int cli_diff(int argc, char **argv)
{
    struct diff_options o = { .top = 20 };
    int code = parse_diff_options(argc, argv, &o);
    if (code >= 0)
        return code;
    struct side s[2] = { 0 };
    struct diff_row *rows = NULL;
    size_t n = 0;
    code = CLI_FAIL;
    if (load_side(o.files[0], !o.no_symbols, &s[0]) &&
        load_side(o.files[1], !o.no_symbols, &s[1]) && (rows = match_rows(s, &n))) {
        code = o.json ? print_json(s, &o, rows, n) : (print_text(s, &o, rows, n), CLI_OK);
    }
    free(rows);
    for (int i = 0; i < 2; i++) {
        plk_lock_table_free(&s[i].t);
        plk_profile_free(s[i].p);
    }
    if (fflush(stdout) != 0) {
        cli_error("cannot write: %m");
        code = CLI_FAIL;
    }
    return code;
}
