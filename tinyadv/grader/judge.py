"""From what a child sent back to a status per function, decided here and nowhere else.

Statuses, one per (file, function):

    pass     every gradient within tol of the numerical one in every case, and the file's own
             forward (if it has one) gives tinyadv's output
    fail     a wrong gradient, a wrong forward, a malformed return value, an exception
    blank    still ``raise NotImplementedError`` (or, with --expect, not defined at all)
    error    the file cannot be imported, or its process ended, crashed, sent something
             malformed or signalled the checker before this function was done
    timeout  the time limit ran out before this function was done
    memory   it ran out of its memory limit (a MemoryError, at import or in the function)

and two for a file that was not run (cli.py): ``refused`` (a symlink) and ``ungraded`` (the run
was interrupted before it, or a full disk kept it from being checked).

How one case is judged: the child reports the forward's output and the backward's return
value as arrays (child.py); here they are compared with tinyadv's output and the centred-
difference gradients of tinyadv's forward (pieces.py), all float64:

    rel_error(analytic, numeric) = max|a - n| / max(|a| + |n|) <= tol        for each gradient

Why tol = 1e-6: with h = 1e-6 in float64 the centred difference has a truncation error of
order h^2 ~ 1e-12 and a rounding error of order 1e-16 * |f| / h ~ 1e-10 relative, and no
perturbation crosses a kink (every input is >= 0.1 from one, 1e5 steps of h). tinyadv's own
backwards of the eight pieces of exercises 01-07 measure at most 1.7e-8 over seeds 0-199 (cast
to float32, 3.0e-8), the three of exercises 08-09 at most 2.4e-8 (cast to float32, 3.4e-8),
while the mistakes this checker is for (a missing 1/N, a sign, a mask, a transpose)
give errors of order 1e-2 to 1. 1e-6 sits between the two with room on both sides.

Everything the child sent is hostile until checked: texts are cleaned (``clean``) before they
are printed or written, numbers must have the expected shapes, and a record that does not
have the expected form makes the function ``error``.
"""
import difflib
from dataclasses import dataclass, field

import numpy as np

from tinyadv.grader import channel, hints, identity, kinks, procs
from tinyadv.grader.pieces import BACKWARD_NAMES, BY_BACKWARD
from tinyadv.gradcheck import compare, rel_error

__all__ = ["judge_file", "judge_function", "clean", "FunctionResult", "FileResult", "CHECK_TOL",
           "STATUSES"]

CHECK_TOL = 1e-6
NOT_STARTED = "none: the child ended before it could say (the file's code never ran)"
STATUSES = ("pass", "fail", "blank", "error", "timeout", "memory", "refused", "ungraded")


class Malformed(ValueError):
    """A record from the child without the expected form."""


def clean(text, limit=300):
    """Text from a child, safe to print and to put in a CSV cell: at most ``limit``
    characters, line breaks and tabs as spaces, any other control character as '?' (so no
    terminal escape sequence, and no forged line in the report)."""
    if not isinstance(text, str):
        return ""
    cut = text[:limit]
    cut = "".join(ch if ch.isprintable() else (" " if ch in "\n\r\t" else "?") for ch in cut)
    return cut + ("..." if len(text) > limit else "")


@dataclass
class FunctionResult:
    name: str  # "relu_backward", or "" for a row about the whole file
    status: str  # one of STATUSES
    rel_error: float = None  # the worst over its gradients and cases, when measured
    hint: str = ""  # one line for the gradebook
    lines: list = field(default_factory=list)  # the text report


@dataclass
class FileResult:
    path: str
    functions: list = field(default_factory=list)  # FunctionResult, the file row (if any) last
    notes: list = field(default_factory=list)
    output: bytes = b""  # what the submission printed (the first OUTPUT_KEEP bytes)
    output_size: int = 0
    seconds: float = 0.0
    checked: bool = False  # imported, and defines at least one known backward
    isolation: str = NOT_STARTED  # what the child ran under, in full: Landlock, processes, user
    isolation_label: str = NOT_STARTED  # the Landlock part alone (isolation.py): landlock-7

    def count(self, status):
        return sum(f.status == status for f in self.functions)

    @property
    def ok(self):
        return bool(self.functions) and all(f.status == "pass" for f in self.functions)

    def add_file_problem(self, status, reason):
        """A row about the whole file (its function name is empty)."""
        self.functions.append(FunctionResult("", status, None, reason,
                                             [f"{status.upper()}: {reason}"]))


# --------------------------------------------------------------------------- reading records

def _get(record, key, kind):
    value = record.get(key) if isinstance(record, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise Malformed(f"{key}: expected {kind}, got {type(value).__name__}")
    return value


def _array(description, arrays):
    """The float64 array a description points at, or None."""
    index = description.get("array") if isinstance(description, dict) else None
    if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(arrays):
        return np.asarray(arrays[index], dtype=np.float64)
    return None


def _shape(description):
    shape = description.get("shape") if isinstance(description, dict) else None
    if isinstance(shape, list) and len(shape) <= 32 and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        return tuple(shape)
    return None


def _shape_str(shape):
    return "scalar" if shape == () else str(shape)


# --------------------------------------------------------------------------- one function

def _returned_arrays(piece, returned, arrays, expected_shapes, n):
    """The backward's gradients as float64 arrays, or (None, a problem worded for the student)."""
    grads = piece.grads
    kind = _get(returned, "kind", str)
    if kind == "none":
        return None, "returned None (is the `return` statement missing?)"
    if kind == "sequence":
        length, items = _get(returned, "length", int), _get(returned, "items", list)
        container = clean(_get(returned, "type", str), 40)
        if len(grads) == 1:
            return None, (f"returned a {container} of length {length}; expected the array "
                          f"{grads[0]} itself, shaped {expected_shapes[0]}")
        if length != len(grads):
            return None, (f"returned {length} values; expected {len(grads)} "
                          f"arrays ({', '.join(grads)}), in that order")
        if len(items) != length:
            raise Malformed("items")
    elif kind == "unreadable":  # reading it raised, in the submission's own code
        return None, (f"returned a {clean(_get(returned, 'type', str), 40)} that cannot be read "
                      f"as {'the array ' + grads[0] if len(grads) == 1 else 'a tuple of arrays'} "
                      f"({clean(returned.get('why'))})")
    elif kind == "single":
        item = _get(returned, "item", dict)
        if len(grads) > 1:
            return None, (f"returned a single {clean(item.get('type'), 40)} of shape "
                          f"{_shape_str(_shape(item))}; expected {len(grads)} arrays "
                          f"({', '.join(grads)})")
        items = [item]
    else:
        raise Malformed(f"kind {kind!r}")
    found, problems = [], []
    for name, item, expected in zip(grads, items, expected_shapes):
        array, shape = _array(item, arrays), _shape(item)
        unreadable = f"{name} cannot be read as an array of numbers ({clean(item.get('why'))})"
        if item.get("type") == "NoneType":
            problems.append(f"{name} is None")
        elif shape is None or item.get("unreadable") is True:
            problems.append(unreadable)
        elif shape != expected:
            hint = hints.shape_hint(expected, shape, n)
            problems.append(f"{name}: expected shape {expected} (the shape of {name[1:]}), got "
                            f"{shape}" + (f"\n  hint: {hint}" if hint else ""))
        elif array is None or array.shape != expected:
            problems.append(unreadable)
        found.append((shape, array))
    got_shapes = [shape for shape, _ in found if shape is not None]
    if problems and len(got_shapes) == len(grads) > 1 and got_shapes != list(expected_shapes) \
            and sorted(got_shapes) == sorted(expected_shapes):
        problems.append(f"hint: the shapes are the expected ones in another order: return "
                        f"({', '.join(grads)}) in that order.")
    if problems:
        return None, "\n".join(problems)
    return [array for _, array in found], None


def _library_notes(piece, record, reported=()):
    """Notes for the teacher when the file hands back tinyadv's own answer. ``reported``:
    the names of tinyadv's functions its watchers said were called while this function ran
    (frames sent at the moment of the call, child.py), beside what its record says."""
    notes = []
    if record.get("is_library") is True:
        notes.append(f"note: this is tinyadv's own {piece.backward_name}, imported -- not the "
                     f"student's (the library holds every solution; the teacher decides)")
    called = {name for name in reported if name in piece.solutions}
    for case in _get(record, "cases", list) + [record.get("probe") or {}]:
        names = case.get("library_calls") if isinstance(case, dict) else None
        if isinstance(names, list):
            called.update(name for name in names if name in piece.solutions)
    if called and not notes:
        notes.append(f"note: calls {', '.join(sorted(called))}, which computes this answer "
                     f"outright (the library holds every solution; the teacher decides)")
    tampered = record.get("watch")
    if isinstance(tampered, list) and tampered:
        notes.append(f"note: it {clean('; '.join(map(str, tampered)), 200)} -- the checker's "
                     f"watch on tinyadv's own functions: the answer may be the library's (the "
                     f"teacher decides)")
    return notes


def _probe_note(piece, probe, record, arrays):
    """The note of kinks.py when the answer beside a kink is centred differences', or None."""
    probe_record = record.get("probe")
    if probe is None or not isinstance(probe_record, dict):
        return None
    if (probe_record.get("backward") or {}).get("status") != "ok":
        return None
    shapes = [np.shape(a) for a in probe.args[:len(piece.inputs)]]
    analytic, problem = _returned_arrays(piece, _get(probe_record, "returned", dict), arrays,
                                         shapes, 0)
    return None if problem else kinks.note(probe, analytic)


def judge_function(piece, cases, record, arrays, tol, probe=None, reported=()):
    """The FunctionResult of one backward, from its record and tinyadv's reference cases;
    ``probe``: the piece's probe beside a kink (kinks.py), or None; ``reported``: library
    calls its watchers reported while it ran."""
    fwd, bwd = piece.forward_name, piece.backward_name
    if "failed" in record:  # the child could not even call it (the file's own doing)
        reason = f"could not be called: {clean(_get(record, 'failed', str))}"
        return FunctionResult(bwd, "fail", None, reason, [f"FAIL {bwd}: {reason}"])
    source = _get(record, "forward_source", str)
    if source not in ("file", "imported", "tinyadv"):
        raise Malformed("forward_source")
    source_words = {"file": f"this file's {fwd}", "imported": f"tinyadv's {fwd} (imported)",
                    "tinyadv": f"tinyadv's {fwd} (the file has none)"}[source]
    notes = _library_notes(piece, record, reported)
    record_cases = _get(record, "cases", list)
    if len(record_cases) != len(cases):
        raise Malformed("cases")

    def stopped(status, case, message):
        """The function stopped at this case: a crash, a malformed return, a wrong shape."""
        lines = [f"{status.upper()} {bwd}  (forward: {source_words})",
                 f"     case N={case.n}: {case.shapes}"]
        lines += ["     " + line for line in message.splitlines() + notes]
        return FunctionResult(bwd, status, None, message.splitlines()[0], lines)

    judged, forward_worst = [], None  # (case, analytic, reports); (rel_error, case, out)
    for case, rc in zip(cases, record_cases):
        if not isinstance(rc, dict):
            raise Malformed("case")
        forward = _get(rc, "forward", dict)
        status = forward.get("status")
        if status == "blank":
            message = clean(forward.get("message"))
            detail = f" ({fwd}: {message})" if message else f" ({fwd})"
            return FunctionResult(bwd, "blank", None, "not implemented yet" + detail,
                                  [f"TODO {bwd}: not implemented yet{detail}"])
        if status == "raised":
            memory = forward.get("memory") is True
            return stopped("memory" if memory else "fail", case,
                           f"{fwd} raised {clean(forward.get('message'))}")
        if status == "not a pair":
            return stopped("fail", case, f"{fwd} must return (out, cache); got "
                                         f"{clean(forward.get('type'), 40)}")
        if status == "unreadable":
            return stopped("fail", case, f"{fwd} must return (out, cache); got a "
                                         f"{clean(forward.get('type'), 40)} that cannot be "
                                         f"read as one ({clean(forward.get('why'))})")
        if status != "ok":
            raise Malformed("forward status")
        out_description = _get(rc, "out", dict)
        out, out_shape = _array(out_description, arrays), _shape(out_description)
        if out_shape is not None and out_shape != case.out.shape:
            return stopped("fail", case, f"wrong forward: {fwd} returned out of shape "
                                         f"{_shape_str(out_shape)}; expected "
                                         f"{_shape_str(case.out.shape)}")
        if out is None or out.shape != case.out.shape:
            return stopped("fail", case, f"{fwd} returned an out that cannot be read as numbers "
                                         f"({clean(out_description.get('why'))})")
        if source == "file":
            error = rel_error(out, case.out) if np.all(np.isfinite(out)) else np.inf
            if forward_worst is None or error > forward_worst[0]:
                forward_worst = (error, case, out)

        backward = _get(rc, "backward", dict)
        status = backward.get("status")
        if status == "blank":
            message = clean(backward.get("message"))
            detail = f" ({message})" if message else ""
            return FunctionResult(bwd, "blank", None, "not implemented yet" + detail,
                                  [f"TODO {bwd}: not implemented yet{detail}"])
        if status == "raised":
            memory = backward.get("memory") is True
            return stopped("memory" if memory else "fail", case,
                           f"raised {clean(backward.get('message'))}")
        if status != "ok":
            raise Malformed("backward status")
        analytic, problem = _returned_arrays(piece, _get(rc, "returned", dict), arrays,
                                             [g.shape for g in case.numeric], case.n)
        if problem:
            return stopped("fail", case, problem)
        reports = [compare(name, mine, numeric, tol)
                   for name, mine, numeric in zip(piece.grads, analytic, case.numeric)]
        judged.append((case, analytic, reports))
    result = _worded(piece, judged, forward_worst, source_words, notes, tol)
    if result.status == "pass":  # the note is about an answer the check cannot tell apart
        try:
            numeric_note = _probe_note(piece, probe, record, arrays)
        except (Malformed, KeyError, TypeError, ValueError, IndexError, AttributeError):
            numeric_note = None  # a probe's answer that cannot be read: no note, no verdict
        if numeric_note:
            result.lines.append("     " + numeric_note)
            result.hint = " ".join(filter(None, [result.hint, numeric_note]))
    return result


def _at(index):
    """'[1, 3]' for an index tuple, '' for a scalar."""
    return "[" + ", ".join(str(int(i)) for i in index) + "]" if index else ""


def _worded(piece, judged, forward_worst, source_words, notes, tol):
    """PASS, or FAIL with the worst case of every failing gradient and its hint.

    judged: [(case, analytic gradients, GradCheckReports)]; forward_worst: (rel_error, case,
    out) of the file's own forward at its worst case, or None.
    """
    bwd = piece.backward_name
    note_lines = ["     " + note for note in notes]
    failing, worst_overall = [], 0.0
    for index, _ in enumerate(piece.grads):
        # The worst case of this gradient (NaN counts as the worst; the larger batch on a tie).
        case, analytic, reports = max(judged, key=lambda j: (
            np.nan_to_num(j[2][index].rel_error, nan=np.inf), j[0].n))
        report = reports[index]
        worst_overall = max(worst_overall, np.nan_to_num(report.rel_error, nan=np.inf))
        if not report.passed:
            failing.append((index, case, analytic, report))
    wrong_forward = forward_worst is not None and not forward_worst[0] <= tol

    if not failing and not wrong_forward:
        sizes = ", ".join(str(case.n) for case, _, _ in judged)
        lines = [f"PASS {bwd}: {', '.join(piece.grads)} within tol {tol:.0e} in {len(judged)} "
                 f"cases (N = {sizes}); worst rel_error {worst_overall:.1e}",
                 f"     forward: {source_words}"]
        return FunctionResult(bwd, "pass", worst_overall, " ".join(n.strip() for n in notes),
                              lines + note_lines)

    lines, first_hint = [f"FAIL {bwd}  (forward: {source_words})"], None
    if wrong_forward:
        error, case, out = forward_worst
        diff = np.nan_to_num(np.abs(out - case.out), nan=np.inf)
        where = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.ndim else ()
        hint = hints.forward_hint(out, case.out)
        first_hint = f"wrong forward: {piece.forward_name} is not tinyadv's; {hint}"
        lines += [f"     wrong forward: this file's {piece.forward_name} differs from tinyadv's: "
                  f"rel_error {error:.1e} > tol {tol:.0e}, in the case N={case.n}: {case.shapes}",
                  f"         worst element out{_at(where)}: yours {float(out[where]):.6g}, "
                  f"tinyadv's {float(case.out[where]):.6g}",
                  f"         hint: {hint}",
                  "         (the backward is checked against tinyadv's forward)"]
    for index, case, analytic, report in failing:
        hint = hints.explain(piece, index, case, analytic, only_failure=len(failing) == 1)
        first_hint = first_hint or f"{report.name}: {hint}"
        lines += [f"     {report.name}: rel_error {report.rel_error:.1e} > tol {tol:.0e}, "
                  f"in the case N={case.n}: {case.shapes}",
                  f"         worst element {report.name}{_at(report.worst_index)}: analytic "
                  f"{report.analytic_at_worst:.6g}, numeric {report.numeric_at_worst:.6g}",
                  f"         hint: {hint}"]
    passing = [g for i, g in enumerate(piece.grads) if i not in {f[0] for f in failing}]
    if failing and passing:
        lines.append(f"     ({', '.join(passing)}: correct)")
    return FunctionResult(bwd, "fail", worst_overall, first_hint, lines + note_lines)


# --------------------------------------------------------------------------- one file

def _how_it_ended(run, channel_problem, done, limits):
    """(status, reason) when the child did not finish cleanly, else None."""
    if run.timed_out:
        return "timeout", f"stopped at the time limit ({limits.seconds:g} s per file)"
    if run.problems:
        return "error", "; ".join(run.problems)
    if channel_problem:
        return "error", f"its answers to the checker are malformed ({channel_problem})"
    if done:
        return None
    code = run.returncode
    if code is not None and code < 0:
        name = procs.signal_name(-code)
        if name == "SIGXCPU":
            return "timeout", "it used up its CPU time"
        return "error", f"its process was killed by {name}"
    if code == channel.EXIT_PIPE_LOST:
        return "error", "it closed or replaced the pipe its answers go back on"
    return "error", (f"its process ended (exit status {code}) before it had finished: "
                     f"os._exit() in the file?")


def _near_misses(names):
    """Notes for functions that look like a backward but are not one the checker knows."""
    notes = []
    for name in sorted(n for n in names if isinstance(n, str))[:200]:
        if name in BACKWARD_NAMES or name.endswith("_forward"):
            continue
        guess = difflib.get_close_matches(name, BACKWARD_NAMES, n=1, cutoff=0.85)
        if guess or "backward" in name.lower():
            notes.append(f"note: {clean(name, 100)} is not a piece the checker knows"
                         + (f"; did you mean {guess[0]}?" if guess else "."))
    return notes


def judge_file(run, references, limits, tol=CHECK_TOL, expect=(), probes=None):
    """The FileResult of one child's Run; ``references``: pieces.all_reference_cases(seed);
    ``probes``: kinks.all_probes(references)."""
    result = FileResult(str(run.path), output=run.output, output_size=run.output_size,
                        seconds=run.seconds)
    if run.checked_again:
        result.notes.append(f"note: checked a second time, alone: the first time {run.checked_again}")
    messages, channel_problem = channel.decode_all(run.answers)
    # The child says what it runs under in its first frame, before the file is imported:
    # only that one counts (the file's own code could send another later).
    first = messages[0][0] if messages else {}
    if first.get("kind") == "isolation" and isinstance(first.get("label"), str):
        result.isolation_label = clean(first["label"], 200)
        parts = [result.isolation_label]
        if isinstance(first.get("processes"), str):
            parts.append(clean(first["processes"], 200))
        if isinstance(first.get("identity"), dict) and first["identity"]:
            parts.append(identity.namespaces(first["identity"]))
        if isinstance(first.get("user"), str):
            parts.append(clean(first["user"], 200))
        result.isolation = "; ".join(parts)
        if first.get("refused") is not None:
            reason = (f"--sandbox require: this child could not be shut in "
                      f"({clean(str(first['refused']), 200)}); the file was not run")
            result.add_file_problem("error", reason)
            return result
        messages = messages[1:]
    declared, imported, functions, done = None, None, {}, False
    # Library calls reported as they happened, by the function running then: the n-th
    # window lies between the (n-1)-th function record and the n-th (child.py sends them in
    # the order of "found"); calls at import time count for none.
    windows, reported = [], {}
    for record, arrays in messages:
        kind = record.get("kind")
        if done:
            break  # nothing after "done" counts
        if kind == "declared" and declared is None and isinstance(record.get("names"), list):
            declared = [n for n in BACKWARD_NAMES if n in record["names"]]  # the first counts
        elif kind in ("imported", "import failed") and imported is None:
            imported = record
            windows.append(set())
        elif kind == "library call" and windows and isinstance(record.get("name"), str):
            windows[-1].add(record["name"])
        elif (kind == "function" and isinstance(record.get("backward"), str)
              and record["backward"] in BY_BACKWARD):
            functions.setdefault(record["backward"], (record, arrays))
            if windows:
                reported.setdefault(record["backward"], windows[-1])
                windows.append(set())
        elif kind == "done":
            done = True
    ending = _how_it_ended(run, channel_problem, done, limits)
    declared = declared or []

    if imported is None or imported.get("kind") == "import failed":
        if imported is not None:
            status = "memory" if imported.get("memory") is True else "error"
            reason = f"cannot import: {clean(imported.get('reason'))}"
        elif ending:
            status, reason = ending[0], f"while importing the file, {ending[1]}"
        else:
            status, reason = "error", "its process sent nothing"
        names = list(dict.fromkeys(declared + list(expect)))
        for name in names:
            result.functions.append(FunctionResult(name, status, None, reason,
                                                   [f"{status.upper()} {name}: {reason}"]))
        if not names:
            result.add_file_problem(status, reason)
        return result

    found = imported.get("found")
    found = [n for n in BACKWARD_NAMES if isinstance(found, list) and n in found]
    callables = imported.get("callables")
    callables = callables if isinstance(callables, list) else []
    result.notes += _near_misses(callables)
    if expect:  # --expect: the other pieces were not sent to the child, nor called
        others = [n for n in BACKWARD_NAMES if n in callables and n not in expect]
        if others:
            result.notes.append(f"note: also defines {', '.join(others)}: not asked for "
                                f"(--expect {','.join(expect)}), so neither checked nor scored")
    result.checked = bool(found)
    reached_end = False
    for name in found:
        if name in functions:
            record, arrays = functions[name]
            try:
                outcome = judge_function(BY_BACKWARD[name], references[name], record, arrays,
                                         tol, (probes or {}).get(name), reported.get(name, ()))
            except (Malformed, KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                reason = f"its answer about {name} is malformed ({clean(str(exc), 100)})"
                outcome = FunctionResult(name, "error", None, reason, [f"ERROR {name}: {reason}"])
        elif ending is None:
            reason = f"its process said it had finished without an answer about {name}"
            outcome = FunctionResult(name, "error", None, reason, [f"ERROR {name}: {reason}"])
        else:
            status, why = ending
            reason = f"not reached: {why}" if reached_end else f"while running it, {why}"
            reached_end = True
            outcome = FunctionResult(name, status, None, reason,
                                     [f"{status.upper()} {name}: {reason}"])
        result.functions.append(outcome)
    for name in declared:  # written in the file, gone once it ran: hidden, not blank
        if name not in found:
            reason = "defined in the file, but not a function once the file has run"
            result.functions.append(FunctionResult(name, "fail", None, reason,
                                                   [f"FAIL {name}: {reason}"]))
    for name in expect:
        if name not in found and name not in declared:
            reason = "not defined in this file"
            result.functions.append(FunctionResult(name, "blank", None, reason,
                                                   [f"TODO {name}: {reason}"]))
    if not found and not expect and not declared:
        result.add_file_problem("blank", "nothing to check: the file defines none of "
                                + ", ".join(BACKWARD_NAMES))
    if ending and not reached_end:  # it misbehaved after its last answer
        result.add_file_problem(ending[0], ending[1])
    return result
