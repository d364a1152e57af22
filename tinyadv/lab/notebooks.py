"""Each lesson as a Jupyter notebook, made from its ``# %%`` cells.

    python -m tinyadv.lab.notebooks            # write lessons/NN_*.ipynb beside each lesson
    python -m tinyadv.lab.notebooks --check    # exit 1 if a notebook differs from its script

The script is the source; the notebook is generated from it and committed, so that a student
can open it without any other tool. The lesson's docstring becomes the first cell (text), and
every ``# %% Title`` line starts a section: a text cell with the title, then a code cell with
the lines up to the next ``# %%``, exactly as they stand in the script. Nothing else changes:
the notebook runs the same code (tests/test_lessons.py holds every notebook equal to what this
module makes of its script). Only the standard library is needed; the format is nbformat 4.5,
which Jupyter, VS Code and Colab read.
"""
import argparse
import glob
import json
import os
import sys

from ..fileio import write_text_atomic

__all__ = ["cells_of", "notebook", "notebook_text", "lesson_scripts", "main"]

CELL_MARK = "# %%"
LESSONS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))), "lessons")


def _lines(text):
    """Lines with their newlines, as nbformat stores a cell's source (the last one without)."""
    lines = text.splitlines(keepends=True)
    if lines:
        lines[-1] = lines[-1].rstrip("\n")
    return lines


def cells_of(script):
    """[(kind, text)] of a lesson script: ("markdown", ...) or ("code", ...), in order.

    The module docstring (which must open the file) becomes a markdown cell whose first line
    is a heading; each ``# %% Title`` line a markdown cell "## Title" followed by a code
    cell of the lines after it, up to the next ``# %%`` (blank lines at either end dropped).
    """
    if not script.startswith('"""'):
        raise ValueError("script: expected a lesson that opens with its docstring (\"\"\"), got "
                         f"{script[:40]!r}")
    end = script.index('"""', 3)
    title, _, rest = script[3:end].partition("\n")
    cells = [("markdown", f"# {title.strip()}\n\n{rest.strip()}\n")]
    body = script[end + 3:].split("\n")
    starts = [i for i, line in enumerate(body) if line.startswith(CELL_MARK)]
    if not starts or any(line.strip() for line in body[:starts[0]]):
        raise ValueError("script: expected only blank lines between the docstring and the first "
                         f"'{CELL_MARK}' line")
    for k, start in enumerate(starts):
        heading = body[start][len(CELL_MARK):].strip()
        code = "\n".join(body[start + 1:starts[k + 1] if k + 1 < len(starts) else None]).strip("\n")
        if heading:
            cells.append(("markdown", f"## {heading}"))
        if code:
            cells.append(("code", code))
    return cells


def notebook(script, name):
    """The notebook (a dict in nbformat 4.5) of a lesson script; ``name`` labels its cell ids."""
    stem = os.path.splitext(os.path.basename(name))[0]
    cells = []
    for i, (kind, text) in enumerate(cells_of(script)):
        cell = {"cell_type": kind, "id": f"{stem[:2]}-{i:02d}", "metadata": {},
                "source": _lines(text)}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        cells.append(cell)
    return {"cells": cells,
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                        "name": "python3"},
                         "language_info": {"name": "python"},
                         "tinyadv": {"generated_from": os.path.basename(name),
                                     "by": "python -m tinyadv.lab.notebooks"}},
            "nbformat": 4, "nbformat_minor": 5}


def notebook_text(script, name):
    """The .ipynb file's exact text: indented JSON, keys sorted, ASCII only (so no text
    encoding can change it), one newline at the end."""
    return json.dumps(notebook(script, name), indent=1, sort_keys=True) + "\n"


def lesson_scripts(folder=LESSONS):
    """The numbered lessons, NN_*.py, in order."""
    return sorted(glob.glob(os.path.join(folder, "[0-9][0-9]_*.py")))


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tinyadv.lab.notebooks",
        description="Write each lesson's notebook (lessons/NN_*.ipynb) from its # %% cells.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if any notebook is missing or differs")
    parser.add_argument("--lessons", default=LESSONS, help="the lessons folder (default: %(default)s)")
    args = parser.parse_args(argv)
    scripts = lesson_scripts(args.lessons)
    if not scripts:
        parser.error(f"--lessons: expected a folder with NN_*.py lessons, got {args.lessons}")
    stale = []
    for path in scripts:
        with open(path, encoding="utf-8") as f:
            text = notebook_text(f.read(), path)
        target = os.path.splitext(path)[0] + ".ipynb"
        try:
            with open(target, encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if current == text:
            continue
        stale.append(target)
        if not args.check:
            write_text_atomic(target, text)
    verb = "differ from their scripts" if args.check else "written"
    print(f"{len(stale)} of {len(scripts)} notebooks {verb}"
          + "".join(f"\n  {os.path.relpath(p)}" for p in stale))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
