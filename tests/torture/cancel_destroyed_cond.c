// Regression: a waiter that was signalled, then cancelled after the
// condition variable was destroyed and its memory unmapped.
//
// POSIX lets a condition variable be destroyed once no thread is blocked on
// it; a signalled waiter is no longer blocked on it (glibc's destroy even
// waits until such waiters have confirmed their wake-up). Sequence, with the
// mutex held by the main thread throughout:
//   waiter: lock m; while (!flag) pthread_cond_{wait,timedwait,clockwait}(c, m)
//   main:   lock m; flag = 1; signal(c) [or signal + broadcast];
//           destroy(c); munmap(c); pthread_cancel(waiter); unlock m
// glibc: the waiter woke and blocks relocking m (lock is not a cancellation
// point); it returns from the wait once m is free and is cancelled at its next
// cancellation point. It never touches c again.
// parklock (before the fix): the signal moved the waiter onto the held
// mutex's queue, where its sleep is still a cancellable one; the cancellation
// runs plk_cond_wait_abandon, which "passes the signal on" with
// plk_cond_signal(c) -- reading (and, finding nobody queued, writing) the
// destroyed, unmapped cond: SIGSEGV. With heap memory instead of a mapping it
// is a use-after-free write of 8 zero bytes into whatever reuses the block.
//
// Checked: the process survives, the waiter ends cancelled with its cleanup
// handler run holding the mutex, and a block that reuses the freed cond's
// memory keeps its contents.
#include <sys/mman.h>

#include "torture.h"

enum wait_kind { PLAIN, TIMED, CLOCKED };

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t *c;
static int flag;
static atomic_int waiting, cleanup_owner;

static void cleanup(void *arg)
{
    (void)arg;
    atomic_store(&cleanup_owner, m.__data.__owner == gettid());
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
}

static void *waiter(void *arg)
{
    enum wait_kind k = (enum wait_kind)(long)arg;
    CHECK_EQ(pthread_mutex_lock(&m), 0);
    pthread_cond_t *mine = c; // c changes once destroyed
    atomic_store(&waiting, 1);
    pthread_cleanup_push(cleanup, NULL);
    while (!flag) {
        struct timespec d;
        int r;
        switch (k) {
        case TIMED:
            d = deadline_after_ms(CLOCK_REALTIME, 60000);
            r = pthread_cond_timedwait(mine, &m, &d);
            break;
        case CLOCKED:
            d = deadline_after_ms(CLOCK_MONOTONIC, 60000);
            r = pthread_cond_clockwait(mine, &m, CLOCK_MONOTONIC, &d);
            break;
        default:
            r = pthread_cond_wait(mine, &m);
        }
        if (r)
            CHECK_EQ(r, 0);
    }
    pthread_cleanup_pop(0);
    atomic_store(&cleanup_owner, m.__data.__owner == gettid());
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    pthread_testcancel();
    return NULL;
}

// One round; `heap`: the cond is malloc'ed and its block reused after free
// (the write shows up as changed contents) instead of being unmapped.
static void round_trip(enum wait_kind k, bool broadcast_too, bool heap)
{
    void *mem;
    if (heap) {
        mem = malloc(sizeof(pthread_cond_t));
    } else {
        mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(mem != MAP_FAILED);
    }
    c = mem;
    CHECK_EQ(pthread_cond_init(c, NULL), 0);
    flag = 0;
    atomic_store(&waiting, 0);
    atomic_store(&cleanup_owner, -1);
    pthread_t t = start_thread(waiter, (void *)(long)k);
    CHECK(WAIT_UNTIL(atomic_load(&waiting) == 1, 10000));
    CHECK_EQ(pthread_mutex_lock(&m), 0); // the waiter is in its wait now
    flag = 1;
    CHECK_EQ(pthread_cond_signal(c), 0);
    if (broadcast_too)
        CHECK_EQ(pthread_cond_broadcast(c), 0);
    CHECK_EQ(pthread_cond_destroy(c), 0);
    unsigned char *reuse = NULL;
    if (heap) {
        memset(mem, 0xa5, sizeof(pthread_cond_t));
        free(mem);
        reuse = malloc(sizeof(pthread_cond_t)); // most likely the same block
        memset(reuse, 0x5a, sizeof(pthread_cond_t));
    } else {
        CHECK_EQ(munmap(mem, 4096), 0);
    }
    c = NULL;
    CHECK_EQ(pthread_cancel(t), 0);
    sleep_ms(5); // give a wrong cancellation time to act while we hold m
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    CHECK(join_thread(t) == PTHREAD_CANCELED);
    CHECK_EQ(atomic_load(&cleanup_owner), 1); // the mutex was held again
    if (heap) {
        size_t changed = 0;
        for (size_t i = 0; i < sizeof(pthread_cond_t); i++)
            changed += reuse[i] != 0x5a;
        if (changed)
            fprintf(stderr, "%zu byte(s) of a block reusing the freed cond were "
                            "overwritten after its destruction\n", changed);
        CHECK(changed == 0);
        free(reuse);
    }
    // The mutex is free and works.
    CHECK_EQ(pthread_mutex_trylock(&m), 0);
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    tick();
}

int main(void)
{
    torture_init("cancel_destroyed_cond");
    static const char *const names[] = { "wait", "timedwait", "clockwait" };
    static char ctx[3][2][2][64];
    int rounds = torture_soak() ? 20 : 3;
    for (int k = 0; k < 3; k++)
        for (int b = 0; b < 2; b++)
            for (int heap = 1; heap >= 0; heap--) {
                snprintf(ctx[k][b][heap], sizeof ctx[k][b][heap], "%s, signal%s, %s",
                         names[k], b ? " + broadcast" : "", heap ? "heap" : "unmapped");
                check_context = ctx[k][b][heap];
                for (int i = 0; i < rounds; i++)
                    round_trip((enum wait_kind)k, b, heap);
            }
    summary("%d rounds per case, 12 cases", rounds);
    return check_finish();
}
