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
        // Control characters (a setting's value may hold any) are written
        // as \xNN: the warning stays one line.
        for (const char *q = s; *q && n < sizeof line - 5; q++) {
            unsigned char c = (unsigned char)*q;
            if (c < 0x20 || c == 0x7f) {
                static const char hex[] = "0123456789abcdef";
                line[n++] = '\\';
                line[n++] = 'x';
                line[n++] = hex[c >> 4];
                line[n++] = hex[c & 15];
            } else {
                line[n++] = (char)c;
            }
        }
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
