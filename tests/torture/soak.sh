#!/usr/bin/env bash
# soak.sh [-b BUILD_DIR] [-t TOTAL_SECONDS] [-s SECONDS_PER_PHASE] [-R REGEX] [-E REGEX]
#
# Runs the torture suite (ctest label "torture") over and over for a bounded
# time, each program with PLK_TORTURE_SECONDS=SECONDS_PER_PHASE instead of
# its short CI default, so fork storms do thousands of forks, storms last
# longer, garbage tries more cases. Prints a progress line per test run (with
# the program's own summary figures), a summary per test at the end, and
# exits 1 if any run failed (its output is kept in BUILD_DIR/torture-soak/).
#
#   -b  build directory (default: build)
#   -t  total time budget in seconds (default 600); no test is started that
#       would not end within it (judged by its previous run)
#   -s  seconds per timed phase (default 20, at most 60; programs have 1 to 4
#       phases)
#   -R  only tests matching REGEX (ctest -R); -E  leave out tests matching it
#
# Example: tests/torture/soak.sh -b build -t 600
set -u
build=build total=600 per=20 include= exclude=
while getopts "b:t:s:R:E:h" o; do
    case $o in
    b) build=$OPTARG ;;
    t) total=$OPTARG ;;
    s) per=$OPTARG ;;
    R) include=$OPTARG ;;
    E) exclude=$OPTARG ;;
    *) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
done
[ "$per" -gt 60 ] && per=60
[ "$per" -lt 1 ] && per=1
if [ ! -f "$build/CTestTestfile.cmake" ]; then
    echo "soak: $build is not a configured build directory" >&2
    exit 2
fi
logs=$build/torture-soak
mkdir -p "$logs"

sel=(-L torture)
[ -n "$include" ] && sel+=(-R "$include")
[ -n "$exclude" ] && sel+=(-E "$exclude")
mapfile -t tests < <(ctest --test-dir "$build" -N "${sel[@]}" |
                     sed -n 's/^ *Test *#[0-9]*: \(.*\)$/\1/p')
if [ ${#tests[@]} -eq 0 ]; then
    echo "soak: no torture tests in $build (configure with the torture suite?)" >&2
    exit 2
fi

declare -A runs fails last_s
start=$(date +%s)
elapsed() { echo $(($(date +%s) - start)); }
stamp() { local e; e=$(elapsed); printf '[%02d:%02d]' $((e / 60)) $((e % 60)); }

echo "soak: ${#tests[@]} tests, ${per}s per phase, ${total}s in all; logs in $logs"
round=0 started=0 failed_runs=0
while :; do
    round=$((round + 1))
    ran_one=0
    for t in "${tests[@]}"; do
        # Estimate: the previous run of this test, else 4 phases.
        est=${last_s[$t]:-$((4 * per + 5))}
        if [ $(($(elapsed) + est)) -gt "$total" ]; then
            continue
        fi
        ran_one=1
        started=$((started + 1))
        log=$logs/$t.round$round.log
        t0=$(date +%s)
        PLK_TORTURE_SECONDS=$per PLK_TORTURE_PROGRESS=1 \
            ctest --test-dir "$build" -R "^${t//./\\.}\$" -V >"$log" 2>&1
        rc=$?
        # ctest returns 0 for a test that is Not Run only with no REQUIRED
        # file missing; treat "Not Run" as a skip.
        if grep -q 'Not Run' "$log"; then
            echo "$(stamp) round $round $t: not run (disabled, or a required file is missing)"
            last_s[$t]=0
            continue
        fi
        dur=$(($(date +%s) - t0))
        last_s[$t]=$dur
        runs[$t]=$((${runs[$t]:-0} + 1))
        # The program's own summary line(s), "name [mode]: figures".
        figures=$(sed -n 's/^[0-9]*: \([a-z_]* \[[a-z]*\]: .*\)$/\1/p' "$log" | tail -2 |
                  tr '\n' ' ')
        if [ $rc -eq 0 ]; then
            echo "$(stamp) round $round $t: ok (${dur}s) $figures"
            rm -f "$log"
        else
            fails[$t]=$((${fails[$t]:-0} + 1))
            failed_runs=$((failed_runs + 1))
            echo "$(stamp) round $round $t: FAILED (${dur}s), log: $log"
            grep -E 'FAILED|STALL|Timeout|Exception|exited with|blocked' "$log" |
                awk '!seen[$0]++' | head -5 | sed 's/^/    /'
        fi
    done
    [ $ran_one -eq 0 ] && break
done

echo
echo "soak summary: $(elapsed)s, $round round(s), $started test runs, $failed_runs failed"
for t in "${tests[@]}"; do
    [ -n "${runs[$t]:-}" ] || continue
    printf '  %-45s %3d run(s) %3d failed\n' "$t" "${runs[$t]}" "${fails[$t]:-0}"
done
[ $failed_runs -eq 0 ]
