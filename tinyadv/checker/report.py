"""What a teacher reads: a block per file, a summary table, and the CSV gradebook.

The gradebook has one row per (file, function) -- columns ``file,function,status,rel_error,
hint`` -- plus a row with an empty function for a problem of the whole file (it cannot be
imported, defines nothing to check, or misbehaved after its last answer). ``rel_error`` is the
worst over the function's gradients and cases (empty when nothing was measured); ``hint`` is
the first hint or reason, on one line.
"""
import csv
import io

from tinyadv.checker.judge import clean
from tinyadv.fileio import write_text_atomic

GRADEBOOK_COLUMNS = ("file", "function", "status", "rel_error", "hint")
OUTPUT_LINES = 12  # lines of a submission's own output shown in its block
LINE_CHARS = 160
VERDICTS = {"fail": "FAIL", "blank": "TODO", "error": "ERROR", "timeout": "TIMEOUT",
            "memory": "MEMORY"}


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


def print_file(result, out):
    print(f"== {result.path}", file=out)
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
    width = max(len("file"), *(len(r.path) for r in results))
    print(f"summary (seed {seed}, tol {tol:.0e})", file=out)
    print(f"{'file':<{width}}  pass  fail  todo  other  result", file=out)
    for r in results:
        other = r.count("error") + r.count("timeout") + r.count("memory")
        print(f"{r.path:<{width}}  {r.count('pass'):>4}  {r.count('fail'):>4}  "
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
            writer.writerow([_cell(r.path), f.name, f.status, error, _cell(clean(f.hint, 500))])
    return buffer.getvalue()


def write_gradebook(path, results):
    """Write the CSV atomically: an interrupted run leaves the old file or none, never half."""
    write_text_atomic(path, gradebook_text(results))
