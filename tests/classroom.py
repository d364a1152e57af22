"""Helpers for the hostile classroom tests: a class folder under /tmp, the checker run as
a teacher runs it (in a subprocess, as the suite's user or the unprivileged one: accounts.py),
and the side effects read back: files' hashes, processes left, the gradebook's rows.

The class folders live in their own folder under /tmp (readable by the unprivileged user),
not in pytest's tmp_path (readable by its owner only).
"""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from accounts import account, popen_as, unprivileged_unavailable
from checking import REPO
from tinyadv.grader import procs

__all__ = ["place", "new_place", "run_checker", "processes_mentioning", "survivors", "hashes",
           "rows_by_file", "write_file", "give_to_teacher"]


def new_place(prefix="tinyadv-contained-"):
    """A fresh folder under /tmp that the unprivileged user may read: (base, tmp, out), the
    last two its own (the checker's TMPDIR, and where its gradebook goes). Remove it with
    shutil.rmtree(base)."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    base.chmod(0o755)
    tmp, out = base / "tmp", base / "out"
    tmp.mkdir()
    out.mkdir()
    if os.geteuid() == 0 and unprivileged_unavailable() is None:
        user = account()
        for folder in (tmp, out):
            os.chown(folder, user.pw_uid, user.pw_gid)
    return base, tmp, out


@pytest.fixture
def place():
    """new_place(), removed after the test."""
    base, tmp, out = new_place()
    yield base, tmp, out
    shutil.rmtree(base, ignore_errors=True)


def run_checker(user, argv, cwd, tmp, timeout=120, wait=True):
    """python -m tinyadv.gradcheck ARGV in ``cwd`` as ``user``, with TMPDIR ``tmp``; returns
    the CompletedProcess (or, with wait=False, the Popen, in a session of its own)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO),
           "TMPDIR": str(tmp), "LANG": "C.UTF-8", "HOME": str(tmp)}
    command = [sys.executable, "-m", "tinyadv.gradcheck", *map(str, argv)]
    proc = popen_as(user, command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
    if not wait:
        return proc
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def processes_mentioning(text):
    """Live processes (not zombies) whose command line holds ``text``, other than this one."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read() and procs.is_alive(int(pid)) and int(pid) != os.getpid():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def survivors(folder, seconds=5.0):
    """The processes still running a file of ``folder`` after up to ``seconds`` (SIGKILL is
    not instantaneous, nor is init's reaping of what it inherits)."""
    deadline = time.monotonic() + seconds
    while processes_mentioning(str(folder)) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = processes_mentioning(str(folder))
    for pid in left:  # never leave them to the rest of the suite
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return left


def hashes(folder):
    """{relative path: sha256 of a regular file, or 'link -> target'} under ``folder``."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            path = os.path.join(root, name)
            key = os.path.relpath(path, folder)
            if os.path.islink(path):
                found[key] = "link -> " + os.readlink(path)
            else:
                with open(path, "rb") as f:
                    found[key] = hashlib.sha256(f.read()).hexdigest()
    return found


def rows_by_file(rows):
    """{file cell without a spreadsheet's leading quote: {function: status}}; also checks that
    no (file, function) pair has two rows."""
    found = {}
    for row in rows:
        name = row["file"][1:] if row["file"].startswith("'") else row["file"]
        functions = found.setdefault(name, {})
        assert row["function"] not in functions, f"two rows for {name}: {row['function']}"
        functions[row["function"]] = row["status"]
    return found


def write_file(folder, name, code):
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(code))
    path.chmod(0o644)
    return path


def give_to_teacher(user, *paths):
    """Make ``paths`` (and everything under them) the unprivileged teacher's when ``user`` is
    "unprivileged" -- the files a teacher's own checker could change as their owner."""
    if not user.startswith("unprivileged"):
        return
    entry = account()
    for top in paths:
        for root, dirs, files in os.walk(top):
            for name in [root] + [os.path.join(root, n) for n in dirs + files]:
                os.lchown(name, entry.pw_uid, entry.pw_gid)
