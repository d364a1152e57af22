"""Process controls the sandbox relies on; each is a quiet no-op where the OS lacks it.

- prctl (Linux): a child dies with the checker (PR_SET_PDEATHSIG); a process hides its memory
  and file descriptors from other processes of the same user (PR_SET_DUMPABLE 0: /proc/<pid>/fd
  and /proc/<pid>/mem become unreadable to them -- root is not held back); the checker adopts
  every orphaned descendant of its children (PR_SET_CHILD_SUBREAPER), so a grandchild that
  outlives its parent can still be found and killed (kill_leftovers: until none is left).
- /proc: who is in which session, whose parent is whom, which signals each thread blocks.
- Signals: the ones a submission could send to end the checker (WATCHED_SIGNALS).
"""
import ctypes
import os
import signal
import time

__all__ = ["block_watched_signals", "every_thread_blocks", "die_with_parent", "set_dumpable",
           "set_subreaper", "process_table", "process_state", "is_stopped", "session_of",
           "kill_group_and_session",
           "kill_leftovers", "descendants", "is_alive", "drop_capabilities",
           "effective_capabilities", "has_capability", "signal_name", "WATCHED_SIGNALS",
           "STOPPING_SIGNALS", "HANDLED_SIGNALS", "PR_SET_PDEATHSIG"]

PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
SWEEP_SECONDS = 10.0  # kill_leftovers gives up after this long (it takes milliseconds)
# Signals a submission could send to end or stop the checker: every signal but those that
# cannot be blocked (SIGKILL, SIGSTOP), those whose default is to do nothing, and the two
# Python ignores (SIGPIPE, SIGXFSZ) -- blocked, a SIGPIPE the checker's own write to a dead
# child raises would wait to be read as if someone had sent it. Real-time signals end a
# process by default too. The fault signals (SIGSEGV and the like) are in:
# sent with kill() they can be blocked and read like any other, and a real fault of the
# checker's own still kills it, blocked or not (the kernel sees to that).
HARMLESS_SIGNALS = tuple(getattr(signal, name) for name in
                         ("SIGKILL", "SIGSTOP", "SIGCHLD", "SIGCONT", "SIGURG", "SIGWINCH",
                          "SIGPIPE", "SIGXFSZ")
                         if hasattr(signal, name))
STOPPING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTSTP", "SIGTTIN", "SIGTTOU")
                         if hasattr(signal, name))
FAULT_SIGNALS = tuple(getattr(signal, name) for name in
                      ("SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGTRAP", "SIGSYS")
                      if hasattr(signal, name))
if hasattr(signal, "valid_signals"):
    WATCHED_SIGNALS = tuple(sorted(s for s in signal.valid_signals()
                                   if s not in HARMLESS_SIGNALS))
else:  # no way to list them: the common ones
    WATCHED_SIGNALS = tuple(getattr(signal, name) for name in
                            ("SIGINT", "SIGTERM", "SIGABRT") if hasattr(signal, name))
# What can safely get a Python handler instead (sandbox.py's fallback): not a fault signal,
# whose handler would return to the faulting instruction forever.
HANDLED_SIGNALS = tuple(s for s in WATCHED_SIGNALS if s not in FAULT_SIGNALS)


def signal_name(number):
    """'SIGTERM' for 15; 'signal 40' for a number without a name (real-time signals)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def block_watched_signals():
    """Block WATCHED_SIGNALS in the calling thread (and in every thread it starts later).

    ``python -m tinyadv.gradcheck`` calls this before NumPy starts its BLAS threads: they
    inherit the mask, so a signal then waits until the checker reads it, with its sender
    (sandbox.py, "Signals"). Returns the previous mask, or None where there is no such call.
    """
    if not hasattr(signal, "pthread_sigmask"):
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED_SIGNALS)


def every_thread_blocks(signals):
    """True if every thread of this process blocks all of ``signals`` (False if unknown)."""
    try:
        threads = os.listdir("/proc/self/task")
    except OSError:
        return False
    wanted = sum(1 << (int(s) - 1) for s in signals)
    for thread in threads:
        try:
            with open(f"/proc/self/task/{thread}/status") as f:
                line = next(line for line in f if line.startswith("SigBlk:"))
        except (OSError, StopIteration):
            continue  # the thread ended meanwhile
        if int(line.split()[1], 16) & wanted != wanted:
            return False
    return True


def _prctl(option, arg=0):
    """prctl(option, arg) -> its result, or None where there is no prctl."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, ctypes.c_ulong(arg) if not isinstance(arg, ctypes._Pointer)
                          else arg, 0, 0, 0)
    except (OSError, AttributeError, TypeError):
        return None


def die_with_parent(expected_parent):
    """Be killed (SIGKILL) when the checker dies; exit now if it is already gone."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != expected_parent:  # it died before the line above took effect
        os._exit(1)


def set_dumpable(flag):
    """Set whether other processes of this user may read our memory and descriptors; return
    the previous setting (None where unknown)."""
    previous = _prctl(PR_GET_DUMPABLE)
    _prctl(PR_SET_DUMPABLE, int(bool(flag)))
    return None if previous is None or previous < 0 else bool(previous)


def set_subreaper(flag):
    """Adopt (or stop adopting) orphaned descendants; return the previous setting."""
    value = ctypes.c_int(0)
    got = _prctl(PR_GET_CHILD_SUBREAPER, ctypes.pointer(value))
    _prctl(PR_SET_CHILD_SUBREAPER, int(bool(flag)))
    return None if got is None or got < 0 else bool(value.value)


def process_table():
    """{pid: (ppid, session id)} of every process visible in /proc ({} without /proc)."""
    table = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return table
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # it ended meanwhile
            continue
        # "pid (comm) state ppid pgrp session ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2:].split()
        try:
            table[int(name)] = (int(fields[1]), int(fields[3]))
        except (IndexError, ValueError):
            continue
    return table


def process_state(pid):
    """The state letter of ``pid`` from /proc/PID/stat (b"R", b"S", b"T", b"Z", ...), or None
    if it is gone. The name in brackets may hold anything, so the state is read after its last
    closing bracket."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2:][:1]


def is_stopped(pid):
    """True if ``pid`` is stopped (SIGSTOP and the like) or traced."""
    return process_state(pid) in (b"T", b"t")


def session_of(pid):
    """The session id of ``pid``, or None if it cannot be read (it ended, or no /proc)."""
    try:
        return os.getsid(pid)
    except OSError:
        return None


def kill_group_and_session(leader):
    """SIGKILL the process group and every process in the session that ``leader`` started
    (the child is the leader of both: it was started in a new session)."""
    try:
        os.killpg(leader, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for pid, (_, session) in process_table().items():
        if session == leader:
            _kill(pid)


def descendants(roots, table):
    """``roots`` and every process below them in ``table`` (process_table())."""
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, stack, seen = [], list(roots), set()
    while stack:
        pid = stack.pop()
        if pid not in seen:
            seen.add(pid)
            found.append(pid)
            stack += children.get(pid, [])
    return found


def kill_leftovers(keep, seconds=SWEEP_SECONDS):
    """Kill until none is left: SIGKILL every child of ours not in ``keep`` and every process
    below it, reap the children, and look again -- with the subreaper on, killing a process
    hands its orphans to us, so a chain of any length, each link in a session of its own,
    ends after a few looks. Stops after ``seconds`` (a process that cannot be killed: stuck in
    the kernel, or another user's). Returns the pids still alive then ([] when none is)."""
    me, deadline = os.getpid(), time.monotonic() + seconds
    while True:
        table = process_table()
        roots = [pid for pid, (ppid, _) in table.items() if ppid == me and pid not in keep]
        if not roots:
            return []
        doomed = descendants(roots, table)
        for pid in doomed:
            _kill(pid)
        for pid in roots:  # reap them, or they stay zombies of ours
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        if time.monotonic() > deadline:
            return [pid for pid in doomed if is_alive(pid)]
        time.sleep(0.002)  # a killed process takes a moment to become a zombie


def is_alive(pid):
    """True if ``pid`` exists and is not a zombie."""
    return process_state(pid) not in (None, b"Z", b"X")


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
        return 1
    except (ProcessLookupError, PermissionError):
        return 0


PR_CAPBSET_DROP = 24
CAP_LAST_CAP_GUESS = 63  # the kernel refuses numbers it does not know (EINVAL): harmless
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def drop_capabilities():
    """Give up every capability for good (a child run as root; for others this changes
    nothing): first from the bounding set, so nothing started later regains one, then the
    effective, permitted and inheritable sets. Quietly does nothing where there is no capset."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        for cap in range(CAP_LAST_CAP_GUESS + 1):
            libc.prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), ctypes.c_ulong(0),
                       ctypes.c_ulong(0), ctypes.c_ulong(0))
        header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()  # all zero: no capability in any set
        libc.capset(ctypes.byref(header), data)
    except (OSError, AttributeError):
        pass


def has_capability(number):
    """True if this process holds capability ``number`` in its effective set (capget)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        if libc.capget(ctypes.byref(header), data) != 0:
            return False
    except (OSError, AttributeError):
        return False
    return bool(data[number // 32].effective >> (number % 32) & 1)


def effective_capabilities():
    """How many capabilities this process holds in its effective set (capget; no /proc,
    which a shut-in child cannot read), or None where that cannot be asked."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        if libc.capget(ctypes.byref(header), data) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return sum(bin(d.effective).count("1") for d in data)
