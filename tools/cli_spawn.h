// Starting PROG and reading its end like a shell: used by `run` (once) and
// `compare` (many times).
#ifndef PLK_CLI_SPAWN_H
#define PLK_CLI_SPAWN_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

struct cli_spawn_options {
    bool quiet;      // PROG's stdout and stderr go to /dev/null
    bool null_stdin; // PROG reads /dev/null (repeated runs must not eat input)
};

// The last signal this process received while forwarding (0: none).
extern volatile sig_atomic_t cli_signal_received;

// Catches the signals a user sends to stop or poke PROG (INT, QUIT, TERM,
// HUP, USR1, USR2, ALRM) for the rest of this process's life: each is
// recorded in cli_signal_received and passed on to the running child when
// another process sent it with kill(). A signal the kernel generated (^C at
// the terminal) is not passed on: it reached the child's process group
// already. Either way this process survives to report the child's end.
void cli_forward_signals(void);

// Starts argv (PATH searched as execvp does) with this process's
// environment. Returns the child's pid; on failure to execute, prints a
// shell-like message and returns -(126 or 127) (see cli.h).
pid_t cli_spawn(char **argv, const struct cli_spawn_options *opts);

// Waits for the child; returns its wait status.
int cli_wait(pid_t pid);

// A wait status as a shell's $? (128 + N for a death by signal N).
int cli_status_code(int status);

// For a death by signal, the message bash prints ("Segmentation fault
// (core dumped)"); nothing for SIGINT and SIGPIPE, as bash. `prog` leads.
void cli_report_status(const char *prog, int status);

#endif
