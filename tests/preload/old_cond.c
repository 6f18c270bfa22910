// A program linked against the old (GLIBC_2.2.5) condition-variable symbols,
// as binaries built on glibc < 2.3.2 are: the unversioned definitions of the
// preload must intercept them too. glibc's compat functions keep a pointer
// to a separately allocated cond in the first word of the object; parklock
// treats the object as an ordinary pthread_cond_t. A producer/consumer with
// exact totals, a timed wait that times out, signal/broadcast, and a
// fingerprint (under the preload the first word holds the waiters' mutex).
// versioned_symbols.sh checks with objdump that the references are versioned.
#include "check.h"

__asm__(".symver pthread_cond_init, pthread_cond_init@GLIBC_2.2.5");
__asm__(".symver pthread_cond_destroy, pthread_cond_destroy@GLIBC_2.2.5");
__asm__(".symver pthread_cond_wait, pthread_cond_wait@GLIBC_2.2.5");
__asm__(".symver pthread_cond_timedwait, pthread_cond_timedwait@GLIBC_2.2.5");
__asm__(".symver pthread_cond_signal, pthread_cond_signal@GLIBC_2.2.5");
__asm__(".symver pthread_cond_broadcast, pthread_cond_broadcast@GLIBC_2.2.5");

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty, not_full;
static int qlen, producers_left;
static long consumed_n, sum;

#define N_PROD 2
#define N_CONS 2
#define PER_PROD 3000

static void *producer(void *arg)
{
    (void)arg;
    for (long i = 1; i <= PER_PROD; i++) {
        CHECK_EQ(pthread_mutex_lock(&m), 0);
        while (qlen >= 4)
            CHECK_EQ(pthread_cond_wait(&not_full, &m), 0);
        qlen++;
        sum += i;
        CHECK_EQ(pthread_cond_signal(&not_empty), 0);
        CHECK_EQ(pthread_mutex_unlock(&m), 0);
    }
    CHECK_EQ(pthread_mutex_lock(&m), 0);
    if (--producers_left == 0)
        CHECK_EQ(pthread_cond_broadcast(&not_empty), 0);
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    CHECK_EQ(pthread_mutex_lock(&m), 0);
    for (long n = 0;; n++) {
        while (qlen == 0 && producers_left > 0) {
            if (n & 1) {
                CHECK_EQ(pthread_cond_wait(&not_empty, &m), 0);
            } else {
                struct timespec d = deadline_after_ms(CLOCK_REALTIME, 3);
                int r = pthread_cond_timedwait(&not_empty, &m, &d);
                if (r != ETIMEDOUT)
                    CHECK_EQ(r, 0);
            }
        }
        if (qlen == 0)
            break;
        qlen--;
        consumed_n++;
        CHECK_EQ(pthread_cond_broadcast(&not_full), 0);
    }
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    return NULL;
}

static atomic_int waiting;
static int ready;

static void *waiter(void *arg)
{
    (void)arg;
    CHECK_EQ(pthread_mutex_lock(&m), 0);
    atomic_store(&waiting, 1);
    while (!ready)
        CHECK_EQ(pthread_cond_wait(&not_empty, &m), 0);
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    return NULL;
}

int main(void)
{
    CHECK_EQ(pthread_cond_init(&not_empty, NULL), 0);
    CHECK_EQ(pthread_cond_init(&not_full, NULL), 0);
    CHECK_EQ(pthread_cond_signal(&not_empty), 0);
    CHECK_EQ(pthread_cond_broadcast(&not_empty), 0);

    check_context = "timeout";
    CHECK_EQ(pthread_mutex_lock(&m), 0);
    struct timespec d = deadline_after_ms(CLOCK_REALTIME, 40);
    CHECK_EQ(pthread_cond_timedwait(&not_empty, &m, &d), ETIMEDOUT);
    CHECK(reached(CLOCK_REALTIME, &d));
    CHECK_EQ(m.__data.__owner, gettid());
    CHECK_EQ(pthread_mutex_unlock(&m), 0);

    check_context = "producer/consumer";
    producers_left = N_PROD;
    pthread_t t[N_PROD + N_CONS];
    for (int i = 0; i < N_CONS; i++)
        t[i] = start_thread(consumer, NULL);
    for (int i = 0; i < N_PROD; i++)
        t[N_CONS + i] = start_thread(producer, NULL);
    for (int i = 0; i < N_PROD + N_CONS; i++)
        join_thread(t[i]);
    CHECK_EQ(consumed_n, (long)N_PROD * PER_PROD);
    CHECK_EQ(sum, (long)N_PROD * PER_PROD * (PER_PROD + 1) / 2);

    check_context = "fingerprint";
    pthread_t w = start_thread(waiter, NULL);
    WAIT_UNTIL(atomic_load(&waiting) == 1, 10000);
    CHECK_EQ(pthread_mutex_lock(&m), 0); // the waiter is in its wait
    uintptr_t first = *(volatile uintptr_t *)&not_empty;
    if (expect_parkinglot())
        CHECK_EQ(first, (uintptr_t)&m);
    else
        CHECK(first != (uintptr_t)&m); // glibc: its allocated cond
    ready = 1;
    CHECK_EQ(pthread_cond_signal(&not_empty), 0);
    CHECK_EQ(pthread_mutex_unlock(&m), 0);
    join_thread(w);

    CHECK_EQ(pthread_cond_destroy(&not_empty), 0);
    CHECK_EQ(pthread_cond_destroy(&not_full), 0);
    return check_finish();
}
