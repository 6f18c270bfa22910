#include "cli_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

volatile sig_atomic_t cli_signal_received;
static volatile sig_atomic_t child_pid;
// Dispositions before cli_forward_signals, for the child: a signal the
// user's shell ignores (INT in a background job) stays ignored in PROG.
static struct sigaction original[NSIG];

static const int forwarded[] = { SIGINT, SIGQUIT, SIGTERM, SIGHUP,
                                 SIGUSR1, SIGUSR2, SIGALRM };
#define N_FORWARDED (sizeof forwarded / sizeof forwarded[0])

static void on_signal(int sig, siginfo_t *info, void *ctx)
{
    (void)ctx;
    cli_signal_received = sig;
    // si_code <= 0: sent by a process (kill, sigqueue, tgkill); > 0: by the
    // kernel, e.g. the terminal's ^C, which the child received too.
    if (child_pid > 0 && info && info->si_code <= 0)
        kill((pid_t)child_pid, sig);
}

static void forwarded_set(sigset_t *set)
{
    sigemptyset(set);
    for (size_t i = 0; i < N_FORWARDED; i++)
        sigaddset(set, forwarded[i]);
}

void cli_forward_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    forwarded_set(&sa.sa_mask);
    for (size_t i = 0; i < N_FORWARDED; i++)
        sigaction(forwarded[i], &sa, &original[forwarded[i]]);
}

static void redirect(int fd, const char *path, int flags)
{
    int n = open(path, flags);
    if (n >= 0 && n != fd) {
        dup2(n, fd);
        close(n);
    }
}

// In the child: the dispositions and the signal mask of before parklock
// changed them, redirections, then exec. A failure goes back to the parent
// through the close-on-exec pipe as an errno.
static _Noreturn void child(char **argv, const struct cli_spawn_options *opts,
                  const sigset_t *mask, int report_fd)
{
    for (size_t i = 0; i < N_FORWARDED; i++) {
        struct sigaction *sa = &original[forwarded[i]];
        if (sa->sa_handler != SIG_IGN)
            signal(forwarded[i], SIG_DFL);
        else
            sigaction(forwarded[i], sa, NULL);
    }
    sigprocmask(SIG_SETMASK, mask, NULL);
    if (opts && opts->null_stdin)
        redirect(STDIN_FILENO, "/dev/null", O_RDONLY);
    if (opts && opts->quiet) {
        redirect(STDOUT_FILENO, "/dev/null", O_WRONLY);
        redirect(STDERR_FILENO, "/dev/null", O_WRONLY);
    }
    execvp(argv[0], argv);
    int err = errno;
    ssize_t w = write(report_fd, &err, sizeof err);
    (void)w;
    _exit(CLI_NOTFOUND);
}

// The shell's words and codes for a program that did not start.
static int exec_failure(const char *prog, int err)
{
    if (err == ENOENT && !strchr(prog, '/')) {
        cli_error("%s: command not found", prog);
        return CLI_NOTFOUND;
    }
    cli_error("%s: %s", prog, strerror(err));
    return err == ENOENT ? CLI_NOTFOUND : CLI_NOEXEC;
}

pid_t cli_spawn(char **argv, const struct cli_spawn_options *opts)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        cli_error("pipe: %m");
        return -CLI_NOEXEC;
    }
    // Blocked across fork: a forwarded signal must not find child_pid stale.
    sigset_t block, old;
    forwarded_set(&block);
    sigprocmask(SIG_BLOCK, &block, &old);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        child(argv, opts, &old, fds[1]);
    if (pid > 0)
        child_pid = pid;
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        cli_error("fork: %m");
        return -CLI_NOEXEC;
    }
    int err;
    ssize_t n;
    do
        n = read(fds[0], &err, sizeof err);
    while (n < 0 && errno == EINTR);
    close(fds[0]);
    if (n == (ssize_t)sizeof err) {
        cli_wait(pid);
        return -exec_failure(argv[0], err);
    }
    return pid;
}

int cli_wait(pid_t pid)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    child_pid = 0;
    return status;
}

int cli_status_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return CLI_SIGNAL_BASE + WTERMSIG(status);
    return CLI_FAIL;
}

void cli_report_status(const char *prog, int status)
{
    if (!WIFSIGNALED(status))
        return;
    int sig = WTERMSIG(status);
    if (sig == SIGINT || sig == SIGPIPE)
        return;
    const char *what = strsignal(sig);
    cli_error("%s: %s%s", prog, what ? what : "killed by a signal",
              WCOREDUMP(status) ? " (core dumped)" : "");
}
