// Object lifetimes that POSIX and glibc allow and real programs rely on:
//   - a completion (mutex + cond + flag) freed by the waiter as soon as it
//     wakes, while the signaller may still be inside unlock;
//   - a cond destroyed and its memory scribbled over right after a
//     broadcast, while the woken waiters are still on their way out;
//   - a mutex destroyed and freed by the thread that locked it last, while
//     the previous owner may still be inside its unlock.
// The memory is overwritten with garbage before it is freed, so a late
// access would show up as a wrong result, a hang or a crash.
#include "check.h"

#define GARBAGE 0xa5

/* Completions. */

struct completion {
    pthread_mutex_t m;
    pthread_cond_t c;
    int done;
};

static void *completion_waiter(void *arg)
{
    struct completion *x = arg;
    CHECK_EQ(pthread_mutex_lock(&x->m), 0);
    while (!x->done) {
        int r = pthread_cond_wait(&x->c, &x->m);
        if (r)
            CHECK_EQ(r, 0);
    }
    CHECK_EQ(pthread_mutex_unlock(&x->m), 0);
    CHECK_EQ(pthread_cond_destroy(&x->c), 0);
    CHECK_EQ(pthread_mutex_destroy(&x->m), 0);
    memset(x, GARBAGE, sizeof *x);
    free(x);
    return NULL;
}

static void completions(void)
{
    check_context = "completion freed by its waiter";
    for (int round = 0; round < 150; round++) {
        struct completion *x[8];
        pthread_t t[8];
        for (int i = 0; i < 8; i++) {
            x[i] = malloc(sizeof *x[i]);
            CHECK_EQ(pthread_mutex_init(&x[i]->m, NULL), 0);
            CHECK_EQ(pthread_cond_init(&x[i]->c, NULL), 0);
            x[i]->done = 0;
            t[i] = start_thread(completion_waiter, x[i]);
        }
        for (int i = 0; i < 8; i++) {
            // x[i] may be freed as soon as the unlock releases the mutex.
            CHECK_EQ(pthread_mutex_lock(&x[i]->m), 0);
            x[i]->done = 1;
            if (i & 1)
                CHECK_EQ(pthread_cond_broadcast(&x[i]->c), 0);
            else
                CHECK_EQ(pthread_cond_signal(&x[i]->c), 0);
            CHECK_EQ(pthread_mutex_unlock(&x[i]->m), 0);
        }
        for (int i = 0; i < 8; i++)
            join_thread(t[i]);
    }
}

/* A cond destroyed right after a broadcast. */

struct gate {
    pthread_mutex_t m;
    pthread_cond_t *c;
    int open;
    atomic_int waiting;
    atomic_int through;
};

static void *gate_waiter(void *arg)
{
    struct gate *g = arg;
    pthread_cond_t *c = g->c; // read before waiting: g->c changes later
    CHECK_EQ(pthread_mutex_lock(&g->m), 0);
    atomic_fetch_add(&g->waiting, 1);
    while (!g->open) {
        int r = pthread_cond_wait(c, &g->m);
        if (r)
            CHECK_EQ(r, 0);
    }
    atomic_fetch_add(&g->through, 1);
    CHECK_EQ(pthread_mutex_unlock(&g->m), 0);
    return NULL;
}

static void destroy_after_broadcast(void)
{
    check_context = "cond destroyed after broadcast";
    struct gate g = { .m = PTHREAD_MUTEX_INITIALIZER };
    for (int round = 0; round < 100; round++) {
        g.c = malloc(sizeof *g.c);
        CHECK_EQ(pthread_cond_init(g.c, NULL), 0);
        g.open = 0;
        atomic_store(&g.waiting, 0);
        atomic_store(&g.through, 0);
        pthread_t t[4];
        for (int i = 0; i < 4; i++)
            t[i] = start_thread(gate_waiter, &g);
        WAIT_UNTIL(atomic_load(&g.waiting) == 4, 10000);
        CHECK_EQ(pthread_mutex_lock(&g.m), 0); // all four are in their wait
        g.open = 1;
        CHECK_EQ(pthread_cond_broadcast(g.c), 0);
        // Destroy while still holding the mutex: no waiter is out yet.
        CHECK_EQ(pthread_cond_destroy(g.c), 0);
        memset(g.c, GARBAGE, sizeof *g.c);
        free(g.c);
        g.c = NULL;
        CHECK_EQ(pthread_mutex_unlock(&g.m), 0);
        for (int i = 0; i < 4; i++)
            join_thread(t[i]);
        CHECK_EQ(atomic_load(&g.through), 4);
    }
}

/* A mutex freed by its last owner. */

struct box {
    pthread_mutex_t m;
    atomic_int locked;
    int timed;
};

static void *box_taker(void *arg)
{
    struct box *b = arg;
    WAIT_UNTIL(atomic_load(&b->locked) == 1, 10000);
    int r;
    if (b->timed) {
        struct timespec d = deadline_after_ms(CLOCK_MONOTONIC, 20000);
        r = pthread_mutex_clocklock(&b->m, CLOCK_MONOTONIC, &d);
    } else {
        r = pthread_mutex_lock(&b->m);
    }
    CHECK_EQ(r, 0);
    CHECK_EQ(pthread_mutex_unlock(&b->m), 0);
    CHECK_EQ(pthread_mutex_destroy(&b->m), 0);
    memset(b, GARBAGE, sizeof *b);
    free(b);
    return NULL;
}

static void mutex_freed_by_last_owner(void)
{
    check_context = "mutex freed by its last owner";
    static const int types[] = { PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_ERRORCHECK,
                                 PTHREAD_MUTEX_RECURSIVE, PTHREAD_MUTEX_ADAPTIVE_NP };
    for (int round = 0; round < 400; round++) {
        struct box *b = malloc(sizeof *b);
        pthread_mutexattr_t a;
        pthread_mutexattr_init(&a);
        pthread_mutexattr_settype(&a, types[round % 4]);
        CHECK_EQ(pthread_mutex_init(&b->m, &a), 0);
        atomic_store(&b->locked, 0);
        b->timed = (round / 4) & 1;
        pthread_t t = start_thread(box_taker, b);
        CHECK_EQ(pthread_mutex_lock(&b->m), 0);
        atomic_store(&b->locked, 1);
        for (volatile int spin = 0; spin < (round % 7) * 2000; spin++) {
        }
        if (round % 3 == 0)
            sleep_ms(1); // let the taker park
        CHECK_EQ(pthread_mutex_unlock(&b->m), 0); // b may be gone from here on
        join_thread(t);
    }
}

int main(void)
{
    completions();
    destroy_after_broadcast();
    mutex_freed_by_last_owner();
    return check_finish();
}
