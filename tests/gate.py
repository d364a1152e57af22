"""Hold a program under test at the instant a test aims a signal at, until the signal is sent.

The interrupt tests aim Ctrl-C at instants of a program, each marked by a line it prints
("task 0: writing"). But the program runs on while the test reads that line and sends the
signal, and on a busy machine it can run past the instant -- even to its end -- before the
signal arrives. So the test *arms* instants: before the program starts, it writes the texts
to stop at, one a line, to $TINYADV_TEST_GATE/armed. The program, parent and workers alike,
prints such a line with announce(); when the line contains an armed text it then waits,
right there, until the test creates $TINYADV_TEST_GATE/go, which the test does just after its
signals have gone out. The signal thus finds the program at its instant, whatever the load.
Without the environment variable (or with nothing armed) announce() only prints.

Standard library only: the runner tests' workers import this and must start fast.
"""
import os
import time

GATE = "TINYADV_TEST_GATE"  # the environment variable naming the gate's folder
ARMED_FILE, GO_FILE = "armed", "go"


def _armed():
    folder = os.environ.get(GATE)
    if not folder:
        return []
    try:
        with open(os.path.join(folder, ARMED_FILE)) as f:
            return [line.rstrip("\n") for line in f if line.strip()]
    except OSError:
        return []


ARMED = _armed()  # read once, on import: hold() may run inside a signal handler


def hold(line):
    """If ``line`` contains an armed text, wait until the test releases the gate."""
    if any(text in line for text in ARMED):
        go = os.path.join(os.environ[GATE], GO_FILE)
        while not os.path.exists(go):  # a signal interrupts the sleep, as it would any wait
            time.sleep(0.002)


def announce(line):
    """Print ``line`` (flushed), then hold if it is armed."""
    print(line, flush=True)
    hold(line)


def announce_in_handler(line):
    """announce() for a signal handler: one unbuffered write, which cannot collide with a
    print the handler interrupted."""
    os.write(1, (line + "\n").encode())
    hold(line)


def arm(folder, texts):
    """Test side: make ``folder`` a gate holding at ``texts``; returns the environment
    entries that point a program at it."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, ARMED_FILE), "w") as f:
        f.write("".join(f"{text}\n" for text in texts))
    return {GATE: str(folder)}


def release(folder):
    """Test side: let every held process go on (and any that reaches an armed line later)."""
    with open(os.path.join(folder, GO_FILE), "w"):
        pass
