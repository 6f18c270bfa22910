// plk_bench_preload: one ordinary pthread program, run on plain glibc and
// under LD_PRELOAD=libparklock.so in the same run, on the short classic set
// of workloads that plk_bench_core runs too (uncontended, counter at 2 and 8
// threads, cond ping-pong, broadcast to 32). parklock-bench (bench_suite.c)
// is the same driver with the full set; bench_driver.h describes both.
//
// Usage: plk_bench_preload [--quick] [--seconds S] [--reps N] [--csv[=FILE]]
//                          [--json[=FILE]] [--lib PATH] [--no-forward]
//                          [--adaptive] [--workload W]... [--list]
#define BENCH_PROG "plk_bench_preload"

#include "bench_driver.h"

int main(int argc, char **argv)
{
    static const struct driver_program prog = {
        .name = BENCH_PROG,
        .title = "one pthread program",
        .usage = "",
        .workloads = classic_workloads,
        .nworkloads = CLASSIC_WORKLOAD_COUNT,
        .seconds = 0.4,
        .reps = 7,
        .forward = true,
    };
    return driver_main(&prog, argc, argv);
}
