// Lifetime races: objects whose memory goes away as soon as POSIX allows.
//
//   - mutex freed by its last user: threads share a heap (or mmap'ed) object
//     holding a mutex and a reference count; each locks it, drops its
//     reference and unlocks; the one that dropped the last reference
//     destroys the mutex and frees (or unmaps) the memory right after its
//     unlock, while the others may still be returning from theirs;
//   - cond destroyed and freed right after a broadcast: waiters in all three
//     kinds of wait (some with deadlines expiring around the broadcast) are
//     released by one broadcast, after which the broadcaster destroys the
//     cond and frees (or unmaps) it -- holding the mutex, or not;
//   - thousands of short-lived threads that park (on a contended mutex and
//     in a cond wait) and exit;
//   - the parking lot's table under 1, 2, 4 ... 256 threads parked at once
//     and back down to 1, with exact totals at every step.
// Freed memory is scribbled over first, and unmapped memory faults, so a
// late access shows as a wrong result or a crash; the ASan-built variant
// (lifetime_asan) and an Asan build of parklock itself report it precisely.
#include <sys/mman.h>

#include "torture.h"

/* Memory that either goes back to malloc or is unmapped. */

static void *obj_alloc(size_t size, bool mapped)
{
    if (!mapped)
        return malloc(size);
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    // Place the object at the end of the page: a touch past it faults too.
    return (char *)p + ((4096 - size) & ~(size_t)63);
}

static void obj_free(void *p, size_t size, bool mapped)
{
    memset(p, 0xa5, size);
    if (mapped)
        CHECK_EQ(munmap((void *)((uintptr_t)p & ~(uintptr_t)4095), 4096), 0);
    else
        free(p);
}

/* 1. A mutex freed by its last user. */

struct shared_box {
    pthread_mutex_t m;
    int refs;
    long count;
};

struct box_user {
    struct shared_box *b;
    bool mapped;
    int how; // 0 lock, 1 timedlock, 2 clocklock, 3 trylock loop
    long freed;
};

static void *box_user(void *arg)
{
    struct box_user *u = arg;
    struct shared_box *b = u->b;
    struct timespec d;
    int r;
    switch (u->how) {
    case 1:
        d = deadline_after_ms(CLOCK_REALTIME, 60000);
        r = pthread_mutex_timedlock(&b->m, &d);
        break;
    case 2:
        d = deadline_after_ms(CLOCK_MONOTONIC, 60000);
        r = pthread_mutex_clocklock(&b->m, CLOCK_MONOTONIC, &d);
        break;
    case 3:
        while ((r = pthread_mutex_trylock(&b->m)) == EBUSY)
            sched_yield();
        break;
    default:
        r = pthread_mutex_lock(&b->m);
    }
    CHECK_EQ(r, 0);
    b->count++;
    bool last = --b->refs == 0;
    long total = b->count;
    CHECK_EQ(pthread_mutex_unlock(&b->m), 0); // b may be gone after this, unless last
    if (last) {
        CHECK_EQ(pthread_mutex_destroy(&b->m), 0);
        obj_free(b, sizeof *b, u->mapped);
        u->freed = total;
    }
    return NULL;
}

static long boxes;

static void mutex_freed_by_last_user(struct phase *p)
{
    static const int types[] = { PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_ERRORCHECK,
                                 PTHREAD_MUTEX_RECURSIVE, PTHREAD_MUTEX_ADAPTIVE_NP };
    enum { USERS = 4 };
    for (long round = 0; phase_time_left(p) || round < 400; round++) {
        bool mapped = round & 1;
        struct shared_box *b = obj_alloc(sizeof *b, mapped);
        pthread_mutexattr_t a;
        pthread_mutexattr_init(&a);
        pthread_mutexattr_settype(&a, types[(round / 2) % 4]);
        CHECK_EQ(pthread_mutex_init(&b->m, &a), 0);
        b->refs = USERS;
        b->count = 0;
        // Hold it while the users arrive, so that they park behind us.
        CHECK_EQ(pthread_mutex_lock(&b->m), 0);
        struct box_user u[USERS];
        pthread_t t[USERS];
        for (int i = 0; i < USERS; i++) {
            u[i] = (struct box_user){ .b = b, .mapped = mapped, .how = (int)((round + i) % 4) };
            t[i] = start_thread(box_user, &u[i]);
        }
        if (round % 3)
            sched_yield();
        CHECK_EQ(pthread_mutex_unlock(&b->m), 0);
        long freed = 0;
        for (int i = 0; i < USERS; i++) {
            join_thread(t[i]);
            freed += u[i].freed;
        }
        CHECK_EQ(freed, USERS); // exactly one freed it, after all had counted
        boxes++;
        tick();
        progress(p, "%ld objects", boxes);
    }
}

/* 2. A cond destroyed and freed right after a broadcast. */

struct gate {
    pthread_mutex_t m;
    pthread_cond_t *c;
    clockid_t clock;
    int open;
    int waiting;
};

static struct gate gate = { .m = PTHREAD_MUTEX_INITIALIZER };

static void *gate_waiter(void *arg)
{
    long id = (long)arg;
    CHECK_EQ(pthread_mutex_lock(&gate.m), 0);
    pthread_cond_t *c = gate.c; // gate.c is cleared once it is freed
    clockid_t clk = gate.clock;
    gate.waiting++;
    while (!gate.open) {
        struct timespec d;
        int r;
        switch (id % 4) {
        case 1:
            d = deadline_after_ms(clk, 60000);
            r = pthread_cond_timedwait(c, &gate.m, &d);
            break;
        case 2:
            d = deadline_after_ms(CLOCK_MONOTONIC, 60000);
            r = pthread_cond_clockwait(c, &gate.m, CLOCK_MONOTONIC, &d);
            break;
        case 3: // deadlines that expire around the broadcast
            d = deadline_after_ns(CLOCK_REALTIME, 20000 + (id * 7919) % 200000);
            r = pthread_cond_clockwait(c, &gate.m, CLOCK_REALTIME, &d);
            if (r == ETIMEDOUT)
                r = 0;
            break;
        default:
            r = pthread_cond_wait(c, &gate.m);
        }
        if (r)
            CHECK_EQ(r, 0);
    }
    CHECK_EQ(pthread_mutex_unlock(&gate.m), 0);
    return NULL;
}

static long gates;

static void cond_freed_after_broadcast(struct phase *p)
{
    enum { WAITERS = 6 };
    for (long round = 0; phase_time_left(p) || round < 300; round++) {
        bool mapped = round & 1, hold_mutex = round & 2;
        pthread_cond_t *c = obj_alloc(sizeof *c, mapped);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        gate.clock = round & 4 ? CLOCK_MONOTONIC : CLOCK_REALTIME;
        pthread_condattr_setclock(&ca, gate.clock);
        CHECK_EQ(pthread_cond_init(c, &ca), 0);
        CHECK_EQ(pthread_mutex_lock(&gate.m), 0);
        gate.c = c;
        gate.open = 0;
        gate.waiting = 0;
        CHECK_EQ(pthread_mutex_unlock(&gate.m), 0);
        pthread_t t[WAITERS];
        for (long i = 0; i < WAITERS; i++)
            t[i] = start_thread(gate_waiter, (void *)(i + round));
        CHECK(WAIT_UNTIL(({
                             CHECK_EQ(pthread_mutex_lock(&gate.m), 0);
                             int w = gate.waiting;
                             CHECK_EQ(pthread_mutex_unlock(&gate.m), 0);
                             w == WAITERS;
                         }),
                         10000));
        CHECK_EQ(pthread_mutex_lock(&gate.m), 0);
        gate.open = 1;
        CHECK_EQ(pthread_cond_broadcast(c), 0);
        if (!hold_mutex)
            CHECK_EQ(pthread_mutex_unlock(&gate.m), 0);
        // No thread is blocked on c any more: destroy and free it now.
        CHECK_EQ(pthread_cond_destroy(c), 0);
        obj_free(c, sizeof *c, mapped);
        gate.c = NULL;
        if (hold_mutex)
            CHECK_EQ(pthread_mutex_unlock(&gate.m), 0);
        for (int i = 0; i < WAITERS; i++)
            join_thread(t[i]);
        gates++;
        tick();
        progress(p, "%ld conds", gates);
    }
}

/* 3. Short-lived threads that park and exit. */

static pthread_mutex_t sl_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sl_c = PTHREAD_COND_INITIALIZER;
static long sl_count, sl_signalled;
static atomic_long sl_done;

static void *short_lived(void *arg)
{
    long id = (long)arg;
    CHECK_EQ(pthread_mutex_lock(&sl_m), 0);
    sl_count++;
    if (id % 3 == 0) {
        // Park briefly in a cond wait; someone may signal us.
        struct timespec d = deadline_after_ns(CLOCK_REALTIME, 100000);
        int r = pthread_cond_timedwait(&sl_c, &sl_m, &d);
        if (r != ETIMEDOUT)
            CHECK_EQ(r, 0);
    } else {
        CHECK_EQ(pthread_cond_signal(&sl_c), 0);
        sl_signalled++;
    }
    CHECK_EQ(pthread_mutex_unlock(&sl_m), 0);
    atomic_fetch_add(&sl_done, 1);
    return NULL;
}

static void short_lived_threads(struct phase *p)
{
    enum { BATCH = 32 };
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    long started = 0;
    for (long round = 0; phase_time_left(p) || started < 3000; round++) {
        pthread_t t[BATCH];
        for (int i = 0; i < BATCH; i++) {
            int r;
            if (i & 1) // half detached: their stacks are reused at once
                r = pthread_create(&t[i], &a, short_lived, (void *)(started + i));
            else
                r = pthread_create(&t[i], NULL, short_lived, (void *)(started + i));
            CHECK_EQ(r, 0);
        }
        for (int i = 0; i < BATCH; i += 2)
            join_thread(t[i]);
        started += BATCH;
        tick();
        progress(p, "%ld threads", started);
    }
    CHECK(WAIT_UNTIL(atomic_load(&sl_done) == started, 20000));
    CHECK_EQ(pthread_mutex_lock(&sl_m), 0);
    CHECK_EQ(sl_count, started);
    // Nobody parked any more: a wait times out, a signal finds nobody.
    struct timespec d = deadline_after_ms(CLOCK_REALTIME, 2);
    CHECK_EQ(pthread_cond_timedwait(&sl_c, &sl_m, &d), ETIMEDOUT);
    CHECK_EQ(pthread_mutex_unlock(&sl_m), 0);
    CHECK_EQ(pthread_cond_broadcast(&sl_c), 0);
    summary("%ld short-lived threads", started);
}

/* 4. Waves of parked threads: 1 ... 256 ... 1. */

static pthread_mutex_t wave_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wave_c = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t wave_block = PTHREAD_MUTEX_INITIALIZER; // held by main
static int wave_gen, wave_arrived;
static long wave_through;

static void *wave_thread(void *arg)
{
    long id = (long)arg;
    if (id & 1) { // park on a held mutex
        CHECK_EQ(pthread_mutex_lock(&wave_block), 0);
        CHECK_EQ(pthread_mutex_unlock(&wave_block), 0);
    }
    CHECK_EQ(pthread_mutex_lock(&wave_m), 0);
    int gen = wave_gen;
    wave_arrived++;
    while (wave_gen == gen) { // park on the cond
        int r = pthread_cond_wait(&wave_c, &wave_m);
        if (r)
            CHECK_EQ(r, 0);
    }
    wave_through++;
    CHECK_EQ(pthread_mutex_unlock(&wave_m), 0);
    return NULL;
}

static void waves(void)
{
    check_context = "waves of parked threads";
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 256 * 1024);
    static const int sizes[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 128, 64, 32, 16, 8, 4, 2, 1 };
    static pthread_t t[256];
    long expected = 0;
    for (size_t w = 0; w < sizeof sizes / sizeof sizes[0]; w++) {
        int n = sizes[w];
        CHECK_EQ(pthread_mutex_lock(&wave_block), 0);
        CHECK_EQ(pthread_mutex_lock(&wave_m), 0);
        wave_arrived = 0;
        CHECK_EQ(pthread_mutex_unlock(&wave_m), 0);
        for (long i = 0; i < n; i++)
            CHECK_EQ(pthread_create(&t[i], &a, wave_thread, (void *)i), 0);
        // The odd ones are parked on wave_block, the even ones in the cond.
        sleep_ms(2);
        CHECK_EQ(pthread_mutex_unlock(&wave_block), 0);
        CHECK(WAIT_UNTIL(({
                             CHECK_EQ(pthread_mutex_lock(&wave_m), 0);
                             int arrived = wave_arrived;
                             CHECK_EQ(pthread_mutex_unlock(&wave_m), 0);
                             arrived == n;
                         }),
                         20000));
        CHECK_EQ(pthread_mutex_lock(&wave_m), 0);
        wave_gen++;
        CHECK_EQ(pthread_cond_broadcast(&wave_c), 0);
        CHECK_EQ(pthread_mutex_unlock(&wave_m), 0);
        for (int i = 0; i < n; i++)
            join_thread(t[i]);
        expected += n;
        CHECK_EQ(wave_through, expected);
        tick();
    }
}

int main(void)
{
    torture_init("lifetime");
    double secs = torture_seconds(1);
    struct phase p = phase_start("mutex freed by its last user", secs);
    mutex_freed_by_last_user(&p);
    p = phase_start("cond freed after broadcast", secs);
    cond_freed_after_broadcast(&p);
    p = phase_start("short-lived threads", secs);
    short_lived_threads(&p);
    waves();
    summary("%ld mutexes freed by their last user, %ld conds freed after broadcast",
            boxes, gates);
    return check_finish();
}
