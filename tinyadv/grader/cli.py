"""``python -m tinyadv.gradcheck FILE_OR_FOLDER ...``: check students' backward functions.

Every .py file (a folder: every .py file under it) runs in a child process of its own with a
time and a memory limit (sandbox.py); the answers are judged here (judge.py). Prints a block
per file as it is done (in order), a summary table for several files, and with ``--report``
writes the CSV gradebook; with ``--gradescope`` Gradescope's results.json. Each child shuts
itself in with Landlock where the kernel has it (``--sandbox``, isolation.py); the run says
in one line what is and is not contained.

Exit status: 0 every row passed; 1 any other status anywhere; 2 nothing could be checked (no
file could be imported and define a known backward), bad command-line arguments, or the
checker loaded a module from a folder it grades (startup.py: it refuses to start, naming the
file); 3 the verdicts are in but the gradebook or results.json could not be written (the
message says why); 128 + n when signal n (Ctrl-C: 130) stopped the run -- the verdicts so far
are still written, with a row ``ungraded`` for every file not checked. The gradebook and
results.json are also written as the run goes (_Progress), so a checker killed outright
leaves the verdicts it had.

With ``--expect``, only the functions named are sent to the children, checked and scored;
a file's other backwards are named in a note.

What the command line can and cannot be made to do by a file's name:

- An argument that starts with ``-`` and names an existing file or folder is that file, never
  an option: ``python -m tinyadv.gradcheck *.py`` grades a submission named
  ``--report=bob.py`` or ``-x.py`` like any other (with a note). Everything after ``--`` is
  a file too. (An option's value that starts with ``-`` needs the ``--report=-x.csv`` form.)
- The gradebook and results.json are never written onto a file being graded, anywhere inside
  a folder being graded, or right beside a file given by name (``*.py`` run in the class
  folder): such a ``--report`` or ``--gradescope`` is refused before anything runs.
- A symlink is never run, nor followed into a folder: given by name or met in a folder, dangling
  or not, it gets a row ``refused`` ("symlink to ..."). Everything checked is a regular file
  found inside the folder being graded without following a link.
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

from tinyadv.fileio import write_text_atomic
from tinyadv.grader import isolation, judge, kinks, procs, report, sandbox, startup
from tinyadv.grader.pieces import BACKWARD_NAMES, PIECES, all_reference_cases
from tinyadv.grader.report import shown

__all__ = ["main", "collect", "parse_memory", "split_arguments", "write_output"]

EXIT_OK, EXIT_FAILED, EXIT_NOTHING, EXIT_NOT_WRITTEN = 0, 1, 2, 3
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
               "timeout, memory, refused, ungraded); 2 nothing could be checked, or bad "
               "arguments; 3 the gradebook could not be written; 130 Ctrl-C. A file whose name "
               "starts with - is a file, never an option; so is everything after --.")
    parser.add_argument("paths", nargs="*", metavar="FILE_OR_FOLDER",
                        help="a .py file, or a folder: every .py file under it is checked")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random test inputs (default 0)")
    parser.add_argument("--tol", type=float, default=judge.CHECK_TOL,
                        help=f"largest rel_error that passes (default {judge.CHECK_TOL:.0e})")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"wall time per file (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--memory", default=DEFAULT_MEMORY, metavar="SIZE",
                        help=f"memory per file: address space and its temporary folder (a "
                             f"tmpfs of at most a quarter of it, 64M), e.g. 2G or 512M (default "
                             f"{DEFAULT_MEMORY})")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="files checked at once (default 1)")
    parser.add_argument("--report", metavar="CSV", help="write the gradebook: one row per "
                        "(file, function), columns file,function,status,rel_error,hint")
    parser.add_argument("--expect", metavar="NAMES",
                        help="comma-separated backward names every file must define (a missing "
                             "one is graded blank), e.g. linear_backward,relu_backward; only "
                             "these are checked and scored")
    parser.add_argument("--gradescope", metavar="JSON",
                        help="also write the verdicts as Gradescope's results.json: one test "
                             "per (file, function), 1 point each, the hint as its output")
    parser.add_argument("--sandbox", choices=isolation.MODES, default="auto",
                        help="shut each file in -- nobody or a user namespace of its own, its "
                             "own mount, network and IPC namespaces, Linux Landlock: auto uses "
                             "what the machine offers and warns when that is less than full; "
                             "require refuses to run without all of it; off runs files as your "
                             "user, unconfined (for debugging). Default auto")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the summary table")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="say in full what each file ran under (user id, capabilities, "
                             "processes), also when checking one file")
    return parser


def split_arguments(argv):
    """(argv for argparse, files after --, names taken as files though they start with -).

    A name that starts with "-" and exists is a file (see the module docstring): it goes to
    argparse as "./name", which cannot be read as an option."""
    before, after = list(argv), []
    if "--" in before:
        cut = before.index("--")
        before, after = before[:cut], before[cut + 1:]
    taken = [arg for arg in before if arg.startswith("-") and len(arg) > 1 and os.path.lexists(arg)]
    fixed = [os.path.join(".", arg) if arg in taken else arg for arg in before]
    return fixed, after, taken


def _checked_arguments(parser, argv):
    """Parse argv; every bad value exits with status 2 and a message naming the argument."""
    fixed, after, taken = split_arguments(argv)
    args = parser.parse_intermixed_args(fixed)
    args.paths += after
    args.taken = taken
    if not args.paths:
        parser.error("FILE_OR_FOLDER: expected at least one file or folder to check")
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
    if args.sandbox == "require":
        label, gaps, _ = isolation.offered("require")
        if gaps:
            parser.error(f"--sandbox require: this machine cannot enforce "
                         f"{'; '.join(gaps)} (it offers {label}). Use --sandbox auto to run "
                         f"anyway, or a throw-away account or container")
    missing = [p for p in args.paths if not os.path.lexists(p)]
    if missing:
        parser.error(f"FILE_OR_FOLDER: no such file or folder: {', '.join(map(shown, missing))}")
    for flag, value, what in (("--report", args.report, "the CSV gradebook"),
                              ("--gradescope", args.gradescope, "results.json")):
        if value and Path(value).is_dir():
            parser.error(f"{flag}: expected a file name for {what}, got the folder {shown(value)}")
        inside = value and _graded_place(value, args.paths)
        if inside:
            parser.error(f"{flag}: {shown(value)} is {inside}; write {what} outside the class "
                         f"folder (a submission could be overwritten, or a later run grade it)")
    return args


def _graded_place(output, paths):
    """Why ``output`` lies on something being graded, or None: a file being graded, anywhere
    inside a folder being graded, or right beside a file being graded (``*.py`` run inside
    the class folder). Compared as real paths, links resolved."""
    target = os.path.realpath(output)
    for raw in paths:
        if os.path.isdir(raw) and not os.path.islink(raw):
            folder = os.path.realpath(raw)
            if target.startswith(folder.rstrip(os.sep) + os.sep):
                return f"inside the folder being graded ({shown(raw)})"
        elif target in (os.path.realpath(raw), os.path.abspath(raw)):
            return f"a file being graded ({shown(raw)})"
        elif os.path.dirname(target) == os.path.realpath(os.path.dirname(os.path.abspath(raw))):
            return f"in the folder of a file being graded ({shown(raw)})"
    return None


def _foreign_code(paths):
    """Why the checker must not run -- it has loaded code from a folder it grades (startup.py)
    -- or None. Drops every sys.path entry inside such a folder on the way."""
    places = startup.graded_places(paths)
    startup.drop_graded_paths(places)
    own_file = {os.path.realpath(p) for p in paths if os.path.isfile(p)}
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    allowed = {os.path.realpath(main_file)} & own_file if isinstance(main_file, str) else set()
    found = startup.foreign_modules(places, allowed)
    if not found:
        return None
    name, where = found[0]
    more = f" (and {len(found) - 1} more: {', '.join(n for n, _ in found[1:6])})" if found[1:] else ""
    return (f"refusing to start: the checker's own module {name} was loaded from "
            f"{shown(where)}, in a folder being graded{more}. A submission there would run as "
            f"the checker, outside any sandbox. Run the checker from outside the class folder, "
            f"or as python -P -m tinyadv.gradcheck ... (Python 3.11+: no current folder on "
            f"the path)")


def _hidden(name):
    return name.startswith(".") or name == "__pycache__"


def _link_refusal(path):
    """The row's words for a symlink: where it points, whether that exists."""
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    if os.path.isdir(path):
        return f"symlink to a folder ({shown(target)}): not followed, nothing in it checked"
    if not os.path.exists(path):
        return f"symlink to {shown(target)}, which does not exist: not run"
    return f"symlink to {shown(target)}: not run (only regular files are checked)"


def _walk(top):
    """[(path, refusal or None)] for every .py file under the folder ``top``, sorted: links
    are refused, never followed (neither to files nor into folders); hidden folders and
    files and __pycache__ are skipped."""
    found = []
    for root, folders, names in os.walk(top, followlinks=False):
        folders[:] = [d for d in folders if not _hidden(d)]
        for name in folders:
            path = Path(root, name)
            if path.is_symlink():
                found.append((path, _link_refusal(path)))
        for name in names:
            path = Path(root, name)
            if _hidden(name) or not name.endswith(".py"):
                continue
            if path.is_symlink():
                found.append((path, _link_refusal(path)))
            elif path.is_file():
                found.append((path, None))
    return sorted(found)


def collect(paths):
    """Expand folders into their .py files (see _walk); keep files as given. Returns
    ([(path, refusal or None)] without repeats, folders without any .py file)."""
    entries, empty = [], []
    for raw in paths:
        path = Path(raw)
        if os.path.islink(raw):
            entries.append((path, _link_refusal(raw)))
        elif path.is_dir():
            found = _walk(path)
            entries += found
            if not found:
                empty.append(path)
        else:
            entries.append((path, None))
    return _first_of_each(entries), empty


def _first_of_each(entries):
    seen, kept = set(), []
    for path, refusal in entries:
        if path not in seen:
            seen.add(path)
            kept.append((path, refusal))
    return kept


def _plan(references, probes, expected=()):
    """The part of a child's plan that is the same for every file: each piece's names and
    the inputs of its cases and of its probe beside a kink, if any (kinks.py; the arrays go
    as .npy, referred to by position), and the tinyadv modules a file may import (loaded
    before it runs). ``expected`` (--expect): only those pieces -- a file's other backwards
    are not even called."""
    arrays, pieces = [], []

    def stored(args, dout):
        ids = []
        for value in tuple(args) + (dout,):
            ids.append(len(arrays))
            arrays.append(np.asarray(value))
        return {"args": ids[:-1], "dout": ids[-1]}

    for piece in PIECES:
        if expected and piece.backward_name not in expected:
            continue
        cases = [stored(case.args, case.dout) for case in references[piece.backward_name]]
        probe = probes.get(piece.backward_name)
        pieces.append({"forward": piece.forward_name, "backward": piece.backward_name,
                       "home": piece.home, "solutions": list(piece.solutions), "cases": cases,
                       "probe": stored(probe.args, probe.dout) if probe else None})
    preload = sorted({p.home for p in PIECES} | {s.rpartition(".")[0] for p in PIECES
                                                  for s in p.solutions} | {"tinyadv.gradcheck"})
    return {"kind": "plan", "pieces": pieces, "preload": preload}, arrays


def _interruption(exc):
    """(signal number, its words, who sent it in words) of what stopped the run."""
    if isinstance(exc, KeyboardInterrupt):
        return signal.SIGINT, "Ctrl-C", ""
    what = procs.signal_name(exc.signum) + (" (Ctrl-C)" if exc.signum == signal.SIGINT else "")
    return exc.signum, what, (f" from process {exc.sender}" if exc.sender else "")


def _interrupted_message(exc, what, checked, not_graded, written, left):
    text = f"interrupted by {what}: {checked} of {checked + len(not_graded)} files checked; "
    if left:
        text += (f"{len(left)} processes of the submissions could not be stopped (pids "
                 f"{', '.join(map(str, left[:10]))}); ")
    else:
        text += "every process of the submissions stopped; "
    if written:
        text += (f"the verdicts so far are in {' and '.join(written)}, marked incomplete, with "
                 f"a row 'ungraded' for each file not checked")
    else:
        text += "nothing written (no --report or --gradescope, or see above)"
    text += ". Not checked: " + ", ".join(shown(p) for p in not_graded[:20]) + (
        f" and {len(not_graded) - 20} more" if len(not_graded) > 20 else "") + "."
    if isinstance(exc, sandbox.Interrupted) and exc.suspects:
        text += ("\nIf nobody sent it, one of the files running then did: "
                 + ", ".join(shown(p) for p in exc.suspects)
                 + ". Check them one at a time, or run python -m tinyadv.gradcheck itself (it "
                 "then knows who sent a signal).")
    return text


def write_output(path, text, what):
    """Write ``text`` to ``path`` atomically; None, or exactly why it was not written.

    When the first try fails (a full disk: the temporary copy cannot be written), an older
    file at ``path`` is removed -- it takes room, and would pass for this run's -- and the
    write is tried once more."""
    try:
        write_text_atomic(path, text)
        return None
    except OSError as exc:
        first = exc
    removed = ""
    if os.path.lexists(path) and not os.path.isdir(path):
        try:
            os.remove(path)
            removed = "; the older file there was removed, so that it cannot pass for this run's"
        except OSError as exc:
            removed = f"; the older file there could not be removed either ({exc.strerror})"
        try:
            write_text_atomic(path, text)
            return None
        except OSError as exc:
            first = exc
    return (f"{what} was not written to {shown(path)}: {first.strerror or first} "
            f"({len(text.encode())} bytes){removed}. Every verdict is in the report above")


def _ungraded(path, reason):
    result = judge.FileResult(str(path), isolation="not run", isolation_label="not run")
    result.add_file_problem("ungraded", reason)
    return result


def _refused(path, reason):
    result = judge.FileResult(str(path), isolation="not run", isolation_label="not run")
    result.add_file_problem("refused", reason)
    return result


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

    def __init__(self, results, out, quiet, verbose=False):
        self.results, self.out, self.quiet, self.verbose, self.next = results, out, quiet, verbose, 0

    def ready(self):
        while self.next < len(self.results) and self.results[self.next] is not None:
            if not self.quiet:
                report.print_file(self.results[self.next], self.out, self.verbose)
                self.out.flush()
            self.next += 1


class _Progress:
    """Writes the gradebook and results.json as the run goes: first with every file
    ``ungraded``, then again (atomically) each time a file is judged. A checker that is
    killed outright (SIGKILL, the machine's out-of-memory killer) leaves the verdicts it had,
    marked incomplete, never last week's gradebook. Quiet: the last write, at the end of the
    run, says what was written or why not."""

    def __init__(self, args, results, entries, sandbox_line):
        self.args, self.results, self.entries, self.line = args, results, entries, sandbox_line

    def __call__(self):
        if not (self.args.report or self.args.gradescope):
            return
        waiting = [i for i, r in enumerate(self.results) if r is None]
        reason = ("not graded: the run had not checked this file when this gradebook was last "
                  "written (the checker stopped before the end); this gradebook is incomplete")
        rows = [r if r is not None else _ungraded(self.entries[i][0], reason)
                for i, r in enumerate(self.results)]
        incomplete = f"the run was still going: {len(waiting)} files not graded yet"
        for value, make in ((self.args.report, lambda: report.gradebook_text(rows)),
                            (self.args.gradescope, lambda: report.gradescope_json(
                                rows, self.line, incomplete, self.args.expected))):
            if value:
                try:
                    write_text_atomic(value, make())
                except OSError:  # a full disk, say: the final write says so
                    pass


def _write_outputs(args, results, sandbox_line, out, incomplete=None):
    """Write the gradebook and results.json asked for; returns (names written, problems)."""
    written, problems = [], []
    rows = sum(len(r.functions) for r in results)
    mark = ", INCOMPLETE" if incomplete else ""
    for value, label, make in (
            (args.report, "gradebook", lambda: report.gradebook_text(results)),
            (args.gradescope, "gradescope",
             lambda: report.gradescope_json(results, sandbox_line, incomplete, args.expected))):
        if not value:
            continue
        problem = write_output(value, make(), f"the {label}")
        if problem:
            problems.append(problem)
            print(f"error: {problem}", file=sys.stderr)
        else:
            written.append(shown(value))
            print(f"{label}: {shown(value)} ({rows} {'rows' if label == 'gradebook' else 'tests'}"
                  f"{mark})", file=out)
    return written, problems


def main(argv=None, out=None):
    """Check the files; return the exit status (see the module docstring)."""
    out = _Output(sys.stdout if out is None else out)
    args = _checked_arguments(_parser(), sys.argv[1:] if argv is None else list(argv))
    refusal = _foreign_code(args.paths)
    if refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return EXIT_NOTHING
    for name in args.taken:
        print(f"note: {shown(name)} is a file here, so it is checked as one, not read as an "
              f"option (put -- before file names to say so)", file=out)
    entries, empty = collect(args.paths)
    for folder in empty:
        print(f"note: no .py files in {shown(folder)}", file=out)
    if not entries:
        return EXIT_NOTHING
    sandbox_line = isolation.summary_line(args.sandbox)
    # Even with -q: what the grades can be trusted for. One file (a student's): one short line.
    short = len(entries) == 1 and not args.verbose
    print(isolation.short_line(args.sandbox) if short else sandbox_line, file=out)
    if isolation.offered(args.sandbox)[1] and args.sandbox == "auto":  # less than full: once
        print(f"warning: {sandbox_line}", file=sys.stderr)
    limits = sandbox.Limits(args.timeout, args.memory_bytes)
    references = all_reference_cases(args.seed)
    probes = kinks.all_probes(references)
    plan_record, plan_arrays = _plan(references, probes, args.expected)
    results = [None] * len(entries)
    printer = _InOrder(results, out, args.quiet, args.verbose)
    progress = _Progress(args, results, entries, sandbox_line)
    for i, (path, refusal) in enumerate(entries):
        if refusal:
            results[i] = _refused(path, refusal)
    printer.ready()
    progress()
    runnable = [i for i, (_, refusal) in enumerate(entries) if not refusal]
    late = {}  # index -> problems seen before the file's result was ready (a second run)

    def on_finish(index, run):
        """Judge a run; returns why to check the file again, alone, at the end (or None)."""
        i = runnable[index]
        if run.not_started:
            if run.checked_again is None:
                return run.not_started
            results[i] = _ungraded(run.path, f"not gradable: {run.not_started} (twice)")
            printer.ready()
            progress()
            return None
        try:
            result = judge.judge_file(run, references, limits, args.tol, args.expected, probes)
        except Exception as exc:  # noqa: BLE001 -- a judge bug a submission found: that file
            result = judge.FileResult(str(run.path), checked=True)  # errs; the run goes on
            result.add_file_problem(
                "error", f"its answers could not be judged ({type(exc).__name__}); "
                         f"please report this to tinyadv")
        if run.disk_full and run.filled_disk:
            result.notes.append(f"note: {run.disk_full}: it filled the disk itself")
        elif run.disk_full and not result.ok:  # maybe not its own failure: never a plain FAIL
            if run.checked_again is None:
                return run.disk_full
            result = _ungraded(run.path, f"not gradable: {run.disk_full} (checked twice)")
        for problem in late.pop(i, []):
            result.add_file_problem("error", problem)
        results[i] = result
        printer.ready()
        progress()
        return None

    def on_late_signal(index, problem):
        i = runnable[index]
        if results[i] is None:
            late.setdefault(i, []).append(problem)
        else:
            results[i].add_file_problem("error", problem)

    try:
        sandbox.run_all([entries[i][0] for i in runnable], plan_record, plan_arrays, limits,
                        args.jobs, on_finish, on_late_signal, args.sandbox)
    except (sandbox.Interrupted, KeyboardInterrupt) as exc:
        # Nothing graded is lost: the verdicts so far are written, each file not checked
        # gets a row saying so, and no older gradebook stays where this one belongs.
        signum, what, sender = _interruption(exc)
        not_graded = [entries[i][0] for i, r in enumerate(results) if r is None]
        reason = (f"not graded: the run was interrupted by {what} before this file was "
                  f"checked; this gradebook is incomplete")
        for i, result in enumerate(results):
            if result is None:
                results[i] = _ungraded(entries[i][0], reason)
        if len(results) > 1 or args.quiet:
            report.print_summary(results, args.seed, args.tol, out)
        incomplete = f"interrupted by {what}; {len(not_graded)} files not graded"
        written, _ = _write_outputs(args, results, sandbox_line, out, incomplete)
        print("\n" + _interrupted_message(exc, what + sender, len(results) - len(not_graded),
                                          not_graded, written, getattr(exc, "left", [])),
              file=sys.stderr)
        return 128 + signum

    if len(results) > 1 or args.quiet:
        report.print_summary(results, args.seed, args.tol, out)
    _, problems = _write_outputs(args, results, sandbox_line, out)
    if problems:
        return EXIT_NOT_WRITTEN
    if not any(r.checked for r in results):
        return EXIT_NOTHING
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED
