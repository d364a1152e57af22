"""tinyadv.lab.runner: every result once, errors with their tracebacks, dying workers, and
Ctrl-C at any moment (once, twice, to the parent or its whole process group).

The in-process tests run toy work from tests/runner_toy.py; spawned workers import it by
name, which works because they start with the parent's sys.path (pytest puts tests/ on it).
The interrupt tests run tests/runner_driver.py as a program of its own, with the helpers of
tests/interrupt_matrix.py.
"""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import interrupt_matrix as im
import runner_toy
from tinyadv.lab.runner import GRACE_SECONDS, WorkerError, run_in_workers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# -S: the driver needs no site-packages, and each run starts four interpreters (the driver,
# multiprocessing's resource tracker, two workers -- which inherit the flag): -S starts faster.
DRIVER = [sys.executable, "-S", os.path.join(ROOT, "tests", "runner_driver.py")]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get(
    "PYTHONPATH")]))}
TASKS = 6  # runner_driver.py's default; with 2 jobs and its timings a run takes about 1 s


def gone(pid):
    """True if no process has this pid any more (a zombie -- exited, not reaped -- counts as
    still there: the runner must reap its workers)."""
    return not os.path.exists(f"/proc/{pid}")


def ctrl_c_to_main_thread_after(seconds):
    """Send SIGINT to this process's main thread (where Python runs signal handlers and where
    the runner waits) from a timer thread."""
    main = threading.main_thread().ident
    timer = threading.Timer(seconds, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    return timer


# -- results and errors, in this process ------------------------------------------------------

@pytest.mark.parametrize("jobs, tasks", [(1, range(7)), (2, range(7)), (8, range(3))])
def test_every_result_arrives_once_and_the_workers_are_gone_after(jobs, tasks):
    tasks = list(tasks)
    with run_in_workers(tasks, runner_toy.square, jobs=jobs) as results:
        got = list(results)
        pids = results.pids
    assert sorted(got) == [(x, x * x) for x in tasks]
    assert len(pids) == min(jobs, len(tasks))
    assert all(gone(pid) for pid in pids)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_no_tasks_start_no_workers():
    with run_in_workers([], runner_toy.square, jobs=2) as results:
        assert list(results) == [] and results.pids == []


@pytest.mark.parametrize("blas_threads, expected", [(1, "1"), (3, "3"), (None, "7")])
def test_initializer_runs_once_per_worker_and_blas_threads_are_set_in_workers_only(
        monkeypatch, blas_threads, expected):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "7")
    with run_in_workers(range(6), runner_toy.describe, jobs=2, initializer=runner_toy.remember,
                        initargs=("data",), blas_threads=blas_threads) as results:
        seen = [seen for _, seen in results]
        pids = results.pids
    assert {s["pid"] for s in seen} <= set(pids)
    assert all(s["init"] == {"calls": 1, "tag": "data"} for s in seen)
    assert all(s["blas"] == expected for s in seen)
    assert os.environ["OPENBLAS_NUM_THREADS"] == "7"


def test_an_exception_in_a_worker_surfaces_with_its_traceback_and_stops_every_worker():
    started = time.monotonic()
    with pytest.raises(WorkerError) as error:
        with run_in_workers([("sleep", 60), "raise", 3], runner_toy.square, jobs=2) as results:
            pids = results.pids
            for _ in results:
                pass
    assert time.monotonic() - started < 5  # the 60 s sleeper was stopped, not waited for
    message = str(error.value)
    assert "Traceback" in message and 'in square' in message
    assert "ValueError: a task that always fails" in message
    assert error.value.task == "raise"
    assert len(pids) == 2 and all(gone(pid) for pid in pids)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_failing_initializer_is_reported():
    with pytest.raises(WorkerError, match="(?s)in the initializer.*no data here"):
        with run_in_workers([1, 2], runner_toy.square, jobs=2,
                            initializer=runner_toy.fail_to_start) as results:
            list(results)


@pytest.mark.parametrize("how", ["killed by another process", "killed itself"])
def test_a_worker_killed_mid_task_is_an_error_not_a_hang(how):
    tasks = [("sleep", 60), ("sleep", 60) if how == "killed by another process" else "die"]
    started = time.monotonic()
    killer = None
    try:
        with pytest.raises(WorkerError, match="died \\(killed by SIGKILL\\)") as error:
            with run_in_workers(tasks, runner_toy.square, jobs=2) as results:
                pids = results.pids
                if how == "killed by another process":
                    killer = threading.Timer(0.5, os.kill, (pids[1], signal.SIGKILL))
                    killer.start()
                list(results)
    finally:
        if killer is not None:
            killer.cancel()
    assert error.value.task == tasks[1]
    assert time.monotonic() - started < 5
    assert all(gone(pid) for pid in pids)


def test_a_dead_worker_is_noticed_even_if_a_process_it_forked_holds_its_pipe(tmp_path):
    """Then neither the worker's pipe nor its process sentinel (a pipe too) reports the
    death: the runner must ask the kernel (waitpid)."""
    pidfile = tmp_path / "child"
    started = time.monotonic()
    try:
        with pytest.raises(WorkerError, match="killed by SIGKILL"):
            with run_in_workers([("fork and die", 30, str(pidfile))], runner_toy.square,
                                jobs=1) as results:
                list(results)
        assert time.monotonic() - started < 5
    finally:
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_workers_start_with_sigint_blocked_even_in_a_fresh_interpreter():
    """A Ctrl-C to the group must not reach a worker that is still importing (it would die
    with a KeyboardInterrupt traceback): workers inherit SIGINT blocked and unblock it once
    they ignore it. Checked in a fresh interpreter, where the first spawn also starts
    multiprocessing's resource tracker -- which unblocks SIGINT after starting it."""
    code = ("import runner_toy\n"
            "from tinyadv.lab.runner import run_in_workers\n"
            "with run_in_workers([('sleep', 0.2)] * 2, runner_toy.square, jobs=2) as results:\n"
            "    for pid in results.pids:\n"
            "        with open(f'/proc/{pid}/status') as f:\n"
            "            print([line.split()[1] for line in f if line.startswith('SigBlk')][0])\n")
    env = {**ENV, "PYTHONPATH": os.pathsep.join([ROOT, os.path.join(ROOT, "tests")])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    masks = [int(word, 16) for word in done.stdout.split()]
    assert len(masks) == 2
    assert all(mask & (1 << (signal.SIGINT - 1)) for mask in masks), done.stdout


def test_ctrl_c_while_waiting_stops_the_workers_and_raises_keyboard_interrupt():
    started = time.monotonic()
    timer = ctrl_c_to_main_thread_after(0.5)
    try:
        with pytest.raises(KeyboardInterrupt):
            with run_in_workers([("sleep", 60)] * 3, runner_toy.square, jobs=2) as results:
                pids = results.pids
                list(results)
    finally:
        timer.cancel()
    assert time.monotonic() - started < 5
    assert all(gone(pid) for pid in pids)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler



def test_a_second_ctrl_c_while_the_workers_are_stopped_cannot_cut_the_stop_short(tmp_path):
    """The workers ignore SIGTERM, so stopping them takes GRACE_SECONDS and then SIGKILL; a
    second Ctrl-C comes in that time. It must neither escape early (leaving workers behind)
    nor be lost: one KeyboardInterrupt, after every worker is gone."""
    markers = [tmp_path / "a", tmp_path / "b"]
    main = threading.main_thread().ident

    def ctrl_c_twice():
        while not all(marker.exists() for marker in markers):
            time.sleep(0.01)
        signal.pthread_kill(main, signal.SIGINT)
        time.sleep(0.2)
        signal.pthread_kill(main, signal.SIGINT)

    sender = threading.Thread(target=ctrl_c_twice, daemon=True)
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            with run_in_workers([("stubborn", 60, str(m)) for m in markers], runner_toy.square,
                                jobs=2) as results:
                pids = results.pids
                sender.start()
                list(results)
        stopped = time.monotonic() - started
        assert all(gone(pid) for pid in pids)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        sender.join(timeout=10)
    assert GRACE_SECONDS < stopped < 10


def test_a_ctrl_c_while_the_workers_are_stopped_after_the_last_result_is_not_lost():
    """All results are in; leaving the `with` block stops the workers, which takes
    GRACE_SECONDS here. A Ctrl-C in that time must still raise KeyboardInterrupt."""
    timer = None
    try:
        with pytest.raises(KeyboardInterrupt):
            with run_in_workers([1, 2], runner_toy.square, jobs=2,
                                initializer=runner_toy.slow_to_stop) as results:
                assert sorted(results) == [(1, 1), (2, 4)]
                pids = results.pids
                timer = ctrl_c_to_main_thread_after(GRACE_SECONDS / 3)
        assert all(gone(pid) for pid in pids)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        if timer is not None:
            timer.join()


@pytest.mark.parametrize("kwargs, error, names", [
    (dict(jobs=0), ValueError, "jobs"),
    (dict(jobs=-2), ValueError, "jobs"),
    (dict(jobs=1.5), TypeError, "jobs"),
    (dict(jobs="2"), TypeError, "jobs"),
    (dict(jobs=True), TypeError, "jobs"),
    (dict(jobs=2, blas_threads=0), ValueError, "blas_threads"),
    (dict(jobs=2, work=lambda x: x), TypeError, "work"),
    (dict(jobs=2, work=None), TypeError, "work"),
    (dict(jobs=2, initializer=lambda: None), TypeError, "initializer"),
])
def test_bad_arguments_are_named_and_start_nothing(kwargs, error, names):
    kwargs = {"work": runner_toy.square, **kwargs}
    with pytest.raises(error, match=f"^{names}: expected"):
        run_in_workers([1, 2], **kwargs)


def test_iterating_outside_the_with_block_is_refused():
    run = run_in_workers([1], runner_toy.square, jobs=1)
    with pytest.raises(RuntimeError, match="inside the `with` block"):
        iter(run)
    assert run.pids == []  # nothing was started
    with run as results:
        assert list(results) == [(1, 1)]
    with pytest.raises(RuntimeError, match="inside the `with` block"):
        iter(run)


# -- Ctrl-C at any moment, to a program of its own ---------------------------------------------

def driver(out, *flags):
    return DRIVER + [str(out), *flags]


def result_files(folder):
    names = os.listdir(folder) if folder.exists() else []
    return {name: (folder / name).read_bytes() for name in names
            if name.startswith("result_") and name.endswith(".json")}  # not temporary files


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The result files of an uninterrupted run; the output shows every stage a signal can
    be aimed at."""
    out = tmp_path_factory.mktemp("reference")
    outcome = im.signal_run(driver(out), ROOT, env=ENV)
    assert outcome.returncode == 0 and not outcome.leftovers, im.describe(outcome)
    for i in range(TASKS):
        for stage in ("started", "writing", "renaming", "written"):
            assert f"task {i}: {stage}" in outcome.output
        assert f"got {i} (" in outcome.output
    for line in ("ready", "stopping", "all done", "finished"):
        assert line in outcome.output, line
    files = result_files(out)
    assert sorted(files) == [f"result_{i}.json" for i in range(TASKS)]
    return files


# Where the signals are aimed, densest where a task finishes. Held instants: the program stops
# at the line until the signals are out (tests/gate.py), so the signal finds it exactly there
# -- a worker starting, computing, with its result half written, written but not renamed,
# renamed; the caller handling a result, the first and the last; the runner stopping the
# workers after the last result; the driver after the `with` block. Three moments between
# lines cannot be held from outside the runner -- spawning the workers, a ~300 kB result
# crossing the pipe (a partly read pickle), the runner resuming after the caller -- so they
# are aimed by time after a line; the driver is held at "all done" in every case, so it can
# never finish before the signal arrives, and every case must end interrupted (130).
HELD = ["ready", "task 0: started", "task 0: writing", "task 0: renaming", "task 0: written",
        "got 0", "task 3: written", "got 3", "task 5: writing", "task 5: renaming",
        "(6 of", "stopping", "all done"]
TIMED = [("started", 0.0), ("task 1: written", 0.003), ("(2 of", 0.031)]
INSTANTS = [(text, 0.0) for text in HELD[:1]] + TIMED[:1] + [
    (text, 0.0) for text in HELD[1:6]] + TIMED[1:] + [(text, 0.0) for text in HELD[6:]]
END = "all done"
# (target, signals): once or twice to the parent alone, once or twice to the whole group (a
# terminal's Ctrl-C; GNU timeout signals the child, then its group) -- at every instant; and
# five times to the group at every fourth instant.
MODES = [("parent", 1), ("parent", 2), ("group", 1), ("group", 2)]
MANY = ("group", 5)
GAPS = [0.0, 0.002, 0.005, 0.01, 0.02]  # between repeated signals: inside the stop sequence


def interrupt_and_resume(out, at, target, times, gap, reference):
    """One case: interrupt a run, check it stopped cleanly and kept every finished result,
    then rerun it to the end. Returns (outcome, problems)."""
    hold = sorted({at[0], END}) if at[0] in HELD else [END]
    outcome = im.signal_run(driver(out), ROOT, at=at, target=target, times=times, gap=gap,
                            env=ENV, gate=out.parent / f"{out.name}-gate", hold=hold)
    found = im.problems(outcome, codes=(130,))
    if "interrupted" not in outcome.output:
        found.append("no 'interrupted' from the driver")
    if "finished" in outcome.output:
        found.append("the driver finished although the signal came before its end")
    if "Traceback" in outcome.output:  # e.g. a worker hit by Ctrl-C while it was starting
        found.append("a traceback was printed")
    found += [f"temporary file left: {path}" for path in im.temporary_files(out)]
    kept = result_files(out)
    found += [f"{name} is not intact" for name in kept if kept[name] != reference[name]]
    for i in range(TASKS):
        if f"task {i}: written" in outcome.output and f"result_{i}.json" not in kept:
            found.append(f"task {i} finished but result_{i}.json is missing")
    # Timings and jobs do not change what a task writes: the rerun goes as fast as it can.
    rerun = im.signal_run(driver(out, "--jobs", "1", "--seconds", "0", "--pause", "0",
                                 "--handling", "0"), ROOT, env=ENV)
    if rerun.returncode != 0 or rerun.leftovers:
        found.append("the rerun failed:\n" + im.describe(rerun))
    elif f"started: {TASKS - len(kept)} to run" not in rerun.output:
        found.append(f"the rerun did not do only the {TASKS - len(kept)} missing task(s)")
    if result_files(out) != reference:
        found.append("after the rerun the results differ from an uninterrupted run")
    return outcome, found


def test_ctrl_c_at_any_moment_stops_cleanly_and_a_rerun_completes_identically(
        tmp_path, reference):
    cases = [(i, at, target, times, GAPS[(i + m) % len(GAPS)])
             for i, at in enumerate(INSTANTS)
             for m, (target, times) in enumerate(MODES + [MANY] * (i % 4 == 0))]
    calls = [lambda i=i, at=at, target=target, times=times, gap=gap: interrupt_and_resume(
        tmp_path / f"case{i}-{target}-{times}", at, target, times, gap, reference)
        for i, at, target, times, gap in cases]
    outcomes = im.run_parallel(calls, parallel=16)
    failures = [f"{im.describe(outcome)}\n    problems: {found}"
                for outcome, found in outcomes if found]
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(failures)
    slowest = max(outcome.exit_seconds for outcome, _ in outcomes)
    print(f"{len(cases)} cases, all interrupted, slowest exit {slowest:.2f} s after the first "
          f"signal")


def test_workers_die_with_their_parent_even_by_sigkill(tmp_path):
    outcome = im.signal_run(driver(tmp_path, "--seconds", "60"), ROOT, at=("task 1: started", 0.1),
                            target="parent", signum=signal.SIGKILL, env=ENV, settle=5.0)
    assert outcome.returncode == -signal.SIGKILL, im.describe(outcome)
    assert not outcome.leftovers and outcome.cleared_seconds < 5.0, im.describe(outcome)
