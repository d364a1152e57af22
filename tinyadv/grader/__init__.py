"""The exercise grader behind ``python -m tinyadv.gradcheck``: students' backwards, judged.

A submission is untrusted code. It runs in a child process of its own, limited in time and
memory, and only returns arrays; this process draws the inputs, computes tinyadv's forward and
the centred-difference gradients, compares, and decides. The rooms, in the order a submission
meets them:

    startup.py   the checker's own process runs no file of a folder it grades
    cli.py       the command line: flags, the run, the exit status
    pieces.py    what can be checked, and the reference: tinyadv's forward and its numerical
                 gradients on inputs drawn by inputs.py (kept away from every kink)
    kinks.py     one probe per piece with a kink, right beside it: where an answer made of
                 centred differences shows (a note, never a verdict)
    sandbox.py   runs each submission in a fresh interpreter with a deadline and a memory cap,
                 kills what it leaves behind, and collects its output and its answers
    child.py     the only code that runs beside a student's: imports the file, calls its
                 forward and backward on the inputs it is sent, sends back plain arrays
    channel.py   the framing of those arrays, read with np.load(allow_pickle=False) after
                 checking every header
    identity.py  who a child is and what it shares: nobody, or a user namespace of its own;
                 its own mount (read-only), network and IPC namespaces and session keyring
    isolation.py what a child may touch once shut in, and why; --sandbox auto|require|off
    landlock.py  the three Landlock system calls through ctypes, rule by rule per kernel ABI
    procs.py     the Linux process controls the sandbox uses (prctl, capabilities, /proc)
    judge.py     turns what came back into a status per function: pass, fail, blank, error,
                 timeout, memory
    hints.py     words a wrong gradient's mistake from measurements of it
    report.py    the text report, the CSV gradebook, Gradescope's results.json
    seccomp.py   the system calls no child may make, root included: new processes,
                 sockets, System V IPC, keys, memfd, and limits or priorities of others

``check_file(path)`` checks one file from Python, from any working directory: an exercise
file can end with

    if __name__ == "__main__":
        sys.path.insert(0, REPOSITORY_ROOT)  # where the tinyadv folder is
        from tinyadv.grader import check_file
        sys.exit(check_file(__file__))

and ``python 05_triplet_loss.py`` checks itself (the guard keeps the check's own import of
the file from checking it again).
"""
import os

__all__ = ["check_file"]


def check_file(path, *options):
    """Check one file as ``python -m tinyadv.gradcheck [OPTIONS] -- PATH`` does, printing its
    report; returns the exit status (0 every function passed; see cli.py). ``options`` are
    the command's flags as strings, e.g. ``check_file(path, "--seed", "7")``."""
    from tinyadv.grader.cli import main  # here: importing tinyadv.grader stays cheap

    return main([*map(str, options), "--", os.fspath(path)])
