"""The exercise checker's reports: python -m tinyadv.gradcheck FILE|FOLDER.

It must pass tinyadv's own pieces, report blanks as blanks, catch many *different* kinds of
wrong gradient (the sixteen of exercises 01-05 and four of the new exercises 06-07; those of
exercises 08-09 are in test_exercises_cnn.py) with a hint that names the mistake, explain
malformed return values, reject a wrong forward, write the gradebook, refuse bad arguments
with a message naming the argument, and exit 0 / 1 / 2 as documented. Every file runs in a
child process (~0.15 s of CPU: a fresh Python and NumPy), so the wrong kinds, the malformed
returns and the templates are each checked in one folder run, two at a time.
Hostile submissions are in test_grader_hostile.py.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checking import LIBRARY, REPO, blocks, check, gradebook, statuses, write
from tinyadv.grader.pieces import BACKWARD_NAMES

TEMPLATES = sorted((REPO / "lessons" / "exercises").glob("[0-9][0-9]_*.py"))


def test_library_pieces_pass_with_a_note(tmp_path):
    code, out = check(write(tmp_path, "library.py", LIBRARY))
    assert code == 0, out
    for name in BACKWARD_NAMES:
        assert f"PASS {name}" in out
        # The library holds every solution: a teacher sees that this is not the student's.
        assert f"note: this is tinyadv's own {name}, imported" in out
    assert "FAIL" not in out and f"{len(BACKWARD_NAMES)} passed, 0 failed, 0 not implemented yet" in out
    assert len(BACKWARD_NAMES) == 11  # exercises 01-09


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_library_pieces_pass_for_any_seed(tmp_path_factory, seed):
    # The inputs are drawn away from every kink, so a correct backward passes on any seed.
    path = write(tmp_path_factory.mktemp("lib"), "library.py", LIBRARY)
    assert check(path, "--seed", seed, "-q")[0] == 0


@pytest.fixture(scope="module")
def templates_run():
    return check(*TEMPLATES, "--jobs", "2")


def test_there_are_nine_templates():
    assert [p.name[:2] for p in TEMPLATES] == ["01", "02", "03", "04", "05", "06", "07", "08", "09"]


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_template_is_a_blank(template, templates_run):
    text = template.read_text()
    assert f"# Check it: python {template.name}" in text  # tests/test_lessons.py runs it so
    code, out = templates_run
    assert code == 1, out
    block = blocks(out)[str(template)]
    assert "not implemented yet" in block
    assert "PASS" not in block and "FAIL" not in block and "Traceback" not in block


# Each: (backward name, code of a wrong backward, words the hint must contain).
WRONG = {
    "cross-entropy without 1/N": ("softmax_cross_entropy_backward", """
        import numpy as np
        def softmax_cross_entropy_backward(dloss, cache):
            probs, y = cache
            d = probs.copy()
            d[np.arange(len(y)), y] -= 1
            return dloss * d
        """, ["= 7 x the numerical one", "missing 1/N"]),
    "cross-entropy adding the one-hot": ("softmax_cross_entropy_backward", """
        import numpy as np
        def softmax_cross_entropy_backward(dloss, cache):
            probs, y = cache
            d = probs.copy()
            d[np.arange(len(y)), y] += 1
            return dloss * d / len(y)
        """, ["wrong at exactly the true-class entries"]),
    "feature norm ignoring dloss": ("feature_norm_backward", """
        def feature_norm_backward(dloss, cache):
            h, norms = cache
            return h / (h.shape[0] * norms[:, None])
        """, ["upstream gradient dloss", "not applied"]),
    "feature norm twice too large": ("feature_norm_backward", """
        def feature_norm_backward(dloss, cache):
            h, norms = cache
            return 2 * dloss * h / (h.shape[0] * norms[:, None])
        """, ["2 times too large"]),
    "angular distance without sign(cos)": ("angular_distance_backward", """
        def angular_distance_backward(dd, cache):
            a, b, norm_a, norm_b, safe_denom, cos, valid = cache
            g = -dd  # as if D were 1 - cos: the |.| is forgotten
            da = (g / safe_denom)[:, None] * b - (g * cos / norm_a**2)[:, None] * a
            db = (g / safe_denom)[:, None] * a - (g * cos / norm_b**2)[:, None] * b
            return da, db
        """, ["sign is flipped at exactly the rows where cos(a_i, b_i) < 0", "sign(c)"]),
    # Exercise 04's classic slips: the per-row upstream dd forgotten or summed into one
    # number, and the quotient rule's term from the denominator (along a, resp. b) dropped.
    "angular distance ignoring dd": ("angular_distance_backward", """
        import numpy as np
        def angular_distance_backward(dd, cache):
            a, b, norm_a, norm_b, safe_denom, cos, valid = cache
            g = -np.sign(cos)  # dD/dcos, but never multiplied by dd
            da = (g / safe_denom)[:, None] * b - (g * cos / norm_a**2)[:, None] * a
            db = (g / safe_denom)[:, None] * a - (g * cos / norm_b**2)[:, None] * b
            return da, db
        """, ["divided, row by row, by the upstream gradient", "it is not applied"]),
    "angular distance with dd summed to one number": ("angular_distance_backward", """
        import numpy as np
        def angular_distance_backward(dd, cache):
            a, b, norm_a, norm_b, safe_denom, cos, valid = cache
            g = -np.sign(cos) * np.sum(dd)  # one number for every row
            da = (g / safe_denom)[:, None] * b - (g * cos / norm_a**2)[:, None] * a
            db = (g / safe_denom)[:, None] * a - (g * cos / norm_b**2)[:, None] * b
            return da, db
        """, ["(its sum)", "applied as a single number", "one value per row"]),
    "angular distance without the denominator's term": ("angular_distance_backward", """
        import numpy as np
        def angular_distance_backward(dd, cache):
            a, b, norm_a, norm_b, safe_denom, cos, valid = cache
            g = -np.sign(cos) * dd
            return (g / safe_denom)[:, None] * b, (g / safe_denom)[:, None] * a
        """, ["row by row, a multiple of a itself", "row by row, a multiple of b itself",
              "quotient rule"]),
    "relu ignoring dout": ("relu_backward", """
        def relu_backward(dout, cache):
            return 1.0 * (cache > 0)
        """, ["divided, entry by entry, by the upstream gradient"]),
    "angular distance with every sign flipped": ("angular_distance_backward", """
        from tinyadv import losses
        def angular_distance_backward(dd, cache):
            da, db = losses.angular_distance_backward(dd, cache)
            return -da, -db
        """, ["= -1 x the numerical one", "sign is flipped"]),
    "angular distance with swapped outputs": ("angular_distance_backward", """
        from tinyadv import losses
        def angular_distance_backward(dd, cache):
            da, db = losses.angular_distance_backward(dd, cache)
            return db, da
        """, ["outputs swapped"]),
    "relu without its mask": ("relu_backward", """
        def relu_backward(dout, cache):
            return 1.0 * dout
        """, ["missing mask", "exactly the entries where x < 0"]),
    "relu with the inverted mask": ("relu_backward", """
        def relu_backward(dout, cache):
            return dout * (cache <= 0)
        """, ["inverted mask"]),
    "triplet without the active mask": ("triplet_loss_backward", """
        from tinyadv import losses
        def triplet_loss_backward(dloss, cache):
            cache_ap, cache_an, active = cache
            scale = dloss * (0 * active + 1) / active.shape[0]  # every triplet, active or not
            da_p, dp = losses.angular_distance_backward(scale, cache_ap)
            da_n, dn = losses.angular_distance_backward(-scale, cache_an)
            return da_p + da_n, dp, dn
        """, ["missing mask", "rows of inactive triplets"]),
    "triplet forgetting the anchor's second term": ("triplet_loss_backward", """
        from tinyadv import losses
        def triplet_loss_backward(dloss, cache):
            cache_ap, cache_an, active = cache
            scale = dloss * active / active.shape[0]
            da_p, dp = losses.angular_distance_backward(scale, cache_ap)
            da_n, dn = losses.angular_distance_backward(-scale, cache_an)
            return da_p, dp, dn
        """, ["dp, dn are right, da is not", "sum of two"]),
    "linear with dW transposed (square W)": ("linear_backward", """
        def linear_backward(dout, cache):
            x, W = cache
            dW = x.T @ dout
            if dW.shape[0] == dW.shape[1]:
                dW = dW.T  # wrong only when it still has the right shape: caught by value
            return dout @ W.T, dW, dout.sum(axis=0)
        """, ["dW is the transpose of the numerical one"]),
    # The two exercises the paper's method adds: the negatives' gather, FGSM's input gradient.
    "gather overwriting repeated rows": ("gather_rows_backward", """
        import numpy as np
        def gather_rows_backward(dout, cache):
            index, num_rows = cache
            dh = np.zeros((num_rows, dout.shape[1]))
            dh[index] += dout  # a repeated index is written once, not added twice
            return dh
        """, ["a repeated index is written, not added", "np.add.at"]),
    "gather returning dout[index]": ("gather_rows_backward", """
        def gather_rows_backward(dout, cache):
            index, num_rows = cache
            return dout[index]
        """, ["your dh is dout[index]", "scatter"]),
    "fgsm without the ReLU mask": ("fgsm_loss_backward", """
        import numpy as np
        from tinyadv import losses
        def fgsm_loss_backward(dloss, cache):
            (x, W1), relu_out, (a, W2), ce_cache = cache
            dlogits = losses.softmax_cross_entropy_backward(dloss, ce_cache)
            return (dlogits @ W2.T) @ W1.T
        """, ["without ReLU's mask"]),
    "fgsm without the 1/N": ("fgsm_loss_backward", """
        import numpy as np
        from tinyadv import losses
        def fgsm_loss_backward(dloss, cache):
            (x, W1), relu_out, (a, W2), ce_cache = cache
            probs, y = ce_cache
            dlogits = probs.copy()
            dlogits[np.arange(len(y)), y] -= 1
            return ((dloss * dlogits @ W2.T) * (relu_out > 0)) @ W1.T
        """, ["= 7 x the numerical one", "missing 1/N"]),
}




@pytest.fixture(scope="module")
def wrong_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wrong")
    paths = {kind: write(folder, f"s{i:02d}.py", WRONG[kind][1]) for i, kind in enumerate(WRONG)}
    code, out = check(folder, "--jobs", "2")
    return code, {kind: blocks(out)[str(path)] for kind, path in paths.items()}


@pytest.mark.parametrize("kind", WRONG)
def test_wrong_gradient_is_caught_with_a_fitting_hint(kind, wrong_run):
    code, found = wrong_run
    assert code == 1
    name, _, words = WRONG[kind]
    block = found[kind]
    assert f"FAIL {name}" in block, block
    assert "worst element" in block and "analytic" in block and "numeric" in block
    hints = [line for line in block.splitlines() if "hint:" in line]
    assert hints, block
    for word in words:
        assert any(word in line for line in hints), (word, block)


def test_seven_kinds_of_mistake_get_seven_different_hints(wrong_run):
    kinds = ["cross-entropy without 1/N", "angular distance without sign(cos)",
             "relu without its mask", "triplet without the active mask",
             "linear with dW transposed (square W)", "gather overwriting repeated rows",
             "fgsm without the ReLU mask"]
    first_hints = {next(line for line in wrong_run[1][kind].splitlines() if "hint:" in line).split("(")[0]
                   for kind in kinds}
    assert len(first_hints) == len(kinds)


MALFORMED = [
    ("return dout @ W.T, dout.T @ x, dout.sum(axis=0)",
     ["dW: expected shape", "got (", "transpose of the expected shape"]),
    ("return dout @ W.T, x.T @ dout, dout",
     ["db: expected shape", "(the shape of b)"]),
    ("return x.T @ dout, dout @ W.T, dout.sum(axis=0)",
     ["expected ones in another order"]),
    ("return dout @ W.T, x.T @ dout",
     ["returned 2 values; expected 3 arrays (dx, dW, db)"]),
    ("dx = dout @ W.T",
     ["returned None"]),
    ("return dout @ W.T, None, dout.sum(axis=0)",
     ["dW is None"]),
    ("return cache['x']",
     ["raised TypeError", "(line 4, in linear_backward)"]),
    ("return dout @ W.T, 'dW', dout.sum(axis=0)",
     ["dW cannot be read as an array of numbers"]),
]


@pytest.fixture(scope="module")
def malformed_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("malformed")
    for i, (body, _) in enumerate(MALFORMED):
        write(folder, f"m{i}.py", f"""
            def linear_backward(dout, cache):
                x, W = cache
                {body}
            """)
    code, out = check(folder, "--jobs", "2")
    return code, blocks(out), folder


@pytest.mark.parametrize("case", range(len(MALFORMED)), ids=[b for b, _ in MALFORMED])
def test_malformed_returns_are_explained(case, malformed_run):
    code, found, folder = malformed_run
    assert code == 1
    block = found[str(folder / f"m{case}.py")]
    assert "FAIL linear_backward" in block and "Traceback" not in block
    for word in MALFORMED[case][1]:
        assert word in block, (word, block)


def test_blank_next_to_a_correct_piece(tmp_path):
    path = write(tmp_path, "half.py", """
        from tinyadv.layers import relu_backward
        def linear_backward(dout, cache):
            raise NotImplementedError("your code here")
        """)
    code, out = check(path)
    assert code == 1
    assert "TODO linear_backward: not implemented yet (your code here)" in out
    assert "PASS relu_backward" in out
    assert "1 passed, 0 failed, 1 not implemented yet" in out


def test_the_files_own_forward_is_called_and_must_be_right(tmp_path):
    # relu: its own cache layout (a dict), which only its own backward understands -- passes.
    # feature_norm: a forward 3 x tinyadv's with a backward to match -- a wrong forward fails,
    # and its backward is judged against tinyadv's gradient.
    path = write(tmp_path, "own.py", """
        import numpy as np
        def relu_forward(x):
            return np.maximum(x, 0.0), {"positive": x > 0}
        def relu_backward(dout, cache):
            return dout * cache["positive"]
        def feature_norm_forward(h):
            return float(np.sqrt((h * h).sum(axis=1)).mean()) * 3.0, h
        def feature_norm_backward(dloss, cache):
            h = cache
            return 3.0 * dloss * h / (h.shape[0] * np.sqrt((h * h).sum(axis=1))[:, None])
        """)
    code, out = check(path, "--report", tmp_path / "out" / "g.csv")
    assert code == 1, out
    assert "PASS relu_backward" in out and "forward: this file's relu_forward" in out
    assert "FAIL feature_norm_backward" in out
    assert "wrong forward: this file's feature_norm_forward differs from tinyadv's" in out
    assert "it is 3 x tinyadv's output" in out
    assert "your dh is the numerical one times 3" in out
    rows = gradebook(tmp_path / "out" / "g.csv")
    assert statuses(rows, "own.py") == {"relu_backward": "pass", "feature_norm_backward": "fail"}
    assert next(r for r in rows if r["function"] == "feature_norm_backward")["hint"].startswith(
        "wrong forward")


def test_cannot_import_exits_2_with_the_reason(tmp_path):
    code, out = check(write(tmp_path, "broken.py", "import no_such_module_here\n"))
    assert code == 2
    assert "cannot import: ModuleNotFoundError: No module named 'no_such_module_here'" in out
    code, out = check(write(tmp_path, "syntax.py", "def relu_backward(dout, cache)\n    return dout\n"))
    assert code == 2
    assert "cannot import: SyntaxError" in out and "(line 1)" in out and "Traceback" not in out


def test_nothing_to_check(tmp_path):
    path = write(tmp_path, "other.py", """
        def relu_backwards(dout, cache):
            return dout
        """)
    code, out = check(path)
    assert code == 2
    assert "nothing to check" in out
    assert "relu_backwards is not a piece the checker knows; did you mean relu_backward?" in out


def test_a_folder_of_submissions_and_its_gradebook(tmp_path):
    subs = tmp_path / "submissions"
    write(subs, "alice.py", "from tinyadv.layers import relu_backward, linear_backward\n")
    write(subs, "bob.py", WRONG["relu without its mask"][1])
    write(subs, "carol/ex.py", "def relu_backward(dout, cache):\n    raise NotImplementedError\n")
    write(subs, "dave.py", "def relu_backward(dout, cache)\n")
    write(subs, "erin.py", "from no_such_helper import x\ndef relu_backward(dout, cache):\n    return x\n")
    write(subs, "=cmd.py", "X = 1\n")  # a name a spreadsheet would run as a formula
    write(subs, ".hidden/skip.py", "X = 1\n")
    report = tmp_path / "out" / "grades.csv"
    code, out = check(subs, "--jobs", "2", "--report", report)
    assert code == 1, out
    table = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith(str(subs))}
    assert table[str(subs / "alice.py")] == ["2", "0", "0", "0", "PASS"]
    assert table[str(subs / "bob.py")] == ["0", "1", "0", "0", "FAIL"]
    assert table[str(subs / "carol" / "ex.py")] == ["0", "0", "1", "0", "TODO"]
    assert table[str(subs / "dave.py")][:5] == ["0", "0", "0", "1", "ERROR:"]
    assert out.count("== ") == 6 and "skip.py" not in out  # one block per file; hidden skipped

    rows = gradebook(report)
    assert statuses(rows, "alice.py") == {"linear_backward": "pass", "relu_backward": "pass"}
    assert statuses(rows, "bob.py") == {"relu_backward": "fail"}
    assert statuses(rows, "ex.py") == {"relu_backward": "blank"}
    # A file that cannot be imported still gets rows: one per function it declares, or one
    # for the file when its syntax tree cannot even be read.
    assert statuses(rows, "dave.py") == {"": "error"}
    assert statuses(rows, "erin.py") == {"relu_backward": "error"}
    erin = next(r for r in rows if r["file"].endswith("erin.py"))
    assert "cannot import: ModuleNotFoundError" in erin["hint"]
    bob = next(r for r in rows if r["file"].endswith("bob.py"))
    assert float(bob["rel_error"]) > 1e-2 and bob["hint"].startswith("dx: missing mask")
    alice = [r for r in rows if r["file"].endswith("alice.py")]
    assert all(float(r["rel_error"]) < 1e-8 for r in alice)
    cmd = next(r for r in rows if "cmd.py" in r["file"])
    assert cmd["status"] == "blank" and "nothing to check" in cmd["hint"]
    assert len(rows) == 7
    assert [p.name for p in report.parent.iterdir()] == ["grades.csv"]  # no temporary left

    # Everything passing -> 0; nothing checkable anywhere -> 2; --quiet prints only the table.
    good = tmp_path / "good"
    write(good, "a.py", LIBRARY)
    code, out = check("-q", good, "--expect", "relu_backward, linear_backward")
    assert code == 0 and "== " not in out and "PASS" in out and "summary (seed 0" in out
    empty = tmp_path / "empty"
    write(empty, "a.py", "X = 1\n")
    assert check(empty)[0] == 2
    (tmp_path / "none").mkdir()
    code, out = check(tmp_path / "none")
    assert code == 2 and "no .py files" in out


def test_expect_grades_a_missing_function_blank(tmp_path):
    path = write(tmp_path, "only_relu.py", "from tinyadv.layers import relu_backward\n")
    code, out = check(path, "--expect", "relu_backward,gather_rows_backward",
                      "--report", tmp_path / "out" / "g.csv")
    assert code == 1
    assert "TODO gather_rows_backward: not defined in this file" in out
    assert statuses(gradebook(tmp_path / "out" / "g.csv"), "only_relu.py") == {
        "relu_backward": "pass", "gather_rows_backward": "blank"}


def test_expect_scores_only_the_expected_functions(tmp_path):
    # Issue 36: with --expect linear_backward,relu_backward, a file failing linear_backward
    # that also imported nine other backwards from tinyadv scored 10.0 from 11 tests on a
    # two-function assignment. Now the others are not even called: listed, never scored.
    path = write(tmp_path, "extra_credit.py", LIBRARY + textwrap.dedent("""
        def linear_backward(dout, cache):
            x, W, b = cache
            return dout @ W.T, x.T @ dout, 0 * b  # db forgotten
        """))
    grades, results = tmp_path / "out" / "g.csv", tmp_path / "out" / "results.json"
    code, out = check(path, "--expect", "linear_backward,relu_backward", "--report", grades,
                      "--gradescope", results)
    assert code == 1, out
    assert statuses(gradebook(grades), "extra_credit.py") == {"linear_backward": "fail",
                                                              "relu_backward": "pass"}
    doc = json.loads(results.read_text())
    assert (doc["score"], sum(t["max_score"] for t in doc["tests"])) == (1.0, 2.0)
    others = [n for n in BACKWARD_NAMES if n not in ("linear_backward", "relu_backward")]
    assert (f"note: also defines {', '.join(others)}: not asked for (--expect "
            f"linear_backward,relu_backward), so neither checked nor scored") in out
    assert "PASS conv2d_backward" not in out and "PASS prelu_backward" not in out


@pytest.mark.parametrize("argv, words", [
    (["--timeout", "-1"], ["--timeout: expected a number of seconds > 0, got -1"]),
    (["--timeout", "nan"], ["--timeout: expected a number of seconds > 0, got nan"]),
    (["--jobs", "0"], ["--jobs: expected a whole number from 1 to 64, got 0"]),
    (["--memory", "lots"], ["--memory: expected a size such as 2G", "got 'lots'"]),
    (["--memory", "10M"], ["--memory: expected at least 256M", "got 10M"]),
    (["--tol", "0"], ["--tol: expected a finite number > 0, got 0"]),
    (["--expect", "relu_backwards"], ["--expect: unknown function 'relu_backwards'",
                                      "did you mean relu_backward?"]),
    (["--report", "."], ["--report: expected a file name for the CSV gradebook, got the folder"]),
    (["--gradescope", "."], ["--gradescope: expected a file name for results.json, got the folder"]),
    (["--sandbox", "maybe"], ["--sandbox: invalid choice: 'maybe'"]),
    (["missing.py"], ["FILE_OR_FOLDER: no such file or folder: missing.py"]),
])
def test_bad_arguments_are_named(argv, words, tmp_path, capsys):
    path = write(tmp_path, "ok.py", "X = 1\n")
    with pytest.raises(SystemExit) as exit_info:
        check(*([] if argv == ["missing.py"] else [path]), *argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err, err


def test_same_seed_same_report_other_seed_other_inputs(tmp_path):
    path = write(tmp_path, "s.py", WRONG["cross-entropy without 1/N"][1])
    first = check(path)[1]
    assert check(path)[1] == first
    assert check(path, "--seed", "1")[1] != first


def test_command_line_module(tmp_path):
    path = write(tmp_path, "s.py", WRONG["relu without its mask"][1])
    done = subprocess.run([sys.executable, "-m", "tinyadv.gradcheck", str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "FAIL relu_backward" in done.stdout and "hint: missing mask" in done.stdout
    assert done.stderr == ""


def test_a_reader_that_stops_early_loses_nothing(tmp_path):
    """`gradcheck ... | head -1`: the reader goes away after the first line; the checker stops
    printing without a traceback, still grades every file and writes the whole gradebook."""
    for name in ("a.py", "b.py", "c.py"):
        write(tmp_path / "class", name, WRONG["relu without its mask"][1])
    book = tmp_path / "grades.csv"
    checker = subprocess.Popen([sys.executable, "-m", "tinyadv.gradcheck", str(tmp_path / "class"),
                                "--report", str(book)], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    checker.stdout.readline()
    checker.stdout.close()  # as `head -1` does
    stderr = checker.stderr.read()
    assert checker.wait(timeout=120) == 1, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    rows = gradebook(book)
    for name in ("a.py", "b.py", "c.py"):
        assert statuses(rows, name) == {"relu_backward": "fail"}


def test_the_checker_runs_from_any_folder(tmp_path):
    # From inside lessons/exercises, tinyadv reachable only through PYTHONPATH: one file, so
    # one short sandbox line (the details with -v).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-m", "tinyadv.gradcheck", "05_triplet_loss.py"],
                          cwd=REPO / "lessons" / "exercises", env=dict(env, PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "TODO triplet_loss_backward: not implemented yet" in done.stdout
    first = done.stdout.splitlines()[0]
    assert first.startswith("sandbox: ") and first.endswith("(-v: details)") and len(first) < 100
    # A file that puts the repository on sys.path and checks itself, run from its own folder
    # with no PYTHONPATH: checked once (the check's import of it skips the __main__ block).
    student = write(tmp_path / "elsewhere", "mine.py", f"""
        import sys
        def relu_backward(dout, cache):
            return dout * (cache > 0)
        if __name__ == "__main__":
            sys.path.insert(0, {str(REPO)!r})
            from tinyadv.grader import check_file
            sys.exit(check_file(__file__))
        """)
    done = subprocess.run([sys.executable, "mine.py"], cwd=student.parent, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("== ") == 1 and "PASS relu_backward" in done.stdout
