#!/bin/bash
# compare_python_tests.sh PYTHON LIBPARKLOCK OUTDIR TEST...
#
# Runs CPython's regression tests TEST... (python -m test) twice: on plain
# glibc, then under LD_PRELOAD=LIBPARKLOCK. Passes only if both runs give
# every test method the same outcome and end with the same "Tests result:".
# Logs, junit XML and outcome lists are left in OUTDIR.
#
# Failed tests are re-run once (-w) in both runs, and a method keeps the
# outcome of its last run: a timing-flaky test then has to fail twice in one
# run to count, as in regrtest's own verdict.
set -euo pipefail

if [ $# -lt 4 ]; then
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
python=$1 lib=$2 out=$3
shift 3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Fewer outcome lines than this means the suite did not really run (the
# caller may set a lower bound for a small suite).
min_methods=${PLK_PYTHON_MIN_METHODS:-100}
# Per test file, then regrtest kills the worker and reports a failure.
per_test_timeout=300

# Settings from the caller's environment must not change either run.
for v in $(env | sed -n 's/^\(PARKLOCK_[A-Za-z0-9_]*\)=.*/\1/p'); do
    unset "$v"
done
unset LD_PRELOAD

# -E: ignore PYTHON* variables, such as a pyenv setup's; regrtest passes it
# on to its worker processes.
if ! "$python" -E -c 'import test.libregrtest' 2>/dev/null; then
    echo "$python has no test package: install libpython3.11-testsuite" >&2
    exit 1
fi

# The preload must reach python itself, not only be named.
engine=$(LD_PRELOAD=$lib "$python" -E -c '
import ctypes
f = ctypes.CDLL(None).parklock_engine
f.restype = ctypes.c_char_p
print(f().decode())')
if [ "$engine" != parkinglot ]; then
    echo "python under LD_PRELOAD=$lib runs on engine \"$engine\"" >&2
    exit 1
fi

mkdir -p "$out"

# run NAME [ENV...]: one regrtest run; leaves NAME.log, NAME.xml,
# NAME.outcomes (method outcomes, then the final result) and NAME.rc.
run() {
    local name=$1
    shift
    rm -f "$out/$name".*
    local start=$SECONDS rc=0
    env "$@" "$python" -E -m test -j2 -w --timeout="$per_test_timeout" \
        --junit-xml "$out/$name.xml" "${tests[@]}" >"$out/$name.log" 2>&1 || rc=$?
    echo "$rc" >"$out/$name.rc"
    echo "$name: exit status $rc, $((SECONDS - start)) s"

    # "Tests result: FAILURE then SUCCESS" means a re-run fixed it: keep the
    # last word, which is the verdict after re-runs.
    local result
    result=$(sed -n 's/^Tests result: //p' "$out/$name.log" | tail -n 1)
    echo "$name: Tests result: ${result:-(none)}"
    {
        if [ -s "$out/$name.xml" ]; then
            "$python" -E "$here/python_outcomes.py" "$out/$name.xml"
        fi
        echo "Tests result: ${result##* }"
    } >"$out/$name.outcomes"
}

tests=("$@")
run plain
# The profiles go to files: regrtest's workers report to their parent
# through stdout+stderr, which a report on stderr would garble (and some
# tests compare a child's stderr with b''). Every process writes its own.
rm -rf "$out/profiles"
mkdir -p "$out/profiles"
run preload "LD_PRELOAD=$lib" PARKLOCK_FORMAT=json "PARKLOCK_OUTPUT=$out/profiles/%p.json"

methods=$(($(wc -l <"$out/plain.outcomes") - 1))
echo "plain: $methods test methods;" \
    "$(grep -c ' ok$' "$out/plain.outcomes" || true) ok," \
    "$(grep -c ' skipped$' "$out/plain.outcomes" || true) skipped"
if [ "$methods" -lt "$min_methods" ]; then
    echo "plain run reported only $methods test methods; see $out/plain.log" >&2
    tail -n 20 "$out/plain.log" >&2
    exit 1
fi

if ! diff -u "$out/plain.outcomes" "$out/preload.outcomes"; then
    echo "outcomes differ between plain glibc and LD_PRELOAD=$lib" >&2
    echo "--- tail of $out/preload.log:" >&2
    tail -n 40 "$out/preload.log" >&2
    exit 1
fi
echo "same outcomes for all $methods test methods, and the same result"

# Each preloaded python process left a profile that parses as version 1.
"$python" -E - "$out/profiles" <<'PY'
import json, os, sys
d = sys.argv[1]
files = sorted(os.listdir(d))
if not files:
    sys.exit("no profile was written to " + d)
locks = contended = 0
for f in files:
    with open(os.path.join(d, f)) as fh:
        p = json.load(fh)
    if p.get("format") != "parklock-profile" or p.get("version") != 1:
        sys.exit(f"{f}: not a version 1 parklock profile")
    locks += len(p["locks"]) + len(p["conds"])
    contended += p["totals"]["contended"]
print(f"{len(files)} profiles written, {locks} locks and conds, {contended} contended acquisitions")
PY
