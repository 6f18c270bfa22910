// The Check suites of the unit-test runner, one per core module.
#ifndef PLK_TEST_SUITES_H
#define PLK_TEST_SUITES_H

#include <check.h>

Suite *clock_suite(void);
Suite *rawlock_suite(void);
Suite *parker_suite(void);
Suite *parking_lot_suite(void);
Suite *mutex_suite(void);
Suite *cond_suite(void);
Suite *prof_suite(void);

#endif
