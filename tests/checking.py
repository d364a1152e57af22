"""Helpers for the exercise checker's tests: write submissions, run the checker, read its
report and gradebook. Shared by test_gradcheck_cli.py and test_grader_hostile.py."""
import csv
import io
import textwrap
from pathlib import Path

from tinyadv.grader.cli import main

REPO = Path(__file__).resolve().parents[1]
LIBRARY = ("from tinyadv.layers import *\nfrom tinyadv.losses import *\n"
           "from tinyadv.grader.answers import fgsm_loss_forward, fgsm_loss_backward\n")
CORRECT_RELU = """
    import numpy as np
    def relu_forward(x):
        return np.maximum(x, 0.0), x
    def relu_backward(dout, cache):
        return dout * (cache > 0)
    """


def write(folder, name, code):
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(code))
    return path


def check(*argv):
    """Run the checker in this process: (exit status, printed report)."""
    out = io.StringIO()
    code = main([str(a) for a in argv], out=out)
    return code, out.getvalue()


def blocks(report):
    """{path: that file's block of the report}, from the '== path' lines."""
    found, path = {}, None
    for line in report.splitlines():
        if line.startswith("== "):
            path = line[3:]
            found[path] = []
        elif path is not None and line.startswith("summary ("):
            path = None
        elif path is not None:
            found[path].append(line)
    return {p: "\n".join(lines) for p, lines in found.items()}


def gradebook(path):
    """The CSV gradebook as a list of dicts (and the header, checked)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["file", "function", "status", "rel_error", "hint", "isolation"], rows[0]
    return [dict(zip(rows[0], row)) for row in rows[1:]]


def statuses(rows, file_name):
    """{function: status} for the rows of the file whose name ends with file_name."""
    return {r["function"]: r["status"] for r in rows if r["file"].endswith(file_name)}
