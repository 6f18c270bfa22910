#!/usr/bin/env bash
# Developer entry point: install what is missing, build, run the demo or the
# tests. Used by README's quick start and by .ci/run.
#
#   tools/dev.sh demo        install deps, build, run the benchmarks (quick)
#   tools/dev.sh test        build if needed, run the whole test suite
#   tools/dev.sh test-asan   the unit tests in an ASan+UBSan build
#   tools/dev.sh test-tsan   the unit tests in a TSan build
#   tools/dev.sh deps        only install missing Debian packages
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)

# Debian 12 packages the build and the tests need.
packages=(gcc libc6-dev make cmake pkg-config check libunwind-dev
          # tools/parklock: reading JSON profiles, symbolising frames
          libjansson-dev libdw-dev
          # tests/programs: real programs under the preload
          g++ python3 libpython3.11-testsuite sysbench libjemalloc2
          # tools/bench_programs.sh: multithreaded compressors
          xz-utils zstd pigz)

deps() {
    local missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "dev.sh: installing ${missing[*]}" >&2
    local sudo=
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
}

# build DIR BUILD_TYPE: configure once, then build incrementally.
build() {
    local dir=$1 type=$2
    if [ ! -f "$dir/CMakeCache.txt" ]; then
        cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DPLK_WERROR=ON >/dev/null
    fi
    cmake --build "$dir" -j"$jobs"
}

# run_tests DIR [ctest args]: every test, output of the failing ones.
run_tests() {
    local dir=$1; shift
    ctest --test-dir "$dir" --output-on-failure "$@"
}

cmd=${1:-}
case "$cmd" in
deps)
    deps ;;
demo)
    deps
    build "$root/build" RelWithDebInfo
    echo "== the core's mutex and cond vs glibc's, linked directly =="
    "$root/build/tools/plk_bench_core" --quick
    echo
    echo "== one pthread program: plain glibc vs LD_PRELOAD=libparklock.so =="
    "$root/build/tools/plk_bench_preload" --quick ;;
test)
    deps
    build "$root/build" RelWithDebInfo
    run_tests "$root/build" ;;
test-asan)
    deps
    build "$root/build-asan" Asan
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        run_tests "$root/build-asan" -L unit ;;
test-tsan)
    deps
    build "$root/build-tsan" Tsan
    TSAN_OPTIONS=halt_on_error=1 run_tests "$root/build-tsan" -L unit ;;
*)
    sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2 ;;
esac
