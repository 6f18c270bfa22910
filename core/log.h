// Diagnostics for code running inside other people's processes: one line on
// stderr with write(2): no stdio, no malloc, never stdout.
#ifndef PLK_LOG_H
#define PLK_LOG_H

// Writes "parklock: warning: " followed by the strings up to NULL, and a
// newline, as one write. Long lines are truncated.
void plk_warn(const char *first, ...) __attribute__((sentinel));

// The same with "parklock: fatal: ", then abort(). For broken invariants.
_Noreturn void plk_fatal(const char *first, ...) __attribute__((sentinel));

#endif
