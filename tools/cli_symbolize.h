// Symbolising a profile after the fact with libdw: function and file:line
// of raw frames ({ip, module, offset} only, as signal-time dumps write
// them), and names of locks and condition variables the dump left unnamed.
// Works from the module files on disk (and their separate debug info under
// /usr/lib/debug), so it must run where the profiled program's files are.
#ifndef PLK_CLI_SYMBOLIZE_H
#define PLK_CLI_SYMBOLIZE_H

#include "cli_profile.h"

struct plk_symbolizer;

struct plk_symbolizer *plk_symbolizer_new(void);
void plk_symbolizer_free(struct plk_symbolizer *s);

// Fills in what the profile lacks: "function"/"function_offset" and
// "file"/"line" of frames, then "name" (name_source "symbol": the variable
// the lock lies in, "table+64" inside a larger one; else "site": the first
// site frame's function outside libc and libparklock). Modules that cannot
// be read are warned about once, and only where a frame needed them.
void plk_symbolize_profile(struct plk_symbolizer *s, struct plk_profile *p);

#endif
