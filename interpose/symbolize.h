// In-process symbolisation for the dumps made outside signal handlers.
//
// libdw is dlopen'ed at the first dump (never linked, so a host process
// loads it only if it dumps), and a Dwfl session reports this process's
// modules from /proc/self/maps. Without libdw, dladdr gives function names
// from the dynamic symbol tables only. Not async-signal-safe: signal dumps
// stay raw.
//
// Debug information is looked for in the module itself and by build ID in
// /usr/lib/debug; never through debuginfod, so a dump never reaches the
// network.
//
// Example usage:
//   if (plk_symbolize_begin()) {
//       struct plk_sym s;
//       if (plk_symbolize_code(ip, &s)) ... s.function, s.file ...
//       plk_symbolize_end(); // the strings die here
//   }
#ifndef PLK_SYMBOLIZE_H
#define PLK_SYMBOLIZE_H

#include <stdbool.h>
#include <stdint.h>

struct plk_sym {
    const char *function;     // NULL: unknown
    uint64_t function_offset; // ip - start of function
    const char *file;         // NULL: no line information
    int line;
};

// Starts a session; false when nothing can symbolise.
bool plk_symbolize_begin(void);

// Code address `ip` (already inside the instruction) → function and line.
bool plk_symbolize_code(uintptr_t ip, struct plk_sym *out);

// Data address → the variable containing it and the offset into it (an
// object symbol of a module: globals and statics, not heap or stack).
bool plk_symbolize_data(uintptr_t addr, const char **name, uint64_t *offset);

// Ends the session: every string returned since begin becomes invalid.
void plk_symbolize_end(void);

#endif
