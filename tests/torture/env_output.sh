#!/usr/bin/env bash
# env_output.sh GROUP LIBPARKLOCK PROGRAM
#
# Nonsense in every PARKLOCK_* setting, and profile output paths that cannot
# be written. PROGRAM (settings_prog) prints a fixed result on stdout, writes
# nothing to stderr and exits with the status given as its argument. For each
# case the preloaded run must exit with the same status and print the same
# stdout as a plain run, and stderr must hold exactly one line starting
# "parklock: warning: " that names the variable (none for a valid value).
#
# GROUP:
#   settings  PARKLOCK_ENGINE, PARKLOCK_SPIN_NS, PARKLOCK_COND_SPIN_NS: bad
#             values, several at once, valid values (no warning). Run with
#             PARKLOCK_PROFILE=0 (no report at exit), so stderr must be
#             exactly the warning lines.
#   control   values with a newline, carriage return or escape character
#             (PARKLOCK_PROFILE=0 too): still one line, with no raw control
#             character in it.
#   profiler  PARKLOCK_PROFILE, _OUTPUT, _FORMAT, _TOP, _STACK_DEPTH,
#             _DUMP_SIGNAL, _TABLE_SIZE given nonsense, and PARKLOCK_OUTPUT
#             naming a missing directory, a directory, a symlink (to a file
#             and dangling), /dev/full and an uncreatable path; an existing
#             file is replaced. The profile report goes to stderr by default, so only the
#             warning lines are counted there; files the cases point at must
#             keep their contents. (An empty PARKLOCK_DUMP_SIGNAL counts as
#             unset, so it is not tested.)
set -u
if [ $# -ne 3 ]; then
    sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
group=$1 lib=$2 prog=$3
status_arg=3 # the program's own exit status, preserved by the preload

for v in $(env | sed -n 's/^\(PARKLOCK_[A-Za-z0-9_]*\)=.*/\1/p'); do
    unset "$v"
done
unset LD_PRELOAD

tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT

"$prog" "$status_arg" >"$tmp/base.out" 2>"$tmp/base.err"
base_status=$?
if [ "$base_status" -ne "$status_arg" ] || [ -s "$tmp/base.err" ]; then
    echo "env_output: the plain run is not as expected (status $base_status)" >&2
    exit 2
fi

fail=0 cases=0
report() { # report CASE MESSAGE
    echo "FAILED [$1]: $2" >&2
    sed 's/^/    stderr: /' "$tmp/err" | cat -v | head -20 >&2
    fail=1
}

# Settings every run of the group starts from (settings, control: no
# profile report at exit).
quiet=()

# run CASE env-assignment... : one preloaded run; sets $status.
run() {
    local name=$1
    shift
    cases=$((cases + 1))
    env LD_PRELOAD="$lib" "${quiet[@]}" "$@" "$prog" "$status_arg" >"$tmp/out" 2>"$tmp/err"
    status=$?
    if [ "$status" -ne "$base_status" ]; then
        report "$name" "exit status $status, expected $base_status"
    fi
    if ! cmp -s "$tmp/out" "$tmp/base.out"; then
        report "$name" "stdout differs from the plain run"
    fi
}

warnings() { grep -c '^parklock: warning: ' "$tmp/err"; }

# expect_warnings CASE N STRICT VAR... : N warning lines, one naming each VAR;
# STRICT=1: nothing else on stderr.
expect_warnings() {
    local name=$1 n=$2 strict=$3
    shift 3
    local got
    got=$(warnings)
    if [ "$got" -ne "$n" ]; then
        report "$name" "$got warning line(s), expected $n"
        return
    fi
    for var in "$@"; do
        if [ "$(grep '^parklock: warning: ' "$tmp/err" | grep -c -- "$var")" -ne 1 ]; then
            report "$name" "no single warning line names $var"
        fi
    done
    if [ "$strict" = 1 ] && [ "$(wc -l <"$tmp/err")" -ne "$n" ]; then
        report "$name" "stderr holds $(wc -l <"$tmp/err") line(s), expected $n"
    fi
}

# bad VAR VALUE [extra env...]: one warning naming VAR.
bad() {
    local var=$1 value=$2
    shift 2
    local strict=1
    case "$var $*" in *PARKLOCK_PROFILE=1*|PARKLOCK_PROFILE*) strict=0 ;; esac
    local name="$var='${value:0:40}'"
    [ ${#value} -gt 40 ] && name="$var=<${#value} bytes>"
    run "$name" "$@" "$var=$value"
    expect_warnings "$name" 1 "$strict" "$var"
}

# good VAR VALUE: no warning, nothing on stderr.
good() {
    run "$1='$2'" "$1=$2"
    expect_warnings "$1='$2'" 0 1
}

long=$(head -c 6000 /dev/zero | tr '\0' 7)

case "$group" in
settings)
    quiet=(PARKLOCK_PROFILE=0)
    for v in PARKLOCK_ENGINE; do
        for x in bogus "" GLIBC parkinglot2 " glibc" "glibc " "$long"; do bad "$v" "$x"; done
    done
    for v in PARKLOCK_SPIN_NS PARKLOCK_COND_SPIN_NS; do
        for x in "" -1 -0 +5 " 5" "5 " 0x10 1e3 5.0 abc 1000000001 \
                 99999999999999999999 18446744073709551616 "$long"; do
            bad "$v" "$x"
        done
    done
    # Several at once: one line each.
    run "three bad settings" PARKLOCK_ENGINE=x PARKLOCK_SPIN_NS=-1 PARKLOCK_COND_SPIN_NS=y
    expect_warnings "three bad settings" 3 1 PARKLOCK_ENGINE PARKLOCK_SPIN_NS \
        PARKLOCK_COND_SPIN_NS
    # Valid values: silence.
    good PARKLOCK_ENGINE glibc
    good PARKLOCK_ENGINE parkinglot
    for v in PARKLOCK_SPIN_NS PARKLOCK_COND_SPIN_NS; do
        good "$v" 0
        good "$v" 1000000000
        good "$v" 000123
    done
    ;;
control)
    quiet=(PARKLOCK_PROFILE=0)
    for v in PARKLOCK_ENGINE PARKLOCK_SPIN_NS PARKLOCK_COND_SPIN_NS; do
        for x in $'12\nparklock: warning: forged line' $'abc\rdef' $'\e[31mred\e[0m' \
                 $'tab\there' $'\x01\x02'; do
            name="$v=$(printf '%q' "$x")"
            run "$name" "$v=$x"
            expect_warnings "$name" 1 1 "$v"
            if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$tmp/err"; then
                report "$name" "a raw control character reached stderr"
            fi
        done
    done
    ;;
profiler)
    p="PARKLOCK_PROFILE=1"
    bad PARKLOCK_PROFILE 2
    bad PARKLOCK_PROFILE maybe
    bad PARKLOCK_PROFILE ""
    for x in xml "" "json,text" text2; do bad PARKLOCK_FORMAT "$x" "$p"; done
    for x in -1 abc "" 99999999999999999999 1e3; do bad PARKLOCK_TOP "$x" "$p"; done
    for x in -1 65 1000 deep ""; do bad PARKLOCK_STACK_DEPTH "$x" "$p"; done
    for x in USR3 SIGFOO 0 99 -1 KILL SIGSTOP SIGRTMAX+1; do bad PARKLOCK_DUMP_SIGNAL "$x" "$p"; done
    for x in -5 abc "" 1e9 99999999999999999999; do bad PARKLOCK_TABLE_SIZE "$x" "$p"; done
    bad PARKLOCK_OUTPUT "" "$p"

    # Output paths.
    mkdir "$tmp/dir"
    echo keep >"$tmp/target"
    ln -s "$tmp/target" "$tmp/link"
    ln -s "$tmp/nowhere" "$tmp/dangling"
    echo precious >"$tmp/existing"
    bad PARKLOCK_OUTPUT "$tmp/missing/dir/profile.%p" "$p"
    bad PARKLOCK_OUTPUT "$tmp/dir" "$p"
    bad PARKLOCK_OUTPUT "$tmp/link" "$p"
    [ "$(cat "$tmp/target")" = keep ] || report "symlink" "the symlink's target was changed"
    bad PARKLOCK_OUTPUT "$tmp/dangling" "$p"
    [ -e "$tmp/nowhere" ] && report "dangling symlink" "a file was created through it"
    bad PARKLOCK_OUTPUT /dev/full "$p"
    bad PARKLOCK_OUTPUT /proc/parklock-torture.%p "$p"
    # An existing regular file is replaced (a fixed path reused run after
    # run), with no warning.
    run "existing file" "$p" PARKLOCK_OUTPUT="$tmp/existing"
    expect_warnings "existing file" 0 0
    [ "$(head -1 "$tmp/existing")" != precious ] ||
        report "existing file" "the profile did not replace the file"
    # Valid: stderr, and a fresh file per process.
    run "PARKLOCK_OUTPUT=stderr" "$p" PARKLOCK_OUTPUT=stderr
    expect_warnings "PARKLOCK_OUTPUT=stderr" 0 0
    mkdir "$tmp/ok"
    run "PARKLOCK_OUTPUT=dir/profile.%p" "$p" PARKLOCK_OUTPUT="$tmp/ok/profile.%p"
    expect_warnings "PARKLOCK_OUTPUT=dir/profile.%p" 0 0
    [ "$(find "$tmp/ok" -type f | wc -l)" -eq 1 ] ||
        report "PARKLOCK_OUTPUT=dir/profile.%p" "no profile file was written"
    ;;
*)
    echo "env_output: unknown group $group" >&2
    exit 2
    ;;
esac

echo "env_output $group: $cases cases, $([ $fail = 0 ] && echo ok || echo FAILED)"
exit $fail
