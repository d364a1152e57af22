"""Every numbered lesson runs top to bottom, headless, in its fast mode, and writes its figures,
each titled; every lesson's notebook matches its script and runs as a notebook; every
exercise checks itself when run.

Each lesson is run as a student would run it -- a subprocess, ``python lessons/NN_x.py`` --
with ``--fast`` (tiny data, one epoch) and ``--out`` pointing at a temporary folder, from a
different working directory, and with a Jupyter-style extra flag it must ignore.
"""
import glob
import json
import os
import re
import subprocess
import sys

import pytest

from tinyadv import plots

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LESSON_DIR = os.path.join(ROOT, "lessons")
LESSONS = sorted(glob.glob(os.path.join(LESSON_DIR, "[0-9][0-9]_*.py")))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_lesson(path, out_dir, *extra, env_extra=None, cwd=None):
    # One BLAS thread: on a busy 2-core machine a multithreaded OpenBLAS spins against the
    # test runner and small products (a 200x128 SVD) take ~50x longer. Results are unaffected.
    env = dict(os.environ, MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1")
    env.pop("TINYADV_FAST", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, path, "--out", str(out_dir), *extra],
                          cwd=str(cwd or out_dir), env=env, capture_output=True, text=True,
                          timeout=300)


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
        # plots.save_figure refuses an untitled figure and writes the title into the PNG
        title = plots.png_title(str(tmp_path / name))
        assert title and title.startswith(f"Lesson {name[:2]}"), (name, title)
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")], "a half-written file was left"


def test_fast_mode_also_follows_the_environment_variable(tmp_path):
    """TINYADV_FAST=1 is the same as --fast: lesson 05 then looks at 300 MNIST images, not 1000.
    Run as `cd lessons && python 05_....py` (the other tests run lessons from elsewhere)."""
    path = next(p for p in LESSONS if os.path.basename(p).startswith("05_"))
    fast = run_lesson(os.path.basename(path), tmp_path, env_extra={"TINYADV_FAST": "1"},
                      cwd=LESSON_DIR)
    assert fast.returncode == 0, fast.stderr[-3000:]
    pairs_300 = 300 * 299 // 2
    assert f"among {pairs_300} pairs" in fast.stdout, fast.stdout[-2000:]


def test_readme_lists_every_lesson_and_links_the_exercises():
    with open(os.path.join(LESSON_DIR, "README.md")) as f:
        readme = f.read()
    for path in LESSONS:
        assert os.path.basename(path) in readme, f"{os.path.basename(path)} missing from lessons/README.md"
    assert "exercises/README.md" in readme


def test_lesson_08_watches_the_library_training_loop(tmp_path):
    """Lesson 08 watches train.train through its on_step hook instead of copying the loop; the
    looking must not touch the run: the same weights as train() without a hook."""
    path = next(p for p in LESSONS if os.path.basename(p).startswith("08_"))
    with open(path) as f:
        source = f.read()
    for copied in ("iterate_minibatches", "train_step", "make_optimizer", "math.cos"):
        assert copied not in source, f"lesson 08 copies the training loop again ({copied})"
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


def lesson_09():
    return next(p for p in LESSONS if os.path.basename(p).startswith("09_"))


def test_lesson_09_without_results_says_how_to_make_them(tmp_path):
    """A fresh clone has no results/: lesson 09 reads the authors' logs and names the commands."""
    out = tmp_path / "out"
    out.mkdir()
    result = run_lesson(lesson_09(), out, "--fast", "--results", str(tmp_path / "no-results"))
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout
    # the authors' logs, recomputed: the printed rows are third runs, means ± sample std
    assert "86.06 ± 0.69" in text and "85.09 ± 3.25" in text and "9.90 ± 1.28" in text
    assert "run 3 / 3 / 3" in text
    assert "p = 0.66" in text  # Welch's test, Baseline vs the printed + MLS + MLI config
    assert "No tinyadv table" in text and "python -m tinyadv.reproduce" in text
    assert "No sweep" in text and "python -m tinyadv.sweep" in text
    assert {n for n in os.listdir(out) if n.endswith(".png")} == promised_figures(lesson_09())


def _synthetic_results(folder):
    """results/ as reproduce and sweep write it, from made-up runs, through the library's own
    summarise functions (so the files keep the library's format): default/ with three seeds,
    authors/ with one, sweep/ with three seeds, and a broken table the lesson must skip."""
    import json

    import numpy as np

    from tinyadv.lab import reproduce, sweep
    from tinyadv.lab.configs import preset_config
    from tinyadv.train import MODELS

    rng = np.random.default_rng(0)
    totals = {c: (50 if c == "human_linf_manual_eps04" else 100) if c.startswith("human_")
              else 1000 for c in reproduce.COLUMNS}

    def results(shift):
        out = {}
        for c, total in totals.items():
            correct = int(np.clip(round(total * (0.6 + shift / 100) + rng.integers(-15, 16)),
                                  0, total))
            out[c] = {"percent": 100.0 * correct / total, "correct": correct, "total": total}
        return out

    for preset, seeds in (("default", [0, 1, 2]), ("paper-4d", [0])):
        records = {f"{m}__seed{s}": {"results": results(3 * i)}
                   for i, m in enumerate(MODELS) for s in seeds}
        table = reproduce.summarise(records, seeds)
        (folder / preset).mkdir(parents=True)
        (folder / preset / "table1.json").write_text(json.dumps(
            {"preset": preset, "table": table, "config": {"seeds": seeds}}))
    settings = sweep.grid_settings(sweep.QUICK_AXES, ["source"], preset_config("default"))
    seeds = [0, 1, 2]
    records = {s.stem(seed): {"results": results({"baseline": 0, "mls": -2, "mli": 4}[s.kind]),
                              "history": [{"active_sens": 0.5, "active_inv": 0.25}]}
               for s, _ in settings for seed in seeds}
    summary = sweep.summarise(settings, records, seeds)
    (folder / "sweep").mkdir()
    (folder / "sweep" / "sweep.json").write_text(json.dumps(
        {"config": {"seeds": seeds}, "settings": summary}))
    (folder / "broken").mkdir()
    (folder / "broken" / "table1.json").write_text("{not json")
    return json.loads((folder / "default" / "table1.json").read_text()), summary


def test_lesson_09_reads_tables_and_sweep_when_present(tmp_path):
    import numpy as np
    from scipy import stats

    results_dir = tmp_path / "results"
    table, summary = _synthetic_results(results_dir)
    out = tmp_path / "out"
    out.mkdir()
    result = run_lesson(lesson_09(), out, "--fast", "--results", str(results_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout
    assert "No tinyadv table" not in text and "No sweep" not in text
    assert "cannot read" in text and "broken" in text  # a bad file is named and skipped
    # three seeds: the row's difference and Welch's p from the per-seed numbers
    a = table["table"]["baseline+mls"]["invariance_source"]["per_seed"]
    b = table["table"]["baseline"]["invariance_source"]["per_seed"]
    p = stats.ttest_ind(a, b, equal_var=False).pvalue
    assert f"invariance {np.mean(a) - np.mean(b):+.2f} (p={p:.2g})" in text
    # one seed: said, and no test
    assert "preset 'paper-4d', seeds [0]" in text and "ONE seed: no spread, no test" in text
    assert "(one seed: no test)" in text
    # the sweep: its changes, and the library's p checked by hand
    name, entry = next((n, e) for n, e in summary.items() if "change" in e)
    assert name in text
    assert f"sweep.json {entry['change']['invariance_source']['welch_p']:.4g})" in text
    assert {n for n in os.listdir(out) if n.endswith(".png")} == promised_figures(lesson_09())


def test_lesson_10_gives_no_answer_of_exercises_08_09_before_its_marker():
    """Lesson 10 checks the library's conv, pooling and PReLU backwards before exercises 08
    and 09 and takes them apart only after its marker: the turned kernel (``::-1``), the
    pooling's routing (``np.repeat``, ``maxpool2d_backward`` on a tie), the slope's sum
    (``np.minimum``) appear in its code only after it, and not in its docstring at all."""
    path = next(p for p in LESSONS if os.path.basename(p).startswith("10_"))
    with open(path) as f:
        text = f.read()
    docstring, code = text.split('"""')[1], text.split('"""', 2)[2]
    marker = code.index("# %% Exercises 08 and 09 come here")
    for answer in ("::-1", "np.repeat(", "np.minimum(", "180 degrees"):
        assert answer not in docstring, answer
        assert answer not in code[:marker], answer
        assert answer in code[marker:], answer
    marker_cell = code[marker:code.index("# %%", marker + 1)]
    for exercise in ("08_conv2d_backward.py", "09_maxpool_prelu.py"):
        assert exercise in marker_cell


EXERCISE_DIR = os.path.join(LESSON_DIR, "exercises")


@pytest.mark.parametrize("cwd, how", [("exercises", "05_triplet_loss.py"),
                                      ("elsewhere", os.path.join(EXERCISE_DIR, "05_triplet_loss.py"))])
def test_an_exercise_run_as_a_script_checks_itself_from_any_folder(tmp_path, cwd, how):
    """`cd lessons/exercises && python 05_triplet_loss.py` checks that file, with tinyadv not
    installed and no PYTHONPATH: the file hands itself to the grader."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, how], cwd=EXERCISE_DIR if cwd == "exercises" else
                            str(tmp_path), env=env, capture_output=True, text=True, timeout=120)
    assert "ModuleNotFoundError" not in result.stdout + result.stderr, result.stderr[-2000:]
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]  # a blank
    assert f"== {how}" in result.stdout
    assert "TODO triplet_loss_backward: not implemented yet" in result.stdout


# -- the notebooks ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", LESSONS, ids=os.path.basename)
def test_each_lesson_has_its_notebook_and_it_matches_the_script(path):
    """lessons/NN_x.ipynb is what `python -m tinyadv.lab.notebooks` makes of NN_x.py: run it
    after editing a lesson, and commit both."""
    from tinyadv.lab import notebooks

    with open(path, encoding="utf-8") as f:
        script = f.read()
    target = os.path.splitext(path)[0] + ".ipynb"
    assert os.path.exists(target), f"no notebook for {os.path.basename(path)}: run " \
                                   f"python -m tinyadv.lab.notebooks"
    with open(target, encoding="utf-8") as f:
        committed = f.read()
    assert committed == notebooks.notebook_text(script, path), (
        f"{os.path.basename(target)} differs from its script: run python -m tinyadv.lab.notebooks")
    nb = json.loads(committed)
    assert nb["nbformat"] == 4 and nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [line for cell in nb["cells"] if cell["cell_type"] == "code"
            for line in "".join(cell["source"]).splitlines()]
    body = script.split('"""', 2)[2].splitlines()
    kept = [line for line in body if line.strip() and not line.startswith("# %%")]
    assert [line for line in code if line.strip()] == kept  # every line of code, in order
    assert "".join(nb["cells"][0]["source"]).startswith(f"# Lesson {os.path.basename(path)[:2]}")


def test_the_notebook_command_checks_and_writes(tmp_path):
    from tinyadv.lab import notebooks

    lesson = tmp_path / "01_x.py"
    lesson.write_text('"""Lesson 01 -- x.\n\nWhat you will see\n"""\n\n# %% Setup\nimport os\n\n\n'
                      '# %% 1. Two\nx = 1  # (a comment stays)\n\ny = 2\n# %%\nprint(x + y)\n')
    assert notebooks.main(["--check", "--lessons", str(tmp_path)]) == 1  # missing
    assert notebooks.main(["--lessons", str(tmp_path)]) == 0
    assert notebooks.main(["--check", "--lessons", str(tmp_path)]) == 0
    cells = [(c["cell_type"], "".join(c["source"])) for c in
             json.loads((tmp_path / "01_x.ipynb").read_text())["cells"]]
    assert cells == [("markdown", "# Lesson 01 -- x.\n\nWhat you will see"),
                     ("markdown", "## Setup"), ("code", "import os"), ("markdown", "## 1. Two"),
                     ("code", "x = 1  # (a comment stays)\n\ny = 2"), ("code", "print(x + y)")]
    lesson.write_text(lesson.read_text().replace("y = 2", "y = 3"))
    assert notebooks.main(["--check", "--lessons", str(tmp_path)]) == 1  # stale


# A notebook kernel as far as tinyadv.plots can tell: IPython.get_ipython() has a kernel, and
# IPython.display.display records what it is shown. Run a notebook's code cells in order, in
# one namespace and without __file__, from lessons/ -- as Jupyter and VS Code do.
NOTEBOOK_RUNNER = """
import json, sys, types
import matplotlib.pyplot as plt
plt.close(plt.figure())  # the backend chosen before the fake kernel appears (MPLBACKEND=agg)
shown = []
ipython = types.ModuleType("IPython")
kernel = types.SimpleNamespace(kernel=object(), events=types.SimpleNamespace(
    register=lambda *args: None))  # pyplot registers a hook with a real one
ipython.get_ipython = lambda: kernel
display = types.ModuleType("IPython.display")
display.display = lambda fig: shown.append(fig.get_suptitle() or fig.axes[0].get_title())
ipython.display = display
sys.modules.update({"IPython": ipython, "IPython.display": display})
notebook, out = sys.argv[1], sys.argv[2]
sys.argv = ["ipykernel_launcher.py", "-f", "/tmp/kernel-x.json", "--out", out]
namespace = {"__name__": "__main__"}
for cell in json.load(open(notebook))["cells"]:
    if cell["cell_type"] == "code":
        exec(compile("".join(cell["source"]), notebook, "exec"), namespace)
import matplotlib
print("backend", matplotlib.get_backend())
print("shown", len(shown))
"""


def test_a_notebook_runs_from_the_lessons_folder_and_shows_its_figures_inline(tmp_path):
    path = next(p for p in LESSONS if os.path.basename(p).startswith("02_"))
    notebook = os.path.splitext(path)[0] + ".ipynb"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MPLBACKEND")}
    env.update(TINYADV_FAST="1", OPENBLAS_NUM_THREADS="1", MPLBACKEND="agg")
    result = subprocess.run([sys.executable, "-c", NOTEBOOK_RUNNER, notebook, str(tmp_path)],
                            cwd=LESSON_DIR, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    written = sorted(n for n in os.listdir(tmp_path) if n.endswith(".png"))
    assert written == sorted(promised_figures(path))
    assert f"shown {len(written)}" in result.stdout  # each figure displayed before it closed
