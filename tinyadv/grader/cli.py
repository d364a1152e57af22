"""``python -m tinyadv.gradcheck FILE_OR_FOLDER ...``: check students' backward functions.

Every .py file (a folder: every .py file under it) runs in a child process of its own with a
time and a memory limit (sandbox.py); the answers are judged here (judge.py). Prints a block
per file as it is done (in order), a summary table for several files, and with ``--report``
writes the CSV gradebook; with ``--gradescope`` Gradescope's results.json. Each child shuts
itself in with Landlock where the kernel has it (``--sandbox``, isolation.py); the run says
in one line what is and is not contained.

Exit status: 0 every row passed; 1 any other status anywhere; 2 nothing could be checked (no
file could be imported and define a known backward) or bad command-line arguments; 128 + n
when signal n (Ctrl-C: 130) stopped the run -- then no gradebook is written.
"""
import argparse
import difflib
import math
import os
import re
import signal
import sys
from pathlib import Path

import numpy as np

from tinyadv.grader import isolation, judge, procs, report, sandbox
from tinyadv.grader.pieces import BACKWARD_NAMES, PIECES, all_reference_cases

__all__ = ["main", "collect", "parse_memory"]

EXIT_OK, EXIT_FAILED, EXIT_NOTHING = 0, 1, 2
DEFAULT_TIMEOUT = 60.0
DEFAULT_MEMORY = "2G"
MIN_MEMORY = 256 * 2**20  # Python, NumPy and tinyadv take ~100 MB of address space already
MAX_JOBS = 64
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_memory(text):
    """'2G', '512M', '300000000' -> bytes (K, M, G, T are powers of 1024; a 'B' may follow)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", str(text), re.IGNORECASE)
    if not match:
        raise ValueError(text)
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m tinyadv.gradcheck",
        description="Check hand-written backward functions (relu_backward, angular_distance_"
                    "backward, ...) against numerical gradients. Each file runs in a child "
                    "process of its own, limited in time and memory; this process judges.",
        epilog="exit status: 0 all passed; 1 anything else (fail, not implemented yet, error, "
               "timeout, memory); 2 nothing could be checked, or bad arguments; 130 Ctrl-C.")
    parser.add_argument("paths", nargs="+", metavar="FILE_OR_FOLDER",
                        help="a .py file, or a folder: every .py file under it is checked")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random test inputs (default 0)")
    parser.add_argument("--tol", type=float, default=judge.CHECK_TOL,
                        help=f"largest rel_error that passes (default {judge.CHECK_TOL:.0e})")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"wall time per file (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--memory", default=DEFAULT_MEMORY, metavar="SIZE",
                        help=f"address space per file, e.g. 2G or 512M (default {DEFAULT_MEMORY})")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="files checked at once (default 1)")
    parser.add_argument("--report", metavar="CSV", help="write the gradebook: one row per "
                        "(file, function), columns file,function,status,rel_error,hint")
    parser.add_argument("--expect", metavar="NAMES",
                        help="comma-separated backward names every file must define (a missing "
                             "one is graded blank), e.g. linear_backward,relu_backward")
    parser.add_argument("--gradescope", metavar="JSON",
                        help="also write the verdicts as Gradescope's results.json: one test "
                             "per (file, function), 1 point each, the hint as its output")
    parser.add_argument("--sandbox", choices=isolation.MODES, default="auto",
                        help="shut each file in with Linux Landlock: auto uses what the kernel "
                             "offers and warns when that is less than full; require refuses "
                             "to run without all of it; off runs files as your user, unconfined "
                             "(for debugging). Default auto")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the summary table")
    return parser


def _checked_arguments(parser, argv):
    """Parse argv; every bad value exits with status 2 and a message naming the argument."""
    args = parser.parse_args(argv)
    if not (math.isfinite(args.tol) and args.tol > 0):
        parser.error(f"--tol: expected a finite number > 0, got {args.tol:g}")
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        parser.error(f"--timeout: expected a number of seconds > 0, got {args.timeout:g}")
    if not 1 <= args.jobs <= MAX_JOBS:
        parser.error(f"--jobs: expected a whole number from 1 to {MAX_JOBS}, got {args.jobs}")
    try:
        args.memory_bytes = parse_memory(args.memory)
    except ValueError:
        parser.error(f"--memory: expected a size such as 2G, 512M or 300000000 (bytes), "
                     f"got {args.memory!r}")
    if args.memory_bytes < MIN_MEMORY:
        parser.error(f"--memory: expected at least 256M (Python and NumPy alone take about "
                     f"100M), got {args.memory}")
    args.expected = []
    for name in filter(None, (n.strip() for n in (args.expect or "").split(","))):
        if name not in BACKWARD_NAMES:
            guess = difflib.get_close_matches(name, BACKWARD_NAMES, n=1)
            parser.error(f"--expect: unknown function {name!r}"
                         + (f" (did you mean {guess[0]}?)" if guess else "")
                         + f"; known: {', '.join(BACKWARD_NAMES)}")
        args.expected.append(name)
    for flag, value, what in (("--report", args.report, "the CSV gradebook"),
                              ("--gradescope", args.gradescope, "results.json")):
        if value and Path(value).is_dir():
            parser.error(f"{flag}: expected a file name for {what}, got the folder {value}")
    if args.sandbox == "require":
        label, gaps, _ = isolation.offered("require")
        if gaps:
            parser.error(f"--sandbox require: this machine cannot enforce "
                         f"{'; '.join(gaps)} (it offers {label}). Use --sandbox auto to run "
                         f"anyway, or a throw-away account or container")
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        parser.error(f"FILE_OR_FOLDER: no such file or folder: {', '.join(missing)}")
    return args


def collect(paths):
    """Expand folders into their .py files (recursively, sorted, skipping hidden folders and
    __pycache__); keep files as given. Returns (files, folders without any .py file)."""
    files, empty = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.py") if p.is_file() and not any(
                part.startswith(".") or part == "__pycache__" for part in p.relative_to(path).parts))
            files += found
            if not found:
                empty.append(path)
        else:
            files.append(path)
    return list(dict.fromkeys(files)), empty


def _plan(references):
    """The part of a child's plan that is the same for every file: each piece's names and
    the inputs of its cases (the arrays go as .npy, referred to by position)."""
    arrays, pieces = [], []
    for piece in PIECES:
        cases = []
        for case in references[piece.backward_name]:
            ids = []
            for value in case.args + (case.dout,):
                ids.append(len(arrays))
                arrays.append(np.asarray(value))
            cases.append({"args": ids[:-1], "dout": ids[-1]})
        pieces.append({"forward": piece.forward_name, "backward": piece.backward_name,
                       "home": piece.home, "solutions": list(piece.solutions), "cases": cases})
    return {"kind": "plan", "pieces": pieces}, arrays


def _interrupted_message(exc, results):
    done = sum(r is not None for r in results)
    if isinstance(exc, KeyboardInterrupt):
        what = "Ctrl-C"
    else:
        what = procs.signal_name(exc.signum) + (" (Ctrl-C)" if exc.signum == signal.SIGINT else "")
        if exc.sender:
            what += f" from process {exc.sender}"
    text = (f"interrupted by {what}: {done} of {len(results)} files checked; every child "
            f"process stopped; no gradebook written.")
    if isinstance(exc, sandbox.Interrupted) and exc.suspects:
        text += ("\nIf nobody sent it, one of the files running then did: "
                 + ", ".join(str(p) for p in exc.suspects)
                 + ". Check them one at a time, or run python -m tinyadv.gradcheck itself (it "
                 "then knows who sent a signal).")
    return text


class _Output:
    """The stream the report is printed to. If its reader goes away (``gradcheck ... | head``),
    printing stops quietly and the grading goes on: the gradebook is still written and the
    exit status still says how the class did."""

    def __init__(self, stream):
        self.stream, self.reader_gone = stream, False

    def write(self, text):
        if not self.reader_gone:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self._stop()
        return len(text)

    def flush(self):
        if not self.reader_gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._stop()

    def _stop(self):
        self.reader_gone = True
        # Python flushes sys.stdout once more at exit; pointed at /dev/null, that cannot fail.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (AttributeError, OSError, ValueError):  # not a real file (a test's StringIO)
            pass


class _InOrder:
    """Prints each file's block as soon as it and every file before it are done."""

    def __init__(self, results, out, quiet):
        self.results, self.out, self.quiet, self.next = results, out, quiet, 0

    def ready(self):
        while self.next < len(self.results) and self.results[self.next] is not None:
            if not self.quiet:
                report.print_file(self.results[self.next], self.out)
                self.out.flush()
            self.next += 1


def main(argv=None, out=None):
    """Check the files; return the exit status (see the module docstring)."""
    out = _Output(sys.stdout if out is None else out)
    args = _checked_arguments(_parser(), argv)
    files, empty = collect(args.paths)
    for folder in empty:
        print(f"note: no .py files in {folder}", file=out)
    if not files:
        return EXIT_NOTHING
    sandbox_line = isolation.summary_line(args.sandbox)
    print(sandbox_line, file=out)  # even with -q: what the grades can be trusted for
    if isolation.offered(args.sandbox)[1] and args.sandbox == "auto":  # less than full: once
        print(f"warning: {sandbox_line}", file=sys.stderr)
    limits = sandbox.Limits(args.timeout, args.memory_bytes)
    references = all_reference_cases(args.seed)
    plan_record, plan_arrays = _plan(references)
    results = [None] * len(files)
    printer = _InOrder(results, out, args.quiet)
    late = {}  # index -> problems seen before the file's result was ready (a second run)

    def on_finish(index, run):
        try:
            results[index] = judge.judge_file(run, references, limits, args.tol, args.expected)
        except Exception as exc:  # noqa: BLE001 -- a judge bug a submission found: that file
            results[index] = judge.FileResult(str(run.path), checked=True)  # errs; the run goes on
            results[index].add_file_problem(
                "error", f"its answers could not be judged ({type(exc).__name__}); "
                         f"please report this to tinyadv")
        for problem in late.pop(index, []):
            results[index].add_file_problem("error", problem)
        printer.ready()

    def on_late_signal(index, problem):
        if results[index] is None:
            late.setdefault(index, []).append(problem)
        else:
            results[index].add_file_problem("error", problem)

    try:
        sandbox.run_all(files, plan_record, plan_arrays, limits, args.jobs, on_finish,
                        on_late_signal, args.sandbox)
    except (sandbox.Interrupted, KeyboardInterrupt) as exc:
        print("\n" + _interrupted_message(exc, results), file=sys.stderr)
        return 128 + (exc.signum if isinstance(exc, sandbox.Interrupted) else signal.SIGINT)

    if len(results) > 1 or args.quiet:
        report.print_summary(results, args.seed, args.tol, out)
    if args.report:
        report.write_gradebook(args.report, results)
        rows = sum(len(r.functions) for r in results)
        print(f"gradebook: {args.report} ({rows} rows)", file=out)
    if args.gradescope:
        report.write_gradescope(args.gradescope, results, sandbox_line)
        tests = sum(len(r.functions) for r in results)
        print(f"gradescope: {args.gradescope} ({tests} tests)", file=out)
    if not any(r.checked for r in results):
        return EXIT_NOTHING
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED
