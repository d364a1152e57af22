"""What a teacher reads: a block per file, a summary table, and the CSV gradebook.

The gradebook has one row per (file, function) -- columns ``file,function,status,rel_error,
hint,isolation`` -- plus a row with an empty function for a problem of the whole file (it
cannot be imported, defines nothing to check, or misbehaved after its last answer).
``rel_error`` is the worst over the function's gradients and cases (empty when nothing was
measured); ``hint`` is the first hint or reason, on one line; ``isolation`` what the file's
child ran under (``landlock-7``, ``process-only: ...``; isolation.py).

The same verdicts can go to Gradescope (``gradescope_json``): one test per gradebook row.

File names come from students: every line printed and every cell written shows them through
``shown`` -- control characters, invisible and direction-changing characters and backslashes
escaped (``\x1b``, ``\n``, ``\u202e``, ``\\``) -- so a name can neither clear the screen
nor start a forged line; the CSV writer quotes what needs quoting, so a CSV reader finds
exactly one row per (file, function).
"""
import csv
import io
import json

from tinyadv.grader.judge import clean

__all__ = ["print_file", "verdict", "print_summary", "gradebook_text", "gradescope_json",
           "shown", "GRADEBOOK_COLUMNS"]

GRADEBOOK_COLUMNS = ("file", "function", "status", "rel_error", "hint", "isolation")
OUTPUT_LINES = 12  # lines of a submission's own output shown in its block
LINE_CHARS = 160
VERDICTS = {"fail": "FAIL", "blank": "TODO", "error": "ERROR", "timeout": "TIMEOUT",
            "memory": "MEMORY", "refused": "REFUSED", "ungraded": "UNGRADED"}
_NAMED_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown(path):
    """A file name as the report and the gradebook show it: printable characters as they are,
    everything else escaped (a name the file system could not decode shows its bytes)."""
    out = []
    for ch in str(path):
        code = ord(ch)
        if ch in _NAMED_ESCAPES:
            out.append(_NAMED_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for an undecodable byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


def _output_lines(result):
    """The submission's output, cleaned, as report lines: the first OUTPUT_LINES lines, each
    cut at LINE_CHARS characters, every one quoted with '  | ' so it cannot pass for ours."""
    if not result.output_size:
        return []
    lines = result.output.decode("utf-8", "replace").splitlines()
    complete = (result.output_size == len(result.output) and len(lines) <= OUTPUT_LINES
                and all(len(line) <= LINE_CHARS for line in lines))
    text = [f"output ({result.output_size} bytes{'' if complete else ', the start'}):"]
    text += ["  | " + clean(line, LINE_CHARS) for line in lines[:OUTPUT_LINES]]
    return text + ([] if complete else ["  | ..."])


def print_file(result, out, verbose=False):
    """A file's block; ``verbose``: its isolation in full (user id, capabilities, processes)."""
    print(f"== {shown(result.path)}", file=out)
    for function in result.functions:
        for line in function.lines:
            print(line, file=out)
    for line in result.notes + _output_lines(result):
        print(line, file=out)
    if result.checked:
        others = [f"{result.count(s)} {s}" for s in ("error", "timeout", "memory") if result.count(s)]
        print(f"-> {result.count('pass')} passed, {result.count('fail')} failed, "
              f"{result.count('blank')} not implemented yet" + "".join(", " + o for o in others),
              file=out)
    print(f"isolation: {result.isolation if verbose else result.isolation_label}", file=out)
    print(file=out)


def verdict(result):
    """PASS, or the kinds of trouble in the file (FAIL, TODO, ERROR, TIMEOUT, MEMORY)."""
    if result.ok:
        return "PASS"
    kinds = [VERDICTS[s] for s in VERDICTS if result.count(s)]
    file_rows = [f for f in result.functions if not f.name]
    text = " ".join(kinds)
    return text + (f": {file_rows[0].hint[:90]}" if file_rows else "")


def print_summary(results, seed, tol, out):
    width = max(len("file"), *(len(shown(r.path)) for r in results))
    print(f"summary (seed {seed}, tol {tol:.0e})", file=out)
    print(f"{'file':<{width}}  pass  fail  todo  other  result", file=out)
    for r in results:
        other = sum(r.count(s) for s in ("error", "timeout", "memory", "refused", "ungraded"))
        print(f"{shown(r.path):<{width}}  {r.count('pass'):>4}  {r.count('fail'):>4}  "
              f"{r.count('blank'):>4}  {other:>5}  {verdict(r)}", file=out)


def _cell(text):
    # A spreadsheet runs a cell that starts with = + - @ as a formula; file names and
    # messages come from students, so such a cell is written with a leading quote.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def gradebook_text(results):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(GRADEBOOK_COLUMNS)
    for r in results:
        for f in r.functions:
            error = "" if f.rel_error is None else f"{f.rel_error:.3e}"
            writer.writerow([_cell(shown(r.path)), f.name, f.status, error,
                             _cell(clean(f.hint, 500)), _cell(r.isolation)])
    return buffer.getvalue()


def gradescope_json(results, sandbox_line, incomplete=None, expected=()):
    """Gradescope's results.json (its published autograder specification, "Output format"):
    one test per gradebook row, worth 1 point, scored 1 only when it passes; the hint is the
    test's output. Every text is marked "text" so that Gradescope renders none of it as HTML
    or Markdown: names and hints carry students' words. ``incomplete``: why the run stopped
    early, said first in the top-level output. ``expected`` (--expect): only the rows of
    those functions carry a point; a row about the whole file is listed with 0 points, and
    the other functions a file defines were not checked (its notes say which)."""
    tests = []
    for r in results:
        for number, f in enumerate(r.functions):
            name = f"{shown(r.path)}: {f.name}" if f.name else f"{shown(r.path)} (the whole file)"
            output = f"{f.status.upper()}" + (f": {clean(f.hint, 2000)}" if f.hint else "")
            if f.rel_error is not None:
                output += f"\nworst rel_error {f.rel_error:.3e}"
            output += f"\nisolation: {r.isolation}"
            if number == 0 and r.notes:
                output += "\n" + "\n".join(clean(note, 500) for note in r.notes[:20])
            worth = 1.0 if not expected or f.name in expected else 0.0
            tests.append({"name": clean(name, 300), "name_format": "text",
                          "score": worth if f.status == "pass" else 0.0, "max_score": worth,
                          "status": "passed" if f.status == "pass" else "failed",
                          "output": output, "output_format": "text",
                          "extra_data": {"status": f.status, "isolation": r.isolation}})
    record = {"score": float(sum(t["score"] for t in tests)),
              "execution_time": int(round(sum(r.seconds for r in results))),
              "output": (f"INCOMPLETE: {incomplete}\n" if incomplete else "") + sandbox_line,
              "output_format": "text",
              "test_output_format": "text", "test_name_format": "text", "tests": tests}
    return json.dumps(record, indent=1) + "\n"
