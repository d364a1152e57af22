"""Run the checker as the user running the suite and as an unprivileged teacher.

The grader's hostile tests run the checker twice where they can: as the user running the
suite and -- when that is root -- as an ordinary user, TINYADV_TEST_USER (default
``tinyadvtest``). Run as root, the suite makes that account itself (``useradd --system``,
no home, no login) if it is missing, so a fresh machine (CI) needs no setup. The account
runs this same Python (TINYADV_TEST_PYTHON to name another): when the interpreter lives in a
folder that user may not enter (pyenv in root's home, mode 700), the checker is started in a
mount namespace of the test's own where that folder is a tmpfs holding only the
interpreter's own folder, bound back from underneath -- nothing on the machine changes, and
the checker itself runs as the plain unprivileged user. Where none of that is possible (the
suite is not root; no useradd; no unshare) the unprivileged run is skipped, with the reason.
"""
import functools
import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from checking import REPO

TEST_USER = os.environ.get("TINYADV_TEST_USER", "tinyadvtest")
TEST_PYTHON = os.environ.get("TINYADV_TEST_PYTHON", sys.executable)

__all__ = ["TEST_USER", "TEST_PYTHON", "unprivileged_unavailable",
           "USERS", "popen_as", "account"]


def _ensure_account():
    """The test user's passwd entry, made if missing (root only); None if impossible."""
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or ("/usr/sbin/useradd" if os.path.exists(
        "/usr/sbin/useradd") else None)
    if useradd is None:
        return None
    subprocess.run([useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    "--user-group", TEST_USER], capture_output=True, timeout=60)
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        return None


def _can_enter(entry, folder):
    """Whether the user may search (enter) ``folder``, by its mode bits alone."""
    try:
        info = os.stat(folder)
    except OSError:
        return False
    if info.st_uid == entry.pw_uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == entry.pw_gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _walls(entry):
    """{folder the user cannot enter: [its child folders on the way to what Python needs]}."""
    import numpy

    needed = {os.path.realpath(p) for p in (TEST_PYTHON, sys.base_prefix, sys.prefix,
                                             os.path.dirname(numpy.__file__), REPO)}
    walls = {}
    for path in sorted(needed):
        parts = Path(path).parts
        for depth in range(1, len(parts)):
            folder = os.path.join(*parts[:depth])
            if not _can_enter(entry, folder):
                walls.setdefault(folder, set()).add(parts[depth])
                break
    return {wall: sorted(children) for wall, children in walls.items()}


def _launcher(entry):
    """The command prefix that runs a program as the test user (see the module docstring)."""
    drop = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups",
            "--"]
    walls = _walls(entry)
    if not walls:
        return drop
    script = []
    for wall, children in walls.items():
        for i, child in enumerate(children):
            script.append(f'mkdir -p "$T/{i}" && mount --bind "{wall}/{child}" "$T/{i}"')
        script.append(f'mount -t tmpfs -o mode=0755 tinyadv-test "{wall}"')
        for i, child in enumerate(children):
            script.append(f'mkdir -p "{wall}/{child}" && mount --move "$T/{i}" "{wall}/{child}"')
    script.append('rmdir "$T"/* "$T"')
    body = " && ".join(['T=$(mktemp -d /tmp/tinyadv-launch-XXXXXX)'] + script) + ' && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", body, "sh"] + drop


@functools.lru_cache(maxsize=None)
def unprivileged_unavailable():
    """None if the checker can be run as TEST_USER here, else why not."""
    if os.geteuid() != 0:
        return "the suite does not run as root, so it cannot start a process as another user"
    if not shutil.which("setpriv"):
        return "no setpriv command (util-linux) to start a process as another user"
    entry = _ensure_account()
    if entry is None:
        return f"no account {TEST_USER!r} and none could be made (useradd {TEST_USER})"
    launcher = _launcher(entry)
    if launcher[0] == "unshare" and not shutil.which("unshare"):
        return f"{TEST_PYTHON} is in a folder {TEST_USER} cannot enter, and there is no unshare"
    done = subprocess.run(launcher + [TEST_PYTHON, "-c", "import numpy, tinyadv.grader.cli"],
                          cwd="/", env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                        "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return f"{TEST_USER} cannot run the project's Python: {done.stderr.strip()[-300:]}"
    return None


def account():
    """The test user's passwd entry (only once unprivileged_unavailable() is None)."""
    return pwd.getpwnam(TEST_USER)


# Starts a program (argv[1:]) with unshare(2) refused, as in a container without user
# namespaces: a seccomp filter of four instructions (x86_64; see tinyadv/grader/seccomp.py).
WITHOUT_NAMESPACES = """
import ctypes, os, sys
code = [(0x20, 0, 0, 4), (0x15, 0, 3, 0xC000003E), (0x20, 0, 0, 0), (0x15, 0, 1, 272),
        (0x06, 0, 0, 0x00050001), (0x06, 0, 0, 0x7FFF0000)]
class Filter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]
class Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]
array = (Filter * len(code))(*[Filter(*c) for c in code])
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0
assert libc.syscall(317, 1, 0, ctypes.byref(Program(len(code), array))) == 0
os.execv(sys.argv[1], sys.argv[1:])
"""


def popen_as(user, command, **options):
    """subprocess.Popen(command) as ``user``: "this user", "unprivileged", or "unprivileged,
    no namespaces" (the same, with unshare refused: WITHOUT_NAMESPACES); for the latter two
    the command's first word (a Python) is TEST_PYTHON, run through the launcher."""
    if user.startswith("unprivileged"):
        python = [TEST_PYTHON]
        if user.endswith("no namespaces"):
            python = [TEST_PYTHON, "-c", WITHOUT_NAMESPACES, TEST_PYTHON]
        command = _launcher(account()) + python + list(command[1:])
    return subprocess.Popen(command, **options)


USERS = ["this user", pytest.param("unprivileged", id="unprivileged", marks=pytest.mark.skipif(
    "unprivileged_unavailable() is not None", reason="no unprivileged user; see "
    "tests/accounts.py (unprivileged_unavailable() says why)"))]
