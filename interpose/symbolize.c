#include "symbolize.h"

#include <dlfcn.h>
#include <elfutils/libdwfl.h>
#include <link.h>
#include <stddef.h>
#include <unistd.h>

// libdwfl's functions, looked up in the dlopen'ed libdw (the header is only
// used for their types; libparklock.so does not link libdw).
static struct {
    bool tried, ok;
    __typeof__(dwfl_begin) *begin;
    __typeof__(dwfl_end) *end;
    __typeof__(dwfl_linux_proc_report) *proc_report;
    __typeof__(dwfl_linux_proc_find_elf) *proc_find_elf;
    __typeof__(dwfl_build_id_find_debuginfo) *build_id_find_debuginfo;
    __typeof__(dwfl_report_end) *report_end;
    __typeof__(dwfl_addrmodule) *addrmodule;
    __typeof__(dwfl_module_addrinfo) *addrinfo;
    __typeof__(dwfl_module_getsrc) *getsrc;
    __typeof__(dwfl_lineinfo) *lineinfo;
} dw;

/*
 * The session: begin/end run inside one dump, and dumps never overlap
 * (dump.c), so no lock. `dwfl` NULL with `active` set means dladdr only.
 */
static Dwfl *dwfl;
static bool active;
static unsigned session; // numbers the sessions, for the lookup cache

static void load_libdw(void)
{
    dw.tried = true;
    // Kept loaded for good: unloading from inside an exit handler is
    // asking for trouble, and a second dump reuses it.
    void *h = dlopen("libdw.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return;
#define LOOKUP(field, name)                                                   \
    if (!(dw.field = (__typeof__(dw.field))dlsym(h, name)))                   \
        return;
    LOOKUP(begin, "dwfl_begin")
    LOOKUP(end, "dwfl_end")
    LOOKUP(proc_report, "dwfl_linux_proc_report")
    LOOKUP(proc_find_elf, "dwfl_linux_proc_find_elf")
    LOOKUP(build_id_find_debuginfo, "dwfl_build_id_find_debuginfo")
    LOOKUP(report_end, "dwfl_report_end")
    LOOKUP(addrmodule, "dwfl_addrmodule")
    LOOKUP(addrinfo, "dwfl_module_addrinfo")
    LOOKUP(getsrc, "dwfl_module_getsrc")
    LOOKUP(lineinfo, "dwfl_lineinfo")
#undef LOOKUP
    dw.ok = true;
}

// Separate debug files by build ID only (/usr/lib/debug/.build-id, where
// Debian's -dbgsym packages put them). dwfl_standard_find_debuginfo would
// fall back on debuginfod when DEBUGINFOD_URLS is set: a dump must never
// wait on the network.
static int find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname,
                          Dwarf_Addr base, const char *file_name,
                          const char *debuglink_file, GElf_Word debuglink_crc,
                          char **debuginfo_file_name)
{
    return dw.build_id_find_debuginfo(mod, userdata, modname, base, file_name,
                                      debuglink_file, debuglink_crc,
                                      debuginfo_file_name);
}

static char *debuginfo_path;
static Dwfl_Callbacks callbacks;

bool plk_symbolize_begin(void)
{
    if (!dw.tried)
        load_libdw();
    dwfl = NULL;
    if (dw.ok) {
        callbacks.find_elf = dw.proc_find_elf;
        callbacks.find_debuginfo = find_debuginfo;
        callbacks.debuginfo_path = &debuginfo_path;
        dwfl = dw.begin(&callbacks);
        if (dwfl && (dw.proc_report(dwfl, getpid()) != 0 ||
                     dw.report_end(dwfl, NULL, NULL) != 0)) {
            dw.end(dwfl);
            dwfl = NULL;
        }
    }
    if (++session == 0) // cache slots of earlier sessions hold dead strings
        session = 1;
    active = true; // dladdr at least
    return true;
}

void plk_symbolize_end(void)
{
    if (dwfl)
        dw.end(dwfl);
    dwfl = NULL;
    active = false;
}

static bool code_by_dwfl(uintptr_t ip, struct plk_sym *out)
{
    Dwfl_Module *mod = dw.addrmodule(dwfl, ip);
    if (!mod)
        return false;
    GElf_Off off = 0;
    GElf_Sym sym;
    const char *name = dw.addrinfo(mod, ip, &off, &sym, NULL, NULL, NULL);
    if (name && *name) {
        out->function = name;
        out->function_offset = off;
    }
    Dwfl_Line *line = dw.getsrc(mod, ip);
    if (line) {
        Dwarf_Addr addr;
        int lineno = 0;
        const char *file = dw.lineinfo(line, &addr, &lineno, NULL, NULL, NULL);
        if (file && lineno > 0) {
            out->file = file;
            out->line = lineno;
        }
    }
    return out->function || out->file;
}

static bool code_by_dladdr(uintptr_t ip, struct plk_sym *out)
{
    Dl_info info;
    if (!dladdr((void *)ip, &info) || !info.dli_sname || !info.dli_saddr)
        return false;
    out->function = info.dli_sname;
    out->function_offset = ip - (uintptr_t)info.dli_saddr;
    return true;
}

// Frames repeat (across stacks, and the formats look some up twice): a
// direct-mapped cache of this session's answers.
#define CACHE_SLOTS 4096
static struct {
    unsigned session; // valid when equal to `session`
    bool found;
    uintptr_t ip;
    struct plk_sym sym;
} cache[CACHE_SLOTS];

static bool lookup_code(uintptr_t ip, struct plk_sym *out)
{
    if (dwfl && code_by_dwfl(ip, out))
        return true;
    *out = (struct plk_sym){ 0 };
    return code_by_dladdr(ip, out);
}

bool plk_symbolize_code(uintptr_t ip, struct plk_sym *out)
{
    *out = (struct plk_sym){ 0 };
    if (!active)
        return false;
    size_t slot = (ip ^ (ip >> 12)) % CACHE_SLOTS;
    if (cache[slot].session == session && cache[slot].ip == ip) {
        *out = cache[slot].sym;
        return cache[slot].found;
    }
    bool found = lookup_code(ip, out);
    cache[slot].session = session;
    cache[slot].ip = ip;
    cache[slot].found = found;
    cache[slot].sym = *out;
    return found;
}

static bool is_variable(const GElf_Sym *sym, uint64_t off)
{
    int type = GELF_ST_TYPE(sym->st_info);
    return (type == STT_OBJECT || type == STT_COMMON) &&
           (off < sym->st_size || (sym->st_size == 0 && off == 0));
}

bool plk_symbolize_data(uintptr_t addr, const char **name, uint64_t *offset)
{
    if (!active)
        return false;
    if (dwfl) {
        Dwfl_Module *mod = dw.addrmodule(dwfl, addr);
        if (mod) {
            GElf_Off off = 0;
            GElf_Sym sym;
            const char *n = dw.addrinfo(mod, addr, &off, &sym, NULL, NULL, NULL);
            if (n && *n && is_variable(&sym, off)) {
                *name = n;
                *offset = off;
                return true;
            }
        }
    }
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    if (!dladdr1((void *)addr, &info, (void **)&sym, RTLD_DL_SYMENT) || !sym ||
        !info.dli_sname || !info.dli_saddr)
        return false;
    GElf_Sym g = { .st_info = sym->st_info, .st_size = sym->st_size };
    uint64_t off = addr - (uintptr_t)info.dli_saddr;
    if (!is_variable(&g, off))
        return false;
    *name = info.dli_sname;
    *offset = off;
    return true;
}
