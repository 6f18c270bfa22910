// Garbage: mutexes and condition variables full of random bytes, destroyed
// objects, double destroy, unlock of an unlocked mutex of every type, bad
// timespecs -- compared, call by call, with what glibc does to the very same
// bytes.
//
// The oracle is glibc itself, in the same process: its functions are looked
// up with dlvsym(RTLD_DEFAULT, name, "GLIBC_x") -- parklock's definitions are
// unversioned, so a versioned lookup finds glibc's. Each case (random bytes,
// shaped by one of several variants, plus a script of calls) runs twice, each
// time in a forked child that reports every call's return value through a
// pipe:
//   1. with glibc's functions. Where glibc blocks (a lock of a word it thinks
//      is held), spins or crashes, the comparison stops: garbage on which
//      glibc itself hangs or crashes is not a valid case;
//   2. with the ordinary calls (parklock's under the preload).
// Checked, for every call glibc returned from:
//   - the tested library returns too (no crash, no hang);
//   - where glibc returned an error, the tested library returns the same
//     error; where glibc returned 0 and the tested library an error, or they
//     disagree after that, the case is printed as a note (the states have
//     diverged), not counted as a failure.
// On plain glibc both runs use glibc's functions: the run proves the harness.
//
// Two states are excluded by design:
//   - a mutex lock word of exactly 2 is "locked, with waiters" to glibc and
//     "free, waiters parked" to parklock; both libraries produce it, so it
//     cannot be garbage;
//   - a recursive mutex owned by the caller with a recursion count of 0:
//     glibc's cond wait then "gives back one level" by wrapping the count to
//     UINT_MAX (the mutex stays locked) and its relock reports the overflow
//     (EAGAIN); emulating arithmetic on a corrupted count is no goal.
#include <poll.h>

#include "torture.h"

typedef int (*mutex_fn)(pthread_mutex_t *);
typedef int (*mutex_init_fn)(pthread_mutex_t *, const pthread_mutexattr_t *);
typedef int (*mutex_timed_fn)(pthread_mutex_t *, const struct timespec *);
typedef int (*mutex_clock_fn)(pthread_mutex_t *, clockid_t, const struct timespec *);
typedef int (*cond_fn)(pthread_cond_t *);
typedef int (*cond_init_fn)(pthread_cond_t *, const pthread_condattr_t *);
typedef int (*cond_timed_fn)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
typedef int (*cond_clock_fn)(pthread_cond_t *, pthread_mutex_t *, clockid_t,
                             const struct timespec *);

struct api {
    const char *name;
    mutex_init_fn init;
    mutex_fn lock, trylock, unlock, destroy;
    mutex_timed_fn timedlock;
    mutex_clock_fn clocklock;
    cond_init_fn cinit;
    cond_fn csignal, cbroadcast, cdestroy;
    cond_timed_fn ctimedwait;
    cond_clock_fn cclockwait;
};

static struct api tested = {
    "tested",          pthread_mutex_init,    pthread_mutex_lock,
    pthread_mutex_trylock, pthread_mutex_unlock, pthread_mutex_destroy,
    pthread_mutex_timedlock, pthread_mutex_clocklock, pthread_cond_init,
    pthread_cond_signal, pthread_cond_broadcast, pthread_cond_destroy,
    pthread_cond_timedwait, pthread_cond_clockwait,
};

static struct api oracle = { .name = "glibc" };

static void *glibc_fn(const char *name, const char *version)
{
    void *f = dlvsym(RTLD_DEFAULT, name, version);
    if (!f) {
        fprintf(stderr, "garbage: glibc's %s@%s not found\n", name, version);
        exit(2);
    }
    return f;
}

static void load_oracle(void)
{
    oracle.init = (mutex_init_fn)glibc_fn("pthread_mutex_init", "GLIBC_2.2.5");
    oracle.lock = (mutex_fn)glibc_fn("pthread_mutex_lock", "GLIBC_2.2.5");
    oracle.trylock = (mutex_fn)glibc_fn("pthread_mutex_trylock", "GLIBC_2.34");
    oracle.unlock = (mutex_fn)glibc_fn("pthread_mutex_unlock", "GLIBC_2.2.5");
    oracle.destroy = (mutex_fn)glibc_fn("pthread_mutex_destroy", "GLIBC_2.2.5");
    oracle.timedlock = (mutex_timed_fn)glibc_fn("pthread_mutex_timedlock", "GLIBC_2.34");
    oracle.clocklock = (mutex_clock_fn)glibc_fn("pthread_mutex_clocklock", "GLIBC_2.34");
    oracle.cinit = (cond_init_fn)glibc_fn("pthread_cond_init", "GLIBC_2.3.2");
    oracle.csignal = (cond_fn)glibc_fn("pthread_cond_signal", "GLIBC_2.3.2");
    oracle.cbroadcast = (cond_fn)glibc_fn("pthread_cond_broadcast", "GLIBC_2.3.2");
    oracle.cdestroy = (cond_fn)glibc_fn("pthread_cond_destroy", "GLIBC_2.3.2");
    oracle.ctimedwait = (cond_timed_fn)glibc_fn("pthread_cond_timedwait", "GLIBC_2.3.2");
    oracle.cclockwait = (cond_clock_fn)glibc_fn("pthread_cond_clockwait", "GLIBC_2.34");
}

/* Scripts. */

enum op {
    END,
    // on the garbage mutex
    M_INIT, M_LOCK, M_TRYLOCK, M_UNLOCK, M_DESTROY, M_TIMEDLOCK_PAST,
    M_CLOCKLOCK_PAST, M_CLOCKLOCK_BADCLOCK, M_TIMEDLOCK_BADNSEC, M_TIMEDLOCK_SOON,
    M_CONDWAIT_PAST, // a valid cond, the garbage mutex
    // on the garbage cond (a valid normal mutex, locked around waits)
    C_INIT, C_SIGNAL, C_BROADCAST, C_DESTROY, C_TIMEDWAIT_PAST, C_CLOCKWAIT_PAST,
    C_CLOCKWAIT_BADCLOCK, C_TIMEDWAIT_BADNSEC, C_TIMEDWAIT_SOON,
};

static const char *const op_names[] = {
    "end", "init", "lock", "trylock", "unlock", "destroy", "timedlock(past)",
    "clocklock(MONOTONIC, past)", "clocklock(bad clock)", "timedlock(bad tv_nsec)",
    "timedlock(+1ms)", "cond_timedwait(valid cond, past)", "cond_init", "cond_signal",
    "cond_broadcast", "cond_destroy", "cond_timedwait(past)",
    "cond_clockwait(MONOTONIC, past)", "cond_clockwait(bad clock)",
    "cond_timedwait(bad tv_nsec)", "cond_timedwait(+1ms)",
};

#define MAX_OPS 8
static const enum op mutex_scripts[][MAX_OPS] = {
    { M_TRYLOCK, M_UNLOCK, M_UNLOCK, M_DESTROY, M_DESTROY, M_TRYLOCK },
    { M_TIMEDLOCK_PAST, M_CLOCKLOCK_PAST, M_UNLOCK, M_TRYLOCK, M_UNLOCK },
    { M_TIMEDLOCK_BADNSEC, M_CLOCKLOCK_BADCLOCK, M_UNLOCK, M_DESTROY },
    { M_UNLOCK, M_LOCK, M_UNLOCK, M_LOCK, M_TRYLOCK, M_UNLOCK },
    { M_CONDWAIT_PAST, M_UNLOCK, M_DESTROY },
    { M_DESTROY, M_LOCK, M_UNLOCK, M_TRYLOCK, M_TIMEDLOCK_PAST, M_DESTROY },
    { M_LOCK, M_LOCK, M_UNLOCK, M_UNLOCK, M_UNLOCK },
    { M_TIMEDLOCK_SOON, M_UNLOCK, M_CONDWAIT_PAST, M_UNLOCK },
    { M_INIT, M_LOCK, M_UNLOCK, M_UNLOCK, M_DESTROY, M_DESTROY, M_LOCK },
};
static const enum op cond_scripts[][MAX_OPS] = {
    { C_SIGNAL, C_BROADCAST, C_DESTROY, C_DESTROY },
    { C_TIMEDWAIT_PAST, C_CLOCKWAIT_PAST, C_SIGNAL, C_BROADCAST },
    { C_CLOCKWAIT_BADCLOCK, C_TIMEDWAIT_BADNSEC, C_SIGNAL, C_DESTROY },
    { C_DESTROY, C_SIGNAL, C_BROADCAST, C_TIMEDWAIT_PAST, C_DESTROY },
    { C_TIMEDWAIT_SOON, C_BROADCAST, C_DESTROY },
    { C_INIT, C_TIMEDWAIT_PAST, C_SIGNAL, C_DESTROY, C_DESTROY },
};
#define N_MSCRIPTS (int)(sizeof mutex_scripts / sizeof mutex_scripts[0])
#define N_CSCRIPTS (int)(sizeof cond_scripts / sizeof cond_scripts[0])

/* Objects. */

union object {
    pthread_mutex_t m;
    pthread_cond_t c;
    unsigned char bytes[64];
};

// Variants of garbage: what part is left random.
enum { N_MVARIANTS = 8, N_CVARIANTS = 6, OWNER_SELF = 0x7fffffff };

static const char *const mvariant_names[N_MVARIANTS] = {
    "random",
    "random, parking-lot kind",
    "random, parking-lot kind, lock word 0",
    "random, parking-lot kind, owner = caller",
    "parking-lot kind, small lock word, odd owner/count",
    "destroyed (kind -1), rest random",
    "random, glibc-only kind (robust/PI/PP/pshared)",
    "zero but a parking-lot kind and a random lock word",
};
static const char *const cvariant_names[N_CVARIANTS] = {
    "random",
    "random, no glibc waiters (__wrefs < 8)",
    "random first 8 bytes, rest zero",
    "random, private, no glibc waiters, destroyed flag",
    "random, process-shared, no glibc waiters",
    "zero but __wrefs low bits",
};

static int parkinglot_kind(uint32_t r)
{
    static const int hints[3] = { 0, 256, 512 };
    return (int)(r & 3) | hints[(r >> 2) % 3];
}

static void make_mutex(union object *o, int variant, uint32_t *s)
{
    for (size_t i = 0; i < sizeof o->bytes; i++)
        o->bytes[i] = (unsigned char)rnd(s);
    struct __pthread_mutex_s *d = &o->m.__data;
    switch (variant) {
    case 1:
        d->__kind = parkinglot_kind(rnd(s));
        break;
    case 2:
        d->__kind = parkinglot_kind(rnd(s));
        d->__lock = 0;
        break;
    case 3:
        d->__kind = parkinglot_kind(rnd(s));
        d->__owner = OWNER_SELF;
        break;
    case 4: {
        static const unsigned counts[] = { 0, 1, 2, 0xffffffffu };
        uint32_t r = rnd(s);
        d->__kind = parkinglot_kind(r);
        d->__lock = (int)((r >> 8) % 8);
        d->__owner = (r >> 12) & 1 ? OWNER_SELF : (r >> 13) & 1 ? 0 : (int)(r >> 16);
        d->__count = counts[(r >> 20) % 4];
        d->__nusers = (r >> 22) % 3;
        break;
    }
    case 5:
        d->__kind = -1;
        break;
    case 6: {
        static const int flags[] = { 16, 32, 64, 128, 16 | 128, 32 | 16 };
        uint32_t r = rnd(s);
        d->__kind = (int)(r & 3) | flags[(r >> 2) % 6];
        break;
    }
    case 7: {
        uint32_t r = rnd(s);
        memset(o, 0, sizeof *o);
        d->__kind = parkinglot_kind(r);
        d->__lock = (int)(r >> 8);
        break;
    }
    }
}

static void make_cond(union object *o, int variant, uint32_t *s)
{
    for (size_t i = 0; i < sizeof o->bytes; i++)
        o->bytes[i] = (unsigned char)rnd(s);
    struct __pthread_cond_s *d = &o->c.__data;
    uint32_t r = rnd(s);
    switch (variant) {
    case 1:
        d->__wrefs = r & 7;
        break;
    case 2:
        memset((char *)o + 8, 0, sizeof *o - 8);
        break;
    case 3:
        d->__wrefs = (r & 2) | 4; // private, either clock, destroyed
        break;
    case 4:
        d->__wrefs = (r & 6) | 1;
        break;
    case 5:
        memset(o, 0, sizeof *o);
        d->__wrefs = r & 7;
        break;
    }
}

/* The child: runs a script, one int per call into the pipe. */

static int run_op(const struct api *a, enum op op, union object *o, pthread_cond_t *vc,
                  pthread_mutex_t *vm)
{
    struct timespec past = { 0, 0 };
    struct timespec bad = { now_ns(CLOCK_REALTIME) / 1000000000 + 1, 1000000000 };
    struct timespec soon_rt = deadline_after_ms(CLOCK_REALTIME, 1);
    struct timespec mono_past = deadline_after_ns(CLOCK_MONOTONIC, -1000);
    int r;
    switch (op) {
    case M_INIT:
        return a->init(&o->m, NULL);
    case M_LOCK:
        return a->lock(&o->m);
    case M_TRYLOCK:
        return a->trylock(&o->m);
    case M_UNLOCK:
        return a->unlock(&o->m);
    case M_DESTROY:
        return a->destroy(&o->m);
    case M_TIMEDLOCK_PAST:
        return a->timedlock(&o->m, &past);
    case M_CLOCKLOCK_PAST:
        return a->clocklock(&o->m, CLOCK_MONOTONIC, &mono_past);
    case M_CLOCKLOCK_BADCLOCK:
        return a->clocklock(&o->m, CLOCK_PROCESS_CPUTIME_ID, &past);
    case M_TIMEDLOCK_BADNSEC:
        return a->timedlock(&o->m, &bad);
    case M_TIMEDLOCK_SOON:
        return a->timedlock(&o->m, &soon_rt);
    case M_CONDWAIT_PAST:
        return a->ctimedwait(vc, &o->m, &past);
    case C_INIT:
        return a->cinit(&o->c, NULL);
    case C_SIGNAL:
        return a->csignal(&o->c);
    case C_BROADCAST:
        return a->cbroadcast(&o->c);
    case C_DESTROY:
        return a->cdestroy(&o->c);
    case C_TIMEDWAIT_PAST:
    case C_CLOCKWAIT_PAST:
    case C_CLOCKWAIT_BADCLOCK:
    case C_TIMEDWAIT_BADNSEC:
    case C_TIMEDWAIT_SOON:
        if (a->lock(vm) != 0)
            return -100;
        if (op == C_TIMEDWAIT_PAST)
            r = a->ctimedwait(&o->c, vm, &past);
        else if (op == C_CLOCKWAIT_PAST)
            r = a->cclockwait(&o->c, vm, CLOCK_MONOTONIC, &mono_past);
        else if (op == C_CLOCKWAIT_BADCLOCK)
            r = a->cclockwait(&o->c, vm, CLOCK_BOOTTIME, &past);
        else if (op == C_TIMEDWAIT_BADNSEC)
            r = a->ctimedwait(&o->c, vm, &bad);
        else {
            // A realtime deadline on a cond with a monotonic attribute would
            // be decades away: use the cond's own clock.
            clockid_t clk = o->c.__data.__wrefs & 2 ? CLOCK_MONOTONIC : CLOCK_REALTIME;
            struct timespec soon = deadline_after_ms(clk, 1);
            r = a->ctimedwait(&o->c, vm, &soon);
        }
        if (a->unlock(vm) != 0)
            return -101;
        return r;
    default:
        return -1;
    }
}

static void child(const struct api *a, union object *o, const enum op *script, int fd)
{
    alarm(30);
    // glibc asserts on some garbage; its messages would only be noise here
    // (a crash is seen through the exit status).
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0)
        dup2(null, STDERR_FILENO);
    if (o->m.__data.__owner == OWNER_SELF)
        o->m.__data.__owner = gettid();
    pthread_cond_t vc;
    pthread_mutex_t vm;
    memset(&vc, 0, sizeof vc);
    memset(&vm, 0, sizeof vm);
    a->cinit(&vc, NULL);
    a->init(&vm, NULL);
    for (int i = 0; i < MAX_OPS && script[i] != END; i++) {
        int r = run_op(a, script[i], o, &vc, &vm);
        if (write(fd, &r, sizeof r) != sizeof r)
            _exit(2);
    }
    _exit(0);
}

enum outcome { COMPLETED, BLOCKED, CRASHED };

struct run {
    int results[MAX_OPS];
    int n;
    enum outcome outcome;
    int signal;
};

// Runs `script` on a copy of `o` in a child with `a`. `want`: stop reading
// after that many results (the rest is not compared). `patience_ms`: how
// long a missing result may take before the child counts as blocked.
static struct run run_case(const struct api *a, const union object *o,
                           const enum op *script, int want, int patience_ms)
{
    struct run run = { .outcome = COMPLETED };
    int p[2];
    if (pipe(p) != 0) {
        perror("pipe");
        exit(2);
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        union object copy = *o;
        child(a, &copy, script, p[1]);
    }
    close(p[1]);
    while (run.n < want) {
        struct pollfd pfd = { .fd = p[0], .events = POLLIN };
        int64_t waited = 0;
        int pr;
        // Blocked: no result within 100 ms while sleeping in the kernel, or
        // within patience_ms in any case (a spin).
        while ((pr = poll(&pfd, 1, 100)) == 0) {
            waited += 100;
            char st = 0;
            char path[64], buf[256];
            snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
            int fd = open(path, O_RDONLY);
            if (fd >= 0) {
                ssize_t k = read(fd, buf, sizeof buf - 1);
                close(fd);
                if (k > 0) {
                    buf[k] = 0;
                    char *q = strrchr(buf, ')');
                    st = q && q[1] ? q[2] : 0;
                }
            }
            if ((st == 'S' && waited >= patience_ms / 10 && waited >= 100) ||
                waited >= patience_ms)
                break;
        }
        if (pr == 0) {
            run.outcome = BLOCKED;
            break;
        }
        int r;
        if (read(p[0], &r, sizeof r) != sizeof r)
            break; // EOF: exited or crashed
        run.results[run.n++] = r;
    }
    close(p[0]);
    if (run.outcome == BLOCKED || run.n >= want)
        kill(pid, SIGKILL);
    int st = wait_child(pid);
    if (run.outcome != BLOCKED && run.n < want && st >= 128) {
        run.outcome = CRASHED;
        run.signal = st - 128;
    }
    return run;
}

static long cases, compared_calls, glibc_blocked, glibc_crashed, notes, failures;

static void dump_bytes(const union object *o, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "%02x%s", o->bytes[i], i % 4 == 3 ? " " : "");
    fprintf(stderr, "\n");
}

static void compare(const char *what, const char *variant, const union object *o,
                    size_t size, const enum op *script)
{
    int len = 0;
    while (len < MAX_OPS && script[len] != END)
        len++;
    struct run g = run_case(&oracle, o, script, len, 300);
    if (g.outcome == BLOCKED)
        glibc_blocked++;
    if (g.outcome == CRASHED)
        glibc_crashed++;
    cases++;
    if (g.n == 0)
        return;
    struct run t = run_case(&tested, o, script, g.n, 3000);
    for (int i = 0; i < g.n; i++) {
        const char *problem = NULL;
        bool fatal = true;
        char got[64];
        if (i >= t.n) {
            problem = t.outcome == CRASHED ? "crashed" : "blocked";
            snprintf(got, sizeof got, "%s (signal %d)", problem, t.signal);
        } else if (t.results[i] != g.results[i]) {
            problem = "returned differently";
            fatal = g.results[i] != 0; // glibc's error must be reproduced
            snprintf(got, sizeof got, "%d %s", t.results[i], check_errname(t.results[i]));
        } else {
            compared_calls++;
            continue;
        }
        if (fatal) {
            failures++;
            atomic_fetch_add(&check_failures, 1);
        } else {
            notes++;
        }
        fprintf(stderr, "%s: %s %s [%s], call %d %s: glibc returned %d %s, %s %s\n",
                fatal ? "FAILED" : "note", what, variant, expect_mode(), i + 1,
                op_names[script[i]], g.results[i], check_errname(g.results[i]),
                expect_parkinglot() ? "parklock" : "tested", got);
        fprintf(stderr, "  script:");
        for (int k = 0; k < len; k++)
            fprintf(stderr, " %s%s", op_names[script[k]], k + 1 < len ? "," : "\n");
        fprintf(stderr, "  bytes: ");
        dump_bytes(o, size);
        break; // the states differ from here on
    }
}

int main(void)
{
    torture_init("garbage");
    load_oracle();
    struct phase p = phase_start("garbage objects", torture_seconds(3));
    uint32_t s = seed_for(getpid());
    const char *seed = getenv("PLK_TORTURE_SEED");
    if (seed && *seed)
        s = (uint32_t)strtoul(seed, NULL, 0) | 1;
    printf("garbage: seed %#x (PLK_TORTURE_SEED=%#x reproduces the run)\n", s, s);
    long n = 0;
    // Enough failures to diagnose; a broken library must not take forever.
    for (; (phase_time_left(&p) || n < 400) && failures < 12; n++) {
        union object o;
        if (n % 3 != 2) {
            int v = (int)(rnd(&s) % N_MVARIANTS);
            make_mutex(&o, v, &s);
            // Excluded states (see the top of the file).
            if (o.m.__data.__lock == 2)
                o.m.__data.__lock = 6;
            if (o.m.__data.__owner == OWNER_SELF && o.m.__data.__count == 0)
                o.m.__data.__count = 1;
            compare("mutex", mvariant_names[v], &o, sizeof(pthread_mutex_t),
                    mutex_scripts[rnd(&s) % N_MSCRIPTS]);
        } else {
            int v = (int)(rnd(&s) % N_CVARIANTS);
            make_cond(&o, v, &s);
            compare("cond", cvariant_names[v], &o, sizeof(pthread_cond_t),
                    cond_scripts[rnd(&s) % N_CSCRIPTS]);
        }
        tick();
        progress(&p, "%ld cases, %ld calls compared, %ld failures", cases,
                 compared_calls, failures);
    }
    summary("%ld cases, %ld calls compared; glibc blocked in %ld, crashed in %ld "
            "(not compared beyond); %ld failures, %ld notes",
            cases, compared_calls, glibc_blocked, glibc_crashed, failures, notes);
    return check_finish();
}
