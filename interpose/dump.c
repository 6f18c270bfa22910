// The dump triggers and the output file (see dump.h); the reports
// themselves are dump_text.c, dump_json.c and dump_folded.c over
// dump_model.h.
#include "dump.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dump_model.h"
#include "dump_out.h"
#include "export.h"
#include "log.h"
#include "modules.h"
#include "profile.h"
#include "symbolize.h"

/*
 * `dumping` admits one dump at a time, process-wide: a dump that finds it
 * set is skipped. It guards everything below and the static state of
 * dump_out, modules, symbolize and dump_model, which are used only inside a
 * dump. `start_ns` and `dumps` are reset only by plk_dump_init and in a
 * forked child, where no other thread runs.
 */
static _Atomic bool dumping;
static _Atomic bool armed;
static _Atomic int64_t start_ns;
static _Atomic unsigned dumps; // dumps started in this process, for %n
static struct plk_out out;
static struct plk_dump_model model;

const char *plk_dump_reason_name(enum plk_dump_reason reason)
{
    switch (reason) {
    case PLK_DUMP_EXIT:
        return "exit";
    case PLK_DUMP_API:
        return "api";
    case PLK_DUMP_SIGNAL:
        return "signal";
    default:
        return "fatal-signal";
    }
}

// strerror is not async-signal-safe; the errors an output file meets.
static const char *error_text(int e, char *buf, size_t len)
{
    static const struct {
        int e;
        const char *text;
    } names[] = {
        { ENOENT, "ENOENT (no such file or directory)" },
        { EACCES, "EACCES (permission denied)" },
        { EPERM, "EPERM (operation not permitted)" },
        { ELOOP, "ELOOP (a symlink, not followed)" },
        { EISDIR, "EISDIR (is a directory)" },
        { ENOTDIR, "ENOTDIR (not a directory)" },
        { ENOSPC, "ENOSPC (no space left on device)" },
        { EDQUOT, "EDQUOT (disk quota exceeded)" },
        { EROFS, "EROFS (read-only file system)" },
        { ENAMETOOLONG, "ENAMETOOLONG (file name too long)" },
        { EMFILE, "EMFILE (too many open files)" },
        { ENFILE, "ENFILE (too many open files in system)" },
        { ETXTBSY, "ETXTBSY (text file busy)" },
        { EFBIG, "EFBIG (file too large)" },
        { EPIPE, "EPIPE (broken pipe)" },
        { EBADF, "EBADF (bad file descriptor)" },
        { EIO, "EIO (input/output error)" },
        { ENXIO, "ENXIO (no such device or address)" },
        { EAGAIN, "EAGAIN (resource temporarily unavailable)" },
        { ENOMEM, "ENOMEM (out of memory)" },
        { EINVAL, "EINVAL (invalid argument)" },
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].e == e)
            return names[i].text;
    buf[0] = '\0';
    char n[24];
    plk_fmt_u64(n, sizeof n, (uint64_t)e);
    plk_fmt_cat(buf, len, "error ", n, NULL);
    return buf;
}

static void warn_output(const char *path, int err, const char *consequence)
{
    const char *tmpl = plk_profile_settings.output;
    char buf[32];
    const char *text = error_text(err, buf, sizeof buf);
    if (!tmpl[0])
        plk_warn("profile not written to stderr: ", text, NULL);
    else if (strcmp(tmpl, path) == 0)
        plk_warn("PARKLOCK_OUTPUT=", tmpl, ": ", text, "; ", consequence, NULL);
    else
        plk_warn("PARKLOCK_OUTPUT=", tmpl, ": ", path, ": ", text, "; ", consequence, NULL);
}

// The output file name: the template with %p, %t, %n and %% replaced (any
// other %-sequence stays as written). False if it does not fit.
static bool expand(const char *tmpl, unsigned number, char *dst, size_t len)
{
    size_t n = 0;
    dst[0] = '\0';
    for (const char *s = tmpl; *s; s++) {
        char num[24] = { *s, '\0' }; // by default the character itself
        if (*s == '%') {
            switch (s[1]) {
            case 'p':
                plk_fmt_u64(num, sizeof num, (uint64_t)getpid());
                s++;
                break;
            case 't': {
                struct timespec now = { 0 };
                clock_gettime(CLOCK_REALTIME, &now);
                plk_fmt_u64(num, sizeof num, (uint64_t)now.tv_sec);
                s++;
                break;
            }
            case 'n':
                plk_fmt_u64(num, sizeof num, number);
                s++;
                break;
            case '%':
                s++;
                break;
            }
        }
        size_t k = strlen(num);
        if (n + k + 1 > len)
            return false;
        memcpy(dst + n, num, k + 1);
        n += k;
    }
    return true;
}

// O_NONBLOCK: a FIFO nobody reads (a planted path) must not hang the
// program at exit: its open fails with ENXIO instead. Writes block again.
static int open_output(const char *path)
{
    int fd;
    do
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK,
                  0644);
    while (fd < 0 && errno == EINTR);
    if (fd >= 0) {
        int flags = fcntl(fd, F_GETFL);
        if (flags >= 0)
            fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    }
    return fd;
}

// A dump must not kill the program with SIGPIPE (stderr a closed pipe): the
// signal is blocked around the writes and, if they raised it, taken back
// (one that was pending before is left alone).
struct pipe_guard {
    sigset_t old;
    bool was_pending;
};

static void pipe_guard_enter(struct pipe_guard *g)
{
    sigset_t pipe, pending;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    g->was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, &g->old);
}

static void pipe_guard_leave(struct pipe_guard *g)
{
    sigset_t pipe, pending;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    if (!g->was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
        struct timespec zero = { 0 };
        while (sigtimedwait(&pipe, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

// Whether anything had to wait: contention, a cond wait, or dropped events.
static bool anything_waited(void)
{
    const struct plk_prof_entry *o = plk_prof_other();
    if (plk_dump_load(&o->contended) || plk_dump_load(&o->waits) ||
        plk_prof_totals().dropped_entries)
        return true;
    size_t slots = plk_prof_entry_slots();
    for (size_t i = 0; i < slots; i++) {
        const struct plk_prof_entry *e = plk_prof_entry_at(i);
        if (plk_dump_load(&e->address) &&
            (plk_dump_load(&e->contended) || plk_dump_load(&e->waits)))
            return true;
    }
    return false;
}

static void write_dump_unguarded(enum plk_dump_reason reason, unsigned number)
{
    const struct plk_profile_settings *st = &plk_profile_settings;
    bool in_signal = reason == PLK_DUMP_SIGNAL || reason == PLK_DUMP_FATAL_SIGNAL;
    char path[PATH_MAX];
    int fd = STDERR_FILENO;
    bool own_fd = st->output[0] != '\0'; // may be 2 itself if stderr was closed
    path[0] = '\0';
    // A text report with nothing to show needs no symbols; and a process
    // that never used a lock (every process of a shell pipeline run under
    // `parklock run`) says nothing on stderr at all.
    bool waited = anything_waited();
    if (!own_fd && st->format == PLK_FORMAT_TEXT && !waited && plk_prof_totals().entries == 0)
        return;
    if (own_fd) {
        if (!expand(st->output, number, path, sizeof path)) {
            warn_output(st->output, ENAMETOOLONG, "profile not written");
            return;
        }
        fd = open_output(path);
        if (fd < 0) {
            warn_output(path, errno, "profile not written");
            return;
        }
    }

    plk_modules_load();
    bool symbolized = !in_signal && (waited || st->format != PLK_FORMAT_TEXT) &&
                      plk_symbolize_begin();
    int64_t now = plk_profile_now(), start = atomic_load(&start_ns);
    int err = 0;
    if (!plk_dump_model_build(&model, reason, symbolized,
                              now > start ? (uint64_t)(now - start) : 0)) {
        err = ENOMEM;
    } else {
        plk_out_start(&out, fd);
        switch (st->format) {
        case PLK_FORMAT_JSON:
            plk_dump_write_json(&out, &model);
            break;
        case PLK_FORMAT_FOLDED:
            plk_dump_write_folded(&out, &model);
            break;
        default:
            plk_dump_write_text(&out, &model);
            break;
        }
        err = plk_out_finish(&out);
        plk_dump_model_free(&model);
    }
    if (symbolized)
        plk_symbolize_end();
    if (own_fd && close(fd) != 0 && !err && errno != EINTR)
        err = errno;
    if (err)
        warn_output(path, err, err == ENOMEM ? "profile not written" : "profile incomplete");
}

static void write_dump(enum plk_dump_reason reason, unsigned number)
{
    struct pipe_guard guard; // the warnings go to stderr too
    pipe_guard_enter(&guard);
    write_dump_unguarded(reason, number);
    pipe_guard_leave(&guard);
}

void plk_dump(enum plk_dump_reason reason)
{
    if (!atomic_load(&armed))
        return;
    bool idle = false;
    if (!atomic_compare_exchange_strong(&dumping, &idle, true))
        return; // another dump is running: this one is skipped
    int saved_errno = errno;
    bool saved_guard = plk_in_profiler;
    plk_in_profiler = true; // locks taken meanwhile (malloc, libdw) are not recorded
    bool in_signal = reason == PLK_DUMP_SIGNAL || reason == PLK_DUMP_FATAL_SIGNAL;
    // open, write and close are cancellation points: a dump cancelled
    // half-way would leave `dumping` set and silence every later dump.
    int cancel_state = PTHREAD_CANCEL_DISABLE;
    if (!in_signal)
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
    // System calls only (process_vm_readv): safe in a signal handler too.
    plk_profile_refresh_acquired();
    write_dump(reason, atomic_fetch_add(&dumps, 1) + 1);
    if (!in_signal)
        pthread_setcancelstate(cancel_state, NULL);
    plk_in_profiler = saved_guard;
    errno = saved_errno;
    atomic_store(&dumping, false);
}

PLK_EXPORT void parklock_dump(void)
{
    plk_dump(PLK_DUMP_API);
}

static void exit_dump(void)
{
    plk_dump(PLK_DUMP_EXIT);
}

void plk_dump_init(void)
{
    atomic_store(&start_ns, plk_profile_now());
    if (atomic_exchange(&armed, true))
        return; // once
    atexit(exit_dump);
    plk_dump_arm_signals();
}

void plk_dump_fork_child(void)
{
    atomic_store(&start_ns, plk_profile_now());
    atomic_store(&dumps, 0);
    atomic_store(&dumping, false);
}
