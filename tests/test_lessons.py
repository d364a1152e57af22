"""Every numbered lesson runs top to bottom, headless, in its fast mode, and writes its figures.

Each lesson is run as a student would run it -- a subprocess, ``python lessons/NN_x.py`` --
with ``--fast`` (tiny data, one epoch) and ``--out`` pointing at a temporary folder, from a
different working directory, and with a Jupyter-style extra flag it must ignore.
"""
import glob
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LESSON_DIR = os.path.join(ROOT, "lessons")
LESSONS = sorted(glob.glob(os.path.join(LESSON_DIR, "[0-9][0-9]_*.py")))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_lesson(path, out_dir, *extra, env_extra=None):
    # One BLAS thread: on a busy 2-core machine a multithreaded OpenBLAS spins against the
    # test runner and small products (a 200x128 SVD) take ~50x longer. Results are unaffected.
    env = dict(os.environ, MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1")
    env.pop("TINYADV_FAST", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, path, "--out", str(out_dir), *extra], cwd=str(out_dir),
                          env=env, capture_output=True, text=True, timeout=300)


def promised_figures(path):
    """The figure files a lesson's docstring says it writes (names like 03_accuracy_vs_eps.png)."""
    with open(path) as f:
        text = f.read()
    docstring = text.split('"""')[1]
    return set(re.findall(r"\b\d\d_[a-z0-9_]+\.png\b", docstring))


def test_at_least_six_numbered_lessons():
    assert len(LESSONS) >= 6, [os.path.basename(p) for p in LESSONS]
    numbers = [os.path.basename(p)[:2] for p in LESSONS]
    assert len(set(numbers)) == len(numbers), f"two lessons share a number: {numbers}"


@pytest.mark.parametrize("path", LESSONS, ids=os.path.basename)
def test_lesson_is_a_cell_script_that_says_what_to_expect(path):
    with open(path) as f:
        text = f.read()
    assert text.startswith('"""'), "a lesson opens with its docstring"
    assert "What you will see" in text.split('"""')[1]
    assert text.count("# %%") >= 3, "cells (# %%) let the lesson open as a notebook"
    assert promised_figures(path), "the docstring names the figures the lesson writes"


@pytest.mark.parametrize("path", LESSONS, ids=os.path.basename)
def test_lesson_runs_in_fast_mode_and_writes_its_figures(path, tmp_path):
    # --f=...: Jupyter/VS Code pass such a flag to the kernel; the lesson must ignore it (and
    # not take it for an abbreviation of --fast).
    result = run_lesson(path, tmp_path, "--fast", "--f=/tmp/kernel-test.json")
    assert result.returncode == 0, (f"{os.path.basename(path)} exited {result.returncode}\n"
                                    f"stderr (last 3000 chars):\n{result.stderr[-3000:]}")
    written = {name for name in os.listdir(tmp_path) if name.endswith(".png")}
    assert written, "the lesson wrote no figure"
    assert written == promised_figures(path), "figures written differ from those the docstring names"
    for name in written:
        with open(tmp_path / name, "rb") as f:
            head = f.read(8)
        assert head == PNG_SIGNATURE, f"{name} is not a PNG"
        assert os.path.getsize(tmp_path / name) > 2000, f"{name} is suspiciously small"
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")], "a half-written file was left"


def test_fast_mode_also_follows_the_environment_variable(tmp_path):
    """TINYADV_FAST=1 is the same as --fast: lesson 05 then looks at 300 MNIST images, not 1000."""
    path = next(p for p in LESSONS if os.path.basename(p).startswith("05_"))
    fast = run_lesson(path, tmp_path, env_extra={"TINYADV_FAST": "1"})
    assert fast.returncode == 0, fast.stderr[-3000:]
    pairs_300 = 300 * 299 // 2
    assert f"among {pairs_300} pairs" in fast.stdout, fast.stdout[-2000:]


def test_readme_lists_every_lesson_and_links_the_exercises():
    with open(os.path.join(LESSON_DIR, "README.md")) as f:
        readme = f.read()
    for path in LESSONS:
        assert os.path.basename(path) in readme, f"{os.path.basename(path)} missing from lessons/README.md"
    assert "exercises/README.md" in readme


def test_lesson_08_loop_is_the_library_training_loop(tmp_path):
    """Lesson 08 writes train.train's loop out to watch it; it must give the same weights."""
    path = next(p for p in LESSONS if os.path.basename(p).startswith("08_"))
    script = (
        "import runpy, sys\n"
        "import numpy as np\n"
        f"lesson = runpy.run_path({path!r})\n"
        "from tinyadv.train import train\n"
        "for init, params in lesson['models'].items():\n"
        "    config = lesson['base'].replace(init=init)\n"
        "    expected, _ = train(config, lesson['X_train'], lesson['y_train'], log=None)\n"
        "    assert sorted(expected) == sorted(params), init\n"
        "    for key in expected:\n"
        "        assert np.array_equal(expected[key], params[key]), (init, key)\n"
        "print('same weights')\n")
    env = dict(os.environ, MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1", TINYADV_FAST="1",
               PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, "-c", script, "--out", str(tmp_path)],
                            cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "same weights" in result.stdout
