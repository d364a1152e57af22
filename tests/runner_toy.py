"""Toy work for tests/test_runner.py and tests/runner_driver.py.

Top-level functions, so that the spawned workers of tinyadv.lab.runner can import them by name.
No numpy here: a worker of these tests should start in a few tens of milliseconds.
"""
import json
import os
import signal
import threading
import time

from gate import announce, announce_in_handler

_INIT = {"calls": 0, "tag": None}


def remember(tag):
    """An initializer: records its argument and how often it ran in this process."""
    _INIT["calls"] += 1
    _INIT["tag"] = tag


def slow_to_stop():
    """An initializer that makes the worker slow to stop, even when idle: it ignores SIGTERM,
    and a process only exits once its non-daemon threads have. The runner waits
    GRACE_SECONDS, then sends SIGKILL."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=time.sleep, args=(60,)).start()


def fail_to_start():
    raise RuntimeError("no data here (a failing initializer)")


def square(x):
    """x*x, or misbehave on request: "raise", "die" (SIGKILL itself), ("sleep", seconds),
    ("stubborn", seconds, marker): ignore SIGTERM, create the file marker, sleep;
    ("fork and die", seconds, pidfile): fork a child that sleeps, write its pid, SIGKILL
    ourselves."""
    if x == "raise":
        raise ValueError("a task that always fails")
    if x == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    if isinstance(x, tuple) and x[0] == "fork and die":  # a child keeps our pipe open
        child = os.fork()
        if child == 0:
            time.sleep(x[1])
            os._exit(0)
        with open(x[2], "w") as f:
            f.write(str(child))
        os.kill(os.getpid(), signal.SIGKILL)
    if isinstance(x, tuple):
        if x[0] == "stubborn":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            open(x[2], "w").close()
        time.sleep(x[1])
        return x
    return x * x


def describe(_):
    """What a worker looks like from inside: pid, initializer record, BLAS thread setting."""
    return {"pid": os.getpid(), "init": dict(_INIT),
            "blas": os.environ.get("OPENBLAS_NUM_THREADS")}


def result_path(out, i):
    return os.path.join(out, f"result_{i}.json")


def expected_result(i):
    """What task i returns; large (~300 kB pickled), so it crosses the pipe in many reads."""
    return list(range(i, i + 60_000))


def expected_file(i):
    """The bytes task i writes."""
    return json.dumps({"task": i, "sum_of_squares": sum(k * k for k in range(1000 * i))})


def slow_result(task):
    """Task (i, seconds, pause, out): compute for `seconds`, then write result_<i>.json
    atomically -- temporary name, `pause` seconds half written, rename -- as tinyadv's real
    work does, and announce each stage on stdout (tests/gate.py) so that tests can aim
    signals at them."""
    i, seconds, pause, out = task
    announce(f"task {i}: started")
    time.sleep(seconds)
    path = result_path(out, i)
    tmp = path + f".{os.getpid()}.tmp"
    text = expected_file(i)
    try:
        with open(tmp, "w") as f:
            f.write(text[:len(text) // 2])
            f.flush()
            announce(f"task {i}: writing")
            time.sleep(pause)
            f.write(text[len(text) // 2:])
        announce(f"task {i}: renaming")
        os.replace(tmp, path)
    except BaseException:  # SIGTERM from the runner arrives here as SystemExit
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    announce(f"task {i}: written")
    return expected_result(i)


def announce_start_and_stop():
    """An initializer: say that this worker is ready, and, when the runner stops it (SIGTERM),
    say so before exiting as the runner's own handler does -- two instants to aim at."""
    signal.signal(signal.SIGTERM, _announce_stop)
    announce(f"worker {os.getpid()}: ready")


def _announce_stop(signum, frame):
    announce_in_handler(f"worker {os.getpid()}: stopping")
    raise SystemExit(128 + signum)
