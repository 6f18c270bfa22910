#include "cli_symbolize.h"

#include <elfutils/libdwfl.h>
#include <gelf.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_locktable.h"

// One ELF file, reported alone to its own Dwfl at its link-time addresses
// (bias 0 for ET_DYN), so that a module-relative offset is a Dwfl address.
struct module_file {
    char *path;
    Dwfl *dwfl;
    Dwfl_Module *mod;
    GElf_Addr bias;     // Dwfl address = ELF address + bias
    GElf_Phdr *loads;   // PT_LOAD program headers
    size_t n_loads;
    bool warned;
};

struct plk_symbolizer {
    struct module_file *files;
    size_t n_files, cap;
    long page_size;
};

static char *debuginfo_path;

static const Dwfl_Callbacks callbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = &debuginfo_path,
};

struct plk_symbolizer *plk_symbolizer_new(void)
{
    // Report reads local files only: with DEBUGINFOD_URLS set (Debian's
    // login shells set it), libdw would fetch debug info over the network,
    // which can stall for minutes on a machine without it.
    unsetenv("DEBUGINFOD_URLS");
    struct plk_symbolizer *s = calloc(1, sizeof *s);
    if (s)
        s->page_size = sysconf(_SC_PAGESIZE);
    return s;
}

void plk_symbolizer_free(struct plk_symbolizer *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_files; i++) {
        if (s->files[i].dwfl)
            dwfl_end(s->files[i].dwfl);
        free(s->files[i].loads);
        free(s->files[i].path);
    }
    free(s->files);
    free(s);
}

static bool read_loads(struct module_file *m)
{
    Elf *elf = dwfl_module_getelf(m->mod, &m->bias);
    size_t n;
    if (!elf || elf_getphdrnum(elf, &n) != 0)
        return false;
    m->loads = calloc(n ? n : 1, sizeof *m->loads);
    if (!m->loads)
        return false;
    for (size_t i = 0; i < n; i++) {
        GElf_Phdr ph;
        if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_LOAD)
            m->loads[m->n_loads++] = ph;
    }
    return m->n_loads > 0;
}

static bool open_file(struct module_file *m)
{
    m->dwfl = dwfl_begin(&callbacks);
    if (!m->dwfl)
        return false;
    dwfl_report_begin(m->dwfl);
    m->mod = dwfl_report_elf(m->dwfl, cli_basename(m->path), m->path, -1, 0, true);
    dwfl_report_end(m->dwfl, NULL, NULL);
    return m->mod && read_loads(m);
}

// The module's file, opened on first use; NULL when it cannot be read.
static struct module_file *module_file(struct plk_symbolizer *s, const char *path)
{
    for (size_t i = 0; i < s->n_files; i++)
        if (strcmp(s->files[i].path, path) == 0)
            return s->files[i].mod ? &s->files[i] : NULL;
    if (s->n_files == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 8;
        struct module_file *f = realloc(s->files, cap * sizeof *f);
        if (!f)
            return NULL;
        s->files = f;
        s->cap = cap;
    }
    struct module_file *m = &s->files[s->n_files++];
    memset(m, 0, sizeof *m);
    m->path = strdup(path);
    if (m->path && open_file(m))
        return m;
    m->mod = NULL;
    if (!m->path) // keep the entry searchable
        m->path = strdup("");
    return NULL;
}

static void warn_unreadable(struct plk_symbolizer *s, const char *path)
{
    for (size_t i = 0; i < s->n_files; i++) {
        struct module_file *m = &s->files[i];
        if (strcmp(m->path, path) == 0 && !m->warned) {
            m->warned = true;
            cli_warning("%s: cannot read its symbols (%s); its frames stay raw", path,
                        access(path, R_OK) == 0 ? dwfl_errmsg(-1) : "no such readable file");
        }
    }
}

// Load bias of a mapping from the profile's "modules" list: the mapping
// starting at `start` maps file offset `offset`, which lies in one PT_LOAD
// segment; that segment's addresses tell what ELF address `start` is.
static bool mapping_bias(const struct module_file *m, const struct plk_module *map,
                         long page_size, uint64_t *bias)
{
    for (size_t i = 0; i < m->n_loads; i++) {
        const GElf_Phdr *ph = &m->loads[i];
        uint64_t first_page = ph->p_offset & ~(uint64_t)(page_size - 1);
        if (map->offset >= first_page && map->offset < ph->p_offset + ph->p_filesz) {
            uint64_t vaddr_at_start = ph->p_vaddr - (ph->p_offset - map->offset);
            *bias = map->start - vaddr_at_start;
            return true;
        }
    }
    return false;
}

// ELF address of a frame. From ip and the "modules" list when the frame's
// mapping is there (exact for PIE and non-PIE executables alike), else the
// frame's recorded offset.
static bool frame_address(struct plk_symbolizer *s, const struct plk_profile *p,
                          const struct module_file *m, const struct plk_frame *f,
                          uint64_t *addr)
{
    for (size_t i = 0; i < p->n_modules; i++) {
        const struct plk_module *map = &p->modules[i];
        uint64_t bias;
        if (strcmp(map->path, f->module) == 0 && f->ip >= map->start &&
            (!map->end || f->ip < map->end) && mapping_bias(m, map, s->page_size, &bias)) {
            *addr = f->ip - bias;
            return true;
        }
    }
    *addr = f->offset;
    return f->has_offset;
}

static void symbolize_frame(struct plk_symbolizer *s, const struct plk_profile *p,
                            struct plk_frame *f)
{
    if (!f->module || (f->function && f->file))
        return;
    struct module_file *m = module_file(s, f->module);
    if (!m) {
        if (!f->function)
            warn_unreadable(s, f->module);
        return;
    }
    uint64_t addr;
    if (!frame_address(s, p, m, f, &addr))
        return;
    GElf_Addr dwfl_addr = addr + m->bias;
    if (!f->function) {
        GElf_Off off;
        GElf_Sym sym;
        const char *name = dwfl_module_addrinfo(m->mod, dwfl_addr, &off, &sym, NULL, NULL, NULL);
        if (name && GELF_ST_TYPE(sym.st_info) == STT_FUNC)
            plk_frame_set_symbol(f, name, (int64_t)off);
    }
    if (!f->file) {
        Dwfl_Line *line = dwfl_module_getsrc(m->mod, dwfl_addr);
        int lineno = 0;
        const char *file = line ? dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL) : NULL;
        if (file && lineno > 0)
            plk_frame_set_source(f, file, lineno);
    }
}

static void symbolize_frames(struct plk_symbolizer *s, const struct plk_profile *p,
                             struct plk_frame *frames, size_t n)
{
    for (size_t i = 0; i < n; i++)
        symbolize_frame(s, p, &frames[i]);
}

static void symbolize_stacks(struct plk_symbolizer *s, const struct plk_profile *p,
                             struct plk_stack *stacks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        symbolize_frames(s, p, stacks[i].frames, stacks[i].n_frames);
}

// The data symbol `address` lies in ("cache_lock", "table+64"), looked up in
// every module of the dump: static and global locks live in a module's
// .data or .bss, which the "modules" list (executable mappings) does not
// show but whose position follows from the executable mapping's.
static bool data_symbol(struct plk_symbolizer *s, const struct plk_profile *p,
                        uint64_t address, char *name, size_t size)
{
    for (size_t i = 0; i < p->n_modules; i++) {
        const struct plk_module *map = &p->modules[i];
        struct module_file *m = module_file(s, map->path);
        uint64_t bias;
        if (!m || !mapping_bias(m, map, s->page_size, &bias))
            continue;
        uint64_t addr = address - bias;
        for (size_t j = 0; j < m->n_loads; j++) {
            const GElf_Phdr *ph = &m->loads[j];
            if (addr < ph->p_vaddr || addr >= ph->p_vaddr + ph->p_memsz)
                continue;
            GElf_Off off;
            GElf_Sym sym;
            const char *sname = dwfl_module_addrinfo(m->mod, addr + m->bias, &off, &sym,
                                                     NULL, NULL, NULL);
            int type = sname ? GELF_ST_TYPE(sym.st_info) : STT_NOTYPE;
            if (!sname || (type != STT_OBJECT && type != STT_COMMON) ||
                (sym.st_size && off >= sym.st_size))
                return false;
            if (off)
                snprintf(name, size, "%s+%" PRIu64, sname, (uint64_t)off);
            else
                snprintf(name, size, "%s", sname);
            return true;
        }
    }
    return false;
}

static const char *site_name(const struct plk_frame *site, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!plk_runtime_module(site[i].module))
            return site[i].function;
    return NULL;
}

static void name_lock(struct plk_symbolizer *s, const struct plk_profile *p, struct plk_lock *l)
{
    char name[512];
    const char *from_site;
    if (l->name)
        return;
    if (data_symbol(s, p, l->address, name, sizeof name))
        plk_lock_set_name(l, name, "symbol");
    else if ((from_site = site_name(l->site, l->n_site)))
        plk_lock_set_name(l, from_site, "site");
}

static void name_cond(struct plk_symbolizer *s, const struct plk_profile *p, struct plk_cond *c)
{
    char name[512];
    const char *from_site;
    if (c->name)
        return;
    if (data_symbol(s, p, c->address, name, sizeof name))
        plk_cond_set_name(c, name, "symbol");
    else if ((from_site = site_name(c->site, c->n_site)))
        plk_cond_set_name(c, from_site, "site");
}

void plk_symbolize_profile(struct plk_symbolizer *s, struct plk_profile *p)
{
    for (size_t i = 0; i < p->n_locks; i++) {
        struct plk_lock *l = &p->locks[i];
        symbolize_frames(s, p, l->site, l->n_site);
        symbolize_stacks(s, p, l->waiters, l->n_waiters);
        symbolize_stacks(s, p, l->holders, l->n_holders);
        name_lock(s, p, l);
    }
    for (size_t i = 0; i < p->n_conds; i++) {
        struct plk_cond *c = &p->conds[i];
        symbolize_frames(s, p, c->site, c->n_site);
        symbolize_stacks(s, p, c->waiters, c->n_waiters);
        name_cond(s, p, c);
    }
}
