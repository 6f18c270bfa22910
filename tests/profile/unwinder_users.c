// Regression: a program that unwinds its own stacks with libunwind while
// parklock profiles. Debian's libunwind takes a global cache mutex while
// unwinding; parklock once recorded a stack on that mutex's contended path,
// unwinding again while holding it: the thread deadlocked on itself (about
// one run in four). Eight threads at a time each unwind once, 50 rounds:
// exits 0, or hangs (the CTest timeout reports it).
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static void *unwind_once(void *arg)
{
    (void)arg;
    void *frames[32];
    if (unw_backtrace(frames, 32) <= 0)
        abort();
    return NULL;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 50;
    for (int r = 0; r < rounds; r++) {
        pthread_t t[8];
        for (int i = 0; i < 8; i++)
            if (pthread_create(&t[i], NULL, unwind_once, NULL))
                abort();
        for (int i = 0; i < 8; i++)
            pthread_join(t[i], NULL);
    }
    return 0;
}
