// Locks used where parklock's own set-up may not have happened yet or is
// being torn down: from .preinit_array (before every constructor, parklock's
// included), from a thread-specific-data destructor of an exiting thread,
// and from a destructor after main has returned. Each use must behave as on
// glibc: a contended hand-over, errorcheck answers, a timed cond wait.
#include "check.h"

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t ec = PTHREAD_ERRORCHECK_MUTEX_INITIALIZER_NP;
static pthread_cond_t c = PTHREAD_COND_INITIALIZER;
static pthread_key_t key;
static atomic_int phase_failures;
static const char *phase;

#define EXPECT_EQ(got, expected)                                               \
    do {                                                                       \
        long g_ = (got), e_ = (expected);                                      \
        if (g_ != e_) {                                                        \
            fprintf(stderr, "%s:%d: FAILED %s in %s: got %ld, expected %ld\n", \
                    __FILE__, __LINE__, #got, phase, g_, e_);                  \
            atomic_fetch_add(&phase_failures, 1);                              \
        }                                                                      \
    } while (0)

static void *hold_briefly(void *arg)
{
    (void)arg;
    EXPECT_EQ(pthread_mutex_lock(&m), 0);
    sleep_ms(20);
    EXPECT_EQ(pthread_mutex_unlock(&m), 0);
    return NULL;
}

// The same exercise in every phase.
static void use_locks(const char *where)
{
    phase = where;
    pthread_t t;
    EXPECT_EQ(pthread_create(&t, NULL, hold_briefly, NULL), 0);
    sleep_ms(5);
    EXPECT_EQ(pthread_mutex_lock(&m), 0); // usually waits for the holder
    EXPECT_EQ(pthread_mutex_unlock(&m), 0);
    EXPECT_EQ(pthread_join(t, NULL), 0);

    EXPECT_EQ(pthread_mutex_lock(&ec), 0);
    EXPECT_EQ(pthread_mutex_lock(&ec), EDEADLK);
    EXPECT_EQ(pthread_mutex_trylock(&ec), EBUSY);
    struct timespec past = { 0, 0 };
    EXPECT_EQ(pthread_cond_timedwait(&c, &ec, &past), ETIMEDOUT);
    EXPECT_EQ(pthread_mutex_unlock(&ec), 0);
    EXPECT_EQ(pthread_mutex_unlock(&ec), EPERM);
    EXPECT_EQ(pthread_cond_signal(&c), 0);
    EXPECT_EQ(pthread_cond_broadcast(&c), 0);
}

static void early(int argc, char **argv, char **envp)
{
    (void)argc;
    (void)argv;
    (void)envp;
    use_locks("preinit");
}
__attribute__((section(".preinit_array"), used))
static void (*const preinit)(int, char **, char **) = early;

static void exiting_thread_destructor(void *value)
{
    (void)value;
    use_locks("thread-specific-data destructor");
}

static void *exiting_thread(void *arg)
{
    (void)arg;
    pthread_setspecific(key, &key);
    return NULL;
}

__attribute__((destructor)) static void late(void)
{
    use_locks("destructor after main");
    // The exit status is already decided: report through _exit.
    if (atomic_load(&phase_failures))
        _exit(1);
}

int main(void)
{
    CHECK_EQ(pthread_key_create(&key, exiting_thread_destructor), 0);
    pthread_t t = start_thread(exiting_thread, NULL);
    join_thread(t);
    use_locks("main");
    CHECK_EQ(atomic_load(&phase_failures), 0);
    return check_finish();
}
