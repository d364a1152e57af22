"""Every later classmate is graded as if alone: no child changes the checker, and a checker
that dies anyway leaves the verdicts it had.

Before issue 36, prlimit on the checker was no signal: one submission lowered the checker's
stack limit so that every later child died at start, another lowered its CPU limit and the
kernel killed the checker (exit 137: no verdicts written, last week's gradebook kept); as an
ordinary user a submission set the checker to nice 19 / SCHED_IDLE, inherited by every later
classmate. Now the seccomp filter refuses those calls aimed at any process but the child's
own (seccomp.py) -- and run as root, the child is nobody besides -- and the gradebook is
rewritten after every verdict (cli.py), so even SIGKILL of the checker loses nothing judged.

Judged on the side effects, as root and as an unprivileged teacher: what a classmate graded
before the attacker and one graded after it inherit from the checker (stack limit, niceness,
scheduling policy, CPU affinity, I/O priority) must be the same; the checker ends normally
with every verdict; and, killed with SIGKILL while the third of four files runs, it leaves a
gradebook with the first two verdicts and the rest ``ungraded``.
"""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from accounts import USERS, unprivileged_unavailable  # noqa: F401  (USERS' skip reads it)
from checking import CORRECT_RELU, REPO, blocks, gradebook
from classroom import (place, processes_mentioning, rows_by_file, run_checker,  # noqa: F401
                       survivors, write_file)

REPORTER = CORRECT_RELU + """
    import ctypes, os, resource
    libc = ctypes.CDLL(None, use_errno=True)
    print("inherited:", "stack", resource.getrlimit(resource.RLIMIT_STACK),
          "nice", os.getpriority(os.PRIO_PROCESS, 0), "policy", os.sched_getscheduler(0),
          "cpus", sorted(os.sched_getaffinity(0)), "io", libc.syscall(252, 1, 0))
    """
ATTACKER = """
    import ctypes, os, resource
    checker = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)

    def attempt(what, action):
        try:
            if action() == -1:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            print(what, "done")
        except OSError as exc:
            print(what, "refused:", type(exc).__name__)

    attempt("checker stack", lambda: resource.prlimit(checker, resource.RLIMIT_STACK, (65536, 65536)))
    attempt("checker nice", lambda: os.setpriority(os.PRIO_PROCESS, checker, 19))
    attempt("checker idle", lambda: os.sched_setscheduler(checker, os.SCHED_IDLE, os.sched_param(0)))
    attempt("checker cpus", lambda: os.sched_setaffinity(checker, {min(os.sched_getaffinity(0))}))
    attempt("checker io", lambda: libc.syscall(251, 1, checker, 3 << 13))  # ioprio_set: idle
    attempt("checker cpu time", lambda: resource.prlimit(checker, resource.RLIMIT_CPU, (1, 1)))
    attempt("my own nice", lambda: os.setpriority(os.PRIO_PROCESS, 0, 5))  # its own: allowed

    def relu_backward(dout, cache):
        return dout * (cache > 0)
    """


@pytest.mark.parametrize("user", USERS)
def test_no_child_changes_the_checkers_limits_or_priority(user, place):
    base, tmp, out = place
    folder = base / "class"
    write_file(folder, "a_reports.py", REPORTER)
    write_file(folder, "m_limits.py", ATTACKER)
    write_file(folder, "z_reports.py", REPORTER)
    done = run_checker(user, [folder, "--timeout", "30", "--report", out / "grades.csv"],
                       base, tmp)
    assert done.returncode == 0, done.stdout + done.stderr  # alive, every file graded
    assert rows_by_file(gradebook(out / "grades.csv")) == {
        str(folder / name): {"relu_backward": "pass"}
        for name in ("a_reports.py", "m_limits.py", "z_reports.py")}
    said = blocks(done.stdout)
    inherited = [next(line for line in said[str(folder / name)].splitlines()
                      if "inherited:" in line) for name in ("a_reports.py", "z_reports.py")]
    assert inherited[0] == inherited[1], inherited
    attacker = said[str(folder / "m_limits.py")]
    for what in ("checker stack", "checker nice", "checker idle", "checker cpus", "checker io",
                 "checker cpu time"):
        assert f"{what} refused:" in attacker, (what, attacker)
    assert "my own nice done" in attacker


@pytest.mark.parametrize("user", USERS)
def test_a_checker_killed_outright_leaves_the_verdicts_it_had(user, place):
    base, tmp, out = place
    folder = base / "class"
    for name in ("a_ok.py", "b_ok.py", "d_ok.py"):
        write_file(folder, name, CORRECT_RELU)
    write_file(folder, "c_stall.py", "import time\ntime.sleep(600)\n" + textwrap.dedent(CORRECT_RELU))
    (out / "grades.csv").write_text("file,function,status\nlast week's,x,pass\n")
    checker = run_checker(user, [folder, "--report", out / "grades.csv", "--gradescope",
                                 out / "results.json"], base, tmp, wait=False)
    try:
        # One file at a time: once c_stall runs, a and b are judged. No sleep, no race.
        deadline = time.monotonic() + 60
        while not processes_mentioning(str(folder / "c_stall.py")) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(checker.pid, signal.SIGKILL)
        checker.communicate(timeout=60)
    finally:
        if checker.poll() is None:
            checker.kill()
    assert checker.returncode == -signal.SIGKILL
    assert survivors(folder) == []  # its children died with it
    assert rows_by_file(gradebook(out / "grades.csv")) == {
        str(folder / "a_ok.py"): {"relu_backward": "pass"},
        str(folder / "b_ok.py"): {"relu_backward": "pass"},
        str(folder / "c_stall.py"): {"": "ungraded"},
        str(folder / "d_ok.py"): {"": "ungraded"}}
    assert "the checker stopped before the end" in (out / "grades.csv").read_text()
    doc = json.loads((out / "results.json").read_text())
    assert doc["output"].startswith("INCOMPLETE: the run was still going: 2 files not graded")
    assert [t["status"] for t in doc["tests"]] == ["passed", "passed", "failed", "failed"]


def test_the_filter_refuses_what_it_says_for_any_user(tmp_path):
    # The filter alone, in a process of this user: each call it refuses, tried with harmless
    # arguments (a user id nobody has; this process's own parent, the test), gets EPERM.
    script = textwrap.dedent("""
        import ctypes, errno, os, resource, socket, sys
        from tinyadv.grader import seccomp
        assert seccomp.install() is None
        libc = ctypes.CDLL(None, use_errno=True)
        parent = os.getppid()
        def refused(action):
            try:
                result = action()
            except OSError as exc:
                return exc.errno == errno.EPERM
            return result == -1 and ctypes.get_errno() == errno.EPERM
        calls = {
            "tcp": lambda: socket.socket(),
            "udp": lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
            "mptcp": lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262),
            "unix": lambda: socket.socket(socket.AF_UNIX),
            "fork": os.fork,
            "memfd": lambda: os.memfd_create("x"),
            "shmget": lambda: libc.syscall(29, 0, 4096, 0o1600),
            "msgget": lambda: libc.syscall(68, 0, 0o1600),
            "keyctl": lambda: libc.syscall(250, 0, -3, 0, 0, 0),
            "add_key": lambda: libc.syscall(248, b"user", b"x", b"y", 1, -3),
            "io_uring": lambda: libc.syscall(425, 1, None),
            "prlimit parent": lambda: resource.prlimit(parent, resource.RLIMIT_STACK),
            "nice a user": lambda: os.setpriority(os.PRIO_USER, 4242, 19),
            "nice a group": lambda: os.setpriority(os.PRIO_PGRP, 4242, 19),
            "nice parent": lambda: os.setpriority(os.PRIO_PROCESS, parent, 19),
            "sched parent": lambda: os.sched_setaffinity(parent, os.sched_getaffinity(0)),
            "unshare": lambda: os.unshare(0) if hasattr(os, "unshare") else libc.unshare(0),
        }
        allowed = {
            "socketpair": socket.socketpair,
            "prlimit self": lambda: resource.prlimit(0, resource.RLIMIT_STACK),
            "nice self": lambda: os.setpriority(os.PRIO_PROCESS, os.getpid(), 1),
            "chmod": lambda: os.chmod(sys.argv[1], 0o600),
        }
        print(sorted(n for n, a in calls.items() if not refused(a)),
              sorted(n for n, a in allowed.items() if refused(a)))
        """)
    path = tmp_path / "f.txt"
    path.write_text("x")
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.stdout.strip() == "[] []", done.stdout + done.stderr
