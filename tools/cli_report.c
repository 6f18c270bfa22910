// `parklock report FILE`: a JSON profile rendered as text for people, as
// JSON (the same schema, symbolised, sorted) or as folded stacks.
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_locktable.h"
#include "cli_profile.h"
#include "cli_symbolize.h"

static const char report_help[] =
    "Usage: parklock report [OPTIONS] FILE\n"
    "\n"
    "Render a JSON contention profile (PARKLOCK_FORMAT=json; FILE '-' reads\n"
    "stdin). Raw frames (signal-time dumps) are symbolised from the module\n"
    "files: function, and file:line where debug info exists; unnamed locks get\n"
    "the name of the variable they lie in, else of the code that first\n"
    "contended them.\n"
    "\n"
    "Options:\n"
    "  -n, --top N        locks (and condition variables) shown; 0: all.\n"
    "                     Default 10 for text, all for json and folded\n"
    "  -s, --sort KEY     wait (total wait, default), contended, max (longest\n"
    "                     wait), p99, acquired\n"
    "  -f, --format FMT   text (default), json (the profile, symbolised and\n"
    "                     sorted) or folded (stacks for flame graphs)\n"
    "      --no-symbols   do not read module files; show frames as recorded\n"
    "  -h, --help         this help\n"
    "\n"
    "Exit status: 0 done, 1 FILE unreadable, malformed (its line and column\n"
    "are named) or not a version 1 profile, 2 usage error.\n"
    "See docs/dump-format.md for the formats and docs/profiler.md for how to\n"
    "read a report.\n";

enum report_format { FMT_TEXT, FMT_JSON, FMT_FOLDED };
static const char *const format_names[] = { "text", "json", "folded", NULL };

struct report_options {
    long top; // -1: the format's default
    enum plk_sort sort;
    enum report_format format;
    bool no_symbols;
    const char *file;
};

// ---- order ---------------------------------------------------------------

static enum plk_sort lock_order;

static int compare_locks(const void *a, const void *b)
{
    const struct plk_lock *x = *(const struct plk_lock *const *)a;
    const struct plk_lock *y = *(const struct plk_lock *const *)b;
    int64_t vx = plk_lock_sort_value(x, lock_order), vy = plk_lock_sort_value(y, lock_order);
    if (vx != vy)
        return vx > vy ? -1 : 1;
    if (x->wait.total != y->wait.total)
        return x->wait.total > y->wait.total ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

// Condition variables have no acquisitions: wait, max and p99 apply, the
// other orders fall back to total wait.
static int compare_conds(const void *a, const void *b)
{
    const struct plk_cond *x = *(const struct plk_cond *const *)a;
    const struct plk_cond *y = *(const struct plk_cond *const *)b;
    int64_t vx = x->wait.total, vy = y->wait.total;
    if (lock_order == PLK_SORT_MAX) {
        vx = x->wait.max;
        vy = y->wait.max;
    } else if (lock_order == PLK_SORT_P99) {
        vx = x->wait.p99;
        vy = y->wait.p99;
    }
    if (vx != vy)
        return vx > vy ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

struct ordered {
    struct plk_lock **locks;
    size_t n_locks; // after --top
    struct plk_cond **conds;
    size_t n_conds;
};

static bool order_profile(const struct plk_profile *p, const struct report_options *o,
                          struct ordered *out)
{
    out->locks = calloc(p->n_locks + 1, sizeof *out->locks);
    out->conds = calloc(p->n_conds + 1, sizeof *out->conds);
    if (!out->locks || !out->conds)
        return false;
    for (size_t i = 0; i < p->n_locks; i++)
        out->locks[i] = &p->locks[i];
    for (size_t i = 0; i < p->n_conds; i++)
        out->conds[i] = &p->conds[i];
    lock_order = o->sort;
    qsort(out->locks, p->n_locks, sizeof *out->locks, compare_locks);
    qsort(out->conds, p->n_conds, sizeof *out->conds, compare_conds);
    long top = o->top >= 0 ? o->top : (o->format == FMT_TEXT ? 10 : 0);
    out->n_locks = top && (size_t)top < p->n_locks ? (size_t)top : p->n_locks;
    out->n_conds = top && (size_t)top < p->n_conds ? (size_t)top : p->n_conds;
    return true;
}

// ---- text ----------------------------------------------------------------

static void lock_label(const struct plk_lock *l, char *buf, size_t size)
{
    if (l->name)
        snprintf(buf, size, "%s", l->name);
    else
        snprintf(buf, size, "0x%" PRIx64, l->address);
}

static const char *ns(int64_t v, char *buf)
{
    cli_format_ns((double)v, buf, 32);
    return buf;
}

static void print_header(const struct plk_profile *p)
{
    char b[32];
    printf("parklock profile: %s", p->program ? p->program : "(program unknown)");
    if (p->pid >= 0)
        printf(" (pid %" PRId64 ")", p->pid);
    printf(", engine %s", p->engine ? p->engine : "?");
    if (p->duration_ns >= 0)
        printf(", ran %s", ns(p->duration_ns, b));
    if (p->reason)
        printf(", dumped at %s", p->reason);
    printf("\n");
    if (p->totals.contended >= 0 && p->totals.wait_ns >= 0)
        printf("  %" PRId64 " contended acquisitions, %s waited in total\n",
               p->totals.contended, ns(p->totals.wait_ns, b));
    printf("  %zu lock%s, %zu condition variable%s in this profile", p->n_locks,
           p->n_locks == 1 ? "" : "s", p->n_conds, p->n_conds == 1 ? "" : "s");
    if (p->totals.locks_tracked >= 0)
        printf(" (%" PRId64 " and %" PRId64 " tracked)", p->totals.locks_tracked,
               p->totals.conds_tracked);
    printf("\n");
    if (p->totals.dropped_locks || p->totals.dropped_stacks)
        printf("  lock table full: %" PRId64 " events on untracked locks (%" PRId64
               " contended, %s waited); %" PRId64 " stacks dropped\n",
               p->totals.dropped_locks, p->other.contended, ns(p->other.wait_ns, b),
               p->totals.dropped_stacks);
}

static int name_width(struct plk_lock *const *locks, size_t n)
{
    int w = 4;
    for (size_t i = 0; i < n; i++) {
        char name[512];
        lock_label(locks[i], name, sizeof name);
        int len = (int)strlen(name);
        if (len > w)
            w = len;
    }
    return w > 40 ? 40 : w;
}

static void print_lock_table(const struct ordered *ord, size_t total, enum plk_sort sort)
{
    char b1[32], b2[32], b3[32];
    printf("\nLocks by %s (%zu of %zu):\n", plk_sort_names[sort], ord->n_locks, total);
    int w = name_width(ord->locks, ord->n_locks);
    printf("  %3s  %-*s %11s %10s %7s %8s %10s %10s %10s\n", "#", w, "lock", "acquired",
           "contended", "%", "parked", "wait", "max", "p99");
    for (size_t i = 0; i < ord->n_locks; i++) {
        const struct plk_lock *l = ord->locks[i];
        char name[512], acq[24] = "-", pct[16] = "-";
        lock_label(l, name, sizeof name);
        if (l->acquired >= 0)
            snprintf(acq, sizeof acq, "%" PRId64, l->acquired);
        if (l->contention_pct >= 0)
            snprintf(pct, sizeof pct, "%.2f", l->contention_pct);
        printf("  %3zu  %-*.*s %11s %10" PRId64 " %7s %8" PRId64 " %10s %10s %10s\n", i + 1, w,
               w, name, acq, l->contended, pct, l->parked, ns(l->wait.total, b1),
               ns(l->wait.max, b2), ns(l->wait.p99, b3));
    }
}

static void print_frames(const struct plk_frame *frames, size_t n, const char *indent)
{
    for (size_t i = 0; i < n; i++) {
        char label[1024];
        plk_frame_label(&frames[i], label, sizeof label);
        printf("%s%s\n", indent, label);
    }
    if (n == 0)
        printf("%s(no frames)\n", indent);
}

// The heaviest stacks only: the JSON has all of them.
#define STACKS_SHOWN 3

static void print_stacks(const char *title, const char *unit, const struct plk_stack *s,
                         size_t n)
{
    char b[32];
    if (n == 0)
        return;
    printf("    %s (%zu distinct stack%s%s):\n", title, n, n == 1 ? "" : "s",
           n > STACKS_SHOWN ? ", heaviest 3" : "");
    for (size_t i = 0; i < n && i < STACKS_SHOWN; i++) {
        printf("      %" PRId64 " %s, %s:\n", s[i].count, unit, ns(s[i].ns, b));
        print_frames(s[i].frames, s[i].n_frames, "        ");
    }
}

static void print_lock_detail(size_t rank, const struct plk_lock *l)
{
    char name[512], b1[32], b2[32], b3[32], b4[32], b5[32], b6[32];
    lock_label(l, name, sizeof name);
    printf("\n#%zu %s  (0x%" PRIx64 ", %s, %s", rank, name, l->address,
           l->type ? l->type : "?", l->engine ? l->engine : "?");
    if (strcmp(l->name_source, "none") != 0)
        printf(", named by %s", l->name_source);
    if (l->generation)
        printf(", generation %" PRId64, l->generation);
    printf("%s)\n", l->destroyed ? ", destroyed" : "");
    printf("    wait: total %s, avg %s, p50 %s, p90 %s, p99 %s, max %s\n", ns(l->wait.total, b1),
           ns(l->wait.avg, b2), ns(l->wait.p50, b3), ns(l->wait.p90, b4), ns(l->wait.p99, b5),
           ns(l->wait.max, b6));
    if (l->timeouts)
        printf("    %" PRId64 " timed out\n", l->timeouts);
    if (l->n_site) {
        printf("    first contended at:\n");
        print_frames(l->site, l->n_site, "        ");
    }
    print_stacks("waiters", "waits", l->waiters, l->n_waiters);
    print_stacks("holders, blamed for their waiters' time", "releases", l->holders,
                 l->n_holders);
}

static void print_conds(const struct ordered *ord, size_t total)
{
    char b1[32], b2[32], b3[32];
    if (ord->n_conds == 0)
        return;
    printf("\nCondition variables by wait (%zu of %zu; waiting on a condition is not "
           "contention):\n",
           ord->n_conds, total);
    printf("  %3s  %-24s %9s %9s %9s %10s %10s %10s %10s\n", "#", "condition", "waits",
           "timeouts", "signals", "broadcasts", "wait", "max", "p99");
    for (size_t i = 0; i < ord->n_conds; i++) {
        const struct plk_cond *c = ord->conds[i];
        char name[512];
        if (c->name)
            snprintf(name, sizeof name, "%s", c->name);
        else
            snprintf(name, sizeof name, "0x%" PRIx64, c->address);
        printf("  %3zu  %-24.40s %9" PRId64 " %9" PRId64 " %9" PRId64 " %10" PRId64
               " %10s %10s %10s\n",
               i + 1, name, c->waits, c->timeouts, c->signals, c->broadcasts,
               ns(c->wait.total, b1), ns(c->wait.max, b2), ns(c->wait.p99, b3));
    }
}

static void print_text(const struct plk_profile *p, const struct ordered *ord,
                       enum plk_sort sort)
{
    print_header(p);
    print_lock_table(ord, p->n_locks, sort);
    // Details only where there is something to explain.
    for (size_t i = 0; i < ord->n_locks; i++)
        if (ord->locks[i]->contended)
            print_lock_detail(i + 1, ord->locks[i]);
    print_conds(ord, p->n_conds);
}

// ---- json ----------------------------------------------------------------

static int print_json(struct plk_profile *p, const struct ordered *ord, bool symbolized)
{
    json_t *locks = json_array(), *conds = json_array();
    for (size_t i = 0; i < ord->n_locks; i++)
        json_array_append(locks, ord->locks[i]->json);
    for (size_t i = 0; i < ord->n_conds; i++)
        json_array_append(conds, ord->conds[i]->json);
    json_object_set_new(p->root, "locks", locks);
    if (json_object_get(p->root, "conds") || ord->n_conds)
        json_object_set_new(p->root, "conds", conds);
    else
        json_decref(conds);
    if (symbolized)
        json_object_set_new(p->root, "symbolized", json_true());
    int rc = json_dumpf(p->root, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    putchar('\n');
    return rc == 0 ? CLI_OK : CLI_FAIL;
}

// ---- folded --------------------------------------------------------------

// A folded frame: the function, else module+0xoffset. ';' separates frames
// and must not occur inside one.
static void print_folded_frame(const struct plk_frame *f)
{
    char buf[512];
    if (f->function)
        snprintf(buf, sizeof buf, "%s", f->function);
    else if (f->module && f->has_offset)
        snprintf(buf, sizeof buf, "%s+0x%" PRIx64, cli_basename(f->module), f->offset);
    else
        snprintf(buf, sizeof buf, "0x%" PRIx64, f->ip);
    for (char *c = buf; *c; c++)
        if (*c == ';')
            *c = ':';
    fputs(buf, stdout);
    putchar(';');
}

// Outermost caller first, the lock last: "main;worker;[wait] cache_lock 700".
static void print_folded_stacks(const struct plk_stack *s, size_t n, const char *tag,
                                const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i].ns <= 0)
            continue;
        for (size_t j = s[i].n_frames; j-- > 0;)
            print_folded_frame(&s[i].frames[j]);
        printf("[%s] %s %" PRId64 "\n", tag, name, s[i].ns);
    }
}

static void print_folded(const struct ordered *ord)
{
    for (size_t i = 0; i < ord->n_locks; i++) {
        const struct plk_lock *l = ord->locks[i];
        char name[512];
        lock_label(l, name, sizeof name);
        print_folded_stacks(l->waiters, l->n_waiters, "wait", name);
        print_folded_stacks(l->holders, l->n_holders, "holder", name);
        // Without stacks (PARKLOCK_STACK_DEPTH=0) the wait still shows.
        if (l->n_waiters == 0 && l->wait.total > 0)
            printf("[wait] %s %" PRId64 "\n", name, l->wait.total);
    }
    for (size_t i = 0; i < ord->n_conds; i++) {
        const struct plk_cond *c = ord->conds[i];
        char name[512];
        if (c->name)
            snprintf(name, sizeof name, "%s", c->name);
        else
            snprintf(name, sizeof name, "0x%" PRIx64, c->address);
        print_folded_stacks(c->waiters, c->n_waiters, "cond", name);
        if (c->n_waiters == 0 && c->wait.total > 0)
            printf("[cond] %s %" PRId64 "\n", name, c->wait.total);
    }
}

// ---- command -------------------------------------------------------------

enum { OPT_NO_SYMBOLS = 256 };

static const struct option report_long_options[] = {
    { "top", required_argument, NULL, 'n' },
    { "sort", required_argument, NULL, 's' },
    { "format", required_argument, NULL, 'f' },
    { "no-symbols", no_argument, NULL, OPT_NO_SYMBOLS },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

static bool take_option(int c, const char *arg, void *ctx)
{
    struct report_options *o = ctx;
    int index;
    switch (c) {
    case 'n':
        return cli_parse_int("--top", arg, 0, INT_MAX, &o->top);
    case 's':
        if (!cli_parse_choice("--sort", arg, plk_sort_names, &index))
            return false;
        o->sort = (enum plk_sort)index;
        return true;
    case 'f':
        if (!cli_parse_choice("--format", arg, format_names, &index))
            return false;
        o->format = (enum report_format)index;
        return true;
    case OPT_NO_SYMBOLS:
        o->no_symbols = true;
        return true;
    }
    return false;
}

// -1: go on; else the exit code. Options may follow FILE.
static int parse_report_options(int argc, char **argv, struct report_options *o)
{
    switch (cli_parse_options(argc, argv, ":n:s:f:h", report_long_options, report_help,
                              take_option, o)) {
    case CLI_OPTIONS_HELP:
        return CLI_OK;
    case CLI_OPTIONS_BAD:
        return CLI_USAGE;
    }
    if (argc - optind != 1) {
        cli_usage_error(argc == optind ? "no profile given" : "one profile at a time");
        return CLI_USAGE;
    }
    o->file = argv[optind];
    return -1;
}

int cli_report(int argc, char **argv)
{
    struct report_options o = { .top = -1, .sort = PLK_SORT_WAIT, .format = FMT_TEXT };
    int code = parse_report_options(argc, argv, &o);
    if (code >= 0)
        return code;
    struct plk_profile *p = plk_profile_load(o.file);
    if (!p)
        return CLI_FAIL;
    if (!o.no_symbols) {
        struct plk_symbolizer *s = plk_symbolizer_new();
        if (s)
            plk_symbolize_profile(s, p);
        plk_symbolizer_free(s);
    }
    struct ordered ord = { 0 };
    code = CLI_OK;
    if (!order_profile(p, &o, &ord)) {
        cli_error("out of memory");
        code = CLI_FAIL;
    } else if (o.format == FMT_TEXT) {
        print_text(p, &ord, o.sort);
    } else if (o.format == FMT_JSON) {
        code = print_json(p, &ord, !o.no_symbols);
    } else {
        print_folded(&ord);
    }
    free(ord.locks);
    free(ord.conds);
    plk_profile_free(p);
    if (fflush(stdout) != 0) {
        cli_error("cannot write the report: %m");
        code = CLI_FAIL;
    }
    return code;
}
