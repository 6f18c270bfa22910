// A program with known contention, for the profile-output tests
// (check_profile.py runs it under the preload and reads its dumps).
//
//   profile_prog MODE
//
// Every mode first runs the same choreography (`scenario`):
//   - solo_lock: locked SOLO_LOCKS times by one thread: never contended;
//   - cache_lock (a static: named by its symbol): held ~20 ms by a thread in
//     hold_cache_lock_20ms while the main thread waits in
//     wait_for_cache_lock; then CACHE_EXTRA uncontended locks. Acquired
//     exactly 2 + CACHE_EXTRA times, contended exactly once;
//   - a heap mutex initialised, contended once, destroyed, and initialised
//     again at the same address and contended once more: two rows;
//   - ready_cond: one wait woken by a signal, one timed wait that times
//     out, then COND_SIGNALS signal calls and COND_BROADCASTS broadcast
//     calls in all.
// and then:
//   exit      returns 0 from main
//   exit3     exit(3)
//   quiet     no scenario: one lock, never contended; returns 0
//   signal    raise(SIGUSR2) (PARKLOCK_DUMP_SIGNAL=USR2 dumps), then
//             contends late_lock and returns 0
//   api       parklock_dump() (found with dlsym), then contends late_lock
//             and returns 0
//   sigterm   raise(SIGTERM): dies by it (the preload dumps first)
//   fork      fork: the child contends child_lock and exit(0)s; the parent
//             waits for it and returns 0
//   sigterm_restored
//             checks that SIGINT and SIGTERM read as SIG_DFL (sigaction,
//             signal), installs a handler of its own for SIGTERM, restores
//             SIG_DFL, then raise(SIGTERM): dies by it
//   sigterm_handled
//             installs a SIGTERM handler of its own, raise(SIGTERM): the
//             handler runs, the program returns 0
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SOLO_LOCKS 1000
#define CACHE_EXTRA 100
#define COND_SIGNALS 7
#define COND_BROADCASTS 3

#define NOINLINE __attribute__((noinline, noclone))

static pthread_mutex_t solo_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t late_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t child_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t ready_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready_cond = PTHREAD_COND_INITIALIZER;

static void fail(const char *what, int err)
{
    fprintf(stderr, "profile_prog: %s: %s\n", what, strerror(err));
    exit(99);
}

#define CHECK(call)                                                           \
    do {                                                                      \
        int err_ = (call);                                                    \
        if (err_)                                                             \
            fail(#call, err_);                                                \
    } while (0)

static void sleep_ms(long ms)
{
    struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&t, &t) != 0 && errno == EINTR)
        ;
}

static void await_phase(atomic_int *phase, int want)
{
    while (atomic_load(phase) < want)
        sched_yield();
}

/*
 * One contended acquisition: the holder takes the lock and announces it
 * (phase 1); the waiter announces it is about to lock (phase 2) and locks;
 * the holder, seeing phase 2, keeps the lock `hold_ms` more. So the waiter
 * waits about hold_ms, and sleeps in the kernel.
 */
struct contest {
    pthread_mutex_t *m;
    long hold_ms;
    atomic_int phase;
    void (*hold)(struct contest *);
};

// The bodies, inlined into functions with distinctive names, so that each
// lock's frame 0 names its own holder or waiter.
static inline __attribute__((always_inline)) void hold_body(struct contest *c)
{
    CHECK(pthread_mutex_lock(c->m));
    atomic_store(&c->phase, 1);
    await_phase(&c->phase, 2);
    sleep_ms(c->hold_ms);
    CHECK(pthread_mutex_unlock(c->m));
}

static inline __attribute__((always_inline)) void wait_body(struct contest *c)
{
    await_phase(&c->phase, 1);
    atomic_store(&c->phase, 2);
    CHECK(pthread_mutex_lock(c->m));
    CHECK(pthread_mutex_unlock(c->m));
}

static NOINLINE void hold_cache_lock_20ms(struct contest *c)
{
    hold_body(c);
}

static NOINLINE void wait_for_cache_lock(struct contest *c)
{
    wait_body(c);
}

static NOINLINE void hold_reused_lock(struct contest *c)
{
    hold_body(c);
}

static NOINLINE void wait_for_reused_lock(struct contest *c)
{
    wait_body(c);
}

static NOINLINE void hold_late_lock(struct contest *c)
{
    hold_body(c);
}

static NOINLINE void wait_for_late_lock(struct contest *c)
{
    wait_body(c);
}

static NOINLINE void hold_child_lock(struct contest *c)
{
    hold_body(c);
}

static NOINLINE void wait_for_child_lock(struct contest *c)
{
    wait_body(c);
}

static void *holder_thread(void *arg)
{
    struct contest *c = arg;
    c->hold(c);
    return NULL;
}

static void contend(pthread_mutex_t *m, long hold_ms, void (*hold)(struct contest *),
                    void (*wait)(struct contest *))
{
    struct contest c = { .m = m, .hold_ms = hold_ms, .hold = hold };
    pthread_t t;
    CHECK(pthread_create(&t, NULL, holder_thread, &c));
    wait(&c);
    CHECK(pthread_join(t, NULL));
}

static NOINLINE void use_solo_lock(void)
{
    for (int i = 0; i < SOLO_LOCKS; i++) {
        CHECK(pthread_mutex_lock(&solo_lock));
        CHECK(pthread_mutex_unlock(&solo_lock));
    }
}

struct holder {
    long pad;
    pthread_mutex_t m;
};

static NOINLINE void reuse_heap_mutex(void)
{
    struct holder *h = malloc(sizeof *h);
    if (!h)
        fail("malloc", ENOMEM);
    for (int round = 0; round < 2; round++) {
        CHECK(pthread_mutex_init(&h->m, NULL));
        contend(&h->m, 5, hold_reused_lock, wait_for_reused_lock);
        CHECK(pthread_mutex_destroy(&h->m));
    }
    free(h);
}

static atomic_int cond_phase;
static int ready;

static NOINLINE void *wait_for_ready(void *arg)
{
    (void)arg;
    CHECK(pthread_mutex_lock(&ready_lock));
    atomic_store(&cond_phase, 1); // inside the lock: the waiter is about to wait
    while (!ready)
        CHECK(pthread_cond_wait(&ready_cond, &ready_lock));
    CHECK(pthread_mutex_unlock(&ready_lock));
    return NULL;
}

static NOINLINE void use_ready_cond(void)
{
    pthread_t t;
    CHECK(pthread_create(&t, NULL, wait_for_ready, NULL));
    await_phase(&cond_phase, 1);
    // The waiter holds ready_lock until its wait releases it: once we have
    // the lock, it is waiting.
    CHECK(pthread_mutex_lock(&ready_lock));
    // Cond waiter stacks are sampled by wait time; from 100 us on, always:
    // make this wait long enough that its stack must be there.
    struct timespec two_ms = { 0, 2000000 };
    nanosleep(&two_ms, NULL);
    ready = 1;
    CHECK(pthread_cond_signal(&ready_cond));
    CHECK(pthread_mutex_unlock(&ready_lock));
    CHECK(pthread_join(t, NULL));

    // A timed wait nobody signals.
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    CHECK(pthread_mutex_lock(&ready_lock));
    int r = pthread_cond_timedwait(&ready_cond, &ready_lock, &deadline);
    if (r != ETIMEDOUT)
        fail("pthread_cond_timedwait did not time out", r);
    CHECK(pthread_mutex_unlock(&ready_lock));

    for (int i = 1; i < COND_SIGNALS; i++)
        CHECK(pthread_cond_signal(&ready_cond));
    for (int i = 0; i < COND_BROADCASTS; i++)
        CHECK(pthread_cond_broadcast(&ready_cond));
}

static void scenario(void)
{
    use_solo_lock();
    contend(&cache_lock, 20, hold_cache_lock_20ms, wait_for_cache_lock);
    for (int i = 0; i < CACHE_EXTRA; i++) {
        CHECK(pthread_mutex_lock(&cache_lock));
        CHECK(pthread_mutex_unlock(&cache_lock));
    }
    reuse_heap_mutex();
    use_ready_cond();
}

static NOINLINE void late_work(void)
{
    contend(&late_lock, 5, hold_late_lock, wait_for_late_lock);
}

static NOINLINE void child_work(void)
{
    contend(&child_lock, 5, hold_child_lock, wait_for_child_lock);
}

static volatile sig_atomic_t got_sigterm;

static void on_sigterm(int sig)
{
    (void)sig;
    got_sigterm = 1;
}

// SIGINT and SIGTERM must look untouched, whatever the preload installed.
static void expect_default_dispositions(void)
{
    int sigs[] = { SIGINT, SIGTERM };
    for (int i = 0; i < 2; i++) {
        struct sigaction sa;
        if (sigaction(sigs[i], NULL, &sa) != 0 || (sa.sa_flags & SA_SIGINFO) ||
            sa.sa_handler != SIG_DFL) {
            fprintf(stderr, "profile_prog: signal %d does not read as SIG_DFL\n", sigs[i]);
            exit(96);
        }
    }
    void (*old)(int) = signal(SIGTERM, on_sigterm);
    void (*mine)(int) = signal(SIGTERM, SIG_DFL);
    if (old != SIG_DFL || mine != on_sigterm) {
        fprintf(stderr, "profile_prog: signal() does not report SIG_DFL, then our handler\n");
        exit(96);
    }
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "exit";
    if (strcmp(mode, "quiet") == 0) {
        use_solo_lock();
        return 0;
    }
    scenario();
    if (strcmp(mode, "exit") == 0)
        return 0;
    if (strcmp(mode, "exit3") == 0)
        exit(3);
    if (strcmp(mode, "signal") == 0) {
        raise(SIGUSR2);
        late_work();
        return 0;
    }
    if (strcmp(mode, "api") == 0) {
        void (*dump)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "parklock_dump");
        if (!dump) {
            fprintf(stderr, "profile_prog: parklock_dump not found (preload missing?)\n");
            return 98;
        }
        dump();
        late_work();
        return 0;
    }
    if (strcmp(mode, "sigterm") == 0) {
        raise(SIGTERM);
        fprintf(stderr, "profile_prog: survived SIGTERM\n");
        return 0; // only where SIGTERM is ignored
    }
    if (strcmp(mode, "sigterm_restored") == 0) {
        expect_default_dispositions();
        raise(SIGTERM);
        fprintf(stderr, "profile_prog: survived SIGTERM\n");
        return 0;
    }
    if (strcmp(mode, "sigterm_handled") == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigterm;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGTERM, &sa, NULL) != 0)
            fail("sigaction", errno);
        raise(SIGTERM);
        if (!got_sigterm) {
            fprintf(stderr, "profile_prog: our SIGTERM handler did not run\n");
            return 95;
        }
        return 0;
    }
    if (strcmp(mode, "fork") == 0) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0)
            fail("fork", errno);
        if (pid == 0) {
            child_work();
            exit(0);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid)
            fail("waitpid", errno);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "profile_prog: child failed (status %#x)\n", status);
            return 97;
        }
        return 0;
    }
    fprintf(stderr, "profile_prog: unknown mode %s\n", mode);
    return 2;
}
