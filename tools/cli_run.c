// `parklock run [options] [--] PROG [ARGS]`: PROG under libparklock.so, the
// options mapped onto PARKLOCK_* settings, PROG's exit status passed on.
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#include "cli_preload.h"
#include "cli_spawn.h"

static const char run_help[] =
    "Usage: parklock run [OPTIONS] [--] PROG [ARGS...]\n"
    "\n"
    "Run PROG with libparklock.so preloaded: every pthread mutex and condition\n"
    "variable of PROG runs on parklock (or on glibc with --engine glibc) and its\n"
    "lock contention profile is written when PROG exits.\n"
    "\n"
    "Options (each sets the PARKLOCK_* variable named after it):\n"
    "  -e, --engine ENGINE     parkinglot (default) or glibc     PARKLOCK_ENGINE\n"
    "  -o, --output PATH       where the profile goes: a file (%p = pid,\n"
    "                          %t = unix time) or 'stderr' (default) PARKLOCK_OUTPUT\n"
    "  -f, --format FORMAT     text (default), json or folded    PARKLOCK_FORMAT\n"
    "      --top N             locks listed in the text format   PARKLOCK_TOP\n"
    "      --stack-depth N     frames per stack, 0..64; 0: none  PARKLOCK_STACK_DEPTH\n"
    "      --dump-signal SIG   also dump when PROG gets SIG (USR2, SIGUSR2, 12)\n"
    "                                                            PARKLOCK_DUMP_SIGNAL\n"
    "      --no-profile        no profiling, only the locks      PARKLOCK_PROFILE=0\n"
    "      --lib PATH          this libparklock.so instead of the one found next\n"
    "                          to parklock (also: PARKLOCK_LIB)\n"
    "  -h, --help              this help\n"
    "\n"
    "Other PARKLOCK_* variables in the environment pass through to PROG. A\n"
    "LD_PRELOAD you set is kept, after libparklock.so. PROG runs as a child of\n"
    "parklock: signals sent to parklock with kill are passed on to PROG.\n"
    "\n"
    "Exit status: PROG's; 128+N when PROG was killed by signal N (and a message\n"
    "as a shell prints); 127 PROG not found, 126 PROG not executable, 125\n"
    "parklock itself failed (bad option, library not found).\n"
    "See parklock(1) and libparklock(7).\n";

struct run_options {
    const char *lib;
    const char *engine, *output, *format, *top, *stack_depth, *dump_signal;
    bool no_profile;
};

enum { OPT_TOP = 256, OPT_STACK_DEPTH, OPT_DUMP_SIGNAL, OPT_NO_PROFILE, OPT_LIB };

static const struct option run_long_options[] = {
    { "engine", required_argument, NULL, 'e' },
    { "output", required_argument, NULL, 'o' },
    { "format", required_argument, NULL, 'f' },
    { "top", required_argument, NULL, OPT_TOP },
    { "stack-depth", required_argument, NULL, OPT_STACK_DEPTH },
    { "dump-signal", required_argument, NULL, OPT_DUMP_SIGNAL },
    { "no-profile", no_argument, NULL, OPT_NO_PROFILE },
    { "lib", required_argument, NULL, OPT_LIB },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

static const char *const engines[] = { "parkinglot", "glibc", NULL };
static const char *const formats[] = { "text", "json", "folded", NULL };

// The library's name for a signal given as USR2, SIGUSR2, usr2 or a number.
// Real-time signals have no abbreviation and are passed by number.
static bool parse_signal(const char *s, char *out, size_t size)
{
    const char *name = strncasecmp(s, "SIG", 3) == 0 ? s + 3 : s;
    int sig = 0;
    for (int i = 1; i < NSIG && !sig; i++) {
        const char *abbrev = sigabbrev_np(i);
        if (abbrev && strcasecmp(name, abbrev) == 0)
            sig = i;
    }
    long n;
    if (!sig && strspn(s, "0123456789") == strlen(s) && *s) {
        if (!cli_parse_int("--dump-signal", s, 1, NSIG - 1, &n))
            return false;
        sig = (int)n;
    }
    if (!sig || sig == SIGKILL || sig == SIGSTOP) {
        cli_usage_error("--dump-signal '%s': %s", s,
                        sig ? "this signal cannot be caught" : "unknown signal");
        return false;
    }
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev)
        snprintf(out, size, "%s", abbrev);
    else
        snprintf(out, size, "%d", sig);
    return true;
}

// Validates one option's value; the value is kept as typed (the library
// parses it again), only checked here so that a typo fails at once.
static bool take_option(int c, const char *arg, void *ctx)
{
    struct run_options *o = ctx;
    long n;
    int index;
    switch (c) {
    case 'e':
        o->engine = arg;
        return cli_parse_choice("--engine", arg, engines, &index);
    case 'o':
        o->output = arg;
        return true;
    case 'f':
        o->format = arg;
        return cli_parse_choice("--format", arg, formats, &index);
    case OPT_TOP:
        o->top = arg;
        return cli_parse_int("--top", arg, 1, 1000000, &n);
    case OPT_STACK_DEPTH:
        o->stack_depth = arg;
        return cli_parse_int("--stack-depth", arg, 0, 64, &n);
    case OPT_DUMP_SIGNAL:
        o->dump_signal = arg;
        return true;
    case OPT_NO_PROFILE:
        o->no_profile = true;
        return true;
    case OPT_LIB:
        o->lib = arg;
        return true;
    }
    return false;
}

// -1: go on (PROG at argv[optind]); else the exit code.
static int parse_run_options(int argc, char **argv, struct run_options *o)
{
    // '+': options end at PROG, whose own options are left alone.
    switch (cli_parse_options(argc, argv, "+:e:o:f:h", run_long_options, run_help,
                              take_option, o)) {
    case CLI_OPTIONS_HELP:
        return CLI_OK;
    case CLI_OPTIONS_BAD:
        return CLI_RUN_FAIL;
    }
    if (optind >= argc) {
        cli_usage_error("no program given");
        return CLI_RUN_FAIL;
    }
    return -1;
}

// A relative output path is made absolute: PROG may change directory
// before it dumps.
static bool set_output(const char *path)
{
    if (strcmp(path, "stderr") == 0 || path[0] == '/')
        return setenv("PARKLOCK_OUTPUT", path, 1) == 0;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return setenv("PARKLOCK_OUTPUT", path, 1) == 0;
    size_t size = strlen(cwd) + strlen(path) + 2;
    char *full = malloc(size);
    if (!full)
        return false;
    snprintf(full, size, "%s/%s", cwd, path);
    bool ok = setenv("PARKLOCK_OUTPUT", full, 1) == 0;
    free(full);
    return ok;
}

static bool apply_settings(const struct run_options *o)
{
    bool ok = true;
    if (o->engine)
        ok &= setenv("PARKLOCK_ENGINE", o->engine, 1) == 0;
    if (o->output)
        ok &= set_output(o->output);
    if (o->format)
        ok &= setenv("PARKLOCK_FORMAT", o->format, 1) == 0;
    if (o->top)
        ok &= setenv("PARKLOCK_TOP", o->top, 1) == 0;
    if (o->stack_depth)
        ok &= setenv("PARKLOCK_STACK_DEPTH", o->stack_depth, 1) == 0;
    if (o->dump_signal) {
        char sig[32];
        if (!parse_signal(o->dump_signal, sig, sizeof sig))
            return false;
        ok &= setenv("PARKLOCK_DUMP_SIGNAL", sig, 1) == 0;
    }
    if (o->no_profile)
        ok &= setenv("PARKLOCK_PROFILE", "0", 1) == 0;
    if (!ok)
        cli_error("cannot set the environment: %m");
    return ok;
}

int cli_run(int argc, char **argv)
{
    struct run_options o = { 0 };
    int code = parse_run_options(argc, argv, &o);
    if (code >= 0)
        return code;
    char **prog = argv + optind;
    if (!apply_settings(&o))
        return CLI_RUN_FAIL;
    char *lib = cli_find_library(o.lib);
    if (!lib || !cli_set_preload(lib)) {
        free(lib);
        return CLI_RUN_FAIL;
    }
    free(lib);
    cli_forward_signals();
    pid_t pid = cli_spawn(prog, NULL);
    if (pid < 0)
        return -pid;
    int status = cli_wait(pid);
    cli_report_status(prog[0], status);
    return cli_status_code(status);
}
