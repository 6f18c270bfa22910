#!/usr/bin/env bash
# Real programs on glibc's locks and on parklock's, in one run: sysbench's
# mutex and threads tests, threaded workloads of Debian's python3
# (/usr/bin/python3, not whatever python3 comes first in PATH), and four other
# multithreaded Debian programs compressing or sorting a generated text file:
# xz -T2, zstd -T2, pigz -p 2 and sort --parallel=2.
#
#   tools/bench_programs.sh [--quick] [--rounds N] [--warmup N] [--lib PATH]
#                           [--parklock PATH | --own-loop] [--forward] [--csv]
#
#   --quick          short smoke run (4 rounds, small workloads)
#   --rounds N       runs per engine and workload (default 5); --runs N too
#   --warmup N       compare mode: unmeasured runs first (default 1)
#   --lib PATH       libparklock.so (default: build/libparklock.so in the
#                    source tree)
#   --parklock PATH  the parklock command (default: found next to the library
#                    (build/tools/parklock, PREFIX/bin/parklock) or in PATH)
#   --own-loop       time the programs with this script's own loop even when
#                    the parklock command is there
#   --forward        own loop: also run the preload with PARKLOCK_ENGINE=glibc
#                    (every call forwarded to glibc: the interposer's own cost)
#   --csv            own loop: print CSV instead of a table
#   (--forward and --csv imply --own-loop)
#
# Two modes. Where the `parklock` command exists (and has `compare`), each
# workload runs under `parklock compare --runs N --warmup W --no-profile --
# PROG ARGS`, which runs PROG alternately with PARKLOCK_ENGINE=glibc and
# =parkinglot under the same preload (profiling off, so that only the engine
# differs) and prints the medians of the whole runs' wall times and their
# ratio with a confidence interval; this script prints a heading per
# workload and compare's own report (PROG's output goes to /dev/null).
# Otherwise, or with --own-loop, the script's own loop runs each workload N
# rounds, every round running each engine once (plain glibc without any
# preload, the preload, and with --forward the forwarding preload), the
# order alternating from round to round, and prints one table of medians and
# ratios.
#
# What the own loop's figures are: sysbench mutex: sysbench's "total time"
# (s, lower is better); with its defaults each lock is one of 4096 mutexes
# after 10000 empty loops, so it is barely lock-bound: the "1 lock" rows use
# one mutex and 100 loops; sysbench threads: a fixed number of events,
# "total number of events" / "total time" (events/s, higher is better);
# python3: seconds the threads take, measured inside the interpreter (lower
# is better); xz, zstd, pigz and sort: the program's wall time, s (lower is
# better). Note that CPython 3.11's threading.Lock is a POSIX semaphore
# (sem_*, not interposed): what parklock changes there is the GIL, a pthread
# mutex and condition variable. The compressors and sort take few locks
# (thousands per run): they show what parklock costs a program that is not
# lock-bound.
#
# Every preloaded run is checked: ld.so must not report a failed preload,
# each program must list libparklock.so among its loaded objects
# (LD_TRACE_LOADED_OBJECTS), and the python workload asks parklock_engine()
# itself. A run that fails in any way stops the script.
set -euo pipefail
shopt -s inherit_errexit

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=/usr/bin/python3
rounds=5
rounds_set=0
warmup=1
quick=0
forward=0
csv=0
own_loop=0
why= # why the own loop runs
parklock=
lib=$root/build/libparklock.so

die() {
    echo "bench_programs.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 ;;
    --rounds | --runs) [ $# -ge 2 ] || die "$1 wants a number"; rounds=$2; rounds_set=1; shift ;;
    --warmup) [ $# -ge 2 ] || die "--warmup wants a number"; warmup=$2; shift ;;
    --lib) [ $# -ge 2 ] || die "--lib wants a path"; lib=$2; shift ;;
    --parklock) [ $# -ge 2 ] || die "--parklock wants a path"; parklock=$2; shift ;;
    --own-loop | --no-compare) own_loop=1; why="$1" ;;
    --forward) forward=1; own_loop=1; why="$1" ;;
    --csv) csv=1; own_loop=1; why="$1" ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//; s/^#$//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
if [ "$quick" = 1 ] && [ "$rounds_set" = 0 ]; then
    rounds=4 # parklock compare's confidence interval needs 4
fi
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds wants a positive integer, not '$rounds'"
[[ $warmup =~ ^[0-9]+$ ]] || die "--warmup wants a non-negative integer, not '$warmup'"
[ -r "$lib" ] || die "libparklock.so not found at $lib: build target 'parklock' or pass --lib PATH"
lib=$(realpath "$lib")
[[ $lib != *[:\ ]* ]] || die "$lib: LD_PRELOAD cannot carry a path with a space or colon"
[ -x "$python" ] || die "$python not found (Debian's python3 package)"

# need COMMAND PACKAGE: installs PACKAGE if COMMAND is missing (tools/dev.sh
# lists them all for a fresh machine).
need() {
    command -v "$1" >/dev/null && return 0
    echo "bench_programs.sh: installing $2" >&2
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >&2 ||
        { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >&2; }
    command -v "$1" >/dev/null || die "$1 still missing after installing $2"
}
need sysbench sysbench
need xz xz-utils
need zstd zstd
need pigz pigz
sysbench=$(command -v sysbench)
xz=$(command -v xz)
zstd=$(command -v zstd)
pigz=$(command -v pigz)
sort=$(command -v sort)

# The parklock command, unless the own loop is asked for: given, next to the
# library (build tree: build/libparklock.so and build/tools/parklock;
# installed: PREFIX/lib[/multiarch]/libparklock.so and PREFIX/bin/parklock),
# or in PATH. It must know `compare`.
if [ "$own_loop" = 0 ]; then
    if [ -n "$parklock" ]; then
        [ -x "$parklock" ] || die "--parklock $parklock: not an executable"
    else
        libdir=$(dirname "$lib")
        for p in "$libdir/tools/parklock" "$libdir/../bin/parklock" \
            "$libdir/../../bin/parklock" "$(command -v parklock || true)"; do
            if [ -n "$p" ] && [ -x "$p" ] && [ -f "$p" ]; then
                parklock=$(realpath "$p")
                break
            fi
        done
    fi
    if [ -n "$parklock" ] && ! "$parklock" compare --help >/dev/null 2>&1; then
        echo "bench_programs.sh: $parklock has no working 'compare': using the own loop" >&2
        parklock=
    fi
    [ -n "$parklock" ] || { own_loop=1; why="no parklock command with 'compare' found"; }
fi

# Sizes: default runs take ~0.3-3 s each on a 2-core machine.
if [ "$quick" = 1 ]; then
    mutex_locks=5000 hot_locks=100000 thread_events=300 py_scale=1 data_lines=75000
else
    mutex_locks=50000 hot_locks=1000000 thread_events=3000 py_scale=4 data_lines=600000
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The compressors' and sort's input: text lines of a random number, two
# words and a serial number (16 MB by default), the same in every run.
data=$tmp/data.txt
awk -v n="$data_lines" 'BEGIN {
        srand(1)
        split("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu", w, " ")
        for (i = 0; i < n; i++)
            printf "%08d %s %s %d\n", int(rand() * 1e8), w[int(rand() * 12) + 1],
                   w[int(rand() * 12) + 1], i
    }' >"$data"

# ---------------------------------------------------------------------------
# Engines of the own loop: the environment each run gets (`env` arguments),
# and what the python workload must find (PLK_EXPECT; "preloaded": either
# engine of the preload, as under parklock compare).

engines=(glibc parklock)
[ "$forward" = 1 ] && engines+=(fwd-glibc)
# The contention profiler stays off unless PARKLOCK_PROFILE says otherwise,
# as under parklock compare --no-profile: the figures are the locks'.
profile=PARKLOCK_PROFILE=${PARKLOCK_PROFILE:-0}

engine_env() {
    case $1 in
    glibc) echo "-u LD_PRELOAD -u PARKLOCK_ENGINE PLK_EXPECT=none" ;;
    parklock) echo "LD_PRELOAD=$lib PARKLOCK_ENGINE=parkinglot PLK_EXPECT=parkinglot $profile" ;;
    fwd-glibc) echo "LD_PRELOAD=$lib PARKLOCK_ENGINE=glibc PLK_EXPECT=glibc $profile" ;;
    esac
}

# in_engine ENGINE CMD...: runs CMD in ENGINE's environment; its stderr is
# checked for a failed preload.
in_engine() {
    local e=$1; shift
    local err=$tmp/stderr rc=0
    # shellcheck disable=SC2046 # engine_env's words are meant to split
    env $(engine_env "$e") "$@" 2>"$err" || rc=$?
    if [ $rc -ne 0 ] || grep -q "cannot be preloaded" "$err"; then
        cat "$err" >&2
        local what=${*//$'\n'/ }
        [ ${#what} -le 100 ] || what="${what:0:100}..."
        die "$e: '$what' failed (exit status $rc)"
    fi
}

# check_loaded ENGINE PROGRAM: the program's loaded objects include
# libparklock.so exactly when ENGINE preloads it.
check_loaded() {
    local e=$1 prog=$2 objs
    # shellcheck disable=SC2046
    objs=$(env $(engine_env "$e") LD_TRACE_LOADED_OBJECTS=1 "$prog" 2>&1) ||
        die "$e: cannot list the objects $prog loads"
    if [ "$e" = glibc ]; then
        [[ $objs != *libparklock* ]] || die "$e: $prog loads libparklock.so: $objs"
    else
        [[ $objs == *"$lib"* ]] || die "$e: $prog does not load $lib: $objs"
    fi
}

# ---------------------------------------------------------------------------
# Workloads: each cmd_* function sets `cmd` to one run's command line; the
# own loop reads the run's figure with a fig_* function.

# The python workloads, in a file so that parklock compare's report names
# the command briefly.
py_file=$tmp/bench_threads.py
cat >"$py_file" <<'EOF'
import ctypes, os, queue, sys, threading, time

def engine():
    try:
        f = ctypes.CDLL(None).parklock_engine
    except AttributeError:
        return "none"
    f.restype = ctypes.c_char_p
    return f().decode()

want, got = os.environ.get("PLK_EXPECT", "none"), engine()
if got != want and not (want == "preloaded" and got in ("glibc", "parkinglot")):
    sys.exit(f"python workload: meant to run on {want!r}, but parklock_engine is "
             f"{got!r} (LD_PRELOAD={os.environ.get('LD_PRELOAD')})")

def run_threads(fns):
    ts = [threading.Thread(target=f) for f in fns]
    t0 = time.perf_counter()
    for t in ts: t.start()
    for t in ts: t.join()
    return time.perf_counter() - t0

def wl_lock(scale):  # 4 threads incrementing a counter under threading.Lock
    n, nthreads = 50000 * scale, 4
    lock, box = threading.Lock(), [0]
    def body():
        for _ in range(n):
            with lock:
                box[0] += 1
    dt = run_threads([body] * nthreads)
    if box[0] != n * nthreads:
        sys.exit(f"lock: counter {box[0]} != {n * nthreads}")
    return dt

def wl_cond(scale):  # 2 threads passing a turn through threading.Condition
    rounds, cv, state = 2500 * scale, threading.Condition(), {"turn": 0}
    def player(me):
        def body():
            for _ in range(rounds):
                with cv:
                    while state["turn"] != me:
                        cv.wait()
                    state["turn"] = 1 - me
                    cv.notify()
        return body
    return run_threads([player(0), player(1)])

def wl_queue(scale):  # 2 producers, 2 consumers over queue.Queue(64)
    items, nprod, ncons = 10000 * scale, 2, 2
    q, sums = queue.Queue(maxsize=64), [0] * ncons
    def producer():
        for i in range(items):
            q.put(i)
        for _ in range(ncons // nprod):
            q.put(None)
    def consumer(k):
        def body():
            s = 0
            while (x := q.get()) is not None:
                s += x
            sums[k] = s
        return body
    dt = run_threads([producer] * nprod + [consumer(k) for k in range(ncons)])
    if sum(sums) != nprod * items * (items - 1) // 2:
        sys.exit("queue: items lost")
    return dt

def wl_check(scale):  # only the engine check above
    return 0.0

print(f"{globals()['wl_' + sys.argv[1]](int(sys.argv[2])):.6f}")
EOF

cmd_sysbench_mutex() { # THREADS
    cmd=("$sysbench" mutex --threads="$1" --mutex-locks="$mutex_locks" run)
}

# The same test made lock-bound: one mutex for all threads, 100 empty loops
# (not 10000) between locks.
cmd_sysbench_mutex_hot() { # THREADS
    cmd=("$sysbench" mutex --threads="$1" --mutex-num=1 --mutex-loops=100
         --mutex-locks="$hot_locks" run)
}

cmd_sysbench_threads() { # THREADS
    cmd=("$sysbench" threads --threads="$1" --events="$thread_events" --time=0 run)
}

cmd_python() { # lock|cond|queue
    cmd=("$python" "$py_file" "$1" "$py_scale")
}

# Compressors and sort write to stdout: in the own loop, to /dev/null through
# sh (which loads the same preload, harmlessly); parklock compare discards
# PROG's output itself.
cmd_quiet() { # PROG ARGS...
    if [ "$own_loop" = 1 ]; then
        cmd=(/bin/sh -c 'exec "$@" >/dev/null' sh "$@")
    else
        cmd=("$@")
    fi
}
cmd_xz() { cmd_quiet "$xz" -T2 -0 --block-size=512KiB -c "$data"; }
cmd_zstd() { cmd_quiet "$zstd" -q -T2 -6 -B1MiB -c "$data"; }
cmd_pigz() { cmd_quiet "$pigz" -p 2 -c "$data"; }
cmd_sort() { cmd_quiet "$sort" --parallel=2 -S 64M "$data"; }

# fig_* OUTPUT_FILE WALL_SECONDS: one number.
# sysbench's "<key>: <number>[s]" line.
sysbench_field() { # KEY FILE
    awk -v key="$1" '$0 ~ "^ *" key ":" { v = $NF; sub(/s$/, "", v); print v; found = 1 }
                     END { exit !found }' "$2"
}
fig_sysbench_time() { sysbench_field "total time" "$1"; }
fig_sysbench_rate() {
    local events time
    events=$(sysbench_field "total number of events" "$1")
    time=$(sysbench_field "total time" "$1")
    awk -v e="$events" -v t="$time" 'BEGIN { printf "%.1f\n", e / t }'
}
fig_stdout() { cat "$1"; }
fig_wall() { echo "$2"; }

# name | unit | higher is better (1) or lower (0) | figure | command function and args
workloads=(
    "sysbench mutex --threads=2|s total|0|fig_sysbench_time|cmd_sysbench_mutex 2"
    "sysbench mutex --threads=8|s total|0|fig_sysbench_time|cmd_sysbench_mutex 8"
    "sysbench mutex 1 lock, 2 thr|s total|0|fig_sysbench_time|cmd_sysbench_mutex_hot 2"
    "sysbench mutex 1 lock, 8 thr|s total|0|fig_sysbench_time|cmd_sysbench_mutex_hot 8"
    "sysbench threads --threads=2|events/s|1|fig_sysbench_rate|cmd_sysbench_threads 2"
    "sysbench threads --threads=8|events/s|1|fig_sysbench_rate|cmd_sysbench_threads 8"
    "python3 Lock, 4 threads|s|0|fig_stdout|cmd_python lock"
    "python3 Condition ping-pong|s|0|fig_stdout|cmd_python cond"
    "python3 Queue, 2p+2c|s|0|fig_stdout|cmd_python queue"
    "xz -T2 -0|s wall|0|fig_wall|cmd_xz"
    "zstd -T2 -6 -B1MiB|s wall|0|fig_wall|cmd_zstd"
    "pigz -p 2|s wall|0|fig_wall|cmd_pigz"
    "sort --parallel=2|s wall|0|fig_wall|cmd_sort"
)

# Every program must load the library exactly when it should.
check_programs() { # ENGINE
    local p
    for p in "$sysbench" "$python" "$xz" "$zstd" "$pigz" "$sort" /bin/sh; do
        check_loaded "$1" "$p"
    done
}

# ---------------------------------------------------------------------------
# Mode 1: parklock compare.

if [ "$own_loop" = 0 ]; then
    export PARKLOCK_LIB=$lib
    check_programs parklock
    in_engine parklock "$python" "$py_file" check 0 >/dev/null
    echo "real programs under LD_PRELOAD=$lib, timed by '$parklock compare'" \
        "(--runs $rounds --warmup $warmup):"
    echo "each round runs PARKLOCK_ENGINE=glibc and =parkinglot under the same" \
        "preload, profiling off; figures are whole-run wall times, PROG's output discarded"
    echo "sysbench $("$sysbench" --version | awk '{ print $2 }'), $("$python" --version 2>&1)," \
        "$(nproc) CPUs; sysbench mutex --mutex-locks=$mutex_locks, '1 lock':" \
        "--mutex-num=1 --mutex-loops=100 --mutex-locks=$hot_locks; sysbench" \
        "threads --events=$thread_events; python scale $py_scale; text $data_lines lines"
    for w in "${workloads[@]}"; do
        IFS='|' read -r name _unit _higher _fig cmdspec <<<"$w"
        read -r fn args <<<"$cmdspec"
        # shellcheck disable=SC2086 # args may be several words
        $fn $args
        echo
        echo "== $name"
        PLK_EXPECT=preloaded "$parklock" compare --runs "$rounds" --warmup "$warmup" \
            --no-profile -- "${cmd[@]}" ||
            die "$name: parklock compare failed (exit status $?)"
    done
    exit 0
fi

# ---------------------------------------------------------------------------
# Mode 2: the own loop.

# run_once ENGINE FIGURE_FN: runs "${cmd[@]}" once in ENGINE and prints its
# figure.
run_once() {
    local e=$1 fig=$2 t0 t1
    t0=$EPOCHREALTIME
    in_engine "$e" "${cmd[@]}" >"$tmp/stdout"
    t1=$EPOCHREALTIME
    "$fig" "$tmp/stdout" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')"
}

# summary VALUES...: "median min max"
summary() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              print m, v[1], v[NR] }'
}

for e in "${engines[@]}"; do
    # parklock_engine() answers as intended (so $lib is parklock), and every
    # program loads $lib exactly when it should.
    in_engine "$e" "$python" "$py_file" check 0 >/dev/null
    check_programs "$e"
done

if [ "$csv" = 1 ]; then
    header="workload,unit"
    for e in "${engines[@]}"; do header+=",$e,${e}_min,${e}_max"; done
    for e in "${engines[@]:1}"; do header+=",${e}_ratio"; done
    echo "$header,rounds"
else
    echo "programs on plain glibc vs LD_PRELOAD=$lib: median of $rounds rounds," \
        "engines alternating per round (own loop: $why)"
    echo "glibc: no preload; parklock: the preload$([ "$forward" = 1 ] &&
        echo "; fwd-glibc: the preload with PARKLOCK_ENGINE=glibc"); preloaded runs get $profile"
    echo "ratio > 1 means the preloaded run is better than plain glibc" \
        "(glibc/x for times, x/glibc for events/s); spread = (max-min)/median"
    echo "sysbench $("$sysbench" --version | awk '{ print $2 }'), $("$python" --version 2>&1)," \
        "$(nproc) CPUs"
    echo "sysbench mutex: --mutex-locks=$mutex_locks (other options default);" \
        "'1 lock': --mutex-num=1 --mutex-loops=100 --mutex-locks=$hot_locks;" \
        "sysbench threads: --events=$thread_events; python scale $py_scale;" \
        "text: $data_lines lines"
    echo
    line=$(printf '%-30s %-9s' workload unit)
    for e in "${engines[@]}"; do
        line+=$(printf ' %11s %7s' "$e" spread)
        [ "$e" = glibc ] || line+=$(printf ' %7s' ratio)
    done
    echo "$line"
fi

for w in "${workloads[@]}"; do
    IFS='|' read -r name unit higher fig cmdspec <<<"$w"
    read -r fn args <<<"$cmdspec"
    # shellcheck disable=SC2086 # args may be several words
    $fn $args
    declare -A samples=()
    for ((r = 0; r < rounds; r++)); do
        n=${#engines[@]}
        for ((k = 0; k < n; k++)); do
            e=${engines[(r + k) % n]}
            v=$(run_once "$e" "$fig")
            [[ $v =~ ^[0-9.eE+-]+$ ]] || die "$name ($e): unexpected figure '$v'"
            samples[$e]+="$v "
        done
    done
    declare -A med=() lo=() hi=()
    for e in "${engines[@]}"; do
        # shellcheck disable=SC2086
        read -r med[$e] lo[$e] hi[$e] <<<"$(summary ${samples[$e]})"
    done
    ratio_of() { # ENGINE
        awk -v g="${med[glibc]}" -v x="${med[$1]}" -v h="$higher" \
            'BEGIN { printf "%.2f", h ? x / g : g / x }'
    }
    if [ "$csv" = 1 ]; then
        line="$name,$unit"
        for e in "${engines[@]}"; do line+=",${med[$e]},${lo[$e]},${hi[$e]}"; done
        for e in "${engines[@]:1}"; do line+=",$(ratio_of "$e")"; done
        echo "$line,$rounds"
    else
        line=$(printf '%-30s %-9s' "$name" "$unit")
        for e in "${engines[@]}"; do
            line+=$(awk -v m="${med[$e]}" -v a="${lo[$e]}" -v b="${hi[$e]}" \
                'BEGIN { printf " %11.4g %6.1f%%", m, (m > 0 ? (b - a) / m * 100 : 0) }')
            [ "$e" = glibc ] || line+=" $(printf '%7s' "$(ratio_of "$e")")"
        done
        echo "$line"
    fi
    unset samples med lo hi
done
