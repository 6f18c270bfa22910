// Allocation-heavy threads that hand blocks to each other through a bounded
// queue (a mutex and condition variables), with forks along the way whose
// children allocate, lock and exit. CTest runs it with libjemalloc and
// libparklock.so preloaded together, in both orders: jemalloc's own locks are
// pthread mutexes, so they run on parklock too, and both libraries register
// fork handlers. Exit 0 means every block arrived intact and every child
// exited cleanly.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "preload_check.h"

enum {
    PRODUCERS = 4,
    CONSUMERS = 2,
    ITEMS = 20000,      // handed over per producer
    CHURN = 4,          // private allocations per handed-over block
    LIVE = 64,          // private blocks each producer keeps alive
    QUEUE_CAP = 64,
    FORKS = 3,          // evenly spread over the run
    CHILD_ROUNDS = 20000,
};
// A healthy run takes about a second.
#define WATCHDOG_S 60
#define STRINGIFY(x) STRINGIFY_(x)
#define STRINGIFY_(x) #x
#define TOTAL_ITEMS ((long)PRODUCERS * ITEMS)
// The number of pushes between two forks.
#define FORK_STEP (TOTAL_ITEMS / (FORKS + 1))

// A handed-over block: its payload is a pattern derived from seed.
struct block {
    size_t size;
    uint32_t seed;
    unsigned char data[];
};

/* The queue and the counters; all fields are protected by lock. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_empty;  // signalled per push, broadcast when done
    pthread_cond_t not_full;   // signalled per pop
    pthread_cond_t progress;   // broadcast every FORK_STEP pushes
    struct block *slots[QUEUE_CAP];
    int head, count;
    long pushed, popped;
    unsigned long long pushed_bytes, popped_bytes;
    long corrupt;              // popped blocks whose pattern was wrong
    int producers_left;
} q = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .not_empty = PTHREAD_COND_INITIALIZER,
    .not_full = PTHREAD_COND_INITIALIZER,
    .progress = PTHREAD_COND_INITIALIZER,
    .producers_left = PRODUCERS,
};

static uint32_t next_random(uint32_t *state)
{
    // xorshift32: cheap, and each thread has its own state
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

static unsigned char pattern(uint32_t seed, size_t i)
{
    return (unsigned char)(seed + i * 31);
}

static struct block *make_block(uint32_t *rng)
{
    size_t size = 1 + next_random(rng) % 4096;
    struct block *b = malloc(sizeof *b + size);
    if (!b) {
        perror("malloc");
        exit(1);
    }
    b->size = size;
    b->seed = next_random(rng);
    for (size_t i = 0; i < size; i++)
        b->data[i] = pattern(b->seed, i);
    return b;
}

static bool intact(const struct block *b)
{
    for (size_t i = 0; i < b->size; i++)
        if (b->data[i] != pattern(b->seed, i))
            return false;
    return true;
}

// Private allocations of mixed sizes, small to a few pages, some resized.
static void churn(void **live, uint32_t *rng)
{
    for (int i = 0; i < CHURN; i++) {
        unsigned slot = next_random(rng) % LIVE;
        free(live[slot]);
        size_t size = 1 + next_random(rng) % (next_random(rng) % 8 ? 512 : 65536);
        unsigned char *p = malloc(size);
        if (p && next_random(rng) % 4 == 0) {
            unsigned char *r = realloc(p, size * 2);
            if (r) {
                p = r;
                size *= 2;
            }
        }
        if (!p) {
            perror("malloc");
            exit(1);
        }
        p[0] = p[size - 1] = (unsigned char)size;
        live[slot] = p;
    }
}

// Waits for room with a timed wait, so that both wait paths are exercised.
static void push(struct block *b)
{
    pthread_mutex_lock(&q.lock);
    while (q.count == QUEUE_CAP) {
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_nsec += 50 * 1000 * 1000;
        if (deadline.tv_nsec >= 1000000000) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000;
        }
        int rc = pthread_cond_clockwait(&q.not_full, &q.lock, CLOCK_MONOTONIC, &deadline);
        if (rc != 0 && rc != ETIMEDOUT) {
            fprintf(stderr, "pthread_cond_clockwait: %s\n", strerror(rc));
            exit(1);
        }
    }
    q.slots[(q.head + q.count++) % QUEUE_CAP] = b;
    q.pushed++;
    q.pushed_bytes += b->size;
    if (q.pushed % FORK_STEP == 0)
        pthread_cond_broadcast(&q.progress);
    pthread_cond_signal(&q.not_empty);
    pthread_mutex_unlock(&q.lock);
}

static void *producer(void *arg)
{
    uint32_t rng = (uint32_t)(uintptr_t)arg * 2654435761u + 1;
    void *live[LIVE] = {0};
    for (int i = 0; i < ITEMS; i++) {
        churn(live, &rng);
        push(make_block(&rng));
    }
    for (int i = 0; i < LIVE; i++)
        free(live[i]);

    pthread_mutex_lock(&q.lock);
    if (--q.producers_left == 0)
        pthread_cond_broadcast(&q.not_empty);
    pthread_mutex_unlock(&q.lock);
    return NULL;
}

// Checks and frees blocks that another thread allocated.
static void *consumer(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&q.lock);
    for (;;) {
        while (q.count == 0 && q.producers_left > 0)
            pthread_cond_wait(&q.not_empty, &q.lock);
        if (q.count == 0)
            break;
        struct block *b = q.slots[q.head];
        q.head = (q.head + 1) % QUEUE_CAP;
        q.count--;
        pthread_cond_signal(&q.not_full);
        pthread_mutex_unlock(&q.lock);

        bool ok = intact(b);
        size_t size = b->size;
        free(b);

        pthread_mutex_lock(&q.lock);
        q.popped++;
        q.popped_bytes += size;
        q.corrupt += !ok;
    }
    pthread_mutex_unlock(&q.lock);
    return NULL;
}

// In the child: the allocator and fresh locks must work, then exit(), which
// runs the libraries' destructors.
static void child(void)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    uint32_t rng = 12345;
    void *live[LIVE] = {0};
    for (int i = 0; i < CHILD_ROUNDS; i++) {
        pthread_mutex_lock(&m);
        churn(live, &rng);
        pthread_cond_signal(&c);
        pthread_mutex_unlock(&m);
    }
    struct block *b = make_block(&rng);
    int status = intact(b) ? 0 : 3;
    free(b);
    for (int i = 0; i < LIVE; i++)
        free(live[i]);
    exit(status);
}

// The child being waited for, if any, for the watchdog to kill.
static volatile sig_atomic_t running_child;

// A deadlock fails the test at once, and says so, instead of at CTest's
// timeout; a hung child goes too. Only async-signal-safe calls.
static void on_watchdog(int sig)
{
    (void)sig;
    static const char msg[] = "malloc_threads: no result after "
                              STRINGIFY(WATCHDOG_S) " s: deadlock\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    if (running_child > 0)
        kill(running_child, SIGKILL);
    _exit(2);
}

static void start_watchdog(void)
{
    struct sigaction sa = {.sa_handler = on_watchdog};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    alarm(WATCHDOG_S);
}

// Forks once `pushed` items are through, while the others still allocate.
static int fork_at(long pushed)
{
    pthread_mutex_lock(&q.lock);
    while (q.pushed < pushed)
        pthread_cond_wait(&q.progress, &q.lock);
    pthread_mutex_unlock(&q.lock);

    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0)
        child();
    running_child = pid;
    int status;
    if (waitpid(pid, &status, 0) != pid) {
        perror("waitpid");
        return 1;
    }
    running_child = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "malloc_threads: child failed (wait status %#x)\n", status);
        return 1;
    }
    return 0;
}

int main(void)
{
    start_watchdog();
    if (plk_preload_check() != 0)
        return 1;

    pthread_t threads[PRODUCERS + CONSUMERS];
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++) {
        void *(*fn)(void *) = i < PRODUCERS ? producer : consumer;
        int rc = pthread_create(&threads[i], NULL, fn, (void *)(uintptr_t)i);
        if (rc != 0) {
            fprintf(stderr, "pthread_create: %s\n", strerror(rc));
            return 1;
        }
    }
    int bad = 0;
    for (int i = 1; i <= FORKS; i++)
        bad |= fork_at(i * FORK_STEP);
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++)
        pthread_join(threads[i], NULL);

    printf("malloc_threads: pushed %ld (%llu bytes), popped %ld (%llu bytes), corrupt %ld\n",
           q.pushed, q.pushed_bytes, q.popped, q.popped_bytes, q.corrupt);
    if (q.pushed != TOTAL_ITEMS || q.popped != TOTAL_ITEMS ||
        q.pushed_bytes != q.popped_bytes || q.corrupt != 0 || q.count != 0) {
        fprintf(stderr, "malloc_threads: lost, duplicated or damaged blocks\n");
        bad = 1;
    }
    return bad;
}
