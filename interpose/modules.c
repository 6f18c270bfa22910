#include "modules.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

/*
 * Static state, written only by plk_modules_load; the dump that calls it is
 * never concurrent with another dump (dump.c's flag), so no lock.
 *   modules[0..count): sorted by start, as the kernel lists them.
 *   paths: the modules' path strings; a module whose path equals the
 *   previous one's shares its string.
 */
static struct plk_module modules[PLK_MODULES_MAX];
static size_t count;
static char paths[256 * 1024];
static size_t paths_used;

// The last file mapping seen with file offset 0: the load base of the
// executable mappings of the same file that follow it.
static uintptr_t base_start;
static const char *base_path;
static char base_path_buf[4096 + 32];

// A hex number at *s; advances past it.
static uintptr_t hex(const char **s, const char *end)
{
    uintptr_t v = 0;
    for (; *s < end; (*s)++) {
        char c = **s;
        if (c >= '0' && c <= '9')
            v = v * 16 + (uintptr_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v * 16 + (uintptr_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v = v * 16 + (uintptr_t)(c - 'A' + 10);
        else
            break;
    }
    return v;
}

static void skip_field(const char **s, const char *end)
{
    while (*s < end && **s != ' ')
        (*s)++;
    while (*s < end && **s == ' ')
        (*s)++;
}

static const char *intern(const char *path, size_t len)
{
    if (count > 0) {
        const char *prev = modules[count - 1].path;
        if (strlen(prev) == len && memcmp(prev, path, len) == 0)
            return prev;
    }
    if (paths_used + len + 1 > sizeof paths)
        return NULL;
    char *p = paths + paths_used;
    memcpy(p, path, len);
    p[len] = '\0';
    paths_used += len + 1;
    return p;
}

// One line of /proc/self/maps, without its newline:
//   start-end perms offset dev inode   path
static void parse_line(const char *s, const char *end)
{
    uintptr_t start = hex(&s, end);
    if (s >= end || *s != '-')
        return;
    s++;
    uintptr_t stop = hex(&s, end);
    while (s < end && *s == ' ')
        s++;
    const char *perms = s;
    skip_field(&s, end);
    uintptr_t offset = hex(&s, end);
    skip_field(&s, end); // offset
    skip_field(&s, end); // dev
    skip_field(&s, end); // inode
    if (s >= end || *s != '/' || end - perms < 4)
        return; // anonymous, [heap], [vdso], ...
    size_t len = (size_t)(end - s);
    if (offset == 0 && len < sizeof base_path_buf) {
        memcpy(base_path_buf, s, len);
        base_path_buf[len] = '\0';
        base_path = base_path_buf;
        base_start = start;
    }
    if (perms[2] != 'x' || count == PLK_MODULES_MAX)
        return;
    const char *path = intern(s, len);
    if (!path)
        return;
    struct plk_module *m = &modules[count++];
    m->start = start;
    m->end = stop;
    m->offset = offset;
    m->path = path;
    if (base_path && strcmp(base_path, path) == 0 && base_start <= start)
        m->base = base_start;
    else
        m->base = start - offset;
}

size_t plk_modules_load(void)
{
    count = 0;
    paths_used = 0;
    base_path = NULL;
    int fd;
    do
        fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return 0;
    // Lines are assembled in buf: a partial line moves to the front before
    // the next read. A line longer than buf (impossible with PATH_MAX paths)
    // is skipped.
    static char buf[16384];
    size_t have = 0;
    bool skipping = false;
    for (;;) {
        ssize_t r = read(fd, buf + have, sizeof buf - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        have += (size_t)r;
        size_t pos = 0;
        for (;;) {
            char *nl = memchr(buf + pos, '\n', have - pos);
            if (!nl)
                break;
            if (!skipping)
                parse_line(buf + pos, nl);
            skipping = false;
            pos = (size_t)(nl - buf) + 1;
        }
        if (pos == 0 && have == sizeof buf) {
            skipping = true; // an endless line: drop what we have of it
            have = 0;
            continue;
        }
        memmove(buf, buf + pos, have - pos);
        have -= pos;
    }
    if (have > 0 && !skipping)
        parse_line(buf, buf + have);
    close(fd);
    return count;
}

size_t plk_modules_count(void)
{
    return count;
}

const struct plk_module *plk_module_at(size_t i)
{
    return i < count ? &modules[i] : NULL;
}

const struct plk_module *plk_modules_find(uintptr_t addr)
{
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (addr < modules[mid].start)
            hi = mid;
        else if (addr >= modules[mid].end)
            lo = mid + 1;
        else
            return &modules[mid];
    }
    return NULL;
}

const char *plk_module_basename(const struct plk_module *m)
{
    const char *slash = strrchr(m->path, '/');
    return slash ? slash + 1 : m->path;
}
