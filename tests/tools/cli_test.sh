#!/usr/bin/env bash
# Tests of the `parklock` command, one case per CTest test:
#   cli_test.sh CASE
# Paths come from the environment (tests/tools/CMakeLists.txt sets them):
#   PLK_CLI parklock, PLK_LIB libparklock.so, PLK_ENVPROBE envprobe,
#   PLK_DUMMY_PRELOAD a user's preload library, PLK_SYMTARGET raw-profile
#   filler, PLK_DATA golden profiles, PLK_SOURCE_DIR tests/tools,
#   PLK_BUILD_DIR the build tree (for the install case), PLK_CMAKE cmake.
# Timing is never asserted: only exit codes, messages and output structure.
set -u

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
tmp=$(pwd -P)

fail() {
    echo "FAIL: $*" >&2
    show
    exit 1
}

show() {
    { echo "--- stdout:"; cat "$tmp/out" 2>/dev/null
      echo "--- stderr:"; cat "$tmp/err" 2>/dev/null; } | head -150 >&2
}

# capture CMD...: stdout to $tmp/out, stderr to $tmp/err, status in $rc.
capture() {
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}

expect_rc() { [ "$rc" -eq "$1" ] || fail "expected exit status $1, got $rc"; }
expect_out() { grep -qE -- "$1" "$tmp/out" || fail "stdout has no line matching /$1/"; }
expect_no_out() { ! grep -qE -- "$1" "$tmp/out" || fail "stdout has a line matching /$1/"; }
expect_line() { grep -qxF -- "$1" "$tmp/out" || fail "stdout has no line '$1'"; }
expect_err() { grep -qE -- "$1" "$tmp/err" || fail "stderr has no line matching /$1/"; }
expect_no_err() { ! grep -qE -- "$1" "$tmp/err" || fail "stderr has a line matching /$1/"; }

# expect_order RE...: the first lines matching each RE come in this order.
expect_order() {
    local prev=0 re n
    for re in "$@"; do
        n=$(grep -nE -- "$re" "$tmp/out" | head -1 | cut -d: -f1)
        [ -n "$n" ] || fail "stdout has no line matching /$re/"
        [ "$n" -gt "$prev" ] || fail "/$re/ comes before the previous pattern"
        prev=$n
    done
}

# py CODE: Python checks of the JSON in $tmp/out (python3 is a test dependency).
py() {
    python3 -c "import json, sys
d = json.load(open('$tmp/out'))
$1" || fail "python check failed: $1"
}

P=$PLK_CLI
PROBE=$PLK_ENVPROBE
D=$PLK_DATA

case_help() {
    local c
    for c in run report diff compare; do
        capture "$P" "$c" --help
        expect_rc 0
        expect_out "^Usage: parklock $c"
        expect_out "Exit status"
    done
    capture "$P" --help
    expect_rc 0
    expect_out "^  bench "
    expect_out "^  compare "
    capture "$P" help diff
    expect_rc 0
    expect_out "^Usage: parklock diff"
    capture "$P" --version
    expect_rc 0
    expect_out "^parklock [0-9]+\.[0-9]+"
}

case_run_status() {
    local n
    for n in 0 3 255; do
        capture "$P" run -- "$PROBE" exit "$n"
        expect_rc "$n"
    done
    capture "$P" run "$PROBE" exit 7 # no "--": options end at PROG
    expect_rc 7
    capture "$P" run --no-profile -- "$PROBE" exit --bogus-prog-option
    expect_rc 0 # atoi("--bogus...") = 0: PROG's options are PROG's
}

case_run_signal() {
    ulimit -c 0
    capture "$P" run --no-profile -- "$PROBE" signal 15
    expect_rc 143
    expect_err "parklock run: .*envprobe: Terminated$"
    capture "$P" run --no-profile -- "$PROBE" signal 11
    expect_rc 139
    expect_err "Segmentation fault$"
    # Like bash: no message for SIGPIPE.
    capture "$P" run --no-profile -- "$PROBE" signal 13
    expect_rc 141
    [ ! -s "$tmp/err" ] || fail "a message for SIGPIPE"
    # With profiling on, SIGTERM's dump then death by the same signal.
    capture "$P" run -- "$PROBE" signal 15
    expect_rc 143
}

case_run_forward() {
    "$P" run --no-profile -- "$PROBE" wait "$tmp/ready" >"$tmp/out" 2>"$tmp/err" &
    local pid=$! _
    for _ in $(seq 100); do
        [ -s "$tmp/ready" ] && break
        sleep 0.1
    done
    [ -s "$tmp/ready" ] || fail "PROG did not start"
    kill -TERM "$pid"
    wait "$pid"
    rc=$?
    expect_rc 143
    expect_err "Terminated$"
}

case_run_env() {
    capture "$P" run -e glibc -o "prof-%p.json" -f json --top 3 --stack-depth 4 \
        --dump-signal SIGUSR2 -- "$PROBE" env
    expect_rc 0
    expect_line "PARKLOCK_ENGINE=glibc"
    expect_line "PARKLOCK_OUTPUT=$tmp/prof-%p.json"
    expect_line "PARKLOCK_FORMAT=json"
    expect_line "PARKLOCK_TOP=3"
    expect_line "PARKLOCK_STACK_DEPTH=4"
    expect_line "PARKLOCK_DUMP_SIGNAL=USR2"
    expect_line "PARKLOCK_PROFILE=(unset)"
    expect_line "engine=glibc"
    capture "$P" run --engine parkinglot --no-profile --dump-signal 12 --output stderr \
        -- "$PROBE" env
    expect_rc 0
    expect_line "PARKLOCK_PROFILE=0"
    expect_line "PARKLOCK_DUMP_SIGNAL=USR2"
    expect_line "PARKLOCK_OUTPUT=stderr"
    expect_line "engine=parkinglot"
    # Settings without an option pass through from the environment.
    PARKLOCK_FORMAT=folded capture "$P" run -- "$PROBE" env
    expect_line "PARKLOCK_FORMAT=folded"
}

case_run_preload_kept() {
    local lib
    lib=$(realpath "$PLK_LIB")
    LD_PRELOAD=$PLK_DUMMY_PRELOAD capture "$P" run --no-profile -- "$PROBE" env
    expect_rc 0
    expect_line "LD_PRELOAD=$lib:$PLK_DUMMY_PRELOAD"
    expect_line "dummy_preload=yes"
    expect_line "engine=parkinglot"
    # Ours already listed: not twice.
    LD_PRELOAD="$PLK_LIB $PLK_DUMMY_PRELOAD" capture "$P" run --no-profile -- "$PROBE" env
    expect_line "LD_PRELOAD=$lib:$PLK_DUMMY_PRELOAD"
    # Explicit library choices.
    capture "$P" run --no-profile --lib "$PLK_LIB" -- "$PROBE" env
    expect_rc 0
    expect_line "LD_PRELOAD=$lib"
    PARKLOCK_LIB=$PLK_LIB capture "$P" run --no-profile -- "$PROBE" env
    expect_line "LD_PRELOAD=$lib"
    PARKLOCK_LIB=/nonexistent/libparklock.so capture "$P" run -- "$PROBE" env
    expect_rc 125
    expect_err "PARKLOCK_LIB=/nonexistent/libparklock.so: cannot read the library"
}

case_run_profile() {
    capture "$P" run -f json -o "$tmp/p-%p.json" -- "$PROBE" contend
    expect_rc 0
    local files=("$tmp"/p-*.json)
    if [ ${#files[@]} -ne 1 ] || [ ! -s "${files[0]}" ]; then
        fail "expected one profile, got ${files[*]}"
    fi
    capture "$P" report "${files[0]}"
    expect_rc 0
    expect_out "^parklock profile: .*envprobe \(pid [0-9]+\), engine parkinglot"
    expect_out "^ +1  envprobe_lock "
}

case_report_text() {
    capture "$P" report "$D/glibc.json"
    expect_rc 0
    expect_out "^parklock profile: /opt/demo/bin/demo-server \(pid 4242\), engine glibc"
    expect_out "^Locks by wait \(6 of 6\):"
    expect_order "^ +1  cache_lock +1200345 +5100 " "^ +2  log_lock " "^ +3  stats_lock " \
        "^ +4  conn_handler " "^ +5  conn_handler " "^ +6  config_lock "
    expect_out "^#1 cache_lock .*named by symbol"
    expect_out "^ +update_cache\+0x5f \(src/cache.c:120\)$"
    expect_out "^ +1  queue_nonempty +120 +3 +118 +2 "
    expect_no_out "^#6 " # never contended: no detail
}

case_report_sort() {
    capture "$P" report --sort contended "$D/glibc.json"
    expect_order "^Locks by contended" "^ +1  stats_lock " "^ +2  cache_lock " "^ +3  log_lock "
    capture "$P" report --sort max "$D/glibc.json"
    expect_order "^ +1  log_lock " "^ +2  cache_lock " "^ +3  stats_lock "
    capture "$P" report -s p99 "$D/glibc.json"
    expect_order "^ +1  log_lock " "^ +2  cache_lock " "^ +3  stats_lock "
    capture "$P" report --sort=acquired "$D/glibc.json"
    expect_order "^ +1  stats_lock " "^ +2  cache_lock " "^ +3  log_lock "
    capture "$P" report --sort wait "$D/glibc.json"
    expect_order "^ +1  cache_lock " "^ +2  log_lock "
}

case_report_top() {
    capture "$P" report --top 1 "$D/glibc.json"
    expect_rc 0
    expect_out "^Locks by wait \(1 of 6\):"
    expect_out "^ +1  cache_lock "
    expect_no_out "^ +2  "
    capture "$P" report "$D/glibc.json" -n 2 --sort contended # options after FILE
    expect_out "^ +2  cache_lock "
    expect_no_out "^ +3  "
    capture "$P" report --top 0 "$D/glibc.json"
    expect_out "^ +6  config_lock "
}

case_report_json() {
    capture "$P" report --format json --sort contended --top 3 "$D/glibc.json"
    expect_rc 0
    py "assert d['format'] == 'parklock-profile' and d['version'] == 1
assert [l['name'] for l in d['locks']] == ['stats_lock', 'cache_lock', 'log_lock'], d['locks']
assert d['conds'][0]['name'] == 'queue_nonempty'
assert d['symbolized'] is True
assert d['locks'][1]['site'][0]['line'] == 120"
    # All locks without --top; the output reads back.
    capture "$P" report -f json "$D/glibc.json"
    py "assert len(d['locks']) == 6"
    cp "$tmp/out" "$tmp/again.json"
    capture "$P" report "$tmp/again.json"
    expect_rc 0
    expect_out "^ +1  cache_lock "
}

case_report_folded() {
    capture "$P" report --format folded "$D/glibc.json"
    expect_rc 0
    expect_line "main;serve;update_cache;[wait] cache_lock 812345678"
    expect_line "serve;count_request;[wait] stats_lock 45000000"
    expect_line "[wait] log_lock 120000000"
    expect_line "worker_main;queue_pop;[cond] queue_nonempty 94000000"
    ! grep -vqE '^[^ ].* [0-9]+$' "$tmp/out" || fail "a line is not 'frames weight'"
    capture "$P" report -f folded "$D/parkinglot.json"
    expect_line "serve;update_cache;[holder] cache_lock 88000000"
}

case_report_stdin() {
    capture "$P" report - <"$D/parkinglot.json"
    expect_rc 0
    expect_out "^ +1  cache_lock "
    capture "$P" report - <"$D/malformed.json"
    expect_rc 1
    expect_err "<stdin>:7:[0-9]+: malformed JSON"
}

case_report_symbolize() {
    "$PLK_SYMTARGET" "$D/raw_profile.json.in" "$tmp/raw.json" || fail "symtarget failed"
    local line
    line=$(grep -n 'SYMTARGET_SITE_LINE' "$PLK_SOURCE_DIR/symtarget.c" | cut -d: -f1)
    line=$((line + 1))
    capture "$P" report --top 0 "$tmp/raw.json"
    expect_rc 0
    expect_out "^ +1  plk_symtarget_lock "
    expect_out "^ +2  plk_symtarget_table\+64 "
    expect_out "^ +3  main " # a heap lock: named by its site, past libc's frame
    expect_out "^#1 plk_symtarget_lock .*named by symbol"
    expect_out "^ +plk_symtarget_site\+0x8 \(.*symtarget\.c:$line\)$"
    expect_out "^ +main\+0x8 \(.*symtarget\.c:[0-9]+\)$"
    capture "$P" report -f json "$tmp/raw.json"
    py "l = d['locks']
assert d['symbolized'] is True
assert (l[0]['name'], l[0]['name_source']) == ('plk_symtarget_lock', 'symbol'), l[0]
assert (l[1]['name'], l[1]['name_source']) == ('plk_symtarget_table+64', 'symbol'), l[1]
assert (l[2]['name'], l[2]['name_source']) == ('main', 'site'), l[2]
f = l[0]['site'][0]
assert f['function'] == 'plk_symtarget_site' and f['function_offset'] == 8, f
assert f['file'].endswith('symtarget.c') and f['line'] == $line, f
assert l[0]['waiters'][0]['frames'][1]['function'] == 'main'"
    capture "$P" report -f folded "$tmp/raw.json"
    expect_line "main;plk_symtarget_site;[wait] plk_symtarget_lock 5000000"
    # --no-symbols: as recorded.
    capture "$P" report --no-symbols "$tmp/raw.json"
    expect_rc 0
    expect_out "^ +1  0x[0-9a-f]+ "
    expect_no_out "plk_symtarget_site"
}

case_diff_text() {
    capture "$P" diff "$D/glibc.json" "$D/parkinglot.json"
    expect_rc 0
    expect_out "^A: .*glibc\.json: /opt/demo/bin/demo-server \(pid 4242\), engine glibc"
    expect_out "^B: .*parkinglot\.json: .*engine parkinglot"
    expect_out "^cache_lock +5100 +1200 +-76\.5% +812\.3 ms +95\.1 ms +-88\.3%$"
    expect_out "^log_lock +40 +- +only A "
    expect_out "^session_lock +- +5 +only B "
    expect_out "^conn_handler \(2 locks\) +30 +100 +\+233\.3% "
    expect_out "^total +14170 +9305 "
    expect_out "^\(1 lock without contention in either profile not shown\)"
    expect_no_out "^config_lock"
    expect_order "^cache_lock " "^log_lock " "^stats_lock " "^session_lock " "^conn_handler "
    capture "$P" diff --top 1 "$D/glibc.json" "$D/parkinglot.json"
    expect_out "^cache_lock "
    expect_no_out "^log_lock "
    expect_out "^\(4 more contended locks: --top 0 shows all\)"
}

case_diff_json() {
    capture "$P" diff -f json "$D/glibc.json" "$D/parkinglot.json"
    expect_rc 0
    py "rows = {r['key']: r for r in d['locks']}
assert d['format'] == 'parklock-diff'
assert d['a']['engine'] == 'glibc' and d['b']['engine'] == 'parkinglot'
assert rows['cache_lock']['a']['contended'] == 5100 and rows['cache_lock']['b']['contended'] == 1200
assert rows['log_lock']['b'] is None and rows['session_lock']['a'] is None
assert rows['conn_handler']['a']['locks'] == 2 and rows['conn_handler']['b']['locks'] == 1
assert 'config_lock' not in rows"
}

case_compare() {
    capture "$P" compare --runs 2 --warmup 1 -- "$PROBE" contend
    expect_rc 0
    expect_out "^parklock compare: .*envprobe contend$"
    expect_out "^2 runs per engine after 1 warm-up round, alternating order"
    expect_order "^engine +median +min +max +spread" "^glibc +[0-9.]+ [mun]?s " \
        "^parkinglot +[0-9.]+ [mun]?s "
    expect_out "^ratio glibc/parkinglot .*: [0-9.]+$"
    expect_out "^verdict: too few runs to tell a difference from noise"
    expect_out "^glibc: top contended locks \(median run, 1 profile\):"
    expect_out "^parkinglot: top contended locks \(median run, 1 profile\):"
    expect_err "^parklock compare: warm-up 1/1: glibc "
    expect_err "^parklock compare: run 2/2: glibc "
}

case_compare_ci() {
    capture "$P" compare -q --runs 4 --warmup 0 --no-profile -- "$PROBE" exit 0
    expect_rc 0
    expect_out "^95% confidence interval: [0-9.]+ to [0-9.]+$"
    expect_out "^verdict: (no significant difference \(noise\)|parklock is (faster|slower))"
    expect_out "profiling off"
    expect_no_out "top contended locks"
    [ ! -s "$tmp/err" ] || fail "--quiet wrote to stderr"
    # PROG's output is discarded unless --verbose.
    capture "$P" compare -q --runs 1 --warmup 0 --no-profile -- "$PROBE" env
    expect_no_out "^engine="
    capture "$P" compare -q -v --runs 1 --warmup 0 --no-profile -- "$PROBE" env
    expect_line "engine=glibc"
    expect_line "engine=parkinglot"
    # A run that writes no profile (profiling off by the user's variable).
    capture "$P" compare -q --runs 1 --warmup 0 -- "$PROBE" exit 0
    expect_rc 0
}

case_compare_fail() {
    capture "$P" compare -q --runs 2 -- "$PROBE" exit 3
    expect_rc 1
    expect_err "envprobe exited with status 3 on (glibc|parkinglot) \(warm-up round\)"
    capture "$P" compare -q --runs 2 --warmup 0 -- "$PROBE" exit 3
    expect_rc 1
    expect_err "measured round"
    ulimit -c 0
    capture "$P" compare -q --runs 1 -- "$PROBE" signal 11
    expect_rc 1
    expect_err "Segmentation fault"
    capture "$P" compare --runs 1 -- no-such-command-plk
    expect_rc 127
    expect_err "no-such-command-plk: command not found"
}

case_errors_run() {
    capture "$P" run -- /nonexistent/prog
    expect_rc 127
    expect_err "^parklock run: /nonexistent/prog: No such file or directory$"
    capture "$P" run -- no-such-command-plk
    expect_rc 127
    expect_err "^parklock run: no-such-command-plk: command not found$"
    capture "$P" run -- "$D/glibc.json"
    expect_rc 126
    expect_err "glibc\.json: Permission denied$"
    capture "$P" run -- "$tmp"
    expect_rc 126
    capture "$P" run --bogus -- "$PROBE"
    expect_rc 125
    expect_err "^parklock run: unknown option '--bogus'$"
    expect_err "^Try 'parklock run --help'"
    capture "$P" run -x -- "$PROBE"
    expect_rc 125
    expect_err "unknown option '-x'"
    capture "$P" run --top
    expect_rc 125
    expect_err "option '--top' needs a value"
    capture "$P" run --engine fast -- "$PROBE"
    expect_rc 125
    expect_err "--engine 'fast': expected one of parkinglot, glibc"
    capture "$P" run --stack-depth 65 -- "$PROBE"
    expect_rc 125
    capture "$P" run --format xml -- "$PROBE"
    expect_rc 125
    capture "$P" run --dump-signal KILL -- "$PROBE"
    expect_rc 125
    expect_err "cannot be caught"
    capture "$P" run --dump-signal NOPE -- "$PROBE"
    expect_rc 125
    capture "$P" run
    expect_rc 125
    expect_err "no program given"
    capture "$P" run --lib /nonexistent.so -- "$PROBE"
    expect_rc 125
}

case_errors_report() {
    capture "$P" report "$D/malformed.json"
    expect_rc 1
    expect_err "^parklock report: .*malformed\.json:7:[0-9]+: malformed JSON: "
    capture "$P" report "$D/bad_schema.json"
    expect_rc 1
    expect_err "bad_schema\.json: locks\[1\]\.contended: expected an integer, got a string$"
    capture "$P" report "$D/not_profile.json"
    expect_rc 1
    expect_err "not a parklock profile"
    capture "$P" report "$D/version2.json"
    expect_rc 1
    expect_err "schema version 2 is not supported"
    capture "$P" report /nonexistent.json
    expect_rc 1
    expect_err "/nonexistent\.json: cannot open: No such file or directory$"
    capture "$P" report "$tmp"
    expect_rc 1
    expect_err "cannot read: Is a directory$"
    capture "$P" diff "$D/glibc.json" "$D/malformed.json"
    expect_rc 1
    expect_err "malformed\.json:7:"
    [ ! -s "$tmp/out" ] || fail "output despite the error"
}

case_errors_usage() {
    capture "$P"
    expect_rc 2
    capture "$P" frobnicate
    expect_rc 2
    expect_err "^parklock: unknown command 'frobnicate'$"
    capture "$P" --frobnicate
    expect_rc 2
    capture "$P" help frobnicate
    expect_rc 2
    capture "$P" report
    expect_rc 2
    expect_err "no profile given"
    capture "$P" report "$D/glibc.json" "$D/glibc.json"
    expect_rc 2
    capture "$P" report --sort speed "$D/glibc.json"
    expect_rc 2
    expect_err "--sort 'speed': expected one of wait, contended, max, p99, acquired"
    capture "$P" report --format yaml "$D/glibc.json"
    expect_rc 2
    capture "$P" report --top -1 "$D/glibc.json"
    expect_rc 2
    capture "$P" report --bogus "$D/glibc.json"
    expect_rc 2
    expect_err "^parklock report: unknown option '--bogus'$"
    capture "$P" diff "$D/glibc.json"
    expect_rc 2
    capture "$P" diff --format text --bogus "$D/glibc.json" "$D/glibc.json"
    expect_rc 2
    capture "$P" compare
    expect_rc 2
    capture "$P" compare --runs 0 -- "$PROBE"
    expect_rc 2
    capture "$P" compare --runs many -- "$PROBE"
    expect_rc 2
}

case_install() {
    local prefix=$tmp/prefix lib
    "${PLK_CMAKE:-cmake}" --install "$PLK_BUILD_DIR" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
        { cat "$tmp/install.log" >&2; fail "cmake --install failed"; }
    [ -x "$prefix/bin/parklock" ] || fail "no $prefix/bin/parklock"
    lib=$(find "$prefix" -name libparklock.so | head -1)
    [ -n "$lib" ] || fail "no libparklock.so under $prefix"
    capture "$prefix/bin/parklock" run --no-profile -- "$PROBE" env
    expect_rc 0
    expect_line "LD_PRELOAD=$(realpath "$lib")"
    expect_line "engine=parkinglot"
    capture "$prefix/bin/parklock" report "$D/glibc.json"
    expect_rc 0
    local page
    for page in man1/parklock.1 man7/libparklock.7; do
        [ -s "$prefix/share/man/$page" ] || fail "no man page $page"
        if command -v groff >/dev/null; then
            groff -man -Tutf8 -ww -z "$prefix/share/man/$page" 2>"$tmp/groff.err"
            [ ! -s "$tmp/groff.err" ] || { cat "$tmp/groff.err" >&2; fail "groff warnings: $page"; }
        fi
    done
}

name=${1:-}
if ! declare -F "case_$name" >/dev/null; then
    echo "usage: cli_test.sh CASE (see the case_* functions)" >&2
    exit 2
fi
"case_$name"
echo "ok: $name"
