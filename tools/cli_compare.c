// `parklock compare -- PROG`: PROG timed on glibc's locks and on parklock's,
// alternately, under the same preload (only PARKLOCK_ENGINE differs), so
// that both engines share the machine's drifts. Prints medians, spreads,
// the ratio with a confidence interval and each engine's top locks, and
// calls a difference real only when the interval excludes 1.
#include <dirent.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_locktable.h"
#include "cli_preload.h"
#include "cli_profile.h"
#include "cli_spawn.h"
#include "cli_stats.h"
#include "cli_symbolize.h"

static const char compare_help[] =
    "Usage: parklock compare [OPTIONS] [--] PROG [ARGS...]\n"
    "\n"
    "Time PROG on glibc's locks and on parklock's: the same preload, with\n"
    "PARKLOCK_ENGINE=glibc and =parkinglot, alternating which goes first in\n"
    "each round. Prints each engine's median, min and max wall time, the ratio\n"
    "glibc/parkinglot (> 1: parklock is faster) with its 95% confidence\n"
    "interval, a verdict that says \"noise\" when the interval includes 1, and\n"
    "each engine's most contended locks (from the profile of its median run).\n"
    "\n"
    "Options:\n"
    "  -r, --runs N       measured runs per engine (default 10; 4 or more for a\n"
    "                     confidence interval)\n"
    "  -w, --warmup N     unmeasured rounds first (default 1)\n"
    "  -n, --top N        locks shown per engine (default 5; 0: none)\n"
    "      --no-profile   time without profiling (PARKLOCK_PROFILE=0)\n"
    "  -v, --verbose      show PROG's output (default: /dev/null)\n"
    "  -q, --quiet        no progress line on stderr\n"
    "      --keep         keep the per-run profiles and print where they are\n"
    "      --lib PATH     this libparklock.so (also: PARKLOCK_LIB)\n"
    "  -h, --help         this help\n"
    "\n"
    "PROG reads /dev/null as stdin. Exit status: 0 done (whatever the verdict),\n"
    "1 a run of PROG failed (non-zero exit or signal) or the library was not\n"
    "found, 2 usage error, 126/127\n"
    "PROG not executable/not found, 128+N interrupted by signal N.\n";

enum { ENGINE_GLIBC, ENGINE_PARKINGLOT, N_ENGINES };
static const char *const engine_names[N_ENGINES] = { "glibc", "parkinglot" };

struct compare_options {
    long runs, warmup, top;
    bool no_profile, verbose, quiet, keep;
    const char *lib;
    char **prog;
};

struct measurements {
    double *secs[N_ENGINES];
    size_t n;          // measured runs so far, per engine
    char *tmpdir;
};

// ---- options -------------------------------------------------------------

enum { OPT_NO_PROFILE = 256, OPT_KEEP, OPT_LIB };

static const struct option compare_long_options[] = {
    { "runs", required_argument, NULL, 'r' },
    { "warmup", required_argument, NULL, 'w' },
    { "top", required_argument, NULL, 'n' },
    { "no-profile", no_argument, NULL, OPT_NO_PROFILE },
    { "verbose", no_argument, NULL, 'v' },
    { "quiet", no_argument, NULL, 'q' },
    { "keep", no_argument, NULL, OPT_KEEP },
    { "lib", required_argument, NULL, OPT_LIB },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

static bool take_option(int c, const char *arg, void *ctx)
{
    struct compare_options *o = ctx;
    switch (c) {
    case 'r': return cli_parse_int("--runs", arg, 1, 100000, &o->runs);
    case 'w': return cli_parse_int("--warmup", arg, 0, 100000, &o->warmup);
    case 'n': return cli_parse_int("--top", arg, 0, INT_MAX, &o->top);
    case OPT_NO_PROFILE: o->no_profile = true; return true;
    case 'v': o->verbose = true; return true;
    case 'q': o->quiet = true; return true;
    case OPT_KEEP: o->keep = true; return true;
    case OPT_LIB: o->lib = arg; return true;
    }
    return false;
}

static int parse_compare_options(int argc, char **argv, struct compare_options *o)
{
    switch (cli_parse_options(argc, argv, "+:r:w:n:vqh", compare_long_options, compare_help,
                              take_option, o)) {
    case CLI_OPTIONS_HELP:
        return CLI_OK;
    case CLI_OPTIONS_BAD:
        return CLI_USAGE;
    }
    if (optind >= argc) {
        cli_usage_error("no program given");
        return CLI_USAGE;
    }
    o->prog = argv + optind;
    return -1;
}

// ---- running -------------------------------------------------------------

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *run_dir(const char *tmpdir, long round, int engine)
{
    char *dir;
    if (asprintf(&dir, "%s/round%ld-%s", tmpdir, round, engine_names[engine]) < 0)
        return NULL;
    return dir;
}

// The run's settings; everything else of the user's environment passes.
static bool set_run_env(const struct compare_options *o, int engine, const char *dir)
{
    bool ok = setenv("PARKLOCK_ENGINE", engine_names[engine], 1) == 0;
    if (o->no_profile)
        return ok && setenv("PARKLOCK_PROFILE", "0", 1) == 0;
    char *output;
    if (asprintf(&output, "%s/%%p.json", dir) < 0)
        return false;
    ok = ok && setenv("PARKLOCK_PROFILE", "1", 1) == 0 &&
         setenv("PARKLOCK_FORMAT", "json", 1) == 0 && setenv("PARKLOCK_OUTPUT", output, 1) == 0;
    free(output);
    return ok;
}

static void describe_failure(const struct compare_options *o, int engine, long round,
                             int status)
{
    const char *when = round < 0 ? "warm-up" : "measured";
    if (WIFEXITED(status))
        cli_error("%s exited with status %d on %s (%s round)%s", o->prog[0],
                  WEXITSTATUS(status), engine_names[engine], when,
                  o->verbose ? "" : "; --verbose shows its output");
    else
        cli_report_status(o->prog[0], status);
}

// One run of PROG on `engine`. 0 and its wall time, or the exit code.
static int run_once(const struct compare_options *o, int engine, long round,
                    const char *dir, double *secs)
{
    if (mkdir(dir, 0700) != 0 || !set_run_env(o, engine, dir)) {
        cli_error("%s: cannot prepare the run: %m", dir);
        return CLI_FAIL;
    }
    struct cli_spawn_options so = { .quiet = !o->verbose, .null_stdin = true };
    double t0 = now_s();
    pid_t pid = cli_spawn(o->prog, &so);
    if (pid < 0)
        return -pid;
    int status = cli_wait(pid);
    *secs = now_s() - t0;
    if (cli_signal_received || (WIFSIGNALED(status) && WTERMSIG(status) == SIGINT)) {
        cli_error("interrupted");
        return CLI_SIGNAL_BASE + (cli_signal_received ? cli_signal_received : SIGINT);
    }
    if (status != 0) {
        describe_failure(o, engine, round, status);
        return CLI_FAIL;
    }
    return 0;
}

static void progress(const struct compare_options *o, long round, const double secs[2])
{
    if (o->quiet)
        return;
    char g[32], p[32];
    cli_format_ns(secs[ENGINE_GLIBC] * 1e9, g, sizeof g);
    cli_format_ns(secs[ENGINE_PARKINGLOT] * 1e9, p, sizeof p);
    bool tty = isatty(STDERR_FILENO);
    if (round < o->warmup)
        fprintf(stderr, "%sparklock compare: warm-up %ld/%ld: glibc %s, parkinglot %s%s",
                tty ? "\r\033[K" : "", round + 1, o->warmup, g, p, tty ? "" : "\n");
    else
        fprintf(stderr, "%sparklock compare: run %ld/%ld: glibc %s, parkinglot %s%s",
                tty ? "\r\033[K" : "", round - o->warmup + 1, o->runs, g, p, tty ? "" : "\n");
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_tree(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

// Rounds of one run per engine; the first engine alternates so that
// neither always runs right after the other (caches, frequency, load).
static int run_rounds(const struct compare_options *o, struct measurements *m)
{
    long rounds = o->warmup + o->runs;
    for (long round = 0; round < rounds; round++) {
        double secs[N_ENGINES] = { 0 };
        for (int k = 0; k < N_ENGINES; k++) {
            int engine = round % 2 ? N_ENGINES - 1 - k : k;
            char *dir = run_dir(m->tmpdir, round, engine);
            if (!dir)
                return CLI_FAIL;
            int code = run_once(o, engine, round < o->warmup ? -1 : round, dir, &secs[engine]);
            if (round < o->warmup)
                remove_tree(dir);
            free(dir);
            if (code != 0)
                return code;
        }
        if (round >= o->warmup) {
            for (int e = 0; e < N_ENGINES; e++)
                m->secs[e][m->n] = secs[e];
            m->n++;
        }
        progress(o, round, secs);
    }
    if (!o->quiet && isatty(STDERR_FILENO))
        fputs("\r\033[K", stderr);
    return 0;
}

// ---- results -------------------------------------------------------------

static void print_times(const struct measurements *m)
{
    printf("%-12s %11s %11s %11s %8s\n", "engine", "median", "min", "max", "spread");
    for (int e = 0; e < N_ENGINES; e++) {
        const double *x = m->secs[e];
        double med = cli_median(x, m->n), lo = cli_min(x, m->n), hi = cli_max(x, m->n);
        char a[32], b[32], c[32];
        cli_format_ns(med * 1e9, a, sizeof a);
        cli_format_ns(lo * 1e9, b, sizeof b);
        cli_format_ns(hi * 1e9, c, sizeof c);
        printf("%-12s %11s %11s %11s %7.1f%%\n", engine_names[e], a, b, c,
               med > 0 ? 100 * (hi - lo) / med : 0.0);
    }
}

static void print_verdict(const struct measurements *m)
{
    double g = cli_median(m->secs[ENGINE_GLIBC], m->n);
    double p = cli_median(m->secs[ENGINE_PARKINGLOT], m->n);
    double ratio = p > 0 ? g / p : NAN;
    double lo, hi;
    printf("\nratio glibc/parkinglot (median times; > 1: parklock is faster): %.3f\n", ratio);
    if (!cli_ratio_ci(m->secs[ENGINE_GLIBC], m->n, m->secs[ENGINE_PARKINGLOT], m->n, 0.95,
                      &lo, &hi)) {
        printf("95%% confidence interval: none with %zu runs per engine (4 or more needed)\n",
               m->n);
        printf("verdict: too few runs to tell a difference from noise\n");
        return;
    }
    printf("95%% confidence interval: %.3f to %.3f\n", lo, hi);
    if (lo <= 1 && hi >= 1)
        printf("verdict: no significant difference (noise): the interval includes 1\n");
    else if (lo > 1)
        printf("verdict: parklock is faster: glibc takes %.2fx parklock's time\n", ratio);
    else
        printf("verdict: parklock is slower: it takes %.2fx glibc's time\n",
               ratio > 0 ? 1 / ratio : NAN);
}

// The measured run whose time is nearest the engine's median.
static size_t median_run(const struct measurements *m, int engine)
{
    double med = cli_median(m->secs[engine], m->n);
    size_t best = 0;
    for (size_t i = 1; i < m->n; i++)
        if (fabs(m->secs[engine][i] - med) < fabs(m->secs[engine][best] - med))
            best = i;
    return best;
}

static bool is_json_name(const char *name)
{
    size_t len = strlen(name);
    return len > 5 && strcmp(name + len - 5, ".json") == 0;
}

// Every process's profile of one run (PROG may start others, which inherit
// the preload), summed per lock name. Returns how many profiles were read.
static size_t load_run_profiles(const char *dir, struct plk_lock_table *t)
{
    DIR *d = opendir(dir);
    size_t loaded = 0;
    struct dirent *e;
    struct plk_symbolizer *sym = plk_symbolizer_new();
    while (d && sym && (e = readdir(d))) {
        char *path;
        if (!is_json_name(e->d_name) || asprintf(&path, "%s/%s", dir, e->d_name) < 0)
            continue;
        struct plk_profile *p = plk_profile_load(path); // errors are printed
        if (p) {
            plk_symbolize_profile(sym, p);
            loaded += plk_lock_table_add(t, p);
            plk_profile_free(p);
        }
        free(path);
    }
    plk_symbolizer_free(sym);
    if (d)
        closedir(d);
    return loaded;
}

static void print_top_locks(const struct compare_options *o, const struct measurements *m,
                            int engine)
{
    size_t run = median_run(m, engine);
    long round = o->warmup + (long)run;
    char *dir = run_dir(m->tmpdir, round, engine);
    struct plk_lock_table t = { 0 };
    size_t n = dir ? load_run_profiles(dir, &t) : 0;
    printf("\n%s: top contended locks (median run, %zu profile%s):\n", engine_names[engine],
           n, n == 1 ? "" : "s");
    plk_lock_table_sort(&t, PLK_SORT_WAIT);
    size_t shown = 0;
    for (size_t i = 0; i < t.n && shown < (size_t)o->top; i++) {
        const struct plk_lock_row *r = &t.rows[i];
        if (!r->contended)
            continue;
        if (!shown++)
            printf("  %-32s %10s %11s %11s\n", "lock", "contended", "wait", "max");
        char w[32], x[32];
        cli_format_ns((double)r->wait_total, w, sizeof w);
        cli_format_ns((double)r->wait_max, x, sizeof x);
        printf("  %-32.32s %10" PRId64 " %11s %11s\n", r->key, r->contended, w, x);
    }
    if (n == 0)
        printf("  no profile (the library wrote none)\n");
    else if (!shown)
        printf("  no contended lock\n");
    plk_lock_table_free(&t);
    free(dir);
}

static void print_results(const struct compare_options *o, const struct measurements *m)
{
    printf("parklock compare: %s", o->prog[0]);
    for (char **a = o->prog + 1; *a; a++)
        printf(" %s", *a);
    printf("\n%zu runs per engine after %ld warm-up round%s, alternating order%s\n\n", m->n,
           o->warmup, o->warmup == 1 ? "" : "s", o->no_profile ? ", profiling off" : "");
    print_times(m);
    print_verdict(m);
    if (o->no_profile || o->top == 0)
        return;
    for (int e = 0; e < N_ENGINES; e++)
        print_top_locks(o, m, e);
}

// ---- command -------------------------------------------------------------

static bool make_tmpdir(struct measurements *m)
{
    const char *base = getenv("TMPDIR");
    if (asprintf(&m->tmpdir, "%s/parklock-compare.XXXXXX", base && *base ? base : "/tmp") < 0)
        return false;
    if (!mkdtemp(m->tmpdir)) {
        cli_error("%s: cannot create a directory: %m", m->tmpdir);
        free(m->tmpdir);
        m->tmpdir = NULL;
        return false;
    }
    return true;
}

static int prepare(const struct compare_options *o, struct measurements *m)
{
    char *lib = cli_find_library(o->lib);
    bool ok = lib && cli_set_preload(lib);
    free(lib);
    if (!ok)
        return CLI_FAIL;
    for (int e = 0; e < N_ENGINES; e++)
        if (!(m->secs[e] = calloc((size_t)o->runs, sizeof(double))))
            return CLI_FAIL;
    return make_tmpdir(m) ? 0 : CLI_FAIL;
}

int cli_compare(int argc, char **argv)
{
    struct compare_options o = { .runs = 10, .warmup = 1, .top = 5 };
    int code = parse_compare_options(argc, argv, &o);
    if (code >= 0)
        return code;
    struct measurements m = { 0 };
    code = prepare(&o, &m);
    if (code == 0) {
        cli_forward_signals();
        code = run_rounds(&o, &m);
        if (!o.quiet && code != 0 && isatty(STDERR_FILENO))
            fputs("\n", stderr);
    }
    if (code == 0)
        print_results(&o, &m);
    if (m.tmpdir && o.keep && code == 0)
        fprintf(stderr, "parklock compare: profiles kept in %s\n", m.tmpdir);
    else if (m.tmpdir)
        remove_tree(m.tmpdir);
    for (int e = 0; e < N_ENGINES; e++)
        free(m.secs[e]);
    free(m.tmpdir);
    return code;
}
