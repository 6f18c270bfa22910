#include "cli_preload.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#ifndef PLK_BIN_TO_LIBDIR
#define PLK_BIN_TO_LIBDIR "../lib"
#endif

#define LIB_NAME "libparklock.so"

// An explicit choice (--lib, $PARKLOCK_LIB) must exist: silently falling
// back to another library would measure something the user did not ask for.
static char *explicit_library(const char *what, const char *path)
{
    char *real = realpath(path, NULL);
    if (!real || access(real, R_OK) != 0) {
        cli_error("%s%s: cannot read the library: %m", what, path);
        free(real);
        return NULL;
    }
    return real;
}

static char *library_in(const char *dir, const char *rel, char *tried, size_t size)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s%s" LIB_NAME, dir, rel, *rel ? "/" : "");
    size_t used = strlen(tried);
    snprintf(tried + used, size - used, "%s%s", used ? ", " : "", path);
    if (access(path, R_OK) != 0)
        return NULL;
    return realpath(path, NULL);
}

char *cli_find_library(const char *override)
{
    if (override)
        return explicit_library("--lib ", override);
    const char *env = getenv("PARKLOCK_LIB");
    if (env && *env)
        return explicit_library("PARKLOCK_LIB=", env);

    char *dir = cli_self_dir();
    if (!dir) {
        cli_error("cannot find " LIB_NAME ": /proc/self/exe is unreadable; "
                  "use --lib PATH or PARKLOCK_LIB");
        return NULL;
    }
    char tried[2 * PATH_MAX + 8] = "";
    // Installed layout first, then the build tree's.
    char *lib = library_in(dir, PLK_BIN_TO_LIBDIR, tried, sizeof tried);
    if (!lib)
        lib = library_in(dir, "..", tried, sizeof tried);
    if (!lib)
        cli_error("cannot find " LIB_NAME " (tried %s); use --lib PATH or PARKLOCK_LIB",
                  tried);
    free(dir);
    return lib;
}

// Whether an LD_PRELOAD entry names the same file as `lib` (an absolute,
// resolved path).
static bool same_library(const char *entry, const char *lib)
{
    if (strcmp(entry, lib) == 0)
        return true;
    char *real = realpath(entry, NULL);
    bool same = real && strcmp(real, lib) == 0;
    free(real);
    return same;
}

bool cli_set_preload(const char *lib)
{
    // ld.so splits LD_PRELOAD at ':' and ' '; such a path cannot be listed.
    if (strpbrk(lib, ": ")) {
        cli_error("%s: a library path with ':' or ' ' cannot go in LD_PRELOAD", lib);
        return false;
    }
    const char *old = getenv("LD_PRELOAD");
    size_t size = strlen(lib) + (old ? strlen(old) : 0) + 2;
    char *value = malloc(size);
    char *copy = strdup(old ? old : "");
    if (!value || !copy) {
        cli_error("out of memory");
        free(value);
        free(copy);
        return false;
    }
    strcpy(value, lib);
    char *save = NULL;
    for (char *e = strtok_r(copy, ": ", &save); e; e = strtok_r(NULL, ": ", &save)) {
        if (same_library(e, lib))
            continue;
        strcat(value, ":");
        strcat(value, e);
    }
    bool ok = setenv("LD_PRELOAD", value, 1) == 0;
    if (!ok)
        cli_error("cannot set LD_PRELOAD: %m");
    free(value);
    free(copy);
    return ok;
}
