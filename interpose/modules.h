// The process's module map for the dumps: the executable file mappings of
// /proc/self/maps, read with open/read into static memory, so the signal dump
// can use it (async-signal-safe). Frames are reported as an offset from their
// module's load base, the address `addr2line -e module` and ELF symbol tables
// use.
//
// Example usage:
//   plk_modules_load();
//   const struct plk_module *m = plk_modules_find(ip);
//   if (m) report(m->path, ip - m->base);
#ifndef PLK_MODULES_H
#define PLK_MODULES_H

#include <stddef.h>
#include <stdint.h>

// At most this many executable mappings are kept; later ones are ignored.
#define PLK_MODULES_MAX 2048

struct plk_module {
    uintptr_t start, end; // the executable mapping [start, end)
    uintptr_t offset;     // file offset of `start`
    uintptr_t base;       // load base: where file offset 0 is mapped
    const char *path;     // as /proc/self/maps shows it (may end " (deleted)")
};

// Reads the map afresh (replacing the previous one); returns the number of
// executable file mappings, 0 if /proc/self/maps cannot be read.
size_t plk_modules_load(void);

size_t plk_modules_count(void);
const struct plk_module *plk_module_at(size_t i);

// The mapping containing `addr`, or NULL.
const struct plk_module *plk_modules_find(uintptr_t addr);

// The file name part of the module's path.
const char *plk_module_basename(const struct plk_module *m);

#endif
