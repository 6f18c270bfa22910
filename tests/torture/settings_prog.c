// A small threaded program for env_output.sh: contended mutexes and a cond,
// a fixed result on stdout, and the exit status given as argv[1]. It writes
// nothing to stderr, so whatever appears there comes from parklock.
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t c = PTHREAD_COND_INITIALIZER;
static long count;
static int turn;

static void *worker(void *arg)
{
    long id = (long)arg;
    for (int i = 0; i < 2000; i++) {
        pthread_mutex_lock(&m);
        count++;
        if (i % 100 == 0) {
            while (turn != id)
                pthread_cond_wait(&c, &m);
            turn = (int)(1 - id);
            pthread_cond_broadcast(&c);
        }
        pthread_mutex_unlock(&m);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t t[2];
    for (long i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    printf("count %ld\n", count);
    printf("turn %d\n", turn);
    return argc > 1 ? atoi(argv[1]) : 0;
}
