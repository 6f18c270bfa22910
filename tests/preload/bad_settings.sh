#!/usr/bin/env bash
# Nonsense in each PARKLOCK_* setting: the program still runs on parklock and
# exits with its own status, stdout is untouched, and stderr gets exactly one
# warning line naming the variable.
# usage: bad_settings.sh LIBPARKLOCK PROGRAM
set -u
lib=$1 prog=$2
fail=0
check() { # check VAR VALUE
    local out err status
    out=$(mktemp) err=$(mktemp)
    env LD_PRELOAD="$lib" PLK_EXPECT=parkinglot "$1=$2" "$prog" >"$out" 2>"$err"
    status=$?
    local warnings
    warnings=$(grep -c "^parklock: warning: $1=" "$err")
    if [ "$status" -ne 0 ] || [ "$warnings" -ne 1 ] || grep -q parklock "$out"; then
        echo "FAILED $1='$2': exit $status, $warnings warning line(s); stderr:" >&2
        cat "$err" >&2
        fail=1
    fi
    rm -f "$out" "$err"
}
check PARKLOCK_ENGINE bogus
check PARKLOCK_ENGINE ""
check PARKLOCK_SPIN_NS -5
check PARKLOCK_SPIN_NS 12abc
check PARKLOCK_SPIN_NS 99999999999999999999
check PARKLOCK_COND_SPIN_NS fast
check PARKLOCK_COND_SPIN_NS 1000000001
exit $fail
