"""The exercise checker: python -m tinyadv.gradcheck FILE|FOLDER.

It must pass tinyadv's own pieces, report blanks as blanks, catch several *different* kinds
of wrong gradient with a hint that names the mistake, and exit 0 / 1 / 2 as documented.
"""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyadv.gradcheck import main

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = sorted((REPO / "lessons" / "exercises").glob("[0-9][0-9]_*.py"))
LIBRARY = "from tinyadv.layers import *\nfrom tinyadv.losses import *\n"


def write(folder, name, code):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(code))
    return path


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().out


def test_library_pieces_pass(tmp_path, capsys):
    code, out = run(capsys, write(tmp_path, "library.py", LIBRARY))
    assert code == 0, out
    for name in ("linear", "relu", "softmax_cross_entropy", "angular_distance", "triplet_loss",
                 "feature_norm"):
        assert f"PASS {name}_backward" in out
    assert "FAIL" not in out and "6 passed, 0 failed, 0 not implemented yet" in out


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_library_pieces_pass_for_any_seed(tmp_path_factory, seed):
    # The inputs are drawn away from every kink, so a correct backward passes on any seed.
    path = write(tmp_path_factory.mktemp("lib"), "library.py", LIBRARY)
    assert main([str(path), "--seed", str(seed), "-q"]) == 0


def test_there_are_five_templates():
    assert [p.name[:2] for p in TEMPLATES] == ["01", "02", "03", "04", "05"]


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_template_is_a_blank(template, capsys):
    text = template.read_text()
    assert f"check with: python -m tinyadv.gradcheck lessons/exercises/{template.name}" in text
    code, out = run(capsys, template)
    assert code == 1, out
    assert "not implemented yet" in out
    assert "PASS" not in out and "FAIL" not in out and "Traceback" not in out


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
}


@pytest.mark.parametrize("kind", WRONG)
def test_wrong_gradient_is_caught_with_a_fitting_hint(kind, tmp_path, capsys):
    name, code, words = WRONG[kind]
    code_, out = run(capsys, write(tmp_path, "student.py", code))
    assert code_ == 1, out
    assert f"FAIL {name}" in out
    assert "worst element" in out and "analytic" in out and "numeric" in out
    hints = [line for line in out.splitlines() if "hint:" in line]
    assert hints, out
    for word in words:
        assert any(word in line for line in hints), (word, out)


def test_five_kinds_of_mistake_get_five_different_hints(tmp_path, capsys):
    kinds = ["cross-entropy without 1/N", "angular distance without sign(cos)",
             "relu without its mask", "triplet without the active mask",
             "linear with dW transposed (square W)"]
    first_hints = set()
    for i, kind in enumerate(kinds):
        _, out = run(capsys, write(tmp_path, f"s{i}.py", WRONG[kind][1]))
        first_hints.add(next(line for line in out.splitlines() if "hint:" in line).split("(")[0])
    assert len(first_hints) == len(kinds)


@pytest.mark.parametrize("body, words", [
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
])
def test_malformed_returns_are_explained(body, words, tmp_path, capsys):
    path = write(tmp_path, "student.py", f"""
        def linear_backward(dout, cache):
            x, W = cache
            {body}
        """)
    code, out = run(capsys, path)
    assert code == 1, out
    assert "FAIL linear_backward" in out and "Traceback" not in out
    for word in words:
        assert word in out, (word, out)


def test_blank_next_to_a_correct_piece(tmp_path, capsys):
    path = write(tmp_path, "half.py", """
        from tinyadv.layers import relu_backward
        def linear_backward(dout, cache):
            raise NotImplementedError("your code here")
        """)
    code, out = run(capsys, path)
    assert code == 1
    assert "TODO linear_backward: not implemented yet (your code here)" in out
    assert "PASS relu_backward" in out
    assert "1 passed, 0 failed, 1 not implemented yet" in out


def test_the_files_own_forward_is_used(tmp_path, capsys):
    # A forward with its own cache layout, and a backward that relies on that layout.
    path = write(tmp_path, "own.py", """
        import numpy as np
        def relu_forward(x):
            return np.maximum(x, 0.0), {"positive": x > 0}
        def relu_backward(dout, cache):
            return dout * cache["positive"]
        def feature_norm_forward(h):
            return float(np.sqrt((h * h).sum(axis=1)).mean()) * 3.0, h  # not tinyadv's L
        def feature_norm_backward(dloss, cache):
            h = cache
            return 3.0 * dloss * h / (h.shape[0] * np.sqrt((h * h).sum(axis=1))[:, None])
        """)
    code, out = run(capsys, path)
    assert code == 0, out
    assert "forward: this file's relu_forward" in out
    assert "feature_norm_forward differs from tinyadv's" in out  # a teacher sees the change


def test_cannot_import_exits_2_with_the_reason(tmp_path, capsys):
    code, out = run(capsys, write(tmp_path, "broken.py", "import no_such_module_here\n"))
    assert code == 2
    assert "cannot import: ModuleNotFoundError: No module named 'no_such_module_here'" in out
    code, out = run(capsys, write(tmp_path, "syntax.py", "def relu_backward(dout, cache)\n    return dout\n"))
    assert code == 2
    assert "cannot import: SyntaxError" in out and "(line 1)" in out and "Traceback" not in out
    code, out = run(capsys, write(tmp_path, "exits.py", "import sys\nsys.exit(0)\n"))
    assert code == 2 and "called sys.exit(0)" in out


def test_nothing_to_check_exits_2(tmp_path, capsys):
    path = write(tmp_path, "other.py", """
        def relu_backwards(dout, cache):
            return dout
        """)
    code, out = run(capsys, path)
    assert code == 2
    assert "nothing to check" in out
    assert "relu_backwards is not a piece the checker knows; did you mean relu_backward?" in out
    code, out = run(capsys, tmp_path / "missing.py")
    assert code == 2 and "no such file or folder" in out


def test_a_folder_of_submissions(tmp_path, capsys):
    subs = tmp_path / "submissions"
    write(subs, "alice.py", "from tinyadv.layers import relu_backward, linear_backward\n")
    write(subs, "bob.py", WRONG["relu without its mask"][1])
    write(subs, "carol/ex.py", "def relu_backward(dout, cache):\n    raise NotImplementedError\n")
    write(subs, "dave.py", "def relu_backward(dout, cache)\n")
    write(subs, "helpers.py", "X = 1\n")
    code, out = run(capsys, subs)
    assert code == 1, out
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith(str(subs))}
    assert rows[str(subs / "alice.py")].split()[1:] == ["2", "0", "0", "PASS"]
    assert rows[str(subs / "bob.py")].split()[1:] == ["0", "1", "0", "FAIL"]
    assert rows[str(subs / "carol" / "ex.py")].split()[1:] == ["0", "0", "1", "FAIL"]
    assert "cannot import: SyntaxError" in rows[str(subs / "dave.py")]
    assert "nothing to check" in rows[str(subs / "helpers.py")]
    assert out.count("== ") == 5  # one block per file

    # All passing -> 0; nothing checkable anywhere -> 2; --quiet prints only the table.
    good = tmp_path / "good"
    write(good, "a.py", LIBRARY)
    write(good, "notes.py", "X = 1\n")
    assert run(capsys, good)[0] == 0
    empty = tmp_path / "empty"
    write(empty, "a.py", "X = 1\n")
    assert run(capsys, empty)[0] == 2
    (tmp_path / "none").mkdir()
    code, out = run(capsys, tmp_path / "none")
    assert code == 2 and "no .py files" in out
    code, out = run(capsys, "-q", good)
    assert code == 0 and "== " not in out and "PASS" in out and "summary (seed 0" in out


def test_same_seed_same_report_other_seed_other_inputs(tmp_path, capsys):
    path = write(tmp_path, "s.py", WRONG["cross-entropy without 1/N"][1])
    first = run(capsys, path)[1]
    assert run(capsys, path)[1] == first
    assert run(capsys, path, "--seed", "1")[1] != first


def test_command_line_module(tmp_path):
    path = write(tmp_path, "s.py", WRONG["relu without its mask"][1])
    done = subprocess.run([sys.executable, "-m", "tinyadv.gradcheck", str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "FAIL relu_backward" in done.stdout and "hint: missing mask" in done.stdout
    assert done.stderr == ""
