// A program calling glibc's old __pthread_mutex_* entry points
// (GLIBC_2.2.5, exported for binaries linked against libpthread before
// glibc 2.34 merged it into libc), alone and mixed with pthread_mutex_* on
// the same mutexes. Under the preload these calls must reach parklock too:
// a mutex must never be run by two different lock algorithms at once.
//   - errorcheck semantics through the old names;
//   - fingerprint: a thread blocked in __pthread_mutex_lock leaves the word
//     at 3 (parklock) or 2 (glibc), and gets the mutex when it is unlocked
//     through pthread_mutex_unlock;
//   - a counter under contention, half the threads on each set of names.
// versioned_symbols.sh checks with objdump that the references are versioned.
#include "check.h"

extern int old_init(pthread_mutex_t *, const pthread_mutexattr_t *)
    __asm__("__pthread_mutex_init");
extern int old_destroy(pthread_mutex_t *) __asm__("__pthread_mutex_destroy");
extern int old_lock(pthread_mutex_t *) __asm__("__pthread_mutex_lock");
extern int old_trylock(pthread_mutex_t *) __asm__("__pthread_mutex_trylock");
extern int old_unlock(pthread_mutex_t *) __asm__("__pthread_mutex_unlock");
__asm__(".symver __pthread_mutex_init,__pthread_mutex_init@GLIBC_2.2.5");
__asm__(".symver __pthread_mutex_destroy,__pthread_mutex_destroy@GLIBC_2.2.5");
__asm__(".symver __pthread_mutex_lock,__pthread_mutex_lock@GLIBC_2.2.5");
__asm__(".symver __pthread_mutex_trylock,__pthread_mutex_trylock@GLIBC_2.2.5");
__asm__(".symver __pthread_mutex_unlock,__pthread_mutex_unlock@GLIBC_2.2.5");

static void semantics(void)
{
    check_context = "errorcheck through the old names";
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_t m;
    CHECK_EQ(old_init(&m, &a), 0);
    CHECK_EQ(m.__data.__kind, 2);
    CHECK_EQ(old_lock(&m), 0);
    CHECK_EQ(m.__data.__owner, gettid());
    CHECK_EQ(old_lock(&m), EDEADLK);
    CHECK_EQ(pthread_mutex_lock(&m), EDEADLK);
    CHECK_EQ(old_trylock(&m), EBUSY);
    CHECK_EQ(old_destroy(&m), EBUSY);
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    CHECK_EQ(old_unlock(&m), EPERM);
    CHECK_EQ(pthread_mutex_lock(&m), 0);
    CHECK_EQ(old_unlock(&m), 0);
    CHECK_EQ(old_destroy(&m), 0);
    CHECK_EQ(old_lock(&m), EINVAL);
}

/* Fingerprint. */

static pthread_mutex_t fm = PTHREAD_MUTEX_INITIALIZER;
static atomic_int f_tid, f_done;

static void *old_locker(void *arg)
{
    (void)arg;
    atomic_store(&f_tid, gettid());
    CHECK_EQ(old_lock(&fm), 0);
    CHECK_EQ(old_unlock(&fm), 0);
    atomic_store(&f_done, 1);
    return NULL;
}

static bool fingerprint(void)
{
    check_context = "blocked in __pthread_mutex_lock";
    CHECK_EQ(pthread_mutex_lock(&fm), 0);
    pthread_t t = start_thread(old_locker, NULL);
    pid_t tid = wait_tid(&f_tid);
    CHECK(WAIT_UNTIL(fm.__data.__lock != 1 && thread_state(tid) == 'S', 10000));
    CHECK_EQ(fm.__data.__lock, contended_word());
    CHECK_EQ(pthread_mutex_unlock(&fm), 0);
    bool done = WAIT_UNTIL(atomic_load(&f_done) == 1, 5000);
    CHECK(done); // woken by pthread_mutex_unlock
    if (done)
        join_thread(t);
    return done;
}

/* Mixed contention. */

#define ITERS 20000
static pthread_mutex_t cm = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static atomic_int finished;

static void *mixed(void *arg)
{
    bool use_old = arg != NULL;
    for (int i = 0; i < ITERS; i++) {
        CHECK_EQ(use_old ? old_lock(&cm) : pthread_mutex_lock(&cm), 0);
        counter++;
        CHECK_EQ(use_old ? old_unlock(&cm) : pthread_mutex_unlock(&cm), 0);
    }
    atomic_fetch_add(&finished, 1);
    return NULL;
}

static void contention(void)
{
    check_context = "mixed old and new names";
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        t[i] = start_thread(mixed, (void *)(i & 1));
    // A lost wake-up would hang a thread: give up after a while instead.
    bool done = WAIT_UNTIL(atomic_load(&finished) == 4, 20000);
    CHECK(done);
    if (!done)
        return;
    for (int i = 0; i < 4; i++)
        join_thread(t[i]);
    CHECK_EQ(counter, 4L * ITERS);
}

int main(void)
{
    semantics();
    if (fingerprint())
        contention();
    fflush(stderr);
    _exit(check_finish()); // threads may still hang in a broken run
}
