// Finding libparklock.so and putting it in a child's LD_PRELOAD: shared by
// `parklock run` and `parklock compare`.
#ifndef PLK_CLI_PRELOAD_H
#define PLK_CLI_PRELOAD_H

#include <stdbool.h>

// Absolute path of libparklock.so (malloc'd), from, in order: `override`
// (--lib), $PARKLOCK_LIB, the install location relative to this executable
// (PREFIX/bin -> PREFIX/<libdir>), the build tree (build/tools -> build).
// NULL after an error message listing what was tried.
char *cli_find_library(const char *override);

// Sets LD_PRELOAD in this process's environment (inherited by the children
// it starts) to `lib` followed by the entries the user had, minus `lib`
// itself: ours comes first so that its pthread_* win symbol resolution.
bool cli_set_preload(const char *lib);

#endif
