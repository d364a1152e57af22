"""The exercise grader behind ``python -m tinyadv.gradcheck``: students' backwards, judged.

A submission is untrusted code. It runs in a child process of its own, limited in time and
memory, and only returns arrays; this process draws the inputs, computes tinyadv's forward and
the centred-difference gradients, compares, and decides. The rooms, in the order a submission
meets them:

    cli.py       the command line: flags, the run, the exit status
    pieces.py    what can be checked, and the reference: tinyadv's forward and its numerical
                 gradients on inputs drawn by inputs.py (kept away from every kink)
    sandbox.py   runs each submission in a fresh interpreter with a deadline and a memory cap,
                 kills what it leaves behind, and collects its output and its answers
    child.py     the only code that runs beside a student's: imports the file, calls its
                 forward and backward on the inputs it is sent, sends back plain arrays
    channel.py   the framing of those arrays, read with np.load(allow_pickle=False) after
                 checking every header
    isolation.py what a child may touch once shut in, and why; --sandbox auto|require|off
    landlock.py  the three Landlock system calls through ctypes, rule by rule per kernel ABI
    procs.py     the Linux process controls the sandbox uses (prctl, capabilities, /proc)
    judge.py     turns what came back into a status per function: pass, fail, blank, error,
                 timeout, memory
    hints.py     words a wrong gradient's mistake from measurements of it
    report.py    the text report, the CSV gradebook, Gradescope's results.json
"""
