// Timeouts: timed lock and cond waits on both clocks.
//
// Checked (exact results; time is only ever compared with the deadline):
//   - short deadlines: ETIMEDOUT, and never before the deadline, for
//     timedlock, clocklock (both clocks), timedwait (cond clock attribute
//     realtime and monotonic) and clockwait (both clocks); several threads at
//     once on the same held mutex / cond;
//   - past deadlines ({now - 1 ns}, {0, 0}, negative tv_sec): ETIMEDOUT on a
//     held mutex and in cond waits (mutex held again), 0 on a free mutex;
//   - tv_nsec out of range (-1, 1e9, LONG_MAX, LONG_MIN): EINVAL from cond
//     waits (mutex still held), EINVAL from a timed lock that has to wait,
//     0 from one that does not; an errorcheck owner gets EDEADLK first;
//   - huge tv_sec (up to LLONG_MAX): the call waits and returns 0 once the
//     mutex is released / the cond signalled, and not before;
//   - clocks other than CLOCK_REALTIME and CLOCK_MONOTONIC: EINVAL.
// Lateness (return time minus deadline) is printed per kind: median, p99 and
// maximum, in microseconds. It is not asserted.
#include <limits.h>

#include "torture.h"

/* A holder thread keeps mutexes locked on request. */

static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static atomic_int holder_state; // 0 idle, 1 lock requested, 2 holding, 3 release
static pthread_t holder_t;

static void *holder(void *arg)
{
    (void)arg;
    for (;;) {
        WAIT_UNTIL(atomic_load(&holder_state) == 1, 100000);
        if (atomic_load(&holder_state) != 1)
            continue;
        CHECK_EQ(pthread_mutex_lock(&held), 0);
        atomic_store(&holder_state, 2);
        while (atomic_load(&holder_state) != 3)
            sleep_ms(1);
        CHECK_EQ(pthread_mutex_unlock(&held), 0);
        atomic_store(&holder_state, 0);
    }
    return NULL;
}

static void hold(void)
{
    atomic_store(&holder_state, 1);
    CHECK(WAIT_UNTIL(atomic_load(&holder_state) == 2, 10000));
}

static void release(void)
{
    atomic_store(&holder_state, 3);
    CHECK(WAIT_UNTIL(atomic_load(&holder_state) == 0, 10000));
}

/* Lateness figures. */

#define MAX_SAMPLES 4096

struct figures {
    const char *name;
    int64_t late_ns[MAX_SAMPLES];
    atomic_int n;
};

static void record(struct figures *f, int64_t late)
{
    int i = atomic_fetch_add(&f->n, 1);
    if (i < MAX_SAMPLES)
        f->late_ns[i] = late;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void print_figures(struct figures *f)
{
    int n = atomic_load(&f->n);
    if (n > MAX_SAMPLES)
        n = MAX_SAMPLES;
    if (n == 0)
        return;
    qsort(f->late_ns, (size_t)n, sizeof f->late_ns[0], cmp64);
    printf("  %-34s n=%-5d late us: median %7.1f  p99 %8.1f  max %8.1f\n", f->name,
           n, f->late_ns[n / 2] / 1e3, f->late_ns[(n * 99) / 100] / 1e3,
           f->late_ns[n - 1] / 1e3);
}

/* Short deadlines. */

enum kind {
    K_TIMEDLOCK,
    K_CLOCKLOCK_RT,
    K_CLOCKLOCK_MONO,
    K_TIMEDWAIT_RT,   // cond with the default (realtime) clock attribute
    K_TIMEDWAIT_MONO, // cond with a monotonic clock attribute
    K_CLOCKWAIT_RT,
    K_CLOCKWAIT_MONO,
    N_KINDS
};

static struct figures figs[N_KINDS] = {
    { .name = "mutex_timedlock" },          { .name = "mutex_clocklock REALTIME" },
    { .name = "mutex_clocklock MONOTONIC" }, { .name = "cond_timedwait (realtime cond)" },
    { .name = "cond_timedwait (monotonic cond)" }, { .name = "cond_clockwait REALTIME" },
    { .name = "cond_clockwait MONOTONIC" },
};

static pthread_mutex_t cm = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t c_rt = PTHREAD_COND_INITIALIZER, c_mono;

static clockid_t kind_clock(enum kind k)
{
    return k == K_TIMEDLOCK || k == K_CLOCKLOCK_RT || k == K_TIMEDWAIT_RT ||
                   k == K_CLOCKWAIT_RT
               ? CLOCK_REALTIME
               : CLOCK_MONOTONIC;
}

// One timed call of kind k with deadline d; returns its result.
static int timed_call(enum kind k, const struct timespec *d)
{
    switch (k) {
    case K_TIMEDLOCK:
        return pthread_mutex_timedlock(&held, d);
    case K_CLOCKLOCK_RT:
        return pthread_mutex_clocklock(&held, CLOCK_REALTIME, d);
    case K_CLOCKLOCK_MONO:
        return pthread_mutex_clocklock(&held, CLOCK_MONOTONIC, d);
    case K_TIMEDWAIT_RT:
        return pthread_cond_timedwait(&c_rt, &cm, d);
    case K_TIMEDWAIT_MONO:
        return pthread_cond_timedwait(&c_mono, &cm, d);
    case K_CLOCKWAIT_RT:
        return pthread_cond_clockwait(&c_rt, &cm, CLOCK_REALTIME, d);
    default:
        return pthread_cond_clockwait(&c_mono, &cm, CLOCK_MONOTONIC, d);
    }
}

static bool is_wait(enum kind k)
{
    return k >= K_TIMEDWAIT_RT;
}

static atomic_int short_stop;

static void *short_deadlines(void *arg)
{
    long id = (long)arg;
    uint32_t s = seed_for(id);
    while (!atomic_load(&short_stop)) {
        enum kind k = (enum kind)(rnd(&s) % N_KINDS);
        clockid_t clk = kind_clock(k);
        struct timespec d = deadline_after_ns(clk, (int64_t)(rnd(&s) % 2000000));
        if (is_wait(k))
            CHECK_EQ(pthread_mutex_lock(&cm), 0);
        int r = timed_call(k, &d);
        int64_t late = now_ns(clk) - ts_ns(&d);
        if (is_wait(k)) {
            // Nobody signals these conds: 0 would be a spurious wake-up.
            if (r != 0)
                CHECK_EQ(r, ETIMEDOUT);
            CHECK_EQ(cm.__data.__owner, gettid());
            CHECK_EQ(pthread_mutex_unlock(&cm), 0);
        } else {
            CHECK_EQ(r, ETIMEDOUT); // the holder keeps it
        }
        if (r == ETIMEDOUT) {
            CHECK(late >= 0); // never early
            record(&figs[k], late);
        }
        tick();
    }
    return NULL;
}

/* Past deadlines and bad timespecs. */

static const struct timespec bad_nsec[] = {
    { 0, -1 }, { 0, 1000000000 }, { 0, LONG_MAX }, { 0, LONG_MIN },
};

static void check_cond_rejects(pthread_cond_t *c, const struct timespec *d, int expected)
{
    CHECK_EQ(pthread_mutex_lock(&cm), 0);
    CHECK_EQ(pthread_cond_timedwait(c, &cm, d), expected);
    CHECK_EQ(pthread_cond_clockwait(c, &cm, CLOCK_MONOTONIC, d), expected);
    CHECK_EQ(pthread_cond_clockwait(c, &cm, CLOCK_REALTIME, d), expected);
    CHECK_EQ(cm.__data.__owner, gettid()); // still (or again) ours
    CHECK_EQ(pthread_mutex_unlock(&cm), 0);
}

static void past_and_invalid(void)
{
    check_context = "past deadlines";
    // Past on both clocks ({now - 1 ns} is added per clock below).
    static const struct timespec past[] = {
        { 0, 0 }, { 0, 1 }, { -1, 0 }, { -1, 999999999 }, { LLONG_MIN, 0 },
    };
    pthread_mutex_t free_m = PTHREAD_MUTEX_INITIALIZER;
    hold();
    for (size_t i = 0; i <= sizeof past / sizeof past[0]; i++) {
        bool just = i == sizeof past / sizeof past[0];
        struct timespec rt = just ? deadline_after_ns(CLOCK_REALTIME, -1) : past[i];
        struct timespec mono = just ? deadline_after_ns(CLOCK_MONOTONIC, -1) : past[i];
        CHECK_EQ(pthread_mutex_timedlock(&held, &rt), ETIMEDOUT);
        CHECK_EQ(pthread_mutex_clocklock(&held, CLOCK_REALTIME, &rt), ETIMEDOUT);
        CHECK_EQ(pthread_mutex_clocklock(&held, CLOCK_MONOTONIC, &mono), ETIMEDOUT);
        CHECK_EQ(pthread_mutex_timedlock(&free_m, &rt), 0); // free: taken
        CHECK_EQ(pthread_mutex_unlock(&free_m), 0);
        CHECK_EQ(pthread_mutex_clocklock(&free_m, CLOCK_MONOTONIC, &mono), 0);
        CHECK_EQ(pthread_mutex_unlock(&free_m), 0);
        CHECK_EQ(pthread_mutex_lock(&cm), 0);
        CHECK_EQ(pthread_cond_timedwait(&c_rt, &cm, &rt), ETIMEDOUT);
        CHECK_EQ(pthread_cond_timedwait(&c_mono, &cm, &mono), ETIMEDOUT);
        CHECK_EQ(pthread_cond_clockwait(&c_rt, &cm, CLOCK_REALTIME, &rt), ETIMEDOUT);
        CHECK_EQ(pthread_cond_clockwait(&c_rt, &cm, CLOCK_MONOTONIC, &mono), ETIMEDOUT);
        CHECK_EQ(pthread_cond_clockwait(&c_mono, &cm, CLOCK_REALTIME, &rt), ETIMEDOUT);
        CHECK_EQ(pthread_cond_clockwait(&c_mono, &cm, CLOCK_MONOTONIC, &mono), ETIMEDOUT);
        CHECK_EQ(cm.__data.__owner, gettid()); // held again
        CHECK_EQ(pthread_mutex_unlock(&cm), 0);
    }

    check_context = "tv_nsec out of range";
    for (size_t i = 0; i < sizeof bad_nsec / sizeof bad_nsec[0]; i++) {
        struct timespec d = bad_nsec[i];
        d.tv_sec = now_ns(CLOCK_REALTIME) / 1000000000 + 1; // else a valid future
        CHECK_EQ(pthread_mutex_timedlock(&held, &d), EINVAL);
        CHECK_EQ(pthread_mutex_clocklock(&held, CLOCK_MONOTONIC, &d), EINVAL);
        CHECK_EQ(pthread_mutex_clocklock(&held, CLOCK_REALTIME, &d), EINVAL);
        CHECK_EQ(pthread_mutex_timedlock(&free_m, &d), 0); // no wait: not looked at
        CHECK_EQ(pthread_mutex_unlock(&free_m), 0);
        check_cond_rejects(&c_rt, &d, EINVAL);
        check_cond_rejects(&c_mono, &d, EINVAL);
        // An errorcheck owner: EDEADLK before the timespec is looked at.
        pthread_mutex_t ec = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
        CHECK_EQ(pthread_mutex_lock(&ec), 0);
        CHECK_EQ(pthread_mutex_timedlock(&ec, &d), EDEADLK);
        CHECK_EQ(pthread_mutex_unlock(&ec), 0);
    }
    release();

    check_context = "unsupported clocks";
    static const clockid_t bad_clocks[] = {
        CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID, CLOCK_MONOTONIC_RAW,
        CLOCK_REALTIME_COARSE,    CLOCK_MONOTONIC_COARSE,  CLOCK_BOOTTIME,
        CLOCK_TAI,                -1,                      1000,
    };
    for (size_t i = 0; i < sizeof bad_clocks / sizeof bad_clocks[0]; i++) {
        struct timespec d = deadline_after_ms(CLOCK_MONOTONIC, 10);
        CHECK_EQ(pthread_mutex_clocklock(&free_m, bad_clocks[i], &d), EINVAL);
        CHECK_EQ(pthread_mutex_lock(&cm), 0);
        CHECK_EQ(pthread_cond_clockwait(&c_rt, &cm, bad_clocks[i], &d), EINVAL);
        CHECK_EQ(cm.__data.__owner, gettid());
        CHECK_EQ(pthread_mutex_unlock(&cm), 0);
    }
    CHECK_EQ(pthread_mutex_trylock(&free_m), 0); // never taken by the EINVALs
    CHECK_EQ(pthread_mutex_unlock(&free_m), 0);
}

/* Huge deadlines: the call blocks until released. */

struct huge {
    int what; // 0 timedlock, 1 clocklock mono, 2 timedwait rt, 3 clockwait mono,
              // 4 timedwait on the monotonic cond, 5 clockwait realtime
    struct timespec d;
    atomic_int started, returned;
    int result;
    int *predicate;
};

static int huge_predicate;

static void *huge_waiter(void *arg)
{
    struct huge *h = arg;
    if (h->what <= 1) {
        atomic_store(&h->started, 1);
        h->result = h->what == 0 ? pthread_mutex_timedlock(&held, &h->d)
                                 : pthread_mutex_clocklock(&held, CLOCK_MONOTONIC, &h->d);
        atomic_store(&h->returned, 1);
        if (h->result == 0)
            CHECK_EQ(pthread_mutex_unlock(&held), 0);
        return NULL;
    }
    CHECK_EQ(pthread_mutex_lock(&cm), 0);
    atomic_store(&h->started, 1);
    h->result = 0;
    while (!huge_predicate && h->result == 0) {
        switch (h->what) {
        case 2:
            h->result = pthread_cond_timedwait(&c_rt, &cm, &h->d);
            break;
        case 3:
            h->result = pthread_cond_clockwait(&c_mono, &cm, CLOCK_MONOTONIC, &h->d);
            break;
        case 4:
            h->result = pthread_cond_timedwait(&c_mono, &cm, &h->d);
            break;
        default:
            h->result = pthread_cond_clockwait(&c_rt, &cm, CLOCK_REALTIME, &h->d);
        }
    }
    atomic_store(&h->returned, 1);
    CHECK_EQ(pthread_mutex_unlock(&cm), 0);
    return NULL;
}

static void huge_deadlines(void)
{
    check_context = "huge tv_sec";
    static const struct timespec huge[] = {
        { LLONG_MAX, 999999999 }, { LLONG_MAX, 0 }, { LLONG_MAX / 2, 0 },
        { (time_t)1 << 40, 5 },   { (time_t)INT_MAX + 1, 0 },
    };
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        for (int what = 0; what < 6; what++) {
            struct huge h = { .what = what, .d = huge[i] };
            if (what <= 1)
                hold();
            huge_predicate = 0;
            pthread_t t = start_thread(huge_waiter, &h);
            CHECK(WAIT_UNTIL(atomic_load(&h.started) == 1, 10000));
            sleep_ms(2); // let it block (if it returns now, that is wrong)
            CHECK_EQ(atomic_load(&h.returned), 0);
            if (what <= 1) {
                release();
            } else {
                CHECK_EQ(pthread_mutex_lock(&cm), 0);
                huge_predicate = 1;
                CHECK_EQ(pthread_cond_broadcast(what == 3 || what == 4 ? &c_mono : &c_rt), 0);
                CHECK_EQ(pthread_mutex_unlock(&cm), 0);
            }
            join_thread(t);
            CHECK_EQ(h.result, 0);
            tick();
        }
    }
}

int main(void)
{
    torture_init("timeouts");
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    CHECK_EQ(pthread_cond_init(&c_mono, &ca), 0);
    holder_t = start_thread(holder, NULL);
    pthread_detach(holder_t);

    past_and_invalid();
    huge_deadlines();

    check_context = "short deadlines";
    hold();
    enum { N = 4 };
    pthread_t t[N];
    for (long i = 0; i < N; i++)
        t[i] = start_thread(short_deadlines, (void *)i);
    struct phase p = phase_start("short deadlines", torture_seconds(2));
    while (phase_time_left(&p)) {
        sleep_ms(50);
        progress(&p, "%d timeouts", atomic_load(&figs[0].n));
    }
    atomic_store(&short_stop, 1);
    for (int i = 0; i < N; i++)
        join_thread(t[i]);
    release();
    summary("lateness of ETIMEDOUT returns (figures, not checked):");
    for (int k = 0; k < N_KINDS; k++)
        print_figures(&figs[k]);
    return check_finish();
}
