// Statistics for `parklock compare`: medians and a distribution-free
// confidence interval for the ratio of two engines' run times.
#ifndef PLK_CLI_STATS_H
#define PLK_CLI_STATS_H

#include <stdbool.h>
#include <stddef.h>

double cli_median(const double *x, size_t n);
double cli_min(const double *x, size_t n);
double cli_max(const double *x, size_t n);

// Confidence interval (level e.g. 0.95) for the ratio of the typical value
// of a to that of b, from run times a[0..n) and b[0..m): the Hodges-Lehmann
// interval of the shift between log a and log b, read off the sorted
// pairwise differences with the Mann-Whitney U distribution (exact for
// small samples, normal approximation beyond). False when the samples are
// too small for any interval at that level: with 3 runs each, even "every
// a slower than every b" happens by chance 1 time in 20.
bool cli_ratio_ci(const double *a, size_t n, const double *b, size_t m, double level,
                  double *lo, double *hi);

// The Mann-Whitney critical value: the largest k with P(U <= k) <= alpha/2
// for samples of n and m; -1 when there is none. Exported for its test.
long cli_mw_critical(size_t n, size_t m, double alpha);

#endif
