// Runs the unit suites named on the command line (all of them without
// arguments). Exit status 0 only when every test passed.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "suites.h"

static const struct {
    const char *name;
    Suite *(*make)(void);
} suites[] = {
    { "clock", clock_suite },
    { "rawlock", rawlock_suite },
    { "parker", parker_suite },
    { "parking_lot", parking_lot_suite },
    { "mutex", mutex_suite },
    { "cond", cond_suite },
    { "prof", prof_suite },
};

#define N_SUITES (sizeof suites / sizeof suites[0])

int main(int argc, char **argv)
{
    SRunner *runner = NULL;
    for (size_t i = 0; i < N_SUITES; i++) {
        int wanted = argc < 2;
        for (int a = 1; a < argc; a++)
            wanted |= strcmp(argv[a], suites[i].name) == 0;
        if (!wanted)
            continue;
        if (!runner)
            runner = srunner_create(suites[i].make());
        else
            srunner_add_suite(runner, suites[i].make());
    }
    if (!runner) {
        fprintf(stderr, "plk_unit_tests: no such suite\n");
        return 2;
    }
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
