#!/bin/bash
# check_imports.sh NM BINARY SYMBOL...
#
# Passes if BINARY imports every SYMBOL dynamically (NM -D, undefined). Used
# to show that libstdc++'s inline code in a test program calls the functions
# the test means to exercise through the preload, e.g. that a steady_clock
# wait_until became pthread_cond_clockwait rather than a timedwait.
set -euo pipefail

if [ $# -lt 3 ]; then
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
nm=$1 binary=$2
shift 2

imports=$("$nm" -D --undefined-only "$binary" | awk '{ sub(/@.*/, "", $NF); print $NF }')
missing=0
for sym in "$@"; do
    if grep -qx "$sym" <<<"$imports"; then
        echo "imports $sym"
    else
        echo "check_imports.sh: $binary does not import $sym" >&2
        missing=1
    fi
done
exit "$missing"
