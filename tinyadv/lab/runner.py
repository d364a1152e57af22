"""Run tasks in worker processes -- and stop them cleanly on Ctrl-C, however often it comes.

    with run_in_workers(tasks, work, jobs=2) as results:
        for task, result in results:  # in the order they finish
            ...

Why not ``multiprocessing.Pool``? Its shutdown (terminate, then join) waits on helper threads
and pipes, and a second Ctrl-C during the first one's cleanup left it half torn down with
``join()`` waiting forever. Here every step is explicit and small:

- Each worker is a spawned process with its own pipe. The parent sends one task at a time
  to an idle worker and waits on every busy worker's pipe *and* process sentinel (and asks
  the kernel every CHECK_SECONDS), so a worker that dies (out of memory, a segfault, kill -9)
  is reported instead of waited for.
- Workers ignore SIGINT (a terminal sends Ctrl-C to the whole process group; the parent
  decides), turn SIGTERM into a normal exit (their ``finally`` blocks run, so half-written
  temporary files are removed), leave when their pipe closes, and are killed by the kernel
  if the parent dies, even by SIGKILL.
- In the parent the first Ctrl-C raises KeyboardInterrupt as usual; after it, and during the
  ``with`` statement's entry and exit whatever the cause, a Ctrl-C is only counted
  (``_on_sigint``), so starting and stopping the workers cannot be cut short.
"""
import ctypes
import multiprocessing
import os
import pickle
import signal
import threading
import time
import traceback
from multiprocessing import resource_tracker
from multiprocessing.connection import wait

__all__ = ["run_in_workers", "WorkerError", "GRACE_SECONDS"]

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
GRACE_SECONDS = 1.0  # after SIGTERM, how long a worker may take to exit before SIGKILL
CHECK_SECONDS = 0.5  # how often the parent, waiting for results, checks that workers live
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class WorkerError(RuntimeError):
    """A task raised in a worker (the message holds its traceback), or a worker died."""

    def __init__(self, message, task):
        super().__init__(message)
        self.task = task


def run_in_workers(tasks, work, *, jobs, initializer=None, initargs=(), blas_threads=1):
    """Run ``work(task)`` for every task in ``jobs`` spawned worker processes.

    Returns a context manager; inside its ``with`` block, iterate over it to get
    ``(task, result)`` pairs as each task finishes (unordered). Leaving the block stops every
    worker, whether the tasks are all done, the loop was left early, or an exception (Ctrl-C
    included) is on its way out; only then does the exception go on. The workers live exactly
    as long as the ``with`` block, so they cannot leak.

    tasks         an iterable of picklable tasks (read at once)
    work          a function defined at the top level of a module: the workers import it by
                  name. It returns a picklable result.
    jobs          the number of worker processes (int >= 1); no more are started than tasks
    initializer   called as ``initializer(*initargs)`` once in each worker before its first
                  task (to load data, say); top level too
    blas_threads  OPENBLAS/OMP/MKL_NUM_THREADS in the workers (None: leave them as they are).
                  The parent's environment holds them only while the workers are spawned.

    Raises ``WorkerError`` (a RuntimeError) if a task or the initializer raises in a worker --
    the message carries the worker's traceback -- or a worker dies. On Ctrl-C the workers are
    stopped within about GRACE_SECONDS and KeyboardInterrupt propagates; further Ctrl-Cs
    during the stop are absorbed into it. Your SIGINT handler is restored before that, so if
    your own ``except KeyboardInterrupt`` cleanup must not be interrupted either, make its
    first statement ``signal.signal(signal.SIGINT, signal.SIG_IGN)``.
    """
    for name, value in (("jobs", jobs), ("blas_threads", blas_threads)):
        if value is None and name == "blas_threads":
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name}: expected an integer >= 1, got {value!r}")
        if value < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {value}")
    for name, function in (("work", work), ("initializer", initializer)):
        if name == "initializer" and function is None:
            continue
        try:
            sendable = callable(function) and bool(pickle.dumps(function))  # as the spawn will
        except Exception:
            sendable = False
        if not sendable:
            raise TypeError(f"{name}: expected a function defined at the top level of a module "
                            f"(spawned workers import it by name), got {function!r}")
    tasks = list(tasks)
    return WorkerRun(tasks, work, min(jobs, len(tasks)), initializer, tuple(initargs),
                     blas_threads)


class WorkerRun:
    """What run_in_workers returns: the workers of one ``with`` block."""

    def __init__(self, tasks, work, jobs, initializer, initargs, blas_threads):
        self._tasks, self._jobs, self._blas_threads = tasks, jobs, blas_threads
        self._worker_args = (work, initializer, initargs, os.getpid())
        self._workers = []  # (process, our end of its pipe), in start order
        self._state = "new"  # -> "running" -> "stopped"
        self._sigints = 0  # Ctrl-Cs seen while our handler was installed
        self._interrupted = False  # the first one has raised KeyboardInterrupt
        self._previous_handler = None

    @property
    def pids(self):
        """Process ids of the workers (for monitoring and tests)."""
        return [process.pid for process, _ in self._workers]

    def _on_sigint(self, signum, frame):
        """Python runs a signal handler between two bytecodes of the main thread, and hands it
        the frame it interrupted. Only the first Ctrl-C raises KeyboardInterrupt, and never
        inside __enter__ or __exit__ (their callees included: we walk up the stack), where it
        would abandon starting or stopping the workers half done. The others are counted."""
        self._sigints += 1
        while frame is not None and frame.f_code not in _UNINTERRUPTIBLE:
            frame = frame.f_back
        if frame is None and not self._interrupted:
            self._interrupted = True
            raise KeyboardInterrupt

    def __enter__(self):
        if self._state != "new":
            raise RuntimeError("a run_in_workers(...) object can be used in one `with` only")
        # Only the normal "Ctrl-C raises KeyboardInterrupt" is replaced; SIG_IGN, SIG_DFL or
        # a handler of your own are left alone (and signal handlers live in the main thread).
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous_handler = signal.signal(signal.SIGINT, self._on_sigint)
        self._state = "running"
        try:
            self._start_workers()
            if self._sigints:
                raise KeyboardInterrupt  # a Ctrl-C while we were starting, held until now
        except BaseException:
            self._stop()
            raise
        self._results = self._deliver()
        return self

    def __exit__(self, exc_type, exc, tb):
        self._stop()
        if self._sigints and not isinstance(exc, KeyboardInterrupt):
            raise KeyboardInterrupt  # a Ctrl-C arrived while we were stopping: keep it
        return False

    def __iter__(self):
        if self._state != "running":
            raise RuntimeError("iterate inside the `with` block: "
                               "with run_in_workers(...) as results: for task, result in results")
        return self._results

    def _start_workers(self):
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked locks
        blas = ({} if self._blas_threads is None else
                {name: str(self._blas_threads) for name in BLAS_THREAD_VARIABLES})
        saved = {name: os.environ.get(name) for name in blas}
        # A spawned child starts with its parent's signal mask. With SIGINT blocked here, a
        # Ctrl-C to the group cannot hit a worker still importing, before it ignores SIGINT.
        # Start multiprocessing's resource tracker first: starting it unblocks SIGINT.
        resource_tracker.ensure_running()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        os.environ.update(blas)  # BLAS reads them when the worker imports numpy
        try:
            for _ in range(self._jobs):
                ours, theirs = context.Pipe()
                # daemon: should a worker ever outlive its `with` block, multiprocessing's
                # exit handler terminates it rather than waiting for it. (So a worker cannot
                # start processes of its own with multiprocessing.)
                process = context.Process(target=_worker_main, args=(theirs, *self._worker_args),
                                          daemon=True)
                try:
                    process.start()
                finally:
                    theirs.close()  # only the worker holds its end: its exit means EOF for us
                self._workers.append((process, ours))
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def _deliver(self):
        """Hand tasks to idle workers; yield each result as it comes back."""
        todo = self._tasks[::-1]  # pop() from the end hands them out in the given order
        idle, busy = list(self._workers), {}  # busy: our pipe end -> (process, task)
        while todo or busy:
            while idle and todo:
                process, conn = idle.pop(0)
                busy[conn] = (process, todo.pop())
                try:
                    conn.send(busy[conn][1])
                except OSError:
                    pass  # the worker is gone: the checks below will say so
            ready = wait(list(busy) + [process.sentinel for process, _ in busy.values()],
                         timeout=CHECK_SECONDS)
            for conn, (process, task) in list(busy.items()):
                # A sentinel is a pipe too, and a process the worker forked may hold it (and
                # our pipe) open after the worker died; so ask the kernel as well (waitpid).
                dead = process.exitcode is not None
                if conn not in ready and not dead:
                    continue
                del busy[conn]
                try:
                    if dead and not conn.poll():
                        raise EOFError
                    ok, value = conn.recv()
                except (EOFError, OSError):
                    raise WorkerError(_death_message(process, task), task) from None
                if not ok:
                    raise WorkerError(f"task {task!r} failed in worker process {process.pid}:"
                                      f"\n{value}", task)
                idle.append((process, conn))
                yield task, value
                if self._state != "running":
                    raise RuntimeError("the `with` block of this run has ended")

    def _stop(self):
        """Stop every worker, whatever it is doing. Runs only inside __enter__ or __exit__,
        so a Ctrl-C cannot cut it short: _on_sigint just counts it."""
        self._state = "stopped"
        for process, conn in self._workers:
            process.terminate()  # SIGTERM: the worker unwinds (finally blocks run) and exits
            conn.close()
        deadline = time.monotonic() + GRACE_SECONDS
        for process, _ in self._workers:
            process.join(max(0.0, deadline - time.monotonic()))
        for process, _ in self._workers:
            if process.exitcode is None:  # stuck in a long C call, or ignoring SIGTERM
                process.kill()
                process.join(GRACE_SECONDS)
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None


_UNINTERRUPTIBLE = {WorkerRun.__enter__.__code__, WorkerRun.__exit__.__code__}


def _death_message(process, task):
    process.join(GRACE_SECONDS)  # it has died or is dying: collect its exit code
    code = process.exitcode
    how = f"killed by {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}"
    hint = " (SIGKILL: often the system running out of memory)" if code == -signal.SIGKILL else ""
    return f"worker process {process.pid} died ({how}) while running task {task!r}{hint}"


def _worker_main(conn, work, initializer, initargs, parent_pid):
    """Each worker's life: receive a task, run it, send back (True, result) or
    (False, traceback text); until our pipe closes or the parent stops us."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked while we started
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    _die_with_parent(parent_pid)
    try:
        if initializer is not None:
            initializer(*initargs)
    except Exception:
        conn.send((False, "in the initializer:\n" + traceback.format_exc()))
        return
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return  # the parent closed our pipe: no more tasks
        try:
            reply = (True, work(task))
        except Exception:
            reply = (False, traceback.format_exc())
        try:
            conn.send(reply)
        except Exception:  # the result cannot be pickled
            conn.send((False, "sending the result back:\n" + traceback.format_exc()))


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def _die_with_parent(parent_pid):
    """Make sure this worker does not outlive the parent. On Linux the kernel sends us SIGKILL
    when the parent (strictly: the thread that started us) exits, however it exits; elsewhere
    a thread watches the parent's pid."""
    try:
        if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    except (OSError, AttributeError):
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before we asked
        os._exit(1)


def _watch_parent(parent_pid):
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(1)
