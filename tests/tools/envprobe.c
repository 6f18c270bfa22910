// What `parklock run` hands to PROG, seen from PROG: the PARKLOCK_*
// variables, LD_PRELOAD, the engine libparklock.so reports, and whether a
// user's own preload (tests/tools/dummy_preload.c) is loaded too. Then it
// ends as asked, so that exit status passthrough can be tested.
//   envprobe env            print the above, exit 0
//   envprobe exit N         exit with status N
//   envprobe signal N       die by signal N
//   envprobe wait FILE      write "ready" to FILE, then wait for a signal
//   envprobe contend        two threads on one global mutex (for profiles)
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const variables[] = {
    "PARKLOCK_ENGINE", "PARKLOCK_OUTPUT",      "PARKLOCK_FORMAT",      "PARKLOCK_TOP",
    "PARKLOCK_STACK_DEPTH", "PARKLOCK_DUMP_SIGNAL", "PARKLOCK_PROFILE", "LD_PRELOAD",
};

static void print_env(void)
{
    for (size_t i = 0; i < sizeof variables / sizeof variables[0]; i++) {
        const char *v = getenv(variables[i]);
        printf("%s=%s\n", variables[i], v ? v : "(unset)");
    }
    const char *(*engine)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "parklock_engine");
    printf("engine=%s\n", engine ? engine() : "(no parklock)");
    printf("dummy_preload=%s\n", dlsym(RTLD_DEFAULT, "plk_tools_dummy_marker") ? "yes" : "no");
}

pthread_mutex_t envprobe_lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static void *contend(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        pthread_mutex_lock(&envprobe_lock);
        for (volatile int k = 0; k < 50; k++)
            counter++;
        pthread_mutex_unlock(&envprobe_lock);
    }
    return NULL;
}

static int run_contend(void)
{
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, contend, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    return counter > 0 ? 0 : 1;
}

static int wait_for_signal(const char *file)
{
    FILE *f = fopen(file, "w");
    if (!f)
        return 1;
    fputs("ready\n", f);
    fclose(f);
    for (;;)
        pause();
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "env";
    if (strcmp(mode, "env") == 0) {
        print_env();
        return 0;
    }
    if (strcmp(mode, "exit") == 0 && argc > 2)
        return atoi(argv[2]);
    if (strcmp(mode, "signal") == 0 && argc > 2) {
        fflush(NULL);
        signal(atoi(argv[2]), SIG_DFL);
        raise(atoi(argv[2]));
        return 100;
    }
    if (strcmp(mode, "wait") == 0 && argc > 2)
        return wait_for_signal(argv[2]);
    if (strcmp(mode, "contend") == 0)
        return run_contend();
    fprintf(stderr, "envprobe: bad arguments\n");
    return 99;
}
