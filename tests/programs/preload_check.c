#include "preload_check.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARKLOCK_SO "libparklock.so"
#define GLIBC_SO "libc.so.6"

// The lock entry points that libstdc++ and the test programs call. Under the
// preload each must come from libparklock.so, else the test would exercise
// glibc's locks while claiming to test parklock's.
static const char *const lock_symbols[] = {
    "pthread_mutex_lock",     "pthread_mutex_trylock",  "pthread_mutex_unlock",
    "pthread_mutex_timedlock", "pthread_mutex_clocklock", "pthread_cond_wait",
    "pthread_cond_timedwait", "pthread_cond_clockwait", "pthread_cond_signal",
    "pthread_cond_broadcast", "mtx_lock",               "cnd_wait",
};

// Basename of the object defining the default version of sym; "" if none.
static const char *provider(const char *sym)
{
    void *addr = dlsym(RTLD_DEFAULT, sym);
    Dl_info info;
    if (!addr || !dladdr(addr, &info) || !info.dli_fname)
        return "";
    const char *slash = strrchr(info.dli_fname, '/');
    return slash ? slash + 1 : info.dli_fname;
}

// -1 when unset, else 0 or 1.
static int expectation(const char *name)
{
    const char *v = getenv(name);
    if (!v)
        return -1;
    return strcmp(v, "0") != 0;
}

static int mismatch(const char *what, const char *sym, const char *got)
{
    fprintf(stderr, "preload_check: %s: %s comes from \"%s\"\n", what, sym, got);
    return 1;
}

static int check_parklock(int expect, const char **engine_out)
{
    typedef const char *(*engine_fn)(void);
    engine_fn engine = (engine_fn)dlsym(RTLD_DEFAULT, "parklock_engine");
    *engine_out = engine ? engine() : "absent";
    if (expect < 0)
        return 0;

    int bad = 0;
    if (expect && (!engine || strcmp(*engine_out, "parkinglot") != 0)) {
        fprintf(stderr, "preload_check: parklock expected, engine is %s "
                        "(is LD_PRELOAD set?)\n", *engine_out);
        bad++;
    }
    if (!expect && engine) {
        fprintf(stderr, "preload_check: parklock not expected but loaded\n");
        bad++;
    }
    const char *want = expect ? PARKLOCK_SO : GLIBC_SO;
    for (size_t i = 0; i < sizeof lock_symbols / sizeof lock_symbols[0]; i++) {
        const char *got = provider(lock_symbols[i]);
        if (strcmp(got, want) != 0)
            bad += mismatch(expect ? "parklock expected" : "glibc expected",
                            lock_symbols[i], got);
    }
    return bad;
}

static int check_jemalloc(int expect, const char **version_out)
{
    typedef int (*mallctl_fn)(const char *, void *, size_t *, void *, size_t);
    mallctl_fn mallctl = (mallctl_fn)dlsym(RTLD_DEFAULT, "mallctl");
    *version_out = "absent";
    size_t len = sizeof *version_out;
    if (mallctl && mallctl("version", version_out, &len, NULL, 0) != 0)
        *version_out = "unknown";
    if (expect < 0)
        return 0;

    int bad = 0;
    if (expect != (mallctl != NULL)) {
        fprintf(stderr, "preload_check: jemalloc %s, mallctl is %s%s\n",
                expect ? "expected" : "not expected", mallctl ? "defined" : "undefined",
                expect ? " (is package libjemalloc2 installed?)" : "");
        bad++;
    }
    const char *got = provider("malloc");
    if (expect ? strncmp(got, "libjemalloc", 11) != 0 : strcmp(got, GLIBC_SO) != 0)
        bad += mismatch(expect ? "jemalloc expected" : "glibc expected", "malloc", got);
    return bad;
}

int plk_preload_check(void)
{
    const char *engine, *jemalloc;
    int bad = check_parklock(expectation("PLK_EXPECT_PARKLOCK"), &engine);
    bad += check_jemalloc(expectation("PLK_EXPECT_JEMALLOC"), &jemalloc);
    printf("preloads: parklock engine %s, jemalloc %s\n", engine, jemalloc);
    fflush(stdout);
    return bad;
}
