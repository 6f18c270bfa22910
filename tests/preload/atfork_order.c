// Regression: a deadlock in fork() found with jemalloc. Other libraries'
// atfork handlers, registered before parklock's constructor runs (here from
// .preinit_array, as jemalloc does from its malloc start-up), lock and
// unlock a contended pthread mutex around fork(). parklock once held every
// parking-lot bucket lock across fork, so such a handler parked on a bucket
// the forking thread held, forever. The child also locks the mutex (its
// handlers unlocked it) and contends on it with new threads.
#include <sys/wait.h>

#include "check.h"

enum { THREADS = 4, FORKS = 100, CHILD_ROUNDS = 2000 };

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool stop;

static void prepare(void) { pthread_mutex_lock(&m); }
static void release(void) { pthread_mutex_unlock(&m); }

static void register_early(int argc, char **argv, char **envp)
{
    (void)argc;
    (void)argv;
    (void)envp;
    pthread_atfork(prepare, release, release);
}
__attribute__((section(".preinit_array"), used))
static void (*const preinit)(int, char **, char **) = register_early;

static void *contend(void *arg)
{
    long *count = arg;
    while (!atomic_load(&stop)) {
        pthread_mutex_lock(&m);
        (*count)++;
        sched_yield(); // hold it while others park
        pthread_mutex_unlock(&m);
    }
    return NULL;
}

// In the child: the mutex works, alone and contended by new threads.
static int child(void)
{
    long count = 0;
    atomic_store(&stop, false);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, contend, &count))
            return 2;
    for (int i = 0; i < CHILD_ROUNDS; i++) {
        pthread_mutex_lock(&m);
        count++;
        pthread_mutex_unlock(&m);
    }
    atomic_store(&stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    return count >= CHILD_ROUNDS ? 0 : 3;
}

int main(void)
{
    long counts[THREADS] = { 0 };
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        t[i] = start_thread(contend, &counts[i]);
    for (int i = 0; i < FORKS; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(child());
        CHECK(pid > 0);
        int status = 0;
        CHECK_EQ(waitpid(pid, &status, 0), pid);
        CHECK(WIFEXITED(status));
        CHECK_EQ(WEXITSTATUS(status), 0);
    }
    atomic_store(&stop, true);
    for (int i = 0; i < THREADS; i++)
        join_thread(t[i]);
    return check_finish();
}
