// `parklock`: the command-line front end of libparklock.so. This file only
// dispatches to the subcommands, each in its own cli_<name>.c.
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#ifndef PLK_VERSION
#define PLK_VERSION "unknown"
#endif

#define BENCH_NAME "parklock-bench"

static const char main_help[] =
    "Usage: parklock COMMAND [OPTIONS] [ARGS...]\n"
    "\n"
    "Run programs on parklock's locks, read their lock contention profiles, and\n"
    "measure parklock against glibc.\n"
    "\n"
    "Commands:\n"
    "  run [OPTIONS] -- PROG [ARGS]      run PROG under libparklock.so and\n"
    "                                    profile its locks\n"
    "  report FILE [OPTIONS]             render a JSON profile (symbolised)\n"
    "  diff A B [OPTIONS]                two profiles side by side, per lock\n"
    "  compare [OPTIONS] -- PROG [ARGS]  time PROG on glibc's locks and on\n"
    "                                    parklock's, alternately\n"
    "  bench [ARGS]                      the benchmark suite (runs " BENCH_NAME ",\n"
    "                                    installed next to parklock)\n"
    "  help [COMMAND]                    this help, or a command's\n"
    "\n"
    "'parklock COMMAND --help' describes each command.\n"
    "\n"
    "Exit status: 0 success, 1 the job failed (unreadable or malformed profile,\n"
    "PROG failed during compare), 2 usage error; 'run' exits with PROG's\n"
    "status (see 'parklock run --help'); 126/127 PROG not executable/not found.\n"
    "See parklock(1) and libparklock(7) for the PARKLOCK_* settings.\n";

struct subcommand {
    const char *name;
    int (*fn)(int argc, char **argv);
};

static int cli_bench(int argc, char **argv);

static const struct subcommand subcommands[] = {
    { "run", cli_run },         { "report", cli_report }, { "diff", cli_diff },
    { "compare", cli_compare }, { "bench", cli_bench },
};

static const struct subcommand *find_subcommand(const char *name)
{
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (strcmp(name, subcommands[i].name) == 0)
            return &subcommands[i];
    return NULL;
}

// `parklock bench ARGS`: exec parklock-bench from this executable's
// directory (build/tools/ in the build tree, PREFIX/bin installed), so that
// both come from the same build.
static int cli_bench(int argc, char **argv)
{
    char *dir = cli_self_dir();
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/" BENCH_NAME, dir ? dir : ".");
    free(dir);
    if (argc == 2 && strcmp(argv[1], "--help") == 0)
        printf("Usage: parklock bench [ARGS...]\n\n"
               "Runs the benchmark suite with ARGS, each workload on glibc's locks\n"
               "and on parklock's:\n  %s\nIts own help follows.\n\n",
               path);
    fflush(stdout);
    argv[0] = path;
    execv(path, argv);
    int err = errno;
    cli_error("cannot run %s: %s", path, strerror(err));
    return err == ENOENT ? CLI_NOTFOUND : CLI_NOEXEC;
}

static int help(int argc, char **argv)
{
    if (argc < 3) {
        fputs(main_help, stdout);
        return CLI_OK;
    }
    const struct subcommand *sub = find_subcommand(argv[2]);
    if (!sub) {
        cli_usage_error("unknown command '%s'", argv[2]);
        return CLI_USAGE;
    }
    char *sub_argv[] = { argv[2], "--help", NULL };
    return sub->fn(2, sub_argv);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(main_help, stderr);
        return CLI_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0)
        return help(argc, argv);
    if (strcmp(cmd, "--version") == 0) {
        printf("parklock %s\n", PLK_VERSION);
        return CLI_OK;
    }
    const struct subcommand *sub = find_subcommand(cmd);
    if (!sub) {
        cli_usage_error(cmd[0] == '-' ? "unknown option '%s'" : "unknown command '%s'", cmd);
        return CLI_USAGE;
    }
    static char name[64];
    snprintf(name, sizeof name, "parklock %s", sub->name);
    cli_name = name;
    return sub->fn(argc - 1, argv + 1);
}
