#!/bin/bash
# run_sysbench.sh SYSBENCH LIBPARKLOCK EVENTS TEST [OPTION...]
#
# Runs "SYSBENCH TEST OPTION... run" under LD_PRELOAD=LIBPARKLOCK and passes
# if it exits 0, prints its summary with exactly EVENTS events, and parklock
# really was loaded into it.
#
# The proof of loading: PARKLOCK_ENGINE=bogus makes libparklock.so print one
# "parklock: warning:" line from its constructor and then use its default
# engine, the parking lot, so this run tests the same engine as a plain one.
set -euo pipefail

if [ $# -lt 4 ]; then
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
sysbench=$1 lib=$2 events=$3
shift 3

for v in $(env | sed -n 's/^\(PARKLOCK_[A-Za-z0-9_]*\)=.*/\1/p'); do
    unset "$v"
done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

rc=0
LD_PRELOAD=$lib PARKLOCK_ENGINE=bogus "$sysbench" "$@" run \
    >"$out/stdout" 2>"$out/stderr" || rc=$?
cat "$out/stdout"
cat "$out/stderr" >&2

fail() {
    echo "run_sysbench.sh: $*" >&2
    exit 1
}
[ "$rc" -eq 0 ] || fail "sysbench exited with status $rc"

warnings=$(grep -c '^parklock: warning: PARKLOCK_ENGINE=bogus' "$out/stderr" || true)
[ "$warnings" -eq 1 ] ||
    fail "expected one parklock warning on stderr, got $warnings: was the preload loaded?"

grep -q '^Threads fairness:' "$out/stdout" || fail "no summary in sysbench's output"
got=$(sed -n 's/^ *total number of events: *\([0-9]*\)$/\1/p' "$out/stdout")
[ "$got" = "$events" ] || fail "expected $events events, sysbench reports '${got}'"
echo "run_sysbench.sh: ok, $got events, parklock loaded"
