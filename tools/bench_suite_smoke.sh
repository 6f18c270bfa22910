#!/usr/bin/env bash
# bench_suite_smoke.sh PARKLOCK_BENCH: the smoke test of parklock-bench (CTest
# tools.bench_suite_smoke). A minimal run of a few workloads on every engine
# must exit 0, print its table, and write CSV and JSON that parse and hold a
# row per metric with a figure for each engine. No timing is judged.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 PARKLOCK_BENCH" >&2; exit 2; }
bench=$1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# uncontended, a counter, a cond workload and fairness (4 metrics), with
# fwd-glibc too; --threads 2 makes the scaling workloads small.
"$bench" --seconds 0.02 --reps 1 --threads 2 --forward \
    --workload uncontended,counter-short,queue-2x2,fairness \
    --csv="$out/bench.csv" --json="$out/bench.json" | tee "$out/table"
"$bench" --list --threads 2 >"$out/list"

/usr/bin/python3 - "$out" <<'PY'
import csv, json, sys
d = sys.argv[1]
keys = ["uncontended", "counter-short-2", "queue-2x2", "fairness-2"]
engines = ["glibc", "parklock", "fwd-glibc"]
rows = 1 + 1 + 1 + 4  # a row per metric

doc = json.load(open(f"{d}/bench.json"))
assert doc["program"] == "parklock-bench", doc["program"]
assert doc["engines"] == engines, doc["engines"]
res = doc["results"]
assert [r["workload"] for r in res][:3] == keys[:3], res
assert len(res) == rows, len(res)
for r in res:
    for e in engines:
        v = r["engines"][e]
        assert v["min"] <= v["median"] <= v["max"], r
        assert len(v["samples"]) == 1, r
    assert set(r["ratio"]) == {"parklock", "fwd-glibc"}, r

with open(f"{d}/bench.csv", newline="") as f:
    table = list(csv.DictReader(f))
assert len(table) == rows, table
assert [t["workload"] for t in table] == [r["workload"] for r in res]
for t in table:
    for e in engines:
        float(t[e])
    float(t["parklock_ratio"])

listed = [l.split()[0] for l in open(f"{d}/list")]
for k in keys + ["counter-long-2", "striped-2", "broadcast-256", "pingpong"]:
    assert k in listed, (k, listed)
lines = open(f"{d}/table").read()
assert "ratio" in lines and "fairness, 2 thr, max wait" in lines, lines
print("bench_suite_smoke: ok")
PY
