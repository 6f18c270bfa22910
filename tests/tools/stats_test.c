// tools/cli_stats.c against published values: Mann-Whitney critical values
// (two-sided, alpha 0.05) and the interval it gives for separated samples.
#include <math.h>
#include <stdio.h>

#include "cli_stats.h"

static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        printf("FAILED: %s\n", what);
        failures++;
    }
}

int main(void)
{
    // Standard tables: n = m = 4: 0, 5: 2, 6: 5, 8: 13, 10: 23, 20: 127.
    static const struct { size_t n, m; long k; } table[] = {
        { 4, 4, 0 }, { 5, 5, 2 }, { 6, 6, 5 }, { 8, 8, 13 }, { 10, 10, 23 },
        { 20, 20, 127 }, { 5, 10, 8 }, { 3, 3, -1 }, { 2, 2, -1 }, { 1, 9, -1 },
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        long k = cli_mw_critical(table[i].n, table[i].m, 0.05);
        char what[96];
        snprintf(what, sizeof what, "critical value n=%zu m=%zu: %ld, expected %ld",
                 table[i].n, table[i].m, k, table[i].k);
        check(k == table[i].k, what);
    }
    // Normal approximation beyond the exact range; exactly 1426 for 60 x 60.
    long big = cli_mw_critical(60, 60, 0.05);
    check(big >= 1420 && big <= 1432, "normal approximation for n = m = 60");

    double a[4] = { 2.0, 2.1, 2.2, 2.3 }, b[4] = { 1.0, 1.05, 1.1, 1.15 };
    double lo, hi;
    check(cli_ratio_ci(a, 4, b, 4, 0.95, &lo, &hi), "an interval for 4 runs each");
    check(fabs(lo - 2.0 / 1.15) < 1e-9 && fabs(hi - 2.3 / 1.0) < 1e-9,
          "4 runs each: the interval spans all pairwise ratios");
    check(!cli_ratio_ci(a, 3, b, 3, 0.95, &lo, &hi), "no interval for 3 runs each");
    check(fabs(cli_median(a, 4) - 2.15) < 1e-12 && cli_median(b, 3) == 1.05, "medians");
    if (!failures)
        printf("ok\n");
    return failures != 0;
}
