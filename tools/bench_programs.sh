#!/usr/bin/env bash
# Real programs on plain glibc and under LD_PRELOAD=libparklock.so, in one run:
# sysbench's mutex and threads tests, and threaded workloads of Debian's
# python3 (/usr/bin/python3, whatever python3 comes first in PATH). Each
# workload runs N rounds; every round runs each engine once, the order
# alternating from round to round; the table shows medians and ratios.
#
#   tools/bench_programs.sh [--quick] [--rounds N] [--lib PATH] [--forward] [--csv]
#
#   --quick     short smoke run (3 rounds, small workloads)
#   --rounds N  rounds per workload (default 5)
#   --lib PATH  libparklock.so (default: build/libparklock.so in the source tree)
#   --forward   also run the preload with PARKLOCK_ENGINE=glibc (every call
#               forwarded to glibc: the interposer's own cost)
#   --csv       print CSV instead of a table
#
# What the figures are: sysbench mutex: sysbench's "total time" (s, lower is
# better); with its defaults each lock is one of 4096 mutexes after 10000
# empty loops, so it is barely lock-bound: the "1 lock" rows use one mutex
# and 100 loops; sysbench threads: "total number of events" / "total time"
# (events/s, higher is better); python3: seconds the threads take, measured
# inside the interpreter (lower is better). Note that CPython 3.11's
# threading.Lock is a POSIX semaphore (sem_*, not interposed): what parklock
# changes there is the GIL, a pthread mutex and condition variable.
#
# Every preloaded run is checked: ld.so must not report a failed preload, the
# program must list libparklock.so among its loaded objects
# (LD_TRACE_LOADED_OBJECTS), and the python workload asks parklock_engine()
# itself. A run that fails in any way stops the script.
set -euo pipefail
shopt -s inherit_errexit

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=/usr/bin/python3
rounds=5
rounds_set=0
quick=0
forward=0
csv=0
lib=$root/build/libparklock.so

die() {
    echo "bench_programs.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=1 ;;
    --rounds) [ $# -ge 2 ] || die "--rounds wants a number"; rounds=$2; rounds_set=1; shift ;;
    --lib) [ $# -ge 2 ] || die "--lib wants a path"; lib=$2; shift ;;
    --forward) forward=1 ;;
    --csv) csv=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//; s/^#$//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
if [ "$quick" = 1 ] && [ "$rounds_set" = 0 ]; then
    rounds=3
fi
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds wants a positive integer, not '$rounds'"
[ -r "$lib" ] || die "libparklock.so not found at $lib: build target 'parklock' or pass --lib PATH"
lib=$(realpath "$lib")
[[ $lib != *[:\ ]* ]] || die "$lib: LD_PRELOAD cannot carry a path with a space or colon"
[ -x "$python" ] || die "$python not found (Debian's python3 package)"
if ! command -v sysbench >/dev/null; then
    echo "bench_programs.sh: installing sysbench" >&2
    sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq sysbench >&2 ||
        { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq sysbench >&2; }
fi
sysbench=$(command -v sysbench)

# Sizes: default runs take ~0.3-3 s each on a 2-core machine.
if [ "$quick" = 1 ]; then
    mutex_locks=5000 hot_locks=50000 threads_limit="--events=300 --time=0" py_scale=1
else
    mutex_locks=50000 hot_locks=500000 threads_limit="--time=2" py_scale=4
fi

# ---------------------------------------------------------------------------
# Engines: the environment each run gets (`env` arguments), and what the
# python workload must find (PLK_EXPECT).

engines=(glibc parklock)
[ "$forward" = 1 ] && engines+=(fwd-glibc)

engine_env() {
    case $1 in
    glibc) echo "-u LD_PRELOAD -u PARKLOCK_ENGINE PLK_EXPECT=none" ;;
    parklock) echo "LD_PRELOAD=$lib PARKLOCK_ENGINE=parkinglot PLK_EXPECT=parkinglot" ;;
    fwd-glibc) echo "LD_PRELOAD=$lib PARKLOCK_ENGINE=glibc PLK_EXPECT=glibc" ;;
    esac
}

# in_engine ENGINE CMD...: runs CMD in ENGINE's environment; its stderr is
# checked for a failed preload.
in_engine() {
    local e=$1; shift
    local err rc=0
    err=$(mktemp)
    # shellcheck disable=SC2046 # engine_env's words are meant to split
    env $(engine_env "$e") "$@" 2>"$err" || rc=$?
    if [ $rc -ne 0 ] || grep -q "cannot be preloaded" "$err"; then
        cat "$err" >&2
        rm -f "$err"
        local what=${*//$'\n'/ }
        [ ${#what} -le 100 ] || what="${what:0:100}..."
        die "$e: '$what' failed (exit status $rc)"
    fi
    rm -f "$err"
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
# Workloads: each runs its program once in engine $1 and prints one number.

# sysbench's "<key>: <number>[s]" line.
sysbench_field() {
    awk -v key="$1" '$0 ~ "^ *" key ":" { v = $NF; sub(/s$/, "", v); print v; found = 1 }
                     END { exit !found }'
}

wl_sysbench_mutex() { # ENGINE THREADS: total time, s
    in_engine "$1" "$sysbench" mutex --threads="$2" --mutex-locks="$mutex_locks" run |
        sysbench_field "total time"
}

# The same test made lock-bound: one mutex for all threads, 100 empty loops
# (not 10000) between locks.
wl_sysbench_mutex_hot() { # ENGINE THREADS: total time, s
    in_engine "$1" "$sysbench" mutex --threads="$2" --mutex-num=1 --mutex-loops=100 \
        --mutex-locks="$hot_locks" run | sysbench_field "total time"
}

wl_sysbench_threads() { # ENGINE THREADS: events/s
    local out events time
    # shellcheck disable=SC2086 # threads_limit is two options or one
    out=$(in_engine "$1" "$sysbench" threads --threads="$2" $threads_limit run)
    events=$(sysbench_field "total number of events" <<<"$out")
    time=$(sysbench_field "total time" <<<"$out")
    awk -v e="$events" -v t="$time" 'BEGIN { printf "%.1f\n", e / t }'
}

read -r -d '' py_script <<'EOF' || true
import ctypes, os, queue, sys, threading, time

def engine():
    try:
        f = ctypes.CDLL(None).parklock_engine
    except AttributeError:
        return "none"
    f.restype = ctypes.c_char_p
    return f().decode()

want, got = os.environ.get("PLK_EXPECT", "none"), engine()
if got != want:
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

wl_python() { # ENGINE lock|cond|queue: s
    in_engine "$1" "$python" -c "$py_script" "$2" "$py_scale"
}

# name | unit | higher is better (1) or lower (0) | workload function and args
workloads=(
    "sysbench mutex --threads=2|s total|0|wl_sysbench_mutex 2"
    "sysbench mutex --threads=8|s total|0|wl_sysbench_mutex 8"
    "sysbench mutex 1 lock, 2 thr|s total|0|wl_sysbench_mutex_hot 2"
    "sysbench mutex 1 lock, 8 thr|s total|0|wl_sysbench_mutex_hot 8"
    "sysbench threads --threads=2|events/s|1|wl_sysbench_threads 2"
    "sysbench threads --threads=8|events/s|1|wl_sysbench_threads 8"
    "python3 Lock, 4 threads|s|0|wl_python lock"
    "python3 Condition ping-pong|s|0|wl_python cond"
    "python3 Queue, 2p+2c|s|0|wl_python queue"
)

# ---------------------------------------------------------------------------
# Harness

# summary VALUES...: "median min max"
summary() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              print m, v[1], v[NR] }'
}

for e in "${engines[@]}"; do
    # parklock_engine() answers as intended (so $lib is parklock), and both
    # programs load $lib exactly when they should.
    in_engine "$e" "$python" -c "$py_script" check 0 >/dev/null
    check_loaded "$e" "$sysbench"
    check_loaded "$e" "$python"
done

if [ "$csv" = 1 ]; then
    header="workload,unit"
    for e in "${engines[@]}"; do header+=",$e,${e}_min,${e}_max"; done
    for e in "${engines[@]:1}"; do header+=",${e}_ratio"; done
    echo "$header,rounds"
else
    echo "programs on plain glibc vs LD_PRELOAD=$lib: median of $rounds rounds," \
        "engines alternating per round"
    echo "glibc: no preload; parklock: the preload$([ "$forward" = 1 ] &&
        echo "; fwd-glibc: the preload with PARKLOCK_ENGINE=glibc")"
    echo "ratio > 1 means the preloaded run is better than plain glibc" \
        "(glibc/x for times, x/glibc for events/s); spread = (max-min)/median"
    echo "sysbench $("$sysbench" --version | awk '{ print $2 }'), $("$python" --version 2>&1)," \
        "$(nproc) CPUs"
    echo "sysbench mutex: --mutex-locks=$mutex_locks (other options default);" \
        "'1 lock': --mutex-num=1 --mutex-loops=100 --mutex-locks=$hot_locks;" \
        "sysbench threads: $threads_limit; python scale $py_scale"
    echo
    line=$(printf '%-30s %-9s' workload unit)
    for e in "${engines[@]}"; do
        line+=$(printf ' %11s %7s' "$e" spread)
        [ "$e" = glibc ] || line+=$(printf ' %7s' ratio)
    done
    echo "$line"
fi

for w in "${workloads[@]}"; do
    IFS='|' read -r name unit higher cmd <<<"$w"
    declare -A samples=()
    for ((r = 0; r < rounds; r++)); do
        n=${#engines[@]}
        for ((k = 0; k < n; k++)); do
            e=${engines[(r + k) % n]}
            read -r fn args <<<"$cmd"
            # shellcheck disable=SC2086 # args may be several words
            v=$($fn "$e" $args)
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
