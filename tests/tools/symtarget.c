// A program whose own addresses fill in a raw profile template
// (data/raw_profile.json.in): frames {ip, module, offset} with no function,
// and unnamed locks inside its global variables, as a signal-time dump
// writes them. `parklock report` must then find plk_symtarget_site with this
// file and line, and name the locks plk_symtarget_lock and
// plk_symtarget_table+64.
//   symtarget TEMPLATE OUTPUT
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((visibility("default"))) pthread_mutex_t plk_symtarget_lock = PTHREAD_MUTEX_INITIALIZER;
__attribute__((visibility("default"))) struct { char pad[64]; pthread_mutex_t m; } plk_symtarget_table = { .m = PTHREAD_MUTEX_INITIALIZER };
volatile long plk_symtarget_sink;

// One line on purpose: every address of the function maps to it. SYMTARGET_SITE_LINE
__attribute__((noinline, visibility("default"))) void plk_symtarget_site(void) { pthread_mutex_lock(&plk_symtarget_lock); plk_symtarget_sink++; pthread_mutex_unlock(&plk_symtarget_lock); plk_symtarget_sink++; }

struct mapping {
    uintptr_t start, end, offset;
    uintptr_t base; // where file offset 0 of the same file is mapped
    char path[4096];
};

// The executable mapping of this program's file that holds `addr`, and the
// load base: the mapping of file offset 0 (listed before it).
static int find_mapping(uintptr_t addr, struct mapping *m)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096 + 256];
    int found = 0;
    m->base = 0;
    while (f && !found && fgets(line, sizeof line, f)) {
        char perms[8];
        uintptr_t start, end, offset;
        int pos = 0;
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %" SCNxPTR " %*s %*s %n", &start, &end,
                   perms, &offset, &pos) < 4)
            continue;
        if (offset == 0 && start <= addr)
            m->base = start;
        if (addr < start || addr >= end || perms[2] != 'x')
            continue;
        m->start = start;
        m->end = end;
        m->offset = offset;
        snprintf(m->path, sizeof m->path, "%s", line + pos);
        m->path[strcspn(m->path, "\n")] = '\0';
        found = 1;
    }
    if (f)
        fclose(f);
    return found;
}

static void put_hex(FILE *out, uintptr_t v)
{
    fprintf(out, "0x%" PRIxPTR, v);
}

// Copies the template, replacing @NAME@ tokens.
static int fill(FILE *in, FILE *out, const struct mapping *m, uintptr_t site_ip,
                uintptr_t main_ip)
{
    char line[8192];
    while (fgets(line, sizeof line, in)) {
        for (char *s = line; *s; s++) {
            char *end = *s == '@' ? strchr(s + 1, '@') : NULL;
            if (!end) {
                fputc(*s, out);
                continue;
            }
            size_t len = (size_t)(end - s - 1);
            const char *tok = s + 1;
#define IS(name) (len == strlen(name) && strncmp(tok, name, len) == 0)
            if (IS("MODULE"))
                fputs(m->path, out);
            else if (IS("START"))
                put_hex(out, m->start);
            else if (IS("END"))
                put_hex(out, m->end);
            else if (IS("MAPOFF"))
                put_hex(out, m->offset);
            else if (IS("SITE_IP"))
                put_hex(out, site_ip);
            else if (IS("MAIN_IP"))
                put_hex(out, main_ip);
            else if (IS("SITE_OFF"))
                put_hex(out, site_ip - m->base);
            else if (IS("MAIN_OFF"))
                put_hex(out, main_ip - m->base);
            else if (IS("LOCK_ADDR"))
                put_hex(out, (uintptr_t)&plk_symtarget_lock);
            else if (IS("TABLE_ADDR"))
                put_hex(out, (uintptr_t)&plk_symtarget_table.m);
            else {
                fputc(*s, out);
                continue;
            }
            s = end;
        }
    }
    return ferror(out) ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: symtarget TEMPLATE OUTPUT\n");
        return 2;
    }
    plk_symtarget_site();
    // Inside the function, past any endbr64: a call site would be there.
    uintptr_t site_ip = (uintptr_t)&plk_symtarget_site + 8;
    uintptr_t main_ip = (uintptr_t)&main + 8;
    struct mapping m;
    FILE *in = fopen(argv[1], "r"), *out = fopen(argv[2], "w");
    if (!in || !out || !find_mapping(site_ip, &m)) {
        fprintf(stderr, "symtarget: cannot read %s, write %s or find my mapping\n", argv[1],
                argv[2]);
        return 1;
    }
    int rc = fill(in, out, &m, site_ip, main_ip);
    fclose(in);
    return fclose(out) != 0 || rc;
}
