// The contention profile's dumps: when they happen and where they go.
//
// Triggers (armed by plk_dump_init when profiling is on):
//   - normal exit (main returns, exit()): an atexit handler;
//   - PARKLOCK_DUMP_SIGNAL: a dump from the signal handler, the program
//     goes on (SA_RESTART);
//   - SIGINT / SIGTERM, only where the program left them at SIG_DFL: a dump,
//     then the process dies by the same signal;
//   - parklock_dump(), exported for programs that dump themselves.
// Dumps from signal handlers make only async-signal-safe calls: their frames
// are raw (module + offset, "symbolized": false). Others symbolise in
// process (symbolize.h).
//
// Output: PARKLOCK_OUTPUT, "" for stderr (never stdout), else a file name
// template: %p the pid, %t the time (seconds since the epoch), %n the
// number of this dump in this process (1, 2, ...), %% a '%'. The file is
// created (mode 0644, truncated, the last component never followed if it is
// a symlink). Any failure -- open, write, a short write -- prints one
// "parklock: warning: PARKLOCK_OUTPUT=..." line and the program goes on
// unchanged. Two dumps whose names expand alike overwrite each other: the
// last one stays.
//
// Format: PARKLOCK_FORMAT, text / json / folded (docs/dump-format.md).
#ifndef PLK_DUMP_H
#define PLK_DUMP_H

enum plk_dump_reason {
    PLK_DUMP_EXIT,
    PLK_DUMP_API,
    PLK_DUMP_SIGNAL,
    PLK_DUMP_FATAL_SIGNAL,
};

// Once, from plk_profile_init, after the settings are read and the tables
// mapped: records the start time and arms the triggers above.
void plk_dump_init(void);

// In a forked child, after the tables were reset: a new start time, dump
// numbering from 1, and no dump in progress (one in the parent's other
// thread does not exist here).
void plk_dump_fork_child(void);

// Writes one dump with the current settings. A dump that starts while
// another one is running (another thread, or a signal landing inside a dump)
// is skipped. Safe in a signal handler when `reason` is PLK_DUMP_SIGNAL or
// PLK_DUMP_FATAL_SIGNAL.
void plk_dump(enum plk_dump_reason reason);

// Exported (interpose/exports.map: parklock_*): a dump now, reason "api",
// symbolised. Not for signal handlers: use PARKLOCK_DUMP_SIGNAL.
void parklock_dump(void);

// The name of a reason, as "reason" in the JSON dump.
const char *plk_dump_reason_name(enum plk_dump_reason reason);

// Internal (dump_signals.c, called by plk_dump_init): installs the dump
// signal's handler and the SIGINT/SIGTERM handlers. Those two stay hidden
// from the program: sigaction() and signal() report them as SIG_DFL, and
// setting SIG_DFL keeps them (exports.map lists the interposed functions).
void plk_dump_arm_signals(void);

// Resolves the next sigaction and signal() family (dump_signals.c), which
// also wrap the program's handlers; called by the constructor.
void plk_signals_init(void);

#endif
