"""python3 threads that fork, for the torture suite.

Worker threads contend on threading.Lock, RLock, Condition and queue.Queue
(and so on CPython's GIL, a pthread mutex and condition variable: the part
that runs on parklock under the preload) while another thread forks over and
over. Each child starts threads of its own on the same objects, checks exact
totals and exits with os._exit. Checked: every child exits 0, the parent's
totals are exact, and parklock is (or is not) loaded as PLK_EXPECT says.
Duration: PLK_TORTURE_SECONDS (default 3).
"""
import ctypes
import os
import queue
import sys
import threading
import time

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAILED:", what, file=sys.stderr, flush=True)


def engine():
    try:
        return ctypes.CDLL(None).parklock_engine
    except AttributeError:
        return None


expect = os.environ.get("PLK_EXPECT", "none")
fn = engine()
if expect == "none":
    check(fn is None, "parklock is not loaded")
else:
    check(fn is not None, "parklock is loaded")
    if fn is not None:
        fn.restype = ctypes.c_char_p
        check(fn().decode() == expect, "engine is " + expect)

seconds = float(os.environ.get("PLK_TORTURE_SECONDS") or 3)
stop = threading.Event()
lock = threading.Lock()
rlock = threading.RLock()
cond = threading.Condition(threading.Lock())
q = queue.Queue(maxsize=8)
counts = {"lock": 0, "rlock": 0, "items": 0, "turns": 0}
expected = {"lock": 0, "rlock": 0}
exp_lock = threading.Lock()
turn = [0]


def locker(n):
    mine = {"lock": 0, "rlock": 0}
    i = 0
    while not stop.is_set():
        i += 1
        if i % 2:
            with lock:
                counts["lock"] += 1
            mine["lock"] += 1
        else:
            with rlock:
                with rlock:
                    counts["rlock"] += 1
            mine["rlock"] += 1
        if i % 50 == 0:
            time.sleep(0)
    with exp_lock:
        for k in mine:
            expected[k] += mine[k]


def producer():
    n = 0
    while not stop.is_set():
        try:
            q.put(n, timeout=0.01)
            n += 1
        except queue.Full:
            pass
    q.put(None)
    q.put(None)
    return n


produced = [0]


def producer_main():
    produced[0] = producer()


def consumer():
    while True:
        item = q.get()
        if item is None:
            break
        with lock:
            counts["items"] += 1


def pinger(me):
    with cond:
        while True:
            while turn[0] not in (me, 2):
                cond.wait(timeout=1.0)
            if turn[0] == 2:
                return
            counts["turns"] += 1
            turn[0] = 2 if stop.is_set() else 1 - me
            cond.notify_all()


def child():
    # New threads on the parent's objects (none is held: the forker took
    # them around fork).
    total = [0]

    def work():
        for _ in range(500):
            with lock:
                total[0] += 1
            with rlock:
                pass
    ts = [threading.Thread(target=work) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if total[0] != 1500:
        os._exit(1)
    c2 = threading.Condition()
    with c2:
        c2.wait(timeout=0.001)
    os._exit(0)


forks = [0]
bad = [0]


def forker():
    end = time.monotonic() + seconds
    while time.monotonic() < end or forks[0] < 20:
        with lock, rlock:
            pid = os.fork()
        if pid == 0:
            child()
        _, status = os.waitpid(pid, 0)
        if status != 0:
            bad[0] += 1
            print("child exit status", status, file=sys.stderr, flush=True)
        forks[0] += 1
        time.sleep(0.005)


threads = [threading.Thread(target=locker, args=(i,)) for i in range(3)]
threads.append(threading.Thread(target=producer_main))
threads += [threading.Thread(target=consumer) for _ in range(2)]
threads += [threading.Thread(target=pinger, args=(i,)) for i in range(2)]
for t in threads:
    t.start()
f = threading.Thread(target=forker)
f.start()
f.join()
stop.set()
with cond:
    cond.notify_all()
for t in threads:
    t.join()

check(counts["lock"] == expected["lock"], "lock total")
check(counts["rlock"] == expected["rlock"], "rlock total")
check(counts["items"] == produced[0], "items consumed == produced")
check(bad[0] == 0, "children exit 0")
check(counts["turns"] >= 1, "ping-pong ran")
print("py_fork_threads [%s]: %d forks, %d locks, %d items, %d turns" % (
    expect, forks[0], counts["lock"] + counts["rlock"], counts["items"],
    counts["turns"]))
sys.exit(1 if failures else 0)
