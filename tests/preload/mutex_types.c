// Mutex types and their error cases, against glibc's answers:
//   relock by owner, trylock when held, unlock by a non-owner or of an
//   unlocked mutex, destroy while locked / after unlock, use after destroy,
//   recursive depth and overflow, the four static initializers, the
//   __owner/__count/__nusers/__kind fields, garbage kinds, priority-ceiling
//   calls, and a contended counter per type.
#include <limits.h>

#include "check.h"

enum { DEFAULT, NORMAL, ERRORCHECK, RECURSIVE, ADAPTIVE, N_TYPES };

static const char *const type_names[N_TYPES] = {
    "default", "normal", "errorcheck", "recursive", "adaptive",
};

// glibc's __kind for each (an explicitly NORMAL mutex carries no-elision).
static const int type_kind[N_TYPES] = { 0, 512, 2, 1, 3 };

static void init_type(pthread_mutex_t *m, int type)
{
    check_context = type_names[type];
    if (type == DEFAULT) {
        CHECK_EQ(pthread_mutex_init(m, NULL), 0);
    } else {
        static const int attr_type[N_TYPES] = {
            0, PTHREAD_MUTEX_NORMAL, PTHREAD_MUTEX_ERRORCHECK,
            PTHREAD_MUTEX_RECURSIVE, PTHREAD_MUTEX_ADAPTIVE_NP,
        };
        pthread_mutexattr_t a;
        pthread_mutexattr_init(&a);
        CHECK_EQ(pthread_mutexattr_settype(&a, attr_type[type]), 0);
        CHECK_EQ(pthread_mutex_init(m, &a), 0);
        pthread_mutexattr_destroy(&a);
    }
    CHECK_EQ(m->__data.__kind, type_kind[type]);
    CHECK_EQ(m->__data.__lock, 0);
    CHECK_EQ(m->__data.__owner, 0);
}

static bool is_checked(int type)
{
    return type == ERRORCHECK || type == RECURSIVE;
}

/* Calls made from another thread. */

enum op { OP_TRYLOCK, OP_UNLOCK, OP_TIMEDLOCK_50MS, OP_LOCK_UNLOCK };

struct call {
    pthread_mutex_t *m;
    enum op op;
    int result;
};

static void *call_thread(void *arg)
{
    struct call *c = arg;
    switch (c->op) {
    case OP_TRYLOCK:
        c->result = pthread_mutex_trylock(c->m);
        break;
    case OP_UNLOCK:
        c->result = pthread_mutex_unlock(c->m);
        break;
    case OP_TIMEDLOCK_50MS: {
        struct timespec d = deadline_after_ms(CLOCK_REALTIME, 50);
        c->result = pthread_mutex_timedlock(c->m, &d);
        if (c->result == ETIMEDOUT)
            CHECK(reached(CLOCK_REALTIME, &d));
        break;
    }
    case OP_LOCK_UNLOCK:
        c->result = pthread_mutex_lock(c->m);
        if (c->result == 0)
            c->result = pthread_mutex_unlock(c->m);
        break;
    }
    return NULL;
}

static int other_thread(pthread_mutex_t *m, enum op op)
{
    struct call c = { m, op, -1 };
    join_thread(start_thread(call_thread, &c));
    return c.result;
}

/* Per-type scenarios, each on a fresh mutex. */

static void owner_relock(int type)
{
    pthread_mutex_t m;
    init_type(&m, type);
    CHECK_EQ(pthread_mutex_lock(&m), 0);
    CHECK_EQ(m.__data.__owner, gettid());
    CHECK_EQ(m.__data.__nusers, 1);
    CHECK_EQ(m.__data.__count, type == RECURSIVE ? 1 : 0);
    CHECK_EQ(m.__data.__lock, 1);

    switch (type) {
    case ERRORCHECK:
        CHECK_EQ(pthread_mutex_lock(&m), EDEADLK);
        CHECK_EQ(pthread_mutex_trylock(&m), EBUSY); // glibc: EBUSY, not EDEADLK
        break;
    case RECURSIVE:
        CHECK_EQ(pthread_mutex_lock(&m), 0);
        CHECK_EQ(m.__data.__count, 2);
        CHECK_EQ(pthread_mutex_trylock(&m), 0);
        CHECK_EQ(m.__data.__count, 3);
        CHECK_EQ(m.__data.__nusers, 1);
        CHECK_EQ(pthread_mutex_unlock(&m), 0);
        CHECK_EQ(pthread_mutex_unlock(&m), 0);
        CHECK_EQ(m.__data.__count, 1);
        CHECK_EQ(m.__data.__owner, gettid());
        break;
    default: {
        // Normal and adaptive relocks deadlock: a timed relock times out.
        struct timespec d = deadline_after_ms(CLOCK_REALTIME, 50);
        CHECK_EQ(pthread_mutex_timedlock(&m, &d), ETIMEDOUT);
        CHECK(reached(CLOCK_REALTIME, &d));
        CHECK_EQ(pthread_mutex_trylock(&m), EBUSY);
        break;
    }
    }
    // Other threads: busy, timed out, and (checked types) not allowed to unlock.
    CHECK_EQ(other_thread(&m, OP_TRYLOCK), EBUSY);
    CHECK_EQ(other_thread(&m, OP_TIMEDLOCK_50MS), ETIMEDOUT);
    if (is_checked(type)) {
        CHECK_EQ(other_thread(&m, OP_UNLOCK), EPERM);
        CHECK_EQ(other_thread(&m, OP_TRYLOCK), EBUSY); // still held
    }
    CHECK_EQ(pthread_mutex_destroy(&m), EBUSY);
    CHECK_EQ(m.__data.__kind, type_kind[type]);
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    CHECK_EQ(m.__data.__owner, 0);
    CHECK_EQ(m.__data.__nusers, 0);
    CHECK_EQ(m.__data.__lock, 0);
    CHECK_EQ(m.__data.__count, 0);
    CHECK_EQ(other_thread(&m, OP_LOCK_UNLOCK), 0);
    CHECK_EQ(pthread_mutex_destroy(&m), 0);
    CHECK_EQ(m.__data.__kind, -1);

    // Use after destroy.
    CHECK_EQ(pthread_mutex_lock(&m), EINVAL);
    CHECK_EQ(pthread_mutex_trylock(&m), EINVAL);
    struct timespec d = deadline_after_ms(CLOCK_REALTIME, 10);
    CHECK_EQ(pthread_mutex_timedlock(&m, &d), EINVAL);
    CHECK_EQ(pthread_mutex_clocklock(&m, CLOCK_MONOTONIC, &d), EINVAL);
    CHECK_EQ(pthread_mutex_unlock(&m), EINVAL);
    CHECK_EQ(pthread_mutex_destroy(&m), 0);
}

static void unlock_misuse(int type)
{
    // Unlock of an unlocked mutex.
    pthread_mutex_t m;
    init_type(&m, type);
    if (is_checked(type)) {
        CHECK_EQ(pthread_mutex_unlock(&m), EPERM);
        CHECK_EQ(m.__data.__nusers, 0);
        CHECK_EQ(pthread_mutex_destroy(&m), 0);
    } else {
        // glibc "unlocks" it anyway: __nusers wraps to -1, so destroy says
        // EBUSY from then on.
        CHECK_EQ(pthread_mutex_unlock(&m), 0);
        CHECK_EQ(m.__data.__lock, 0);
        CHECK_EQ(m.__data.__nusers, UINT_MAX);
        CHECK_EQ(pthread_mutex_destroy(&m), EBUSY);
        CHECK_EQ(pthread_mutex_lock(&m), 0);
        CHECK_EQ(pthread_mutex_unlock(&m), 0);
    }

    // Unlock by a thread that does not own it.
    init_type(&m, type);
    CHECK_EQ(pthread_mutex_lock(&m), 0);
    if (is_checked(type)) {
        CHECK_EQ(other_thread(&m, OP_UNLOCK), EPERM);
        CHECK_EQ(m.__data.__owner, gettid());
        CHECK_EQ(pthread_mutex_unlock(&m), 0);
    } else {
        // Unchecked: the other thread's unlock releases the mutex.
        CHECK_EQ(other_thread(&m, OP_UNLOCK), 0);
        CHECK_EQ(m.__data.__owner, 0);
        CHECK_EQ(m.__data.__lock, 0);
        CHECK_EQ(other_thread(&m, OP_LOCK_UNLOCK), 0);
        CHECK_EQ(pthread_mutex_trylock(&m), 0);
        CHECK_EQ(pthread_mutex_unlock(&m), 0);
    }
}

static void recursion(void)
{
    pthread_mutex_t m;
    init_type(&m, RECURSIVE);
    for (int i = 1; i <= 1000; i++)
        CHECK_EQ(pthread_mutex_lock(&m), 0);
    CHECK_EQ(m.__data.__count, 1000);
    CHECK_EQ(m.__data.__nusers, 1);
    for (int i = 1; i <= 1000; i++)
        CHECK_EQ(pthread_mutex_unlock(&m), 0);
    CHECK_EQ(pthread_mutex_unlock(&m), EPERM);

    // Overflow of the depth counter: EAGAIN from every locking call.
    CHECK_EQ(pthread_mutex_lock(&m), 0);
    m.__data.__count = UINT_MAX;
    CHECK_EQ(pthread_mutex_lock(&m), EAGAIN);
    CHECK_EQ(pthread_mutex_trylock(&m), EAGAIN);
    struct timespec d = deadline_after_ms(CLOCK_REALTIME, 10);
    CHECK_EQ(pthread_mutex_timedlock(&m, &d), EAGAIN);
    CHECK_EQ(pthread_mutex_clocklock(&m, CLOCK_MONOTONIC, &d), EAGAIN);
    CHECK_EQ(m.__data.__count, UINT_MAX);
    m.__data.__count = UINT_MAX - 1;
    CHECK_EQ(pthread_mutex_lock(&m), 0);
    CHECK_EQ(m.__data.__count, UINT_MAX);
    m.__data.__count = 1;
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    CHECK_EQ(m.__data.__owner, 0);
    CHECK_EQ(pthread_mutex_destroy(&m), 0);
}

/* Static initializers: kind set, pthread_mutex_init never called. */

static pthread_mutex_t s_normal = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t s_recursive = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static pthread_mutex_t s_errorcheck = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
static pthread_mutex_t s_adaptive = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;

static void static_initializers(void)
{
    CHECK_EQ(s_normal.__data.__kind, 0);
    CHECK_EQ(s_recursive.__data.__kind, 1);
    CHECK_EQ(s_errorcheck.__data.__kind, 2);
    CHECK_EQ(s_adaptive.__data.__kind, 3);

    pthread_mutex_t *all[] = { &s_normal, &s_recursive, &s_errorcheck, &s_adaptive };
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(pthread_mutex_lock(all[i]), 0);
        CHECK_EQ(all[i]->__data.__owner, gettid());
        CHECK_EQ(other_thread(all[i], OP_TRYLOCK), EBUSY);
    }
    CHECK_EQ(pthread_mutex_lock(&s_recursive), 0);
    CHECK_EQ(s_recursive.__data.__count, 2);
    CHECK_EQ(pthread_mutex_lock(&s_errorcheck), EDEADLK);
    struct timespec d = deadline_after_ms(CLOCK_MONOTONIC, 30);
    CHECK_EQ(pthread_mutex_clocklock(&s_normal, CLOCK_MONOTONIC, &d), ETIMEDOUT);
    CHECK_EQ(pthread_mutex_clocklock(&s_adaptive, CLOCK_MONOTONIC, &d), ETIMEDOUT);
    CHECK_EQ(pthread_mutex_unlock(&s_recursive), 0);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(pthread_mutex_unlock(all[i]), 0);
        CHECK_EQ(all[i]->__data.__owner, 0);
        CHECK_EQ(other_thread(all[i], OP_LOCK_UNLOCK), 0);
    }
    CHECK_EQ(pthread_mutex_unlock(&s_recursive), EPERM);
    CHECK_EQ(pthread_mutex_unlock(&s_errorcheck), EPERM);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_mutex_destroy(all[i]), 0);
}

/* Objects that are not valid mutexes: glibc answers EINVAL. */

static void garbage(void)
{
    check_context = "garbage kind";
    static const int kinds[] = { 4, 8, 12345, 0x7f, -1 };
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        pthread_mutex_t m;
        memset(&m, 0, sizeof m);
        m.__data.__kind = kinds[i];
        CHECK_EQ(pthread_mutex_lock(&m), EINVAL);
        CHECK_EQ(pthread_mutex_trylock(&m), EINVAL);
        struct timespec d = deadline_after_ms(CLOCK_REALTIME, 10);
        CHECK_EQ(pthread_mutex_timedlock(&m, &d), EINVAL);
        CHECK_EQ(pthread_mutex_clocklock(&m, CLOCK_REALTIME, &d), EINVAL);
        CHECK_EQ(pthread_mutex_unlock(&m), EINVAL);
    }
    // Random-looking bytes all over the object.
    static const int fill[] = { 0xa5, 0xff };
    for (size_t i = 0; i < 2; i++) {
        pthread_mutex_t m;
        memset(&m, fill[i], sizeof m);
        CHECK_EQ(pthread_mutex_lock(&m), EINVAL);
        CHECK_EQ(pthread_mutex_trylock(&m), EINVAL);
        struct timespec d = deadline_after_ms(CLOCK_REALTIME, 10);
        CHECK_EQ(pthread_mutex_timedlock(&m, &d), EINVAL);
        CHECK_EQ(pthread_mutex_unlock(&m), EINVAL);
    }
}

/* A counter under contention, per type. */

#define N_THREADS 4
#define N_ITERS 20000

struct counter {
    pthread_mutex_t m;
    long value;
    int type;
};

static void *count_thread(void *arg)
{
    struct counter *c = arg;
    for (int i = 0; i < N_ITERS; i++) {
        int r = pthread_mutex_lock(&c->m);
        if (r != 0) {
            CHECK_EQ(r, 0);
            return NULL;
        }
        if (c->m.__data.__owner != gettid())
            CHECK_EQ(c->m.__data.__owner, gettid());
        c->value++;
        if (c->type == RECURSIVE && (i & 7) == 0) {
            CHECK_EQ(pthread_mutex_lock(&c->m), 0);
            CHECK_EQ(c->m.__data.__count, 2);
            CHECK_EQ(pthread_mutex_unlock(&c->m), 0);
        }
        CHECK_EQ(pthread_mutex_unlock(&c->m), 0);
        if ((i & 15) == 0) {
            // One more increment through trylock, retried while busy.
            for (;;) {
                int t = pthread_mutex_trylock(&c->m);
                if (t == 0) {
                    c->value++;
                    CHECK_EQ(pthread_mutex_unlock(&c->m), 0);
                    break;
                }
                if (t != EBUSY) {
                    CHECK_EQ(t, EBUSY);
                    break;
                }
                sched_yield();
            }
        }
    }
    return NULL;
}

static void contention(int type)
{
    struct counter c = { .type = type };
    init_type(&c.m, type);
    pthread_t t[N_THREADS];
    for (int i = 0; i < N_THREADS; i++)
        t[i] = start_thread(count_thread, &c);
    for (int i = 0; i < N_THREADS; i++)
        join_thread(t[i]);
    // Each thread: N_ITERS increments under lock, N_ITERS / 16 under trylock.
    CHECK_EQ(c.value, (long)N_THREADS * (N_ITERS + N_ITERS / 16));
    CHECK_EQ(c.m.__data.__owner, 0);
    CHECK_EQ(c.m.__data.__nusers, 0);
    CHECK_EQ(pthread_mutex_destroy(&c.m), 0);
}

/* Priority ceilings: glibc's answers, for mutexes either engine runs. */

static void prio_ceiling(void)
{
    check_context = "prioceiling";
    pthread_mutex_t n = PTHREAD_MUTEX_INITIALIZER;
    int ceiling = -7, old = -7;
    CHECK_EQ(pthread_mutex_getprioceiling(&n, &ceiling), EINVAL);
    CHECK_EQ(pthread_mutex_setprioceiling(&n, 5, &old), EINVAL);
    CHECK_EQ(ceiling, -7);
    CHECK_EQ(old, -7);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    CHECK_EQ(pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_PROTECT), 0);
    CHECK_EQ(pthread_mutexattr_setprioceiling(&a, 1), 0);
    pthread_mutex_t p;
    CHECK_EQ(pthread_mutex_init(&p, &a), 0);
    CHECK_EQ(pthread_mutex_getprioceiling(&p, &ceiling), 0);
    CHECK_EQ(ceiling, 1);
    CHECK_EQ(pthread_mutex_consistent(&p), EINVAL);
    CHECK_EQ(pthread_mutex_destroy(&p), 0);
    pthread_mutexattr_destroy(&a);
}

int main(void)
{
    for (int type = 0; type < N_TYPES; type++) {
        owner_relock(type);
        unlock_misuse(type);
    }
    recursion();
    static_initializers();
    garbage();
    prio_ceiling();
    for (int type = 0; type < N_TYPES; type++)
        contention(type);
    return check_finish();
}
