#ifndef PLK_TESTS_PRELOAD_CHECK_H
#define PLK_TESTS_PRELOAD_CHECK_H

#ifdef __cplusplus
extern "C" {
#endif

// Checks which preloaded libraries this process really runs on, against the
// environment: PLK_EXPECT_PARKLOCK and PLK_EXPECT_JEMALLOC, each "1" (must be
// loaded and bound) or "0" (must be absent); unset means not checked.
// "Bound" means that the symbols the test programs call resolve to that
// library, not just that it is mapped. Prints one line to stdout describing
// what it found, and one line to stderr per mismatch; returns the number of
// mismatches.
//
// Example usage:
//     if (plk_preload_check() != 0)
//         return 1;
int plk_preload_check(void);

#ifdef __cplusplus
}
#endif

#endif
