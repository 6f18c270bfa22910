#include "cli_stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int compare_doubles(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

double cli_median(const double *x, size_t n)
{
    if (n == 0)
        return NAN;
    double *s = malloc(n * sizeof *s);
    if (!s)
        return NAN;
    memcpy(s, x, n * sizeof *s);
    qsort(s, n, sizeof *s, compare_doubles);
    double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    free(s);
    return m;
}

double cli_min(const double *x, size_t n)
{
    double v = n ? x[0] : NAN;
    for (size_t i = 1; i < n; i++)
        v = x[i] < v ? x[i] : v;
    return v;
}

double cli_max(const double *x, size_t n)
{
    double v = n ? x[0] : NAN;
    for (size_t i = 1; i < n; i++)
        v = x[i] > v ? x[i] : v;
    return v;
}

// Beyond this many pairs the exact distribution costs more than it is
// worth; the normal approximation is good there.
#define EXACT_MAX_PAIRS 2500

// cdf[u] = P(U <= u) under the null hypothesis, for u in 0..n*m, from the
// recurrence c(i, j, u) = c(i-1, j, u-j) + c(i, j-1, u) (the last of the
// i+j values is either an a, which exceeds all j b's, or a b). Counts are
// doubles: only sums of positives, so relative precision holds.
static double *u_cdf(size_t n, size_t m)
{
    size_t len = n * m + 1;
    // row[j] holds c(i, j, .) for the current i.
    double *row = calloc((m + 1) * len, sizeof *row);
    if (!row)
        return NULL;
    for (size_t j = 0; j <= m; j++)
        row[j * len] = 1; // i = 0: one arrangement, U = 0
    for (size_t i = 1; i <= n; i++) {
        // c(i, 0, u) = c(i-1, 0, u) = [u == 0]: unchanged.
        for (size_t j = 1; j <= m; j++) {
            double *cur = row + j * len; // holds c(i-1, j, .)
            const double *left = row + (j - 1) * len; // c(i, j-1, .)
            for (size_t u = len; u-- > 0;) {
                double from_a = u >= j ? cur[u - j] : 0;
                cur[u] = from_a + left[u];
            }
        }
    }
    double *cdf = malloc(len * sizeof *cdf);
    if (cdf) {
        const double *c = row + m * len;
        double total = 0, acc = 0;
        for (size_t u = 0; u < len; u++)
            total += c[u];
        for (size_t u = 0; u < len; u++) {
            acc += c[u];
            cdf[u] = acc / total;
        }
    }
    free(row);
    return cdf;
}

long cli_mw_critical(size_t n, size_t m, double alpha)
{
    size_t pairs = n * m;
    if (pairs <= EXACT_MAX_PAIRS) {
        double *cdf = u_cdf(n, m);
        if (cdf) {
            long k = -1;
            for (size_t u = 0; u <= pairs && cdf[u] <= alpha / 2 + 1e-12; u++)
                k = (long)u;
            free(cdf);
            return k;
        }
    }
    // z for the two-sided level, by bisection on erfc (no libm inverse).
    double lo = 0, hi = 10;
    for (int i = 0; i < 100; i++) {
        double mid = (lo + hi) / 2;
        if (erfc(mid / sqrt(2)) > alpha)
            lo = mid;
        else
            hi = mid;
    }
    double sd = sqrt((double)pairs * (double)(n + m + 1) / 12);
    double k = floor((double)pairs / 2 - lo * sd - 0.5);
    return k < 0 ? -1 : (long)k;
}

bool cli_ratio_ci(const double *a, size_t n, const double *b, size_t m, double level,
                  double *lo, double *hi)
{
    if (n == 0 || m == 0)
        return false;
    long k = cli_mw_critical(n, m, 1 - level);
    if (k < 0)
        return false;
    size_t pairs = n * m;
    double *d = malloc(pairs * sizeof *d);
    if (!d)
        return false;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < m; j++)
            d[i * m + j] = log(a[i]) - log(b[j]);
    qsort(d, pairs, sizeof *d, compare_doubles);
    *lo = exp(d[k]);
    *hi = exp(d[pairs - 1 - (size_t)k]);
    free(d);
    return true;
}
