"""Every numbered lesson runs top to bottom, headless, in its fast mode, and writes its figures,
each titled; every lesson's notebook matches its script and runs as a notebook; every
exercise checks itself when run; lesson 10 stops at its exercises' marker until asked to go on.

Each lesson is run as a student would run it -- a subprocess, ``python lessons/NN_x.py`` --
with ``--fast`` (tiny data, one epoch) and ``--out`` pointing at a temporary folder, from a
different working directory, and with a Jupyter-style extra flag it must ignore; the fast
runs go two at a time, each into a folder of its own. Run from a repository's root without
``--out`` (a script, or a notebook whose kernel starts there), a lesson writes under that
repository's lessons/out/ and reads its results/: those tests run in a stand-in repository
(tinyadv/ and data/ linked, lessons/ a folder of its own).
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

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


def repository_root(tmp_path, *lesson_files):
    """A repository root as a student has it, without copying it: tinyadv/ and data/ linked,
    lessons/ a real folder holding copies of the given lesson files (scripts or notebooks)."""
    root = tmp_path / "repo"
    (root / "lessons").mkdir(parents=True)
    for name in ("tinyadv", "data"):
        (root / name).symlink_to(os.path.join(ROOT, name))
    for name in lesson_files:
        shutil.copy(os.path.join(LESSON_DIR, name), root / "lessons" / name)
    return root


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


FAST_TEST = "test_lesson_runs_in_fast_mode_and_writes_its_figures"


def run_fast(path, out_dir):
    # --f=...: Jupyter/VS Code pass such a flag to the kernel; the lesson must ignore it (and
    # not take it for an abbreviation of --fast). Lesson 10 is asked to go past its marker.
    lesson_09, lesson_10 = (os.path.basename(path).startswith(n) for n in ("09_", "10_"))
    extra = (["--after-exercises"] if lesson_10 else
             ["--results", str(out_dir / "no-results")] if lesson_09 else [])
    return run_lesson(path, out_dir, "--fast", "--f=/tmp/kernel-test.json", *extra)


@pytest.fixture(scope="module")
def fast_runs(request, tmp_path_factory):
    """{lesson path: (its output folder, the future of its fast run)} for the lessons whose
    fast-mode test is selected, all started when the first of those tests asks, two at a
    time: each lesson is a process of its own with one BLAS thread, so two cores run two
    at once, and each test waits for its own lesson only."""
    wanted = [item.callspec.params["path"] for item in request.session.items
              if getattr(item, "originalname", None) == FAST_TEST and hasattr(item, "callspec")]
    pool = ThreadPoolExecutor(max_workers=2)
    runs = {}
    for path in wanted:
        out = tmp_path_factory.mktemp(os.path.basename(path)[:2] + "_fast")
        runs[path] = (out, pool.submit(run_fast, path, out))
    yield runs
    pool.shutdown(wait=True)


@pytest.mark.parametrize("path", LESSONS, ids=os.path.basename)
def test_lesson_runs_in_fast_mode_and_writes_its_figures(path, fast_runs):
    tmp_path, future = fast_runs[path]
    lesson_09, lesson_10 = (os.path.basename(path).startswith(n) for n in ("09_", "10_"))
    result = future.result()
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
    if lesson_09:  # a fresh clone has no results/: the authors' logs, and the commands
        text = result.stdout
        # the authors' logs, recomputed: the printed rows are third runs, means ± sample std
        assert "86.06 ± 0.69" in text and "85.09 ± 3.25" in text and "9.90 ± 1.28" in text
        assert "run 3 / 3 / 3" in text
        assert "p = 0.66" in text  # Welch's test, Baseline vs the printed + MLS + MLI config
        assert "No tinyadv table" in text and "python -m tinyadv.reproduce" in text
        assert "No sweep" in text and "python -m tinyadv.sweep" in text
    if lesson_10:  # what the marker keeps back is there once asked for, after the marker
        after = result.stdout.split(LESSON_10_MARKER, 1)[1]
        for answer in LESSON_10_ANSWERS:
            assert answer in after, answer
        # the two models' curves differ in marker as well as in colour
        described = plots.png_text(str(tmp_path / "10_cnn_vs_mlp.png"), "Description")
        assert "CNN, FGSM: olive, solid line, circles" in described, described
        assert "MLP, FGSM: blue, solid line, diamonds" in described, described


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


LESSON_10_MARKER = "--- exercises 08 and 09 come here"
# What lesson 10 prints of the answers to exercises 08 and 09 (with --after-exercises): the
# turned kernel, db's sum, the tie's convention, two wrong routings, the slope's sum.
LESSON_10_ANSWERS = ("W turned 180 degrees", "gathers from the padded dout through the turned",
                     "db = dout summed over the batch and the positions", "kernel not turned",
                     "the whole 20 to the first maximum", "spread over the window",
                     "the mean instead of the sum", "summed, not averaged")


def lesson_10():
    return next(p for p in LESSONS if os.path.basename(p).startswith("10_"))


def test_lesson_10_keeps_its_answers_out_of_its_docstring_and_before_its_marker():
    """In the source: the turned kernel (``::-1``), the pooling's routing (``np.repeat``),
    the slope's sum (``np.minimum``) appear only after the marker cell, which names both
    exercises and stops the lesson -- and not in the docstring, a notebook's first cell."""
    with open(lesson_10()) as f:
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
    assert "stop_for_exercises(" in marker_cell


def test_lesson_10_run_from_the_root_stops_at_its_marker_and_writes_under_lessons_out(tmp_path):
    """A full run without --after-exercises, as `python lessons/10_x.py` from a repository's
    root: it ends (exit status 0) right after the marker with the way to go on, prints no
    answer of exercises 08 and 09 -- nothing past the marker but the stop -- and draws only
    the figure before it, under the repository's lessons/out/ (none in a root out/)."""
    name = os.path.basename(lesson_10())
    root = repository_root(tmp_path, name)
    env = dict(os.environ, MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1")
    env.pop("TINYADV_AFTER_EXERCISES", None)
    result = subprocess.run([sys.executable, os.path.join("lessons", name), "--fast"], cwd=root,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    before, marker, after = result.stdout.partition(LESSON_10_MARKER)
    assert marker, result.stdout[-2000:]
    stop = after.split("\n", 1)[1].strip()
    assert stop.startswith("Lesson 10 stops here, before the answers"), stop
    assert stop.endswith("then Run All"), stop  # the stop's message is the last thing printed
    assert "--after-exercises" in stop and "08_conv2d_backward.py" in stop
    for answer in LESSON_10_ANSWERS:
        assert answer not in result.stdout + result.stderr, answer
    assert os.listdir(root / "lessons" / "out") == ["10_feature_maps.png"]
    assert not (root / "out").exists()
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
# IPython.display.display records what it is shown (a bundle: the figure's <img> with its alt
# text, and the PNG). Run a notebook's code cells in order, in one namespace and without
# __file__, from the working folder given -- as Jupyter and VS Code do -- and stop at the
# first cell that raises, as "Run All" does.
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
display.display = lambda bundle, raw=False, metadata=None: shown.append(bundle)
ipython.display = display
sys.modules.update({"IPython": ipython, "IPython.display": display})
notebook, out = sys.argv[1], sys.argv[2:]
sys.argv = ["ipykernel_launcher.py", "-f", "/tmp/kernel-x.json"] + (["--out"] + out if out else [])
namespace = {"__name__": "__main__"}
cells = [cell for cell in json.load(open(notebook))["cells"] if cell["cell_type"] == "code"]
for number, cell in enumerate(cells, 1):
    try:
        exec(compile("".join(cell["source"]), notebook, "exec"), namespace)
    except Exception as stop:
        shown_as = getattr(stop, "_render_traceback_", lambda: ["(a traceback)"])()
        print("stopped at cell", number, "of", len(cells), type(stop).__name__, repr(shown_as))
        break
import matplotlib
print("backend", matplotlib.get_backend())
print("shown", len(shown))
for bundle in shown:
    assert set(bundle) == {"text/html", "image/png", "text/plain"}, bundle.keys()
    print("alt", bundle["text/plain"][:120])
"""


def run_notebook(notebook, cwd, *out):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "MPLBACKEND", "TINYADV_AFTER_EXERCISES")}
    env.update(TINYADV_FAST="1", OPENBLAS_NUM_THREADS="1", MPLBACKEND="agg")
    return subprocess.run([sys.executable, "-c", NOTEBOOK_RUNNER, str(notebook), *map(str, out)],
                          cwd=str(cwd), env=env, capture_output=True, text=True, timeout=300)


def test_lesson_10_as_a_notebook_stops_run_all_at_its_marker_and_shows_its_figure(tmp_path):
    """From lessons/, "Run All" of lesson 10's notebook: the first figure is shown inline
    (with its description as alt text) and written; the marker cell raises ExercisesFirst,
    shown as the stop's message alone, which ends the run there: nothing printed or drawn
    past it."""
    notebook = os.path.splitext(lesson_10())[0] + ".ipynb"
    result = run_notebook(notebook, LESSON_DIR, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    cells = [c for c in json.load(open(notebook))["cells"] if c["cell_type"] == "code"]
    marker = next(i for i, c in enumerate(cells, 1) if "stop_for_exercises(" in "".join(c["source"]))
    assert f"stopped at cell {marker} of {len(cells)} ExercisesFirst ['Lesson 10 stops here" \
        in result.stdout, result.stdout[-3000:]
    assert result.stdout.split(LESSON_10_MARKER, 1)[1].split("\n", 2)[2].startswith("stopped at")
    for answer in LESSON_10_ANSWERS:
        assert answer not in result.stdout, answer
    assert os.listdir(tmp_path) == ["10_feature_maps.png"]
    assert "shown 1" in result.stdout and "alt Lesson 10: a test digit" in result.stdout


def test_lesson_09_as_a_notebook_from_the_root_writes_lessons_out_and_reads_results(tmp_path):
    """A notebook whose kernel starts at a repository's root (no __file__, no --out, no
    --results): lesson 09 writes its figures under that repository's lessons/out/ and reads
    the repository's results/ -- here made-up ones (three seeds, one seed, a sweep, a broken
    file): a bad file is named and skipped, and every number is the one the files give."""
    import numpy as np
    from scipy import stats

    name = os.path.splitext(os.path.basename(lesson_09()))[0] + ".ipynb"
    root = repository_root(tmp_path, name)
    table, summary = _synthetic_results(root / "results")
    result = run_notebook(root / "lessons" / name, root)
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout
    assert "stopped at" not in text, text[-3000:]
    assert f"(looking in {root / 'results'})" in text
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
    written = {n for n in os.listdir(root / "lessons" / "out") if n.endswith(".png")}
    assert written == promised_figures(lesson_09()) and f"shown {len(written)}" in text
    assert not (root / "out").exists()
