"""Signal a command at chosen moments and check that it stopped cleanly: reusable test helpers.

    outcome = signal_run(cmd, cwd, at=("got 1", 0.02), target="group", times=2, gap=0.01)
    assert not problems(outcome), describe(outcome)

``at`` is when to send: seconds after the start (a float), or ``(text, seconds)``: that long
after the first output line containing ``text`` -- a moment of the program rather than of
the clock. ``at=None`` runs the command to its end.

A program keeps running while the test reads its line and sends the signal; on a busy
machine it can get far past the moment aimed at, or finish. With ``gate=FOLDER`` and
``hold=(texts...)``, a program that prints through tests/gate.py's announce() stops at each
line containing one of those texts until the signals have been sent: the signal then finds
it at that very line. Hold the aimed line itself, and a line near the program's end so it
cannot finish first.

The command runs in a session of its own (``start_new_session=True``), as a program started
from a terminal does: it leads a process group, which is what a terminal's Ctrl-C (and GNU
timeout's second signal) reaches. The session id also finds every process it started, even
one that left the group, so leftovers can be listed and killed (Linux: /proc). Every
process of the session is killed before signal_run returns, whatever happened.
"""
import dataclasses
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import gate as gates


@dataclasses.dataclass
class Outcome:
    cmd: list
    at: object  # the instant asked for (see the module docstring); None: no signal
    target: str  # "parent" (os.kill) or "group" (os.killpg)
    times: int  # signals sent, `gap` seconds apart
    gap: float
    signum: int
    returncode: object  # int; None if it had not exited by the timeout (a hang; we killed it)
    signalled_at: object  # seconds after the start of the first signal; None: none was sent
    exit_seconds: float  # from the first signal (or, with none, from the start) to the exit
    cleared_seconds: object  # from the exit until no process of the session was left
    leftovers: list  # "pid command" of processes of the session still alive `settle` s later
    lines: list  # (seconds after the start, line) of everything it printed

    @property
    def output(self):
        return "".join(line for _, line in self.lines)


def session_processes(sid):
    """{pid: command line} of the live (not zombie) processes of session ``sid``."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
            fields = stat[stat.rindex(")") + 2:].split()  # after "pid (command) "
            if int(fields[3]) != sid or fields[0] == "Z":  # other session, or a zombie
                continue
            with open(f"/proc/{name}/cmdline", "rb") as f:
                found[int(name)] = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # it ended while we looked
            continue
    return found


def kill_session(sid):
    """SIGKILL every process of session ``sid`` (processes we started: they are its members)."""
    for _ in range(10):
        pids = session_processes(sid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


def signal_run(cmd, cwd, at=None, *, target="group", times=1, gap=0.05, signum=signal.SIGINT,
               env=None, timeout=60.0, settle=3.0, gate=None, hold=()):
    """Run ``cmd`` in ``cwd``, send ``times`` signals to the ``target`` at ``at``, wait for
    the exit (at most ``timeout`` s), then up to ``settle`` s for its session to empty.
    ``gate``, ``hold``: a folder for tests/gate.py, and the texts whose lines the program
    waits at until the signals are out (module docstring)."""
    if target not in ("parent", "group"):
        raise ValueError(f"target: expected 'parent' or 'group', got {target!r}")
    if hold and gate is None:
        raise ValueError("hold: needs gate=FOLDER")
    if gate is not None:
        env = {**(os.environ if env is None else env), **gates.arm(gate, hold)}
    text_at = at[0] if isinstance(at, tuple) else None
    held_elsewhere = [text for text in hold if text != text_at]  # stops before the aimed line
    start = time.monotonic()
    lines, seen = [], threading.Condition()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)

    def read():
        for line in proc.stdout:
            with seen:
                lines.append((time.monotonic() - start, line))
                seen.notify_all()
        with seen:
            lines.append((time.monotonic() - start, ""))  # end of output
            seen.notify_all()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    signalled_at = None
    try:
        if at is not None:
            text, delay = (None, at) if isinstance(at, (int, float)) else at
            # wait for the line -- or the end of the output, or the program held at another
            # line (it would never print this one), or the timeout
            with seen:
                seen.wait_for(lambda: text is None or any(
                    text in line or not line or any(other in line for other in held_elsewhere)
                    for _, line in lines), timeout=timeout)
                base = start if text is None else next(
                    (t for t, line in lines if text in line), None)
            if base is not None:
                time.sleep(max(0.0, base + delay - time.monotonic()))
                if proc.poll() is None:
                    signalled_at = time.monotonic() - start
                    for k in range(times):
                        if k:
                            time.sleep(gap)
                        try:
                            (os.kill if target == "parent" else os.killpg)(proc.pid, signum)
                        except ProcessLookupError:  # all gone already
                            break
        if gate is not None:
            gates.release(gate)  # the signals are out: whatever is held may go on
        try:
            proc.wait(timeout=max(0.1, start + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        returncode = proc.poll()
        exited = time.monotonic() - start
        left = session_processes(proc.pid)
        while left and time.monotonic() - start < exited + settle:
            time.sleep(0.01)
            left = session_processes(proc.pid)
        cleared = None if left else time.monotonic() - start - exited
    finally:
        if gate is not None:
            gates.release(gate)
        kill_session(proc.pid)
        proc.kill()  # no-op if it has exited
        proc.wait()
        reader.join(timeout=5)
        proc.stdout.close()
    return Outcome(cmd=list(cmd), at=at, target=target, times=times, gap=gap, signum=signum,
                   returncode=returncode, signalled_at=signalled_at,
                   exit_seconds=exited - (signalled_at or 0.0), cleared_seconds=cleared,
                   leftovers=[f"{pid} {command}" for pid, command in left.items()],
                   lines=lines)


def problems(outcome, *, codes=(130,), max_exit_seconds=5.0):
    """What is wrong with an interrupted run, one line per problem (empty: stopped cleanly):
    no signal sent, no exit (a hang), an exit status not in ``codes`` (a shell shows 130 both
    for exit(130) and for death by SIGINT, -2 here), too slow, or processes left behind."""
    found = []
    if outcome.signalled_at is None:
        found.append("no signal was sent (the program ended, or never printed the text)")
    if outcome.returncode is None:
        found.append("did not exit: hung")
    elif outcome.returncode not in codes:
        found.append(f"exit status {outcome.returncode}, expected one of {codes}")
    if outcome.exit_seconds > max_exit_seconds:
        found.append(f"took {outcome.exit_seconds:.2f} s to exit after the signal "
                     f"(more than {max_exit_seconds} s)")
    if outcome.leftovers:
        found.append(f"processes left behind: {outcome.leftovers}")
    return found


def describe(outcome, tail=12):
    """One case in a few lines, for failure messages: what was sent, what happened."""
    sent = (f"{signal.Signals(outcome.signum).name} x{outcome.times} to the {outcome.target}"
            f" (gap {outcome.gap:g} s) at {outcome.at!r}")
    when = ("not sent" if outcome.signalled_at is None else
            f"sent at {outcome.signalled_at:.3f} s")
    last = "".join(line for _, line in outcome.lines[-tail:])
    return (f"{sent}, {when}: exit status {outcome.returncode} "
            f"{outcome.exit_seconds:.3f} s later\n    last output:\n{last}")


def temporary_files(folder, marker=".tmp"):
    """Files under ``folder`` whose name contains ``marker``: half-written leftovers."""
    return sorted(os.path.join(root, name) for root, _, names in os.walk(folder)
                  for name in names if marker in name)


def run_parallel(calls, parallel=4):
    """Call each zero-argument function in ``calls``, ``parallel`` at a time (threads: they
    only wait on subprocesses); return their results in order."""
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(lambda call: call(), calls))
