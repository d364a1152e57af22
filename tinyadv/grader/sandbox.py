"""Runs each submission in a child process of its own, limited in time and memory.

What a child gets
-----------------
- A fresh interpreter, ``python -B -P -m tinyadv.grader.child`` (child.py; -P, Python 3.11+:
  no folder of its own on sys.path), started in a new session: the teacher's Ctrl-C and
  signals to the checker's process group do not reach it, and everything it starts can be
  found (same session) and killed.
- An empty temporary working folder, an environment cut down to what Python needs (the
  teacher's tokens and passwords stay out), one BLAS thread.
- Three channels: its plan and inputs on stdin; its answers on a descriptor of its own; its
  stdout and stderr on a third, which is drained all the time -- printing megabytes can block
  neither side -- keeping the first OUTPUT_KEEP bytes for the report. Each is a Unix socket
  pair, not a pipe: another process of the same user can open a child's pipe anew through
  /proc/<pid>/fd and write into it (a sibling submission forging a friend's answers), but a
  socket cannot be opened that way.
- An identity and namespaces of its own, taken before the submission is imported
  (identity.py): run as root, it becomes nobody (its folder is made nobody's here first);
  run as anyone else, a user namespace of its own. Its own mount namespace shows every file
  system read-only but its folder, which becomes a tmpfs of ``scratch_bytes(--memory)``;
  its own network and IPC namespaces; a fresh session keyring.
- Limits it sets on itself before the submission is imported, and cannot raise again
  (child.py): address space (``--memory`` less its tmpfs), CPU time (a backstop), 64
  descriptors, and no new processes -- RLIMIT_NPROC for an ordinary user, and for root too a
  seccomp filter that refuses fork and clone (seccomp.py), with sockets, System V IPC, keys,
  memfd, io_uring and the limit and priority calls aimed at any other process. So the
  submission is one process: the memory limit holds for all of it, and nothing it starts can
  outlive its check.
- A wall-clock deadline (``--timeout``) kept here. At the deadline, or as soon as the child
  ends, its process group and every process left in its session are killed (SIGKILL); the
  checker is the subreaper of everything below it (procs.set_subreaper), so any orphan,
  however deep or detached (a session of its own), comes to it, and it kills until none is
  left (procs.kill_leftovers) -- for a machine where a child can start processes after all
  (root on a kernel without seccomp filters). Only then is the child's folder removed,
  whatever the submission did to its modes (remove_tree). The child dies with the checker
  (PR_SET_PDEATHSIG, set again after its change of user, which clears it): a kill -9 of the
  checker ends it, and it has started nothing.

Tried on this project's machine (Linux 6.18, x86_64): the seccomp filter works as root and as
an ordinary user (fork, a thread and subprocess.run all refused); so do the user, mount,
network and IPC namespaces (root directly, an ordinary user inside a user namespace of its
own); a memory cgroup could be made by
root only (cgroup v1 there, nothing delegated to ordinary users), so none is used: the tmpfs
counted in ``--memory``, the seccomp filter (no memfd, no shared memory, no second process)
and RLIMIT_AS hold the submission's memory for both users with no setup.
tests/test_grader_contained.py tries the chain of 80 sessions, the forks for memory and the
kill -9, as both users; tests/test_grader_identity.py what the namespaces and the filter
hold.

A full disk
-----------
The checker looks at the free space of the temporary folders' disk between every two looks
at the children (statvfs, every 50 ms at most). A file that did not pass while that disk was
full (under DISK_FULL_BYTES free) may have failed for want of room, not for its code: it is
checked a second time, alone, at the end -- unless its own folder held at least half of what
filled the disk (it filled it itself: its verdict stands, with a note). A file whose folder
cannot even be created is checked again likewise. What still meets a full disk the second time
is graded ``ungraded`` ("not gradable"), never a plain fail (cli.py).

Signals
-------
A submission may signal the checker (``os.kill(os.getppid(), SIGTERM)``). While children run,
the checker blocks the signals that would end it and collects them with sigtimedwait, which
says who sent each one. A signal from a child (or from a process of a child's session) is
held against that submission -- graded error -- and the run goes on. Any other (the teacher's
Ctrl-C, a kill from another terminal) stops the run: every child and every process below it
is killed and Interrupted is raised; cli.py then writes the verdicts so far -- except Ctrl-Z
and the like (SIGTSTP, SIGTTIN, SIGTTOU), which pause the checker as usual.

That needs *every* thread of the checker to block those signals, or the kernel hands one to
a thread that does not (NumPy's BLAS threads, say) and nobody learns the sender.
``python -m tinyadv.gradcheck`` blocks them before NumPy starts (procs.block_watched_signals).
Called from a process where some thread does not block them (a test, a notebook), the
checker falls back to plain handlers: any such signal stops the run, and Interrupted names
the files that were running -- never a verdict for them, never a silent pass. (The fault signals,
SIGSEGV and the like, get no handler there: one that returned would fault again forever.)

Shut in (Landlock)
------------------
Where the kernel offers Landlock (Linux 5.13+; ABI 6+ for all of it), each child, before the
submission is imported, restricts itself for good (child.py, isolation.py, landlock.py):
it reads only Python's library, NumPy and its own file (tinyadv's modules it may import are
loaded before), writes only its own temporary folder, can open no TCP connection, and can
signal (or ptrace) no process outside itself -- not the checker, not a sibling, not any
other process of the user. The report and the gradebook say what each file got
(``landlock-7``, or ``process-only: ...``; in full with its namespaces and user), and the
run prints one line about this machine. ``--sandbox require`` refuses to start without all
of it, namespaces included; ``--sandbox off`` skips Landlock and the namespaces.

What it does not stop
---------------------
Even shut in, a submission can still: read the metadata (stat: existence, size, times) of
any file; read any file of Python's installation and of the folders of the shared libraries
loaded (the C library's: /usr/lib/...); hold up to 2 MB of kernel buffers in pipes; use its
CPU and time limits as a side channel. Where the namespaces are missing (a container without
user namespaces, for an ordinary user), its folder is on the disk of the temporary folders
(64 MB a file, no cap on the total: see "A full disk") and the seccomp filter refuses chmod,
chown, utime and xattrs even inside it; the run's first line says which mechanism is missing.
Where Landlock is missing or partial (an older kernel, a container whose seccomp filter
refuses it, macOS, Windows), what it lacks is as below, and ``auto`` says so once.

Without Landlock (``process-only``), children run as the teacher's user (as nobody, run as
root): a submission can read and write the files that user may, and signal other processes
of the user. With ``--jobs`` > 1 it may kill or stop a sibling: a child killed by a signal
the checker did not send, or found stopped at its deadline, while another child ran beside
it, is checked again alone at the end, so its verdict is its own. It can also kill the
checker outright (SIGKILL) or stop it (SIGSTOP), signals no process can catch: the run then
ends with a non-zero exit status and the gradebook written so far (cli.py rewrites it after
every verdict), or stalls until resumed -- never a silent pass (and its own process, which
can start none, dies with the checker). In the few milliseconds before a child hides itself
(child.py, first lines), a process of the same user could attach a debugger to it (ptrace).
Run such a class in a throw-away account or container. Elsewhere than Linux, the memory cap
(RLIMIT_AS), descriptor hiding, orphan adoption, the namespaces, the seccomp filter and
signal senders (sigtimedwait) may be missing: each is skipped.
"""
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tinyadv.grader import channel, identity, isolation, procs

__all__ = ["Run", "Limits", "Interrupted", "run_all", "remove_tree", "folder_size",
           "WATCHED_SIGNALS", "OUTPUT_KEEP", "DISK_FULL_BYTES"]

OUTPUT_KEEP = 64 * 1024  # bytes of a child's stdout + stderr kept for the report
ANSWER_LIMIT = 16 * 2**20  # a child that sends more is stopped: the answers are a few KB
POLL_SECONDS = 0.05
READ_CHUNK = 1 << 16
# Below this many bytes free for an ordinary user, the disk of the temporary folders counts as
# full: a file that did not pass then is checked again (sandbox.py, "A full disk").
DISK_FULL_BYTES = 2 * 2**20
WATCHED_SIGNALS = procs.WATCHED_SIGNALS
# The environment a child keeps: what Python, NumPy and a locale need, nothing else.
KEPT_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "SYSTEMROOT",
                    "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH")
TINYADV_ROOT = str(Path(__file__).resolve().parents[2])
# Python 3.11+: -P, no folder of the command's own (the child's working folder) on sys.path.
SAFE_PATH = ("-P",) if sys.version_info >= (3, 11) else ()


def scratch_bytes(memory):
    """The size of the tmpfs a child's folder becomes (identity.py), out of its ``memory``."""
    return int(min(identity.SCRATCH_MAX, memory // 4))


def remove_tree(path):
    """Remove a child's temporary folder whatever the submission did to it: if a first try
    fails (a folder it made read-only, or unreadable: chmod 0500, 0000), every folder in it
    is made the owner's again (u+rwx, top down, links not followed) and it is tried again.
    Returns None, or why the folder is still there."""
    shutil.rmtree(path, ignore_errors=True)
    if not os.path.lexists(path):
        return None
    stack = [path]
    while stack:
        folder = stack.pop()
        try:
            os.chmod(folder, 0o700)
            with os.scandir(folder) as entries:
                stack += [e.path for e in entries if e.is_dir(follow_symlinks=False)]
        except OSError:
            pass
    try:
        shutil.rmtree(path)
    except OSError as exc:
        return f"the temporary folder {path} could not be removed ({exc})"
    return None


def folder_size(path, most=100_000):
    """Bytes in the files under ``path`` (links not followed), looking at ``most`` entries."""
    total, seen, stack = 0, 0, [path]
    while stack and seen < most:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    seen += 1
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_blocks * 512
        except OSError:
            continue
    return total


class Interrupted(Exception):
    """The run was stopped by a signal that was not known to come from a submission.

    sender: the sending process's id when known; suspects: the files running at the time
    when the sender is unknown (one of them may have sent it)."""

    def __init__(self, signum, sender=None, suspects=()):
        self.signum, self.sender, self.suspects = signum, sender, list(suspects)
        super().__init__(procs.signal_name(signum))


@dataclass(frozen=True)
class Limits:
    seconds: float  # wall time per file
    memory: int  # bytes of address space per child


@dataclass
class Run:
    """What one child did, as seen from outside."""

    path: Path
    answers: bytes = b""  # the frames it sent on its own pipe, undecoded
    output: bytes = b""  # the first OUTPUT_KEEP bytes of its stdout and stderr
    output_size: int = 0  # how many bytes it printed in all
    returncode: int = None  # negative: killed by that signal
    timed_out: bool = False
    stopped: bool = False  # found stopped (SIGSTOP) at the deadline
    seconds: float = 0.0
    problems: list = field(default_factory=list)  # what it did that a submission must not
    checked_again: str = None  # why this is a second run, alone
    not_started: str = None  # why its process could not be started (no room for its folder)
    disk_full: str = None  # the temporary folders' disk was full while it ran: in words
    filled_disk: bool = False  # ... and its own folder held most of what filled it


class _Child:
    """One running submission: its process, pipes and buffers."""

    def __init__(self, index, path, proc, fds, workdir, plan, deadline):
        self.index, self.path, self.proc = index, path, proc
        self.plan_fd, self.output_fd, self.answer_fd = fds  # our ends of its three channels
        self.open_fds = set(fds)
        self.workdir = workdir
        self.unsent = memoryview(plan)
        self.started, self.deadline = time.monotonic(), deadline
        self.answers, self.output = bytearray(), bytearray()
        self.registered = set()  # its descriptors still in the selector
        self.had_company = False  # another child ran at some time beside it
        self.saw_full_disk = False  # the temporary folders' disk was full while it ran
        self.run = Run(path)


def _child_environment(workdir):
    env = {name: os.environ[name] for name in KEPT_ENVIRONMENT if name in os.environ}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (TINYADV_ROOT, env.get("PYTHONPATH")) if p)
    env.update(TMPDIR=workdir,  # the one folder a shut-in child may write (isolation.py)
               PYTHONUNBUFFERED="1",  # a print just before a stall still reaches the report
               PYTHONDONTWRITEBYTECODE="1", PYTHONIOENCODING="utf-8",
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


class _Runner:
    def __init__(self, plan, limits, jobs, on_finish, nobody_folder=False):
        self.plan, self.limits, self.jobs, self.on_finish = plan, limits, jobs, on_finish
        self.nobody_folder = nobody_folder
        self.selector = selectors.DefaultSelector()
        self.live = {}  # pid -> _Child
        self.ever = {}  # pid -> _Child, every child of this run (for signals sent late)
        self.tmp_root = tempfile.gettempdir()  # where every child's folder is made
        self.full_disk_used = 0  # bytes in use on it when it was last seen full
        self.left = []  # pids of processes that could not be stopped at the end

    # -- starting and stopping ------------------------------------------------------------

    def start(self, index, path, again=None):
        try:
            workdir = tempfile.mkdtemp(prefix="tinyadv-check-")
            if self.nobody_folder:  # the child becomes nobody (identity.py): its folder too
                os.chown(workdir, identity.NOBODY, identity.NOBODY)
        except OSError as exc:  # a full disk, most likely: nothing of the file has run
            self._finished(index, Run(path, checked_again=again, not_started=(
                f"its temporary folder could not be created in {tempfile.gettempdir()} ({exc})")))
            return
        # (ours, the child's) for the plan, the output and the answers: see "What a child gets"
        pairs = [socket.socketpair() for _ in range(3)]
        ours = [mine.detach() for mine, _ in pairs]
        theirs = [its.detach() for _, its in pairs]
        plan_fd, output_fd, answer_fd = theirs
        try:
            proc = subprocess.Popen(
                [sys.executable, "-B", *SAFE_PATH, "-m", "tinyadv.grader.child", str(answer_fd),
                 str(os.getpid()), str(path.resolve())],
                stdin=plan_fd, stdout=output_fd, stderr=subprocess.STDOUT,
                pass_fds=(answer_fd,), cwd=workdir, env=_child_environment(workdir),
                start_new_session=True)
        except OSError as exc:
            for fd in ours:
                os.close(fd)
            remove_tree(workdir)
            self._finished(index, Run(path, checked_again=again, not_started=(
                f"its process could not be started ({exc})")))
            return
        finally:
            for fd in theirs:  # the child holds the only other ends: EOF when it ends
                os.close(fd)
        child = _Child(index, path, proc, ours, workdir, self.plan,
                       time.monotonic() + self.limits.seconds)
        child.run.checked_again = again
        for fd in ours:
            os.set_blocking(fd, False)
        for fd, event, kind in ((child.plan_fd, selectors.EVENT_WRITE, "plan"),
                                (child.output_fd, selectors.EVENT_READ, "output"),
                                (child.answer_fd, selectors.EVENT_READ, "answers")):
            self.selector.register(fd, event, (child, kind))
            child.registered.add(fd)
        self.live[proc.pid] = self.ever[proc.pid] = child
        if len(self.live) > 1:
            for other in self.live.values():
                other.had_company = True

    def finish(self, child):
        """Kill whatever is left of the child, read what it wrote, and report it."""
        procs.kill_group_and_session(child.proc.pid)
        child.proc.wait()
        # Every process it started, however deep or detached, before its folder is removed.
        others = {pid for pid in self.live if pid != child.proc.pid}
        left = procs.kill_leftovers(keep=others | self.preexisting)
        if left:
            child.run.problems.append(f"{len(left)} of the processes it started could not be "
                                      f"stopped (pids {', '.join(map(str, left[:10]))})")
        for fd, kind in ((child.output_fd, "output"), (child.answer_fd, "answers")):
            while self._read(child, fd, kind):  # every writer is dead: read to the end
                pass
        self._check_disk()
        run = child.run
        if child.saw_full_disk:
            own = folder_size(child.workdir)
            run.filled_disk = own >= 0.5 * self.full_disk_used
            run.disk_full = (f"the disk holding the temporary folders ({self.tmp_root}) was full "
                             f"while it ran; its own folder held {own / 2**20:.0f} MB")
        self._close(child)
        run.answers, run.output = bytes(child.answers), bytes(child.output)
        run.returncode = child.proc.returncode
        run.seconds = time.monotonic() - child.started
        reason = self._maybe_not_its_own_doing(child)
        if reason and run.checked_again is None:
            self.retries.append((child.index, child.path, reason))
        else:
            self._finished(child.index, run)

    def _finished(self, index, run):
        """Hand a run over; on_finish may ask for a second run, alone (a full disk)."""
        again = self.on_finish(index, run)
        if again and run.checked_again is None:
            self.retries.append((index, run.path, again))

    def _check_disk(self):
        """Note, for every child running now, whether the temporary folders' disk is full."""
        try:
            stat = os.statvfs(self.tmp_root)
        except (OSError, AttributeError):  # no statvfs (not a Unix): never known to be full
            return
        if stat.f_bavail * stat.f_frsize < DISK_FULL_BYTES:
            self.full_disk_used = max(self.full_disk_used,
                                      (stat.f_blocks - stat.f_bfree) * stat.f_frsize)
            for child in self.live.values():
                child.saw_full_disk = True

    def _maybe_not_its_own_doing(self, child):
        """Why the child's end may be a sibling's doing (None if it cannot be)."""
        run = child.run
        if not child.had_company or run.problems:
            return None
        if run.stopped:
            return "it was found stopped at its deadline while another submission ran beside it"
        if run.returncode < 0 and not run.timed_out:
            return (f"it was killed by {procs.signal_name(-run.returncode)} while another "
                    f"submission ran beside it")
        return None

    def _close(self, child):
        del self.live[child.proc.pid]
        for fd in list(child.registered):
            self._unregister(child, fd)
        for fd in list(child.open_fds):
            self._close_fd(child, fd)
        problem = remove_tree(child.workdir)
        if problem:
            print(f"warning: {problem}", file=sys.stderr)

    def _close_fd(self, child, fd):
        if fd in child.open_fds:
            child.open_fds.discard(fd)
            os.close(fd)

    def _unregister(self, child, fd):
        # Only a descriptor of this child's: once closed, its number may belong to another.
        if fd in child.registered:
            child.registered.discard(fd)
            self.selector.unregister(fd)

    def stop(self, child, problem):
        child.run.problems.append(problem)
        procs.kill_group_and_session(child.proc.pid)

    # -- pipes ----------------------------------------------------------------------------

    def _read(self, child, fd, kind):
        """Read one chunk; False at the end of the data or when nothing is ready."""
        try:
            data = os.read(fd, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            data = b""
        if not data:
            self._unregister(child, fd)
            return False
        if kind == "output":
            child.output += data[:max(0, OUTPUT_KEEP - len(child.output))]
            child.run.output_size += len(data)
        else:
            child.answers += data
            if len(child.answers) > ANSWER_LIMIT and not child.run.problems:
                self.stop(child, f"it sent more than {ANSWER_LIMIT // 2**20} MB on the answer pipe")
        return True

    def _write_plan(self, child, fd):
        try:
            sent = os.write(fd, child.unsent[:READ_CHUNK])
            child.unsent = child.unsent[sent:]
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # the child is gone or closed its stdin: it will be judged as it is
            child.unsent = child.unsent[:0]
        if not child.unsent:  # all sent: closing our end is the child's end of input
            self._unregister(child, fd)
            self._close_fd(child, fd)

    # -- signals --------------------------------------------------------------------------

    def _take_signals(self):
        """Handle every signal received since the last call (see "Signals" above)."""
        if not self.precise:
            if self.received:
                raise Interrupted(self.received[0], suspects=[c.path for c in self.live.values()])
            return
        while True:
            info = signal.sigtimedwait(WATCHED_SIGNALS, 0)
            if info is None:
                return
            culprit = self.ever.get(info.si_pid)
            if culprit is None and info.si_pid > 0:
                culprit = self.ever.get(procs.session_of(info.si_pid))
            if culprit is None and info.si_signo in procs.STOPPING_SIGNALS:
                os.kill(os.getpid(), signal.SIGSTOP)  # Ctrl-Z: pause, as it would have
                continue
            if culprit is None:
                raise Interrupted(info.si_signo, sender=info.si_pid or None)
            problem = f"it sent {procs.signal_name(info.si_signo)} to the checker"
            if culprit.proc.pid in self.live:
                self.stop(culprit, problem)
            else:  # already judged: a late signal from something it left behind
                self.on_late_signal(culprit.index, problem)

    def _watch_signals(self):
        """Start watching; returns a function that puts everything back."""
        old_mask = procs.block_watched_signals()
        self.precise = (old_mask is not None and hasattr(signal, "sigtimedwait")
                        and procs.every_thread_blocks(WATCHED_SIGNALS))
        self.received, old_handlers = [], {}
        if not self.precise:
            if old_mask is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            try:
                for signum in procs.HANDLED_SIGNALS:
                    old_handlers[signum] = signal.signal(signum, lambda n, _: self.received.append(n))
            except ValueError:  # not the main thread: signals keep their usual effect
                pass

        def restore():
            for signum, handler in old_handlers.items():
                signal.signal(signum, handler)
            if self.precise:
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        return restore

    # -- the loop -------------------------------------------------------------------------

    def run(self, paths, on_late_signal):
        self.on_late_signal = on_late_signal
        self.preexisting = {pid for pid, (ppid, _) in procs.process_table().items()
                            if ppid == os.getpid()}
        restore_signals = self._watch_signals()
        was_subreaper = procs.set_subreaper(True)
        was_dumpable = procs.set_dumpable(False)  # children cannot open our ends of their pipes
        queue = [(index, path, None) for index, path in enumerate(paths)][::-1]
        self.retries = []
        try:
            while queue or self.live or self.retries:
                if not queue and not self.live:  # second runs, one at a time: no sibling
                    queue, self.retries, self.jobs = self.retries[::-1], [], 1
                while queue and len(self.live) < self.jobs:
                    self.start(*queue.pop())
                for key, _ in self.selector.select(POLL_SECONDS):
                    child, kind = key.data
                    if kind == "plan":
                        self._write_plan(child, key.fd)
                    else:
                        self._read(child, key.fd, kind)
                self._take_signals()
                self._check_disk()
                now = time.monotonic()
                for child in list(self.live.values()):
                    if child.proc.poll() is not None:
                        self.finish(child)
                    elif now > child.deadline:
                        child.run.timed_out = True
                        child.run.stopped = procs.is_stopped(child.proc.pid)
                        procs.kill_group_and_session(child.proc.pid)
                        self.finish(child)
            self._take_signals()  # one sent just before the last child ended
        finally:
            for child in list(self.live.values()):  # interrupted: leave nothing behind
                procs.kill_group_and_session(child.proc.pid)
                child.proc.wait()
            self.left = procs.kill_leftovers(keep=self.preexisting)
            for child in list(self.live.values()):
                self._close(child)
            if was_subreaper is not None:
                procs.set_subreaper(was_subreaper)
            if was_dumpable is not None:
                procs.set_dumpable(was_dumpable)
            restore_signals()
            self.selector.close()


def run_all(paths, plan_record, plan_arrays, limits, jobs, on_finish, on_late_signal,
            sandbox_mode="auto"):
    """Run every file in ``paths`` in a child, ``jobs`` at a time, each shut in as
    ``sandbox_mode`` (isolation.MODES) asks.

    on_finish(index, Run) is called as each ends (in the order they end); if it returns a
    reason (a full disk), the file is checked a second time, alone, at the end (at most once).
    on_late_signal(index, problem) if a finished file's leftovers signal the checker.
    Returns the pids of processes that could not be stopped at the end ([] when none).
    Raises Interrupted if a signal from outside the submissions stops the run; the exception's
    ``left`` holds those pids then.
    """
    record = dict(plan_record, limits={"memory": int(limits.memory),
                                       "cpu_seconds": int(limits.seconds) + 5},
                  sandbox=dict(isolation.plan(sandbox_mode), scratch=scratch_bytes(limits.memory)))
    plan = channel.encode(record, plan_arrays)
    nobody = (sandbox_mode != "off" and hasattr(os, "geteuid") and os.geteuid() == 0
              and bool(isolation.identity_offered(sandbox_mode).get("nobody")))
    runner = _Runner(plan, limits, jobs, on_finish, nobody_folder=nobody)
    try:
        runner.run([Path(p) for p in paths], on_late_signal)
    except (Interrupted, KeyboardInterrupt) as exc:
        exc.left = runner.left
        raise
    return runner.left
