// Shared pieces of the `parklock` command: exit codes, messages, option
// value parsing and the subcommand entry points (one file per subcommand).
#ifndef PLK_CLI_H
#define PLK_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

// Exit codes, documented in docs/parklock.md and parklock(1). `run` passes
// PROG's own status through instead and keeps 125..127 and 128+N for its
// own failures, as env(1), timeout(1) and shells do.
enum {
    CLI_OK = 0,
    CLI_FAIL = 1,        // the job failed: bad profile, PROG failed in compare
    CLI_USAGE = 2,       // unknown subcommand or option, bad option value
    CLI_RUN_FAIL = 125,  // `run`: parklock itself failed before PROG started
    CLI_NOEXEC = 126,    // PROG found but could not be executed
    CLI_NOTFOUND = 127,  // PROG not found
    CLI_SIGNAL_BASE = 128, // PROG killed by signal N: 128 + N
};

// Name used in messages: "parklock" or "parklock <subcommand>".
extern const char *cli_name;

// "parklock report: " + printf + newline, on stderr.
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// An error in the command line: the message plus a pointer to --help.
void cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// getopt_long's error (opterr is off so that the message names the
// subcommand and points to --help): `missing` when getopt returned ':'
// (optstring starts with ":"), else an unknown option.
void cli_bad_option(char **argv, int optind, int optopt, bool missing);

// A subcommand's options: getopt_long over argv from its start (opterr off,
// so messages name the subcommand), handing each option to take(c, optarg,
// ctx). Returns CLI_OPTIONS_DONE (argv[optind] is the first operand),
// CLI_OPTIONS_HELP (--help printed `help` on stdout) or CLI_OPTIONS_BAD
// (unknown option, missing value, or take() said no: a message was
// printed).
struct option;
enum { CLI_OPTIONS_DONE, CLI_OPTIONS_HELP, CLI_OPTIONS_BAD };
int cli_parse_options(int argc, char **argv, const char *shortopts,
                      const struct option *longopts, const char *help,
                      bool (*take)(int c, const char *arg, void *ctx), void *ctx);

// Option values. false (after a usage error message) when `s` is not a
// decimal integer in [min, max].
bool cli_parse_int(const char *opt, const char *s, long min, long max, long *out);
// false (after a usage error message) unless `s` is one of `choices`
// (NULL-terminated); *index gets its position.
bool cli_parse_choice(const char *opt, const char *s, const char *const *choices,
                      int *index);

// Directory of the running executable (from /proc/self/exe), malloc'd;
// NULL if it cannot be read.
char *cli_self_dir(void);

// Human-readable durations: "812.3 ms", "20.1 us", "1.830 s".
void cli_format_ns(double ns, char *buf, size_t size);

// Last path component.
const char *cli_basename(const char *path);

// Subcommands: argc/argv start at the subcommand's name.
int cli_run(int argc, char **argv);
int cli_report(int argc, char **argv);
int cli_diff(int argc, char **argv);
int cli_compare(int argc, char **argv);

#endif
