#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void write_line(const char *prefix, const char *first, va_list ap)
{
    char line[512];
    size_t n = 0;
    for (const char *s = prefix; s; s = (s == prefix ? first : va_arg(ap, const char *))) {
        size_t len = strlen(s);
        if (len > sizeof line - 1 - n)
            len = sizeof line - 1 - n;
        memcpy(line + n, s, len);
        n += len;
    }
    line[n++] = '\n';
    int saved_errno = errno;
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w; // nowhere left to report a failing stderr
    errno = saved_errno;
}

void plk_warn(const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    write_line("parklock: warning: ", first, ap);
    va_end(ap);
}

void plk_fatal(const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    write_line("parklock: fatal: ", first, ap);
    va_end(ap);
    abort();
}
