// parklock-bench: the benchmark suite. One pthread program runs every
// workload on plain glibc and under LD_PRELOAD=libparklock.so in the same
// invocation (and, with --forward, under the preload with
// PARKLOCK_ENGINE=glibc), one fresh process per measurement, the engines'
// order rotating per repetition; it prints medians, spreads and ratios as a
// table, CSV or JSON. bench_driver.h has the driver, the workers and their
// checks; bench_common.h has the workloads; docs/benchmarks.md tells what
// each measures and how to read the figures.
//
// Workloads (a "-N" key suffix is the thread count; --threads replaces the
// default counts of every scaling workload):
//
//   uncontended          lock+unlock on one thread (a second one sleeps)
//   counter-empty-N      N threads, one lock, an increment as critical section
//   counter-short-N      ... plus WORK_SHORT (~50 ns) of work inside
//   counter-long-N       ... plus WORK_LONG (~1 µs) inside
//   counter-outside-N    WORK_SHORT inside, WORK_LONG outside the lock
//   onelock-N            WORK_SHORT inside and outside, one lock
//   striped-N            the same, each op on one of 64 locks
//   pingpong             two threads handing a turn over through two conds
//   queue-PxC            bounded queue, P producers and C consumers
//   broadcast-W          broadcast to W waiters until all have run
//   fairness-N           N threads on one lock: throughput, spread of the
//                        per-thread acquisitions (CV, min/max), max wait
//
// Usage: parklock-bench [--quick] [--seconds S] [--reps N] [--csv[=FILE]]
//                       [--json[=FILE]] [--workload W]... [--threads LIST]
//                       [--list] [--lib PATH] [--forward] [--adaptive]
#define BENCH_PROG "parklock-bench"

#include "bench_driver.h"

static const int counter_threads[] = { 1, 2, 4, 8, 16, 64, 0 };
static const int striped_threads[] = { 2, 16, 0 };
static const int fairness_threads[] = { 2, 8, 0 };

static const struct workload suite_workloads[] = {
    { "uncontended", "uncontended lock+unlock", wl_uncontended, { 0 }, NULL,
      M_NS_PAIR },
    { "counter-empty", "counter, empty cs", wl_counter, { 0 },
      counter_threads, M_MOPS },
    { "counter-short", "counter, short cs", wl_counter,
      { .cs_work = WORK_SHORT }, counter_threads, M_MOPS },
    { "counter-long", "counter, long cs", wl_counter,
      { .cs_work = WORK_LONG }, counter_threads, M_MOPS },
    { "counter-outside", "counter, short cs, long outside", wl_counter,
      { .cs_work = WORK_SHORT, .outside_work = WORK_LONG }, counter_threads,
      M_MOPS },
    { "onelock", "one lock", wl_counter,
      { .locks = 1, .cs_work = WORK_SHORT, .outside_work = WORK_SHORT },
      striped_threads, M_MOPS },
    { "striped", "64 striped locks", wl_counter,
      { .locks = 64, .cs_work = WORK_SHORT, .outside_work = WORK_SHORT },
      striped_threads, M_MOPS },
    { "pingpong", "cond ping-pong round trip", wl_pingpong, { 0 }, NULL,
      M_ROUND_NS },
    { "queue-2x2", "queue 2 prod + 2 cons", wl_queue,
      { .threads = 2, .consumers = 2, .outside_work = WORK_SHORT }, NULL,
      M_MITEMS },
    { "queue-8x8", "queue 8 prod + 8 cons", wl_queue,
      { .threads = 8, .consumers = 8, .outside_work = WORK_SHORT }, NULL,
      M_MITEMS },
    { "broadcast-32", "broadcast to 32 waiters", wl_broadcast,
      { .threads = 32 }, NULL, M_ROUND_US },
    { "broadcast-256", "broadcast to 256 waiters", wl_broadcast,
      { .threads = 256 }, NULL, M_ROUND_US },
    { "fairness", "fairness", wl_fairness,
      { .cs_work = WORK_SHORT, .outside_work = WORK_SHORT }, fairness_threads,
      M_FAIRNESS },
};

int main(int argc, char **argv)
{
    static const struct driver_program prog = {
        .name = BENCH_PROG,
        .title = "parklock-bench",
        .usage = "Workloads (--list shows them all): uncontended, "
                 "counter-{empty,short,long,outside}-N,\n"
                 "onelock-N, striped-N, pingpong, queue-2x2, queue-8x8, "
                 "broadcast-{32,256},\nfairness-N. Default thread counts: "
                 "counter 1,2,4,8,16,64; onelock and striped\n2,16; "
                 "fairness 2,8.\n",
        .workloads = suite_workloads,
        .nworkloads = (int)(sizeof(suite_workloads) / sizeof(suite_workloads[0])),
        .seconds = 0.25,
        .reps = 5,
        .forward = false,
    };
    return driver_main(&prog, argc, argv);
}
