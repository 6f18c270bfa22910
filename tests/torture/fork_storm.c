// Fork storm: worker threads contend on many mutexes (all four types) and
// condition variables (both clocks), sleepers are parked in cond waits, and a
// forker thread forks over and over. Each child, on the one thread that
// survived:
//   - finds every mutex either free or held by a thread that did not survive
//     (trylock EBUSY; then a checked type refuses unlock with EPERM and a
//     past-deadline clocklock says ETIMEDOUT: nothing hangs);
//   - locks, unlocks, relocks (EDEADLK / recursion) and timed-locks every free
//     one, records its own tid as owner;
//   - waits (past deadline: ETIMEDOUT) on every condition variable whose
//     mutex is free, signals and broadcasts it;
//   - starts two threads that ping-pong through two of the parent's conds with
//     untimed waits, and counts exactly;
// On glibc (plain, or PARKLOCK_ENGINE=glibc) the children leave the parent's
// condition variables alone and ping-pong on fresh ones: glibc's own
// pthread_cond_signal hangs in a child whose parent had waiters in the cond
// (__condvar_quiesce_and_switch_g1 waits for the vanished waiters' group
// references), so those operations are no valid comparison.
// then exits 0. Every fourth fork is _Fork() (no atfork handlers: the child
// stays single-threaded and does not allocate). With PLK_TORTURE_MALLOC=1 the
// workers and children also allocate (for jemalloc preloaded alongside).
//
// Figures printed: forks, _Forks, lock operations. Checked: every child exits
// 0, the parent's counters are exact, nothing hangs (watchdog, child alarm).
#include "torture.h"

#define N_MUTEX 16 // 4 of each type
#define N_COND 8
#define N_WORKERS 4
#define N_SLEEPERS 2
#define MIN_FORKS 200
#define CHILD_ALARM_S 60
#define PING_ROUNDS 200

static pthread_mutex_t mx[N_MUTEX];
static long mx_count[N_MUTEX];
static atomic_long mx_done[N_MUTEX]; // increments as each thread counted them
static pthread_mutex_t cm[N_COND];   // the mutex of cond i
static pthread_cond_t cv[N_COND];
static long cv_gen[N_COND];
static pthread_mutex_t fm = PTHREAD_MUTEX_INITIALIZER; // held by the forker around fork
static atomic_int stop;
static bool use_malloc;

static int mx_type(int i)
{
    static const int types[4] = { PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_RECURSIVE,
                                  PTHREAD_MUTEX_ERRORCHECK, PTHREAD_MUTEX_ADAPTIVE_NP };
    return types[i & 3];
}

static void init_objects(void)
{
    for (int i = 0; i < N_MUTEX; i++) {
        pthread_mutexattr_t a;
        pthread_mutexattr_init(&a);
        pthread_mutexattr_settype(&a, mx_type(i));
        CHECK_EQ(pthread_mutex_init(&mx[i], &a), 0);
        pthread_mutexattr_destroy(&a);
    }
    for (int i = 0; i < N_COND; i++) {
        pthread_mutexattr_t a;
        pthread_mutexattr_init(&a);
        pthread_mutexattr_settype(&a, i & 1 ? PTHREAD_MUTEX_ERRORCHECK
                                            : PTHREAD_MUTEX_NORMAL);
        CHECK_EQ(pthread_mutex_init(&cm[i], &a), 0);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        if (i & 2)
            pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        CHECK_EQ(pthread_cond_init(&cv[i], &ca), 0);
        pthread_condattr_destroy(&ca);
    }
}

static clockid_t cv_clock(int i)
{
    return i & 2 ? CLOCK_MONOTONIC : CLOCK_REALTIME;
}

/* Parent threads. */

static void *worker(void *arg)
{
    long id = (long)arg;
    uint32_t s = seed_for(id);
    long mine[N_MUTEX] = { 0 };
    void *blocks[8] = { 0 };
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        uint32_t r = rnd(&s);
        int k = (int)(r % N_MUTEX);
        int how = (int)((r >> 8) % 8);
        int got;
        if (how == 0) {
            got = pthread_mutex_trylock(&mx[k]);
            if (got == EBUSY)
                continue;
        } else if (how == 1) {
            struct timespec d = deadline_after_ns(CLOCK_REALTIME, 200000);
            got = pthread_mutex_timedlock(&mx[k], &d);
            if (got == ETIMEDOUT)
                continue;
        } else if (how == 2) {
            struct timespec d = deadline_after_ns(CLOCK_MONOTONIC, 200000);
            got = pthread_mutex_clocklock(&mx[k], CLOCK_MONOTONIC, &d);
            if (got == ETIMEDOUT)
                continue;
        } else {
            got = pthread_mutex_lock(&mx[k]);
        }
        CHECK_EQ(got, 0);
        if (got)
            continue;
        mx_count[k]++;
        mine[k]++;
        if (use_malloc) {
            int b = (int)((r >> 16) & 7);
            free(blocks[b]);
            blocks[b] = malloc(16 + (r >> 20) % 512);
        }
        CHECK_EQ(pthread_mutex_unlock(&mx[k]), 0);

        if ((r >> 24) % 8 == 0) {
            int c = (int)((r >> 4) % N_COND);
            CHECK_EQ(pthread_mutex_lock(&cm[c]), 0);
            cv_gen[c]++;
            if ((r >> 28) & 1)
                CHECK_EQ(pthread_cond_broadcast(&cv[c]), 0);
            else
                CHECK_EQ(pthread_cond_signal(&cv[c]), 0);
            if ((r >> 29) & 1) {
                struct timespec d = deadline_after_ns(cv_clock(c), 100000);
                int w = pthread_cond_timedwait(&cv[c], &cm[c], &d);
                if (w != ETIMEDOUT)
                    CHECK_EQ(w, 0);
            }
            CHECK_EQ(pthread_mutex_unlock(&cm[c]), 0);
        }
        tick();
    }
    for (int b = 0; b < 8; b++)
        free(blocks[b]);
    for (int k = 0; k < N_MUTEX; k++)
        atomic_fetch_add(&mx_done[k], mine[k]);
    return NULL;
}

// Parked in cond waits most of the time, so that forks find waiters queued.
static void *sleeper(void *arg)
{
    long id = (long)arg;
    uint32_t s = seed_for(id + 100);
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        int c = (int)(rnd(&s) % N_COND);
        CHECK_EQ(pthread_mutex_lock(&cm[c]), 0);
        struct timespec d = deadline_after_ns(cv_clock(c), 20000000);
        int w = (rnd(&s) & 1) ? pthread_cond_timedwait(&cv[c], &cm[c], &d)
                              : pthread_cond_clockwait(&cv[c], &cm[c], cv_clock(c), &d);
        if (w != ETIMEDOUT)
            CHECK_EQ(w, 0);
        CHECK_EQ(pthread_mutex_unlock(&cm[c]), 0);
        tick();
    }
    return NULL;
}

/* The child. */

static int ping_turn;
static long ping_count;
static pthread_cond_t *ping_cv[2];
static pthread_cond_t fresh_cv[2] = { PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER };

static void *pinger(void *arg)
{
    long id = (long)arg; // 0 or 1: waits on ping_cv[id], wakes ping_cv[1 - id]
    for (int i = 0; i < PING_ROUNDS; i++) {
        CHECK_EQ(pthread_mutex_lock(&cm[0]), 0);
        while (ping_turn != id) {
            int r = pthread_cond_wait(ping_cv[id], &cm[0]);
            if (r)
                CHECK_EQ(r, 0);
        }
        ping_turn = 1 - (int)id;
        ping_count++;
        CHECK_EQ(pthread_cond_signal(ping_cv[1 - id]), 0);
        CHECK_EQ(pthread_mutex_unlock(&cm[0]), 0);
    }
    return NULL;
}

static void child_mutexes(bool *cm_free)
{
    pid_t me = gettid();
    for (int i = 0; i < N_MUTEX; i++) {
        int type = mx_type(i);
        int r = pthread_mutex_trylock(&mx[i]);
        if (r == EBUSY) {
            // Held by a thread that is not in this process.
            if (type == PTHREAD_MUTEX_ERRORCHECK || type == PTHREAD_MUTEX_RECURSIVE)
                CHECK_EQ(pthread_mutex_unlock(&mx[i]), EPERM);
            struct timespec d = deadline_after_ns(CLOCK_MONOTONIC, -1000);
            CHECK_EQ(pthread_mutex_clocklock(&mx[i], CLOCK_MONOTONIC, &d), ETIMEDOUT);
            continue;
        }
        CHECK_EQ(r, 0);
        CHECK_EQ(mx[i].__data.__owner, me);
        CHECK_EQ(pthread_mutex_unlock(&mx[i]), 0);
        CHECK_EQ(pthread_mutex_lock(&mx[i]), 0);
        if (type == PTHREAD_MUTEX_ERRORCHECK)
            CHECK_EQ(pthread_mutex_lock(&mx[i]), EDEADLK);
        if (type == PTHREAD_MUTEX_RECURSIVE) {
            CHECK_EQ(pthread_mutex_lock(&mx[i]), 0);
            CHECK_EQ(pthread_mutex_unlock(&mx[i]), 0);
        }
        CHECK_EQ(pthread_mutex_unlock(&mx[i]), 0);
        if (type == PTHREAD_MUTEX_ERRORCHECK || type == PTHREAD_MUTEX_RECURSIVE)
            CHECK_EQ(pthread_mutex_unlock(&mx[i]), EPERM);
        struct timespec d = deadline_after_ns(CLOCK_REALTIME, 1000000);
        CHECK_EQ(pthread_mutex_timedlock(&mx[i], &d), 0);
        CHECK_EQ(pthread_mutex_unlock(&mx[i]), 0);
    }
    for (int c = 0; c < N_COND; c++) {
        int r = pthread_mutex_trylock(&cm[c]);
        cm_free[c] = r == 0;
        if (r == EBUSY)
            continue;
        if (on_glibc()) { // see the top of the file
            CHECK_EQ(r, 0);
            CHECK_EQ(pthread_mutex_unlock(&cm[c]), 0);
            continue;
        }
        CHECK_EQ(r, 0);
        // A past deadline: the wait queues, releases, times out, relocks.
        struct timespec d = deadline_after_ns(cv_clock(c), -1000);
        r = pthread_cond_timedwait(&cv[c], &cm[c], &d);
        if (r != 0) // 0: a spurious wake-up, allowed
            CHECK_EQ(r, ETIMEDOUT);
        CHECK_EQ(cm[c].__data.__owner, me);
        d = deadline_after_ns(CLOCK_MONOTONIC, 100000);
        r = pthread_cond_clockwait(&cv[c], &cm[c], CLOCK_MONOTONIC, &d);
        if (r != 0)
            CHECK_EQ(r, ETIMEDOUT);
        CHECK_EQ(pthread_cond_signal(&cv[c]), 0);
        CHECK_EQ(pthread_cond_broadcast(&cv[c]), 0);
        CHECK_EQ(pthread_mutex_unlock(&cm[c]), 0);
    }
}

static int child_main(bool underscore)
{
    alarm(CHILD_ALARM_S); // a hang shows as SIGALRM in the parent
    atomic_store(&check_failures, 0);
    // The forker held fm (a normal mutex) across the fork.
    CHECK_EQ(pthread_mutex_unlock(&fm), 0);
    CHECK_EQ(pthread_mutex_lock(&fm), 0);
    CHECK_EQ(pthread_mutex_unlock(&fm), 0);
    bool cm_free[N_COND];
    child_mutexes(cm_free);
    if (!underscore && cm_free[0] && cm_free[2]) {
        void *p = use_malloc ? malloc(100) : NULL;
        ping_turn = 0;
        ping_count = 0;
        ping_cv[0] = on_glibc() ? &fresh_cv[0] : &cv[0];
        ping_cv[1] = on_glibc() ? &fresh_cv[1] : &cv[2];
        pthread_t t[2];
        for (long i = 0; i < 2; i++)
            t[i] = start_thread(pinger, (void *)i);
        for (int i = 0; i < 2; i++)
            join_thread(t[i]);
        CHECK_EQ(ping_count, 2 * PING_ROUNDS);
        free(p);
    }
    return check_finish();
}

static atomic_long forks_done, underscore_forks, child_failures;

static void *forker(void *arg)
{
    struct phase *p = arg;
    for (long n = 0; phase_time_left(p) || n < MIN_FORKS; n++) {
        bool underscore = n % 4 == 3;
        CHECK_EQ(pthread_mutex_lock(&fm), 0);
        pid_t pid = underscore ? _Fork() : fork();
        if (pid == 0)
            _exit(child_main(underscore));
        CHECK_EQ(pthread_mutex_unlock(&fm), 0);
        if (pid < 0) {
            CHECK(pid > 0);
            break;
        }
        int st = wait_child(pid);
        if (st != 0) {
            atomic_fetch_add(&child_failures, 1);
            fprintf(stderr, "fork_storm: child %ld (%s) exited with %d%s\n", n,
                    underscore ? "_Fork" : "fork", st,
                    st == 128 + SIGALRM ? " (hung: killed by its alarm)" : "");
        }
        atomic_fetch_add(&forks_done, 1);
        if (underscore)
            atomic_fetch_add(&underscore_forks, 1);
        tick();
        progress(p, "%ld forks", n + 1);
    }
    return NULL;
}

int main(void)
{
    torture_init("fork_storm");
    const char *m = getenv("PLK_TORTURE_MALLOC");
    use_malloc = m && strcmp(m, "1") == 0;
    init_objects();
    pthread_t w[N_WORKERS], sl[N_SLEEPERS];
    for (long i = 0; i < N_WORKERS; i++)
        w[i] = start_thread(worker, (void *)i);
    for (long i = 0; i < N_SLEEPERS; i++)
        sl[i] = start_thread(sleeper, (void *)i);
    struct phase p = phase_start("forks", torture_seconds(3));
    join_thread(start_thread(forker, &p));
    atomic_store(&stop, 1);
    for (int i = 0; i < N_WORKERS; i++)
        join_thread(w[i]);
    for (int i = 0; i < N_SLEEPERS; i++)
        join_thread(sl[i]);
    long ops = 0;
    for (int k = 0; k < N_MUTEX; k++) {
        CHECK_EQ(mx_count[k], atomic_load(&mx_done[k]));
        ops += mx_count[k];
        CHECK_EQ(pthread_mutex_trylock(&mx[k]), 0); // nothing left held
        CHECK_EQ(pthread_mutex_unlock(&mx[k]), 0);
    }
    CHECK_EQ(atomic_load(&child_failures), 0);
    CHECK(atomic_load(&forks_done) >= MIN_FORKS);
    summary("%ld forks (%ld _Fork), %ld failed children, %ld mutex ops by %d workers%s",
            atomic_load(&forks_done), atomic_load(&underscore_forks),
            atomic_load(&child_failures), ops, N_WORKERS,
            use_malloc ? ", allocating" : "");
    return check_finish();
}
