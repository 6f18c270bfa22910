// Messages, option value parsing and small helpers shared by the subcommands.
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *cli_name = "parklock";

static void vmessage(const char *kind, const char *fmt, va_list ap)
{
    // One fprintf per piece is fine: stderr is unbuffered but the messages
    // are short and nothing else writes concurrently.
    int saved_errno = errno; // for %m in fmt
    fprintf(stderr, "%s: %s", cli_name, kind);
    errno = saved_errno;
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage("", fmt, ap);
    va_end(ap);
}

void cli_warning(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage("warning: ", fmt, ap);
    va_end(ap);
}

void cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage("", fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try '%s --help' for more information.\n", cli_name);
}

void cli_bad_option(char **argv, int optind, int optopt, bool missing)
{
    const char *arg = argv[optind - 1];
    bool is_long = arg && arg[0] == '-' && arg[1] == '-';
    if (missing) {
        if (is_long)
            cli_usage_error("option '%s' needs a value", arg);
        else
            cli_usage_error("option '-%c' needs a value", optopt);
    } else if (!is_long && optopt) {
        // getopt reports the character of a short option, not the word.
        cli_usage_error("unknown option '-%c'", optopt);
    } else {
        cli_usage_error("unknown option '%s'", arg);
    }
}

bool cli_parse_int(const char *opt, const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno == ERANGE || v < min || v > max) {
        cli_usage_error("%s '%s': expected an integer in %ld..%ld", opt, s, min, max);
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_choice(const char *opt, const char *s, const char *const *choices,
                      int *index)
{
    for (int i = 0; choices[i]; i++) {
        if (strcmp(s, choices[i]) == 0) {
            *index = i;
            return true;
        }
    }
    char list[256] = "";
    for (int i = 0; choices[i]; i++) {
        if (i)
            strncat(list, ", ", sizeof list - strlen(list) - 1);
        strncat(list, choices[i], sizeof list - strlen(list) - 1);
    }
    cli_usage_error("%s '%s': expected one of %s", opt, s, list);
    return false;
}

char *cli_self_dir(void)
{
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0)
        return NULL;
    path[n] = '\0';
    char *slash = strrchr(path, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    return strdup(slash == path ? "/" : path);
}

void cli_format_ns(double ns, char *buf, size_t size)
{
    if (ns < 1e3)
        snprintf(buf, size, "%.0f ns", ns);
    else if (ns < 1e6)
        snprintf(buf, size, "%.1f us", ns / 1e3);
    else if (ns < 1e9)
        snprintf(buf, size, "%.1f ms", ns / 1e6);
    else
        snprintf(buf, size, "%.3f s", ns / 1e9);
}

const char *cli_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

int cli_parse_options(int argc, char **argv, const char *shortopts,
                      const struct option *longopts, const char *help,
                      bool (*take)(int c, const char *arg, void *ctx), void *ctx)
{
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(help, stdout);
            return CLI_OPTIONS_HELP;
        }
        if (c == '?' || c == ':') {
            cli_bad_option(argv, optind, optopt, c == ':');
            return CLI_OPTIONS_BAD;
        }
        if (!take(c, optarg, ctx))
            return CLI_OPTIONS_BAD;
    }
    return CLI_OPTIONS_DONE;
}
