#!/usr/bin/env python3
"""Checks libparklock.so's contention profile output.

usage: check_profile.py CASE PRELOAD PROFILE_PROG WORKDIR

PRELOAD is the LD_PRELOAD value: libparklock.so (after libasan.so in an
Asan build).

Runs profile_prog.c (see its header for the contention it makes) under
LD_PRELOAD=PRELOAD with PARKLOCK_* settings, reads the dumps and checks
them against docs/dump-format.md. Exits 0 when every check of CASE holds,
1 with one line per failed check otherwise. Timing is checked only where the
program makes it certain: a lock held ~20 ms while another thread waits shows
a wait of at least 10 ms (and at most 10 s).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys

SOLO_LOCKS = 1000
CACHE_EXTRA = 100
COND_SIGNALS = 7
COND_BROADCASTS = 3
MS = 1000 * 1000

HEX = re.compile(r"^0x[0-9a-f]+$")
FOLDED_LINE = re.compile(r"^[^;\n]+(;[^;\n]+)* \d+$")

failures = []


def check(cond, message):
    if not cond:
        failures.append(message)
    return cond


class Runner:
    def __init__(self, lib, prog, workdir):
        self.lib, self.prog, self.dir = lib, os.path.realpath(prog), workdir
        shutil.rmtree(workdir, ignore_errors=True)
        os.makedirs(workdir)

    def run(self, mode, env=None, preexec_fn=None, close_stderr=False):
        """Runs the program; returns (returncode, stdout, stderr, pid)."""
        full = {k: v for k, v in os.environ.items() if not k.startswith("PARKLOCK_")}
        full["LD_PRELOAD"] = self.lib
        if "libasan" in self.lib:  # an Asan build: leak reports are not ours
            full["ASAN_OPTIONS"] = "detect_leaks=0"
        full.update(env or {})
        p = subprocess.Popen([self.prog, mode], env=full, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, preexec_fn=preexec_fn)
        if close_stderr:
            p.stderr.close()
            out = p.stdout.read()
            p.wait(timeout=60)
            err = b""
        else:
            out, err = p.communicate(timeout=60)
        return p.returncode, out.decode(), err.decode(errors="replace"), p.pid

    def path(self, name):
        return os.path.join(self.dir, name)


# --- reading dumps ----------------------------------------------------------

def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        failures.append(f"{path}: not a readable JSON document: {e}")
        return None


def functions(frames):
    return [f.get("function") for f in frames]


def all_stacks(entry, role):
    return [s["frames"] for s in entry.get(role, [])]


def has_function(entry, role, name):
    return any(name in functions(frames) for frames in all_stacks(entry, role))


def by_name(doc, name, kind="locks"):
    found = [e for e in doc[kind] if e.get("name") == name]
    return found


def one_named(doc, name, kind="locks"):
    found = by_name(doc, name, kind)
    check(len(found) == 1, f"{kind}: expected one entry named {name}, found {len(found)}")
    return found[0] if found else None


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_frame(where, f, symbolized):
    check(isinstance(f, dict), f"{where}: frame is not an object")
    if not isinstance(f, dict):
        return
    check(isinstance(f.get("ip"), str) and HEX.match(f["ip"]), f"{where}: bad ip {f.get('ip')}")
    check("module" in f and (f["module"] is None or isinstance(f["module"], str)),
          f"{where}: bad module")
    check(isinstance(f.get("offset"), str) and HEX.match(f["offset"]),
          f"{where}: bad offset {f.get('offset')}")
    if "function" in f:
        check(symbolized, f"{where}: a function name in a raw dump")
        check(isinstance(f["function"], str) and is_int(f.get("function_offset")),
              f"{where}: bad function/function_offset")
    if "file" in f:
        check(isinstance(f["file"], str) and is_int(f.get("line")), f"{where}: bad file/line")


def check_wait_stats(where, entry, events):
    w = entry.get("wait_ns")
    if not check(isinstance(w, dict), f"{where}: no wait_ns object"):
        return
    for k in ("total", "max", "avg", "p50", "p90", "p99"):
        check(is_int(w.get(k)) and w[k] >= 0, f"{where}: wait_ns.{k} missing or negative")
    if not all(is_int(w.get(k)) for k in ("total", "max", "avg", "p50", "p90", "p99")):
        return
    check(w["max"] <= w["total"], f"{where}: max wait above the total")
    check(w["p50"] <= w["p90"] <= w["p99"] <= w["max"], f"{where}: percentiles out of order")
    hist = entry.get("histogram")
    if check(isinstance(hist, list), f"{where}: no histogram"):
        check(sum(b["count"] for b in hist) == events,
              f"{where}: histogram counts {sum(b['count'] for b in hist)} != {events}")
        check(all(b["count"] > 0 for b in hist), f"{where}: an empty histogram bucket listed")
        limits = [b["le_ns"] for b in hist]
        check(limits == sorted(limits), f"{where}: histogram not in bucket order")


def check_schema(doc, reason, symbolized, pid=None, prog=None):
    """Structure and invariants every dump must satisfy."""
    if doc is None:
        return
    check(doc.get("format") == "parklock-profile", "format is not parklock-profile")
    check(doc.get("version") == 1, "version is not 1")
    check(doc.get("reason") == reason, f"reason {doc.get('reason')!r}, expected {reason!r}")
    check(doc.get("symbolized") is symbolized, f"symbolized {doc.get('symbolized')!r}")
    if pid is not None:
        check(doc.get("pid") == pid, f"pid {doc.get('pid')}, expected {pid}")
    if prog is not None:
        check(doc.get("program") == prog, f"program {doc.get('program')!r}, expected {prog!r}")
    check(doc.get("engine") in ("parkinglot", "glibc"), f"engine {doc.get('engine')!r}")
    check(is_int(doc.get("duration_ns")) and doc["duration_ns"] > 0, "bad duration_ns")
    st = doc.get("settings", {})
    for k in ("stack_depth", "table_size", "top"):
        check(is_int(st.get(k)), f"settings.{k} missing")
    totals = doc.get("totals", {})
    for k in ("locks_tracked", "conds_tracked", "contended", "wait_ns", "dropped_locks",
              "dropped_stacks"):
        check(is_int(totals.get(k)), f"totals.{k} missing")
    for k in ("contended", "wait_ns", "cond_waits"):
        check(is_int(doc.get("other", {}).get(k)), f"other.{k} missing")
    modules = doc.get("modules", [])
    check(isinstance(modules, list) and modules, "no modules")
    for m in modules:
        check(isinstance(m.get("path"), str) and all(
            HEX.match(m.get(k, "")) for k in ("start", "end", "offset")), f"bad module {m}")
    if prog is not None:
        check(any(m.get("path") == prog for m in modules), "the program is not among the modules")
    locks, conds = doc.get("locks"), doc.get("conds")
    if not (check(isinstance(locks, list), "no locks list") and
            check(isinstance(conds, list), "no conds list")):
        return
    check(totals.get("locks_tracked") == len(locks), "totals.locks_tracked != len(locks)")
    check(totals.get("conds_tracked") == len(conds), "totals.conds_tracked != len(conds)")
    check(totals.get("contended", 0) >= sum(e["contended"] for e in locks),
          "totals.contended below the locks' sum")
    ids = [e.get("id") for e in locks + conds]
    check(len(set(ids)) == len(ids) and all(is_int(i) for i in ids), "ids not unique integers")
    for kind in ("locks", "conds"):
        waits = [e["wait_ns"]["total"] for e in doc[kind]]
        check(waits == sorted(waits, reverse=True), f"{kind} not sorted by total wait")
    for e in locks + conds:
        where = f"entry {e.get('id')} ({e.get('name')})"
        check(HEX.match(e.get("address", "")), f"{where}: bad address")
        check(e.get("name_source") in ("symbol", "site", "none"), f"{where}: bad name_source")
        check((e.get("name") is None) == (e.get("name_source") == "none"),
              f"{where}: name and name_source disagree")
        if not symbolized:
            check(e.get("name") is None, f"{where}: a name in a raw dump")
        check(is_int(e.get("generation")) and isinstance(e.get("destroyed"), bool),
              f"{where}: bad generation/destroyed")
        for i, f in enumerate(e.get("site", [])):
            check_frame(f"{where} site[{i}]", f, symbolized)
        roles = (("waiters", "wait_ns"), ("holders", "delay_ns")) if e in locks else \
            (("waiters", "wait_ns"),)
        for role, weight in roles:
            stacks = e.get(role)
            if not check(isinstance(stacks, list), f"{where}: no {role}"):
                continue
            weights = [s.get(weight) for s in stacks]
            check(all(is_int(w) for w in weights) and weights == sorted(weights, reverse=True),
                  f"{where}: {role} not sorted by {weight}")
            for s in stacks:
                check(is_int(s.get("count")) and s["count"] > 0, f"{where}: bad {role} count")
                check(0 < len(s.get("frames", [])) <= st.get("stack_depth", 64),
                      f"{where}: {role} stack of {len(s.get('frames', []))} frames")
                for i, f in enumerate(s.get("frames", [])):
                    check_frame(f"{where} {role} frame {i}", f, symbolized)
    for e in locks:
        where = f"lock {e.get('id')} ({e.get('name')})"
        check(e.get("type") in ("normal", "recursive", "errorcheck", "adaptive", "glibc"),
              f"{where}: bad type {e.get('type')!r}")
        check(e.get("engine") in ("parkinglot", "glibc"), f"{where}: bad engine")
        for k in ("contended", "parked", "timeouts"):
            check(is_int(e.get(k)) and e[k] >= 0, f"{where}: bad {k}")
        check(e["parked"] <= e["contended"], f"{where}: parked above contended")
        acquired = e.get("acquired")
        check(acquired is None or is_int(acquired), f"{where}: bad acquired")
        check(isinstance(e.get("acquired_exact"), bool), f"{where}: bad acquired_exact")
        if acquired is None or acquired == 0:
            check(e.get("contention_pct") is None, f"{where}: contention_pct without acquired")
        else:
            check(isinstance(e.get("contention_pct"), (int, float)), f"{where}: no contention_pct")
            check(abs(e["contention_pct"] - 100.0 * e["contended"] / acquired) < 0.01,
                  f"{where}: contention_pct {e['contention_pct']} is not 100 * "
                  f"{e['contended']} / {acquired}")
            if e["timeouts"] == 0:
                check(e["contended"] <= acquired,
                      f"{where}: contended {e['contended']} > acquired {acquired}")
        check_wait_stats(where, e, e["contended"])
    for e in conds:
        where = f"cond {e.get('id')} ({e.get('name')})"
        for k in ("waits", "timed_waits", "timeouts", "signals", "broadcasts", "wakeups"):
            check(is_int(e.get(k)) and e[k] >= 0, f"{where}: bad {k}")
        check(e["timed_waits"] <= e["waits"] and e["timeouts"] <= e["timed_waits"],
              f"{where}: timed_waits/timeouts above waits")
        check(e["wakeups"] + e["timeouts"] == e["waits"], f"{where}: wakeups + timeouts != waits")
        check_wait_stats(where, e, e["waits"])


def check_cache_lock(e, raw=False):
    """The lock held ~20 ms while the main thread waited for it."""
    if e is None:
        return
    check(e["contended"] == 1, f"cache_lock: contended {e['contended']}, expected 1")
    check(e["parked"] == 1, f"cache_lock: parked {e['parked']}, expected 1")
    total = e["wait_ns"]["total"]
    check(10 * MS <= total <= 10000 * MS, f"cache_lock: waited {total} ns, expected 10 ms..10 s")
    check(10 * MS <= e["wait_ns"]["max"], f"cache_lock: max wait {e['wait_ns']['max']} ns")
    check(e["type"] == "normal" and e["engine"] == "parkinglot",
          f"cache_lock: type {e['type']}, engine {e['engine']}")
    check(e["generation"] == 0 and not e["destroyed"], "cache_lock: generation/destroyed")
    check(len(e["waiters"]) >= 1 and len(e["holders"]) >= 1,
          "cache_lock: no waiter or holder stack")
    if raw:
        return
    check(e["name_source"] == "symbol", f"cache_lock: name_source {e['name_source']}")
    check(has_function(e, "waiters", "wait_for_cache_lock"),
          "cache_lock: no waiter stack in wait_for_cache_lock")
    check(has_function(e, "holders", "hold_cache_lock_20ms"),
          "cache_lock: no holder stack in hold_cache_lock_20ms")
    frames = [f for frames in all_stacks(e, "waiters") for f in frames
              if f.get("function") == "wait_for_cache_lock"]
    check(any(f.get("file", "").endswith("profile_prog.c") and f.get("line", 0) > 0
              for f in frames), "cache_lock: wait_for_cache_lock has no file:line")


# --- cases --------------------------------------------------------------------

CASES = {}


def case(fn):
    CASES[fn.__name__.removeprefix("case_")] = fn
    return fn


def expect_quiet_run(what, rc, out, err, status=0):
    check(rc == status, f"{what}: exit status {rc}, expected {status}; stderr: {err!r}")
    check(out == "", f"{what}: wrote to stdout: {out!r}")


@case
def case_json(r):
    rc, out, err, pid = r.run("exit", {"PARKLOCK_FORMAT": "json",
                                        "PARKLOCK_OUTPUT": r.path("prof.%p.json")})
    expect_quiet_run("exit", rc, out, err)
    check(err == "", f"stderr not empty: {err!r}")
    doc = load_json(r.path(f"prof.{pid}.json"))
    if doc is None:
        return
    check_schema(doc, "exit", True, pid, r.prog)
    check(doc["engine"] == "parkinglot", f"engine {doc['engine']}")

    solo = one_named(doc, "solo_lock")
    if solo:
        check(solo["name_source"] == "symbol", "solo_lock: not named by its symbol")
        check(solo["contended"] == 0, f"solo_lock: contended {solo['contended']}, expected 0")
        check(solo["acquired"] == SOLO_LOCKS,
              f"solo_lock: acquired {solo['acquired']}, expected {SOLO_LOCKS}")
        check(solo["acquired_exact"] is True, "solo_lock: acquired not exact")
        check(solo["wait_ns"]["total"] == 0 and not solo["waiters"] and not solo["holders"],
              "solo_lock: waits or stacks recorded")

    cache = one_named(doc, "cache_lock")
    check_cache_lock(cache)
    if cache:
        check(cache["acquired"] == 2 + CACHE_EXTRA,
              f"cache_lock: acquired {cache['acquired']}, expected {2 + CACHE_EXTRA}")

    # The heap mutex destroyed and initialised again at the same address.
    reused = [e for e in doc["locks"]
              if has_function(e, "waiters", "wait_for_reused_lock") or
              "wait_for_reused_lock" in functions(e["site"])]
    if check(len(reused) == 2, f"reused mutex: {len(reused)} rows, expected 2"):
        a, b = sorted(reused, key=lambda e: e["generation"])
        check(a["address"] == b["address"], "reused mutex: rows at different addresses")
        check((a["generation"], b["generation"]) == (0, 1),
              f"reused mutex: generations {a['generation']}, {b['generation']}")
        check(a["id"] != b["id"], "reused mutex: one id for both rows")
        for e in (a, b):
            g = e["generation"]
            check(e["destroyed"] is True, f"reused mutex gen {g}: not destroyed")
            check(e["contended"] == 1, f"reused mutex gen {g}: contended {e['contended']}")
            check(e["acquired"] == 2, f"reused mutex gen {g}: acquired {e['acquired']}")
            check(e["name_source"] == "site" and
                  e["name"] in ("wait_for_reused_lock", "hold_reused_lock"),
                  f"reused mutex gen {g}: named {e['name']!r} ({e['name_source']})")

    cond = one_named(doc, "ready_cond", "conds")
    if cond:
        check(cond["name_source"] == "symbol", "ready_cond: not named by its symbol")
        got = {k: cond[k] for k in ("waits", "timed_waits", "timeouts", "wakeups", "signals",
                                    "broadcasts")}
        want = {"waits": 2, "timed_waits": 1, "timeouts": 1, "wakeups": 1,
                "signals": COND_SIGNALS, "broadcasts": COND_BROADCASTS}
        check(got == want, f"ready_cond: counts {got}, expected {want}")
        check(has_function(cond, "waiters", "wait_for_ready"),
              "ready_cond: no waiter stack in wait_for_ready")



@case
def text(r):
    rc, out, err, pid = r.run("exit")
    expect_quiet_run("exit", rc, out, err)
    check(err.startswith("parklock: contention profile of "),
          f"stderr does not start with the header: {err[:200]!r}")
    check(f"(pid {pid})" in err, "the header does not name the pid")
    check("warning" not in err, "a warning on stderr")
    for word in ("cache_lock", "wait_for_cache_lock", "hold_cache_lock_20ms", "profile_prog.c:",
                 "ready_cond", "mutexes by total wait",
                 "condition variables"):
        check(word in err, f"the text report lacks {word!r}")
    rc, out, err, pid = r.run("exit", {"PARKLOCK_TOP": "1"})
    expect_quiet_run("PARKLOCK_TOP=1", rc, out, err)
    check("(top 1 of" in err, "PARKLOCK_TOP=1: the table is not cut to one lock")


@case
def quiet(r):
    rc, out, err, _ = r.run("quiet")
    expect_quiet_run("quiet", rc, out, err)
    check(re.fullmatch(r"parklock: no lock contention \(\d+ locks?, \d+ conds? seen\)\n", err),
          f"expected the one-line report, got {err!r}")


@case
def folded(r):
    rc, out, err, pid = r.run("exit", {"PARKLOCK_FORMAT": "folded",
                                        "PARKLOCK_OUTPUT": r.path("prof.%p.folded")})
    expect_quiet_run("exit", rc, out, err)
    check(err == "", f"stderr not empty: {err!r}")
    try:
        with open(r.path(f"prof.{pid}.folded"), encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        check(False, f"no folded output: {e}")
        return
    check(text.endswith("\n"), "the last line has no newline")
    lines = text.splitlines()
    check(lines, "no stacks")
    for line in lines:
        check(FOLDED_LINE.match(line), f"not a folded line: {line!r}")
    parsed = [(l.rsplit(" ", 1)[0].split(";"), int(l.rsplit(" ", 1)[1])) for l in lines
              if FOLDED_LINE.match(l)]

    def find(last, frame):
        return [(frames, w) for frames, w in parsed if frames[-1] == last and frame in frames]

    waits = find("[wait] cache_lock", "wait_for_cache_lock")
    if check(waits, "no '[wait] cache_lock' stack through wait_for_cache_lock"):
        frames, weight = waits[0]
        check(10 * MS <= weight <= 10000 * MS, f"[wait] cache_lock weighs {weight} ns")
        check("main" in frames and frames.index("main") < frames.index("wait_for_cache_lock"),
              f"frames not outermost first: {frames}")
    check(find("[holder] cache_lock", "hold_cache_lock_20ms"),
          "no '[holder] cache_lock' stack through hold_cache_lock_20ms")
    check(find("[cond] ready_cond", "wait_for_ready"),
          "no '[cond] ready_cond' stack through wait_for_ready")


def addr2line_functions(module, frames):
    """Function names of raw frames in `module`, inlined ones included, by
    addr2line (None if it is not installed)."""
    tool = shutil.which("addr2line")
    offsets = [f["offset"] for f in frames if f["module"] == module]
    if not tool or not offsets:
        return None
    res = subprocess.run([tool, "-f", "-i", "-e", module] + offsets, capture_output=True,
                         text=True)
    return res.stdout.splitlines()[0::2]


@case
def case_signal(r):
    rc, out, err, pid = r.run("signal", {"PARKLOCK_FORMAT": "json",
                                          "PARKLOCK_DUMP_SIGNAL": "USR2",
                                          "PARKLOCK_OUTPUT": r.path("sig.%p.%n.json")})
    expect_quiet_run("signal", rc, out, err)
    check(err == "", f"stderr not empty: {err!r}")
    files = sorted(os.listdir(r.dir))
    check(files == [f"sig.{pid}.1.json", f"sig.{pid}.2.json"], f"dump files: {files}")
    raw = load_json(r.path(f"sig.{pid}.1.json"))
    final = load_json(r.path(f"sig.{pid}.2.json"))
    if raw is None or final is None:
        return
    check_schema(raw, "signal", False, pid, r.prog)
    check_schema(final, "exit", True, pid, r.prog)
    cache = one_named(final, "cache_lock")
    check_cache_lock(cache)
    check(one_named(final, "late_lock") is not None, "the exit dump lacks late_lock")
    if not cache:
        return
    # The raw dump has the same lock (no names: matched by address), and
    # its raw frames resolve to the right functions from module + offset.
    same = [e for e in raw["locks"] if e["address"] == cache["address"]]
    if check(len(same) == 1, "the signal dump lacks cache_lock's address"):
        check_cache_lock(same[0], raw=True)
        for frames in all_stacks(same[0], "waiters"):
            names = addr2line_functions(r.prog, frames)
            check(names is None or "wait_for_cache_lock" in names,
                  f"raw waiter frames resolve to {names}, not wait_for_cache_lock")
    late_addr = [e["address"] for e in final["locks"] if e.get("name") == "late_lock"]
    check(not [e for e in raw["locks"] if e["address"] in late_addr and e["contended"]],
          "the signal dump has late_lock's contention, which came after it")



@case
def signal_same_file(r):
    # Without %n both dumps expand to one name: O_TRUNC, the exit dump stays.
    rc, out, err, pid = r.run("signal", {"PARKLOCK_FORMAT": "json",
                                          "PARKLOCK_DUMP_SIGNAL": "SIGUSR2",
                                          "PARKLOCK_OUTPUT": r.path("same.%p.json")})
    expect_quiet_run("signal", rc, out, err)
    check(sorted(os.listdir(r.dir)) == [f"same.{pid}.json"], f"files: {os.listdir(r.dir)}")
    doc = load_json(r.path(f"same.{pid}.json"))
    check_schema(doc, "exit", True, pid, r.prog)


@case
def api(r):
    rc, out, err, pid = r.run("api", {"PARKLOCK_FORMAT": "json",
                                       "PARKLOCK_OUTPUT": r.path("api.%p.%n.json")})
    expect_quiet_run("api", rc, out, err)
    first = load_json(r.path(f"api.{pid}.1.json"))
    second = load_json(r.path(f"api.{pid}.2.json"))
    if first is None or second is None:
        return
    check_schema(first, "api", True, pid, r.prog)
    check_schema(second, "exit", True, pid, r.prog)
    check_cache_lock(one_named(first, "cache_lock"))
    check(not by_name(first, "late_lock"), "the api dump has late_lock, used only after it")
    check(one_named(second, "late_lock") is not None, "the exit dump lacks late_lock")


@case
def sigterm(r):
    rc, out, err, pid = r.run("sigterm", {"PARKLOCK_FORMAT": "json",
                                           "PARKLOCK_OUTPUT": r.path("term.%p.json")})
    check(rc == -signal.SIGTERM, f"exit status {rc}, expected death by SIGTERM")
    check(out == "", "wrote to stdout")
    check("survived" not in err, "the program survived SIGTERM")
    doc = load_json(r.path(f"term.{pid}.json"))
    if doc is None:
        return
    check_schema(doc, "fatal-signal", False, pid, r.prog)
    waited = [e for e in doc["locks"] if e["contended"] == 1 and e["wait_ns"]["total"] >= 10 * MS]
    check(waited, "the fatal-signal dump lacks the 20 ms wait")


@case
def sigterm_ignored(r):
    # A program that ignores SIGTERM keeps doing so: no dump, no death.
    rc, out, err, pid = r.run("sigterm", {"PARKLOCK_FORMAT": "json",
                                           "PARKLOCK_OUTPUT": r.path("term.%p.%n.json")},
                              preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN))
    check(rc == 0, f"exit status {rc}, expected 0")
    check("survived" in err, "the program did not go on after the ignored SIGTERM")
    check(sorted(os.listdir(r.dir)) == [f"term.{pid}.1.json"], f"files: {os.listdir(r.dir)}")
    check_schema(load_json(r.path(f"term.{pid}.1.json")), "exit", True, pid, r.prog)


@case
def sigterm_restored(r):
    # The SIGINT/SIGTERM handlers read as SIG_DFL, and a program that
    # restores SIG_DFL after a handler of its own still gets the dump.
    rc, out, err, pid = r.run("sigterm_restored", {"PARKLOCK_FORMAT": "json",
                                                    "PARKLOCK_OUTPUT": r.path("term.%p.json")})
    check(rc == -signal.SIGTERM, f"exit status {rc}, expected death by SIGTERM; stderr: {err!r}")
    check(out == "", "wrote to stdout")
    doc = load_json(r.path(f"term.{pid}.json"))
    check_schema(doc, "fatal-signal", False, pid, r.prog)


@case
def sigterm_handled(r):
    # A handler of the program's own replaces the dump's: it runs, the
    # program goes on, and only the exit dump is written.
    rc, out, err, pid = r.run("sigterm_handled", {"PARKLOCK_FORMAT": "json",
                                                   "PARKLOCK_OUTPUT": r.path("term.%p.%n.json")})
    expect_quiet_run("sigterm_handled", rc, out, err)
    check(sorted(os.listdir(r.dir)) == [f"term.{pid}.1.json"], f"files: {os.listdir(r.dir)}")
    check_schema(load_json(r.path(f"term.{pid}.1.json")), "exit", True, pid, r.prog)


@case
def python_signals(r):
    # CPython installs its KeyboardInterrupt handler only where it finds
    # SIGINT at SIG_DFL: under the preload it must find it so.
    code = ("import signal, sys; "
            "sys.stdout.write(repr((signal.getsignal(signal.SIGINT), "
            "signal.getsignal(signal.SIGTERM))))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARKLOCK_")}
    env.pop("LD_PRELOAD", None)
    plain = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=60)
    env["LD_PRELOAD"] = r.lib
    if "libasan" in r.lib:
        env["ASAN_OPTIONS"] = "detect_leaks=0"
    env["PARKLOCK_OUTPUT"] = r.path("python.%p")
    pre = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60)
    check(plain.returncode == 0 and pre.returncode == 0,
          f"python exit statuses {plain.returncode}, {pre.returncode}: {pre.stderr!r}")
    check(plain.stdout == pre.stdout,
          f"signal handlers differ under the preload: {pre.stdout} instead of {plain.stdout}")
    check("default_int_handler" in pre.stdout, f"no KeyboardInterrupt handler: {pre.stdout}")


@case
def fork(r):
    rc, out, err, pid = r.run("fork", {"PARKLOCK_FORMAT": "json",
                                        "PARKLOCK_OUTPUT": r.path("fork.%p.json")})
    expect_quiet_run("fork", rc, out, err)
    check(err == "", f"stderr not empty: {err!r}")
    files = sorted(os.listdir(r.dir))
    if not check(len(files) == 2 and f"fork.{pid}.json" in files, f"files: {files}"):
        return
    child_file = [f for f in files if f != f"fork.{pid}.json"][0]
    parent = load_json(r.path(f"fork.{pid}.json"))
    child = load_json(r.path(child_file))
    if parent is None or child is None:
        return
    check_schema(parent, "exit", True, pid, r.prog)
    check_schema(child, "exit", True, None, r.prog)
    check(child_file == f"fork.{child['pid']}.json" and child["pid"] != pid,
          f"child file {child_file} for pid {child['pid']}")
    check_cache_lock(one_named(parent, "cache_lock"))
    check(not [e for e in by_name(parent, "child_lock") if e["contended"]],
          "the parent's profile has the child's contention")
    check(not by_name(child, "cache_lock") and not by_name(child, "solo_lock"),
          "the child's profile is not fresh: it has the parent's locks")
    cl = one_named(child, "child_lock")
    if cl:
        check(cl["contended"] == 1, f"child_lock: contended {cl['contended']}")
        check(has_function(cl, "waiters", "wait_for_child_lock"),
              "child_lock: no waiter stack in wait_for_child_lock")
    check(child["duration_ns"] < parent["duration_ns"], "the child's profile did not start anew")


BAD_SETTINGS = [
    ("PARKLOCK_FORMAT", "xml"),
    ("PARKLOCK_TOP", "many"),
    ("PARKLOCK_STACK_DEPTH", "-1"),
    ("PARKLOCK_TABLE_SIZE", "99999999999999999999"),
    ("PARKLOCK_DUMP_SIGNAL", "NOPE"),
    ("PARKLOCK_PROFILE", "maybe"),
]


@case
def bad_settings(r):
    for var, value in BAD_SETTINGS:
        what = f"{var}={value}"
        out_file = r.path(f"{var}.%p.txt")
        rc, out, err, pid = r.run("exit3", {var: value, "PARKLOCK_OUTPUT": out_file})
        expect_quiet_run(what, rc, out, err, status=3)
        lines = err.splitlines()
        check(len(lines) == 1 and lines[0].startswith(f"parklock: warning: {var}="),
              f"{what}: expected one warning line, stderr: {err!r}")
        try:
            with open(r.path(f"{var}.{pid}.txt"), encoding="utf-8") as f:
                report = f.read()
            check(report.startswith("parklock: contention profile of"),
                  f"{what}: the report is not the default text report")
        except OSError as e:
            check(False, f"{what}: no report with the defaults: {e}")


@case
def bad_output(r):
    target = r.path("target")
    os.symlink(target, r.path("link"))
    os.mkdir(r.path("dir"))
    for where in (r.path("link"), r.path("dir"), "/dev/full", r.path("missing/prof.%p")):
        if where == "/dev/full" and not os.path.exists(where):
            continue
        for fmt in ("text", "json"):
            what = f"PARKLOCK_OUTPUT={where} ({fmt})"
            rc, out, err, pid = r.run("exit3", {"PARKLOCK_OUTPUT": where, "PARKLOCK_FORMAT": fmt})
            expect_quiet_run(what, rc, out, err, status=3)
            lines = err.splitlines()
            check(len(lines) == 1 and lines[0].startswith("parklock: warning: PARKLOCK_OUTPUT="),
                  f"{what}: expected one warning line, stderr: {err!r}")
    check(not os.path.exists(target), "the symlink was followed")
    check(os.listdir(r.path("dir")) == [], "something was written into the directory")
    # stderr a pipe nobody reads: no SIGPIPE death, the status stays.
    rc, out, _, _ = r.run("exit3", close_stderr=True)
    check(rc == 3, f"report to a closed stderr pipe: exit status {rc}, expected 3")


@case
def engine_glibc(r):
    rc, out, err, pid = r.run("exit", {"PARKLOCK_ENGINE": "glibc", "PARKLOCK_FORMAT": "json",
                                        "PARKLOCK_OUTPUT": r.path("glibc.%p.json")})
    expect_quiet_run("exit", rc, out, err)
    doc = load_json(r.path(f"glibc.{pid}.json"))
    if doc is None:
        return
    check_schema(doc, "exit", True, pid, r.prog)
    check(doc["engine"] == "glibc", f"engine {doc['engine']}")
    cache = one_named(doc, "cache_lock")
    if cache:
        check(cache["engine"] == "glibc" and cache["type"] == "glibc",
              f"cache_lock: engine {cache['engine']}, type {cache['type']}")
        check(cache["contended"] >= 1, "cache_lock: no contention")
        check(10 * MS <= cache["wait_ns"]["total"] <= 10000 * MS,
              f"cache_lock: waited {cache['wait_ns']['total']} ns")
        check(has_function(cache, "waiters", "wait_for_cache_lock"),
              "cache_lock: no waiter stack in wait_for_cache_lock")
        check(cache["acquired_exact"] is False, "cache_lock: a glibc count called exact")
    cond = one_named(doc, "ready_cond", "conds")
    if cond:
        check((cond["signals"], cond["broadcasts"]) == (COND_SIGNALS, COND_BROADCASTS),
              f"ready_cond: signals {cond['signals']}, broadcasts {cond['broadcasts']}")


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in CASES:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(CASES)}}} LIB PROG WORKDIR")
    name, lib, prog, workdir = sys.argv[1:]
    CASES[name](Runner(lib, prog, workdir))
    for f in failures:
        print(f"FAILED {name}: {f}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
