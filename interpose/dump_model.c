#include "dump_model.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "profile.h"

// Heapsort: in place, no recursion, no allocation (qsort may malloc).
typedef int (*cmp_fn)(const void *a, const void *b);

static void swap(char *a, char *b, size_t size)
{
    while (size--) {
        char t = *a;
        *a++ = *b;
        *b++ = t;
    }
}

static void sift_down(char *base, size_t root, size_t n, size_t size, cmp_fn cmp)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n)
            return;
        if (child + 1 < n && cmp(base + child * size, base + (child + 1) * size) < 0)
            child++;
        if (cmp(base + root * size, base + child * size) >= 0)
            return;
        swap(base + root * size, base + child * size, size);
        root = child;
    }
}

static void heap_sort(void *items, size_t n, size_t size, cmp_fn cmp)
{
    char *base = items;
    if (n < 2)
        return;
    for (size_t i = n / 2; i-- > 0;)
        sift_down(base, i, n, size, cmp);
    for (size_t end = n - 1; end > 0; end--) {
        swap(base, base + end * size, size);
        sift_down(base, 0, end, size, cmp);
    }
}

// Ascending order of these keys is the report's order.
static int cmp_u64_desc(uint64_t a, uint64_t b)
{
    return a > b ? -1 : a < b;
}

static int cmp_item(const void *pa, const void *pb)
{
    const struct plk_dump_item *a = pa, *b = pb;
    int c = cmp_u64_desc(a->wait_ns, b->wait_ns);
    return c ? c : (a->e->id > b->e->id) - (a->e->id < b->e->id);
}

static int cmp_stack(const void *pa, const void *pb)
{
    const struct plk_dump_stack *a = pa, *b = pb;
    if (a->entry_slot != b->entry_slot)
        return a->entry_slot < b->entry_slot ? -1 : 1;
    if (a->role != b->role)
        return a->role < b->role ? -1 : 1;
    int c = cmp_u64_desc(a->weight, b->weight);
    if (c)
        return c;
    c = cmp_u64_desc(a->count, b->count);
    return c ? c : (a->s > b->s) - (a->s < b->s);
}

static void read_program(char *buf, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    buf[n > 0 ? n : 0] = '\0';
}

bool plk_dump_model_build(struct plk_dump_model *m, enum plk_dump_reason reason,
                          bool symbolized, uint64_t duration_ns)
{
    memset(m, 0, sizeof *m);
    m->reason = reason;
    m->symbolized = symbolized;
    m->pid = (int)getpid();
    m->duration_ns = duration_ns;
    read_program(m->program, sizeof m->program);
    m->totals = plk_prof_totals();
    m->other = plk_prof_other();
    const struct plk_module *self = plk_modules_find((uintptr_t)&plk_dump_model_build);
    m->self_path = self ? self->path : NULL;

    size_t eslots = plk_prof_entry_slots();
    size_t sslots = plk_prof_stack_slots();
    size_t len = eslots * sizeof(struct plk_dump_item) + eslots * sizeof(uint32_t) +
                 sslots * sizeof(struct plk_dump_stack);
    len = (len + 4095) & ~(size_t)4095;
    if (len == 0)
        len = 4096;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return false;
    m->scratch = p;
    m->scratch_len = len;
    struct plk_dump_stack *stacks = p;
    struct plk_dump_item *items = (struct plk_dump_item *)(stacks + sslots);
    uint32_t *item_of_slot = (uint32_t *)(items + eslots); // position + 1

    // Entries: mutexes from the front of items, conds from the back.
    size_t nlocks = 0, nconds = 0;
    for (size_t i = 0; i < eslots; i++) {
        struct plk_prof_entry *e = plk_prof_entry_at(i);
        if (!e || e == m->other ||
            atomic_load_explicit(&e->state, memory_order_acquire) == PLK_PROF_FREE ||
            atomic_load_explicit(&e->address, memory_order_relaxed) == 0)
            continue;
        size_t pos;
        if (e->kind == PLK_PROF_MUTEX)
            pos = nlocks++;
        else if (e->kind == PLK_PROF_COND)
            pos = eslots - ++nconds;
        else
            continue;
        items[pos] = (struct plk_dump_item){
            .e = e,
            .slot = (uint32_t)i,
            .wait_ns = plk_dump_load(&e->wait_total_ns),
        };
        item_of_slot[i] = (uint32_t)pos + 1;
    }

    // Stacks of those entries, grouped by entry and role, heaviest first.
    size_t nstacks = 0;
    for (size_t i = 0; i < sslots; i++) {
        const struct plk_prof_stack *s = plk_prof_stack_at(i);
        if (!s || !atomic_load_explicit(&s->ready, memory_order_acquire))
            continue;
        if (s->entry >= eslots || !item_of_slot[s->entry] || s->role == PLK_PROF_SITE)
            continue; // sites are reported through their entry's `site`
        stacks[nstacks++] = (struct plk_dump_stack){
            .s = s,
            .entry_slot = s->entry,
            .role = s->role,
            .weight = plk_dump_load(&s->weight),
            .count = plk_dump_load(&s->count),
        };
    }
    heap_sort(stacks, nstacks, sizeof *stacks, cmp_stack);
    for (size_t i = 0; i < nstacks;) {
        size_t j = i;
        while (j < nstacks && stacks[j].entry_slot == stacks[i].entry_slot)
            j++;
        struct plk_dump_item *it = &items[item_of_slot[stacks[i].entry_slot] - 1];
        it->first = (uint32_t)i;
        it->n = (uint32_t)(j - i);
        i = j;
    }

    m->stacks = stacks;
    m->nstacks = nstacks;
    m->locks = items;
    m->nlocks = nlocks;
    m->conds = items + eslots - nconds;
    m->nconds = nconds;
    heap_sort(m->locks, nlocks, sizeof *items, cmp_item);
    heap_sort(m->conds, nconds, sizeof *items, cmp_item);
    return true;
}

void plk_dump_model_free(struct plk_dump_model *m)
{
    if (m->scratch)
        munmap(m->scratch, m->scratch_len);
    m->scratch = NULL;
}

size_t plk_dump_stacks_of(const struct plk_dump_model *m, const struct plk_dump_item *it,
                          enum plk_prof_role role, const struct plk_dump_stack **first)
{
    const struct plk_dump_stack *s = m->stacks + it->first, *end = s + it->n;
    while (s < end && s->role != role)
        s++;
    const struct plk_dump_stack *start = s;
    while (s < end && s->role == role)
        s++;
    *first = start;
    return (size_t)(s - start);
}

const struct plk_prof_stack *plk_dump_site(const struct plk_dump_item *it)
{
    uint32_t site = atomic_load_explicit(&it->e->site, memory_order_acquire);
    if (site == 0 || site - 1 >= plk_prof_stack_slots())
        return NULL;
    const struct plk_prof_stack *s = plk_prof_stack_at(site - 1);
    if (!s || !atomic_load_explicit(&s->ready, memory_order_acquire))
        return NULL;
    return s;
}

void plk_dump_frame(const struct plk_dump_model *m, const struct plk_prof_stack *s, int i,
                    struct plk_dump_frame *f)
{
    // The recorded frames already point inside their call instructions
    // (plk_profile_stack takes one off each return address).
    uintptr_t ip = s->frames[i];
    f->ip = ip;
    f->module = plk_modules_find(ip);
    f->offset = f->module ? ip - f->module->base : ip;
    f->sym = (struct plk_sym){ 0 };
    if (m->symbolized)
        plk_symbolize_code(ip, &f->sym);
}

// libc or libparklock: frames in them do not name a lock.
static bool in_runtime(const struct plk_dump_model *m, const struct plk_module *mod)
{
    if (m->self_path && strcmp(mod->path, m->self_path) == 0)
        return true;
    const char *b = plk_module_basename(mod);
    return strncmp(b, "libc.so", 7) == 0 || strncmp(b, "libc-", 5) == 0;
}

enum plk_dump_name_source plk_dump_name(const struct plk_dump_model *m,
                                        const struct plk_dump_item *it, char *buf,
                                        size_t len)
{
    buf[0] = '\0';
    if (!m->symbolized)
        return PLK_NAME_NONE;
    const char *name;
    uint64_t off;
    uintptr_t addr = atomic_load_explicit(&it->e->address, memory_order_relaxed);
    if (plk_symbolize_data(addr, &name, &off)) {
        plk_fmt_cat(buf, len, name, NULL);
        if (off) {
            char n[24];
            plk_fmt_u64(n, sizeof n, off);
            plk_fmt_cat(buf, len, "+", n, NULL);
        }
        return PLK_NAME_SYMBOL;
    }
    const struct plk_prof_stack *site = plk_dump_site(it);
    for (int i = 0; site && i < site->depth; i++) {
        struct plk_dump_frame f;
        plk_dump_frame(m, site, i, &f);
        if (f.module && in_runtime(m, f.module))
            continue;
        if (f.sym.function) {
            plk_fmt_cat(buf, len, f.sym.function, NULL);
            return PLK_NAME_SITE;
        }
        if (!f.module)
            break;
        // A stripped module: its name and the offset still tell the sites
        // of two locks apart and can be symbolised later.
        char off[24];
        plk_fmt_hex(off, sizeof off, f.offset);
        plk_fmt_cat(buf, len, plk_module_basename(f.module), "+", off, NULL);
        return PLK_NAME_SITE;
    }
    return PLK_NAME_NONE;
}

const char *plk_dump_name_source_name(enum plk_dump_name_source s)
{
    switch (s) {
    case PLK_NAME_SYMBOL:
        return "symbol";
    case PLK_NAME_SITE:
        return "site";
    default:
        return "none";
    }
}

void plk_dump_label(const struct plk_dump_model *m, const struct plk_dump_item *it,
                    char *buf, size_t len)
{
    if (plk_dump_name(m, it, buf, len) == PLK_NAME_NONE)
        plk_fmt_hex(buf, len, atomic_load_explicit(&it->e->address, memory_order_relaxed));
}

bool plk_dump_glibc_ran(const struct plk_prof_entry *e)
{
    return e->type == PLK_PROF_GLIBC || strcmp(plk_profile_engine_name(), "glibc") == 0;
}

const char *plk_dump_type_name(const struct plk_prof_entry *e)
{
    return plk_dump_glibc_ran(e) ? "glibc" : plk_profile_type_name((enum plk_prof_type)e->type);
}
