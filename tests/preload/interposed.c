// Did the preload take effect? Three independent proofs:
//  1. parklock_engine() is found under the preload (and names the engine
//     PLK_EXPECT says), and is absent on plain glibc;
//  2. every entry point, looked up the way the program's calls resolve,
//     lives in libparklock.so under the preload and in libc on plain glibc
//     (old_cond.c covers references to the GLIBC_2.2.5 cond versions: dlvsym
//     matches versions exactly and would not see an unversioned definition);
//  3. a behavioural fingerprint: a contended normal mutex's __lock word is
//     3 (LOCKED|PARKED) on the parking lot and 2 under glibc's futex lock.
#include <dlfcn.h>

#include "check.h"

static const char *const entry_points[] = {
    "pthread_mutex_init",       "pthread_mutex_destroy",
    "pthread_mutex_lock",       "pthread_mutex_trylock",
    "pthread_mutex_timedlock",  "pthread_mutex_clocklock",
    "pthread_mutex_unlock",     "pthread_mutex_consistent",
    "pthread_mutex_getprioceiling",
    "pthread_mutex_setprioceiling",
    "pthread_cond_init",        "pthread_cond_destroy",
    "pthread_cond_signal",      "pthread_cond_broadcast",
    "pthread_cond_wait",        "pthread_cond_timedwait",
    "pthread_cond_clockwait",
    "mtx_init",  "mtx_destroy", "mtx_lock", "mtx_trylock", "mtx_timedlock",
    "mtx_unlock",
    "cnd_init",  "cnd_destroy", "cnd_signal", "cnd_broadcast", "cnd_wait",
    "cnd_timedwait",
};

static void check_defined_in(const char *name, void *fn, const char *lib)
{
    Dl_info info;
    if (!fn || !dladdr(fn, &info) || !info.dli_fname) {
        atomic_fetch_add(&check_failures, 1);
        fprintf(stderr, "%s:%d: FAILED %s: not found\n", __FILE__, __LINE__, name);
        return;
    }
    if (!strstr(info.dli_fname, lib)) {
        atomic_fetch_add(&check_failures, 1);
        fprintf(stderr, "%s:%d: FAILED %s: defined in %s, expected %s\n", __FILE__,
                __LINE__, name, info.dli_fname, lib);
    }
}

static void check_entry_points(void)
{
    const char *lib = strcmp(expect_mode(), "none") == 0 ? "libc.so" : "libparklock.so";
    for (size_t i = 0; i < sizeof entry_points / sizeof *entry_points; i++)
        check_defined_in(entry_points[i], dlsym(RTLD_DEFAULT, entry_points[i]), lib);
}

static void check_engine(void)
{
    const char *mode = expect_mode();
    void *sym = dlsym(RTLD_DEFAULT, "parklock_engine");
    if (strcmp(mode, "none") == 0) {
        CHECK(sym == NULL);
        return;
    }
    CHECK(sym != NULL);
    if (sym) {
        const char *(*engine)(void) = (const char *(*)(void))sym;
        CHECK_STR(engine(), mode);
    }
}

/* Fingerprint. */

static pthread_mutex_t fp_mutex = PTHREAD_MUTEX_INITIALIZER;
static atomic_int fp_tid;

static void *fp_locker(void *arg)
{
    (void)arg;
    atomic_store(&fp_tid, gettid());
    CHECK_EQ(pthread_mutex_lock(&fp_mutex), 0);
    CHECK_EQ(fp_mutex.__data.__owner, gettid());
    CHECK_EQ(pthread_mutex_unlock(&fp_mutex), 0);
    return NULL;
}

static void check_fingerprint(void)
{
    CHECK_EQ(pthread_mutex_lock(&fp_mutex), 0);
    CHECK_EQ(fp_mutex.__data.__lock, 1); // uncontended: LOCKED in both
    pthread_t t = start_thread(fp_locker, NULL);
    pid_t tid = wait_tid(&fp_tid);
    // Blocked in lock: asleep in the kernel, with the word marked contended.
    CHECK(WAIT_UNTIL(fp_mutex.__data.__lock != 1 && thread_state(tid) == 'S', 10000));
    CHECK_EQ(fp_mutex.__data.__lock, contended_word());
    CHECK_EQ(pthread_mutex_unlock(&fp_mutex), 0);
    join_thread(t);
    CHECK_EQ(fp_mutex.__data.__lock, 0);
    CHECK_EQ(fp_mutex.__data.__owner, 0);
}

int main(void)
{
    check_engine();
    check_entry_points();
    check_fingerprint();
    return check_finish();
}
