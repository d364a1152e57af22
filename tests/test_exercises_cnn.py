"""Exercises 08 (conv2d_backward) and 09 (maxpool2d_backward, prelu_backward) in the checker.

Each submission is built from the exercise files themselves -- their forwards and caches, the
``raise NotImplementedError`` replaced by a body -- so the tests see what a student sees. The
classic slips of a convolution's, a max pooling's and a PReLU's backward each get a hint that
names them; correct answers, written two ways, pass; answers that call the library pass with
a note for the teacher. One file holds one attempt at each of the three functions (as a
student may paste both exercises into one file), so the whole set is one checker run of 15
files, two at a time.
"""
import numpy as np
import pytest

from checking import REPO, blocks, check, write
from tinyadv.grader import hints, inputs, pieces

EXERCISES = REPO / "lessons" / "exercises"
BLANKS = {"conv2d_backward": 'raise NotImplementedError("exercise 08: write dx, dW and db")',
          "maxpool2d_backward": 'raise NotImplementedError("exercise 09: write dx")',
          "prelu_backward": 'raise NotImplementedError("exercise 09: write dx and da")'}

# The forward's loop, run backwards: a correct answer that the slips below change one by one.
CONV = """N, C, H, Wd = x.shape
    F, _, k, _ = W.shape
    Ho, Wo = dout.shape[2:]
    dx = np.zeros_like(x)
    dW = np.zeros_like(W)
    for i in range(Ho):
        for j in range(Wo):
            d = dout[:, :, i, j]  # (N, F)
            dW += np.einsum("nf,ncuv->fcuv", d, x[:, :, i:i + k, j:j + k])
            dx[:, :, i:i + k, j:j + k] += np.einsum("nf,fcuv->ncuv", d, W)
    db = dout.sum(axis=(0, 2, 3))
    """
AS_CORRELATION = """padded = np.pad(dout, ((0, 0), (0, 0), (k - 1, k - 1), (k - 1, k - 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(2, 3))
    """
POOL = """N, C, H, Wd = x.shape
    Ho, Wo = H // 2, Wd // 2
    windows = x[:, :, :2 * Ho, :2 * Wo].reshape(N, C, Ho, 2, Wo, 2)
    mask = windows == out[:, :, :, None, :, None]
    dx = np.zeros_like(x)
    dx[:, :, :2 * Ho, :2 * Wo] = (mask * dout[:, :, :, None, :, None]).reshape(N, C, 2 * Ho, 2 * Wo)
    return dx"""
PRELU = "return dout * np.where(x > 0, 1.0, a), np.sum(dout * np.minimum(x, 0)).reshape(1)"

# kind: (function, body, words every one of which a hint line must contain)
SLIPS = {
    "dW averaged over the batch": ("conv2d_backward", CONV + "return dx, dW / N, db",
                                   ["dW is averaged over the batch (divided by N = 7)"]),
    "dW averaged over the positions": ("conv2d_backward", CONV + "return dx, dW / (Ho * Wo), db",
                                       ["dW is averaged over the output positions"]),
    "dW written, not added, at each position": (
        "conv2d_backward", CONV.replace("dW += np", "dW = np") + "return dx, dW, db",
        ["only the last output position's share", "`dW += ...`"]),
    "dW one per image": ("conv2d_backward", CONV + "return dx, np.einsum('nfij,ncijuv->nfcuv', "
                         "dout, np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))), db",
                         ["more axes than the parameter has", "sum over them"]),
    "dW with its channel axes swapped": ("conv2d_backward",
                                         CONV + "return dx, dW.transpose(1, 0, 2, 3), db",
                                         ["the expected axes with axes 0 and 1 swapped"]),
    "dW turned by 180 degrees": ("conv2d_backward", CONV + "return dx, dW[:, :, ::-1, ::-1], db",
                                 ["dW is turned by 180 degrees", "no flip in dW"]),
    "db without the sum over positions": ("conv2d_backward", CONV + "return dx, dW, dout.sum(axis=0)",
                                          ["more axes than the parameter has"]),
    "db averaged over the batch": ("conv2d_backward", CONV + "return dx, dW, db / N",
                                   ["db is averaged over the batch"]),
    "dx written, not added, where patches overlap": (
        "conv2d_backward", CONV.replace("k] += np", "k] = np") + "return dx, dW, db",
        ["must add it (+=)", "neighbouring patches overlap"]),
    "dx with the kernel not flipped": (
        "conv2d_backward", CONV + AS_CORRELATION
        + "return np.einsum('nfpquv,fcuv->ncpq', windows, W), dW, db",
        ["kernel turned the wrong way", "W[:, :, ::-1, ::-1] -- once"]),
    "dx with the kernel flipped twice": (  # a flip of its own inside the scatter loop
        "conv2d_backward", CONV.replace("d, W)", "d, W[:, :, ::-1, ::-1])") + "return dx, dW, db",
        ["kernel turned the wrong way", "or twice"]),
    "dx with its channel axes swapped (C == F)": (
        "conv2d_backward", CONV + """if C == F:  # wrong only where the shapes allow it: caught by value
        dx = np.zeros_like(x)
        for i in range(Ho):
            for j in range(Wo):
                dx[:, :, i:i + k, j:j + k] += np.einsum("nf,cfuv->ncuv", dout[:, :, i, j], W)
    return dx, dW, db""", ["mixes up W's two channel axes", "transpose(1, 0, 2, 3)"]),
    "pooling gradient spread over the window": (
        "maxpool2d_backward", POOL.replace("(mask * dout", "(np.ones(mask.shape) * dout"),
        ["spreads each window's gradient over the whole window"]),
    "pooling gradient averaged": (
        "maxpool2d_backward", POOL.replace("(mask * dout", "(np.ones(mask.shape) / 4 * dout"),
        ["averages each window's gradient", "*average* pooling"]),
    "pooling mask inverted": ("maxpool2d_backward", POOL.replace("(mask * dout", "(~mask * dout"),
                              ["inverted mask", "exactly the entries that lose their window"]),
    "pooling without the odd row": (
        "maxpool2d_backward", POOL.replace("dx = np.zeros_like(x)\n    dx[:, :, :2 * Ho, :2 * Wo] =",
                                           "dx ="),
        ["one short along axis 2", "no pooling window covers"]),
    "slope's gradient averaged": (
        "prelu_backward", PRELU.replace("np.sum(", "np.mean("),
        ["da is the mean over the", "not their sum"]),
    "slope's gradient per element": (
        "prelu_backward", "return dout * np.where(x > 0, 1.0, a), dout * np.minimum(x, 0)",
        ["one value per entry", "the sum of every entry's share"]),
    "slope's gradient averaged over the batch": (
        "prelu_backward", PRELU + " / x.shape[0]", ["da is averaged over the batch"]),
    "slope's gradient from every entry": (
        "prelu_backward", "return dout * np.where(x > 0, 1.0, a), np.sum(dout * x).reshape(1)",
        ["da counts every entry"]),
    "slope's gradient without x": (
        "prelu_backward", "return dout * np.where(x > 0, 1.0, a), np.sum(dout * (x <= 0)).reshape(1)",
        ["forgets x", "adds dout * x"]),
    "PReLU's dx as ReLU's": (
        "prelu_backward", "return dout * (x > 0), np.sum(dout * np.minimum(x, 0)).reshape(1)",
        ["dx is ReLU's backward", "a * dout"]),
}
CORRECT = {"conv2d_backward": [CONV + "return dx, dW, db",
                               CONV + AS_CORRELATION + "return np.einsum('nfpquv,fcuv->ncpq', "
                                                       "windows, W[:, :, ::-1, ::-1]), dW, db"],
           "maxpool2d_backward": [POOL], "prelu_backward": [PRELU]}


def template(number):
    """An exercise file without its self-check block (the checker imports it anyway)."""
    text = next(EXERCISES.glob(f"{number}_*.py")).read_text()
    return text.split('\nif __name__ == "__main__":')[0]


def submission(bodies):
    """Exercises 08 and 09 in one file, each function's blank replaced by its body."""
    text = template("08") + "\n\n" + template("09")
    for name, body in bodies.items():
        assert BLANKS[name] in text
        text = text.replace(BLANKS[name], body)
    return text


def function_block(block, name):
    """The lines of one function's verdict in a file's block of the report."""
    lines, inside = [], False
    for line in block.splitlines():
        if line.split(" ")[0] in ("PASS", "FAIL", "TODO", "ERROR", "->"):
            inside = line.split(" ")[1:2] in ([name], [name + ":"])
        if inside:
            lines.append(line)
    return "\n".join(lines)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One checker run over every slip and every correct answer: {(file, function): lines}."""
    folder = tmp_path_factory.mktemp("cnn_exercises")
    queues = {name: [(kind, body) for kind, (fn, body, _) in SLIPS.items() if fn == name]
              + [(f"correct {i}", body) for i, body in enumerate(CORRECT[name])]
              for name in BLANKS}
    files, where = 0, {}
    while any(queues.values()):
        bodies = {}
        for name, queue in queues.items():
            kind, body = queue.pop(0) if queue else ("correct 0", CORRECT[name][0])
            bodies[name] = body
            where.setdefault((name, kind), f"s{files:02d}.py")
        write(folder, f"s{files:02d}.py", submission(bodies))
        files += 1
    library = write(folder, "library_calls.py", """
        from tinyadv import layers
        def conv2d_backward(dout, cache):
            return layers.conv2d_backward(dout, cache)
        def maxpool2d_backward(dout, cache):
            return layers.maxpool2d_backward(dout, cache)
        def prelu_backward(dout, cache):
            return layers.prelu_backward(dout, cache)
        """)
    code, out = check(folder, "--jobs", "2")
    found = blocks(out)
    return code, {key: function_block(found[str(folder / name)], key[0])
                  for key, name in where.items()}, found[str(library)]


@pytest.mark.parametrize("kind", SLIPS)
def test_each_slip_gets_a_hint_that_names_it(kind, run):
    code, found, _ = run
    assert code == 1
    name, _, words = SLIPS[kind]
    block = found[(name, kind)]
    assert block.startswith(f"FAIL {name}"), block
    hint_lines = [line for line in block.splitlines() if "hint:" in line]
    assert hint_lines, block
    for word in words:
        assert any(word in line for line in hint_lines), (word, block)


@pytest.mark.parametrize("name, number", [(name, i) for name in CORRECT
                                          for i in range(len(CORRECT[name]))])
def test_correct_answers_pass_against_the_exercises_own_forwards(name, number, run):
    block = run[1][(name, f"correct {number}")]
    assert block.startswith(f"PASS {name}"), block
    assert f"forward: this file's {name.replace('backward', 'forward')}" in block
    assert "note:" not in block


def test_the_library_answers_pass_with_a_note_for_the_teacher(run):
    block = run[2]
    for name in BLANKS:
        assert f"PASS {name}" in block
        assert f"note: calls tinyadv.layers.{name}, which computes this answer outright" in block


def test_different_slips_get_different_hints(run):
    """Slips that SLIPS expects different words for get different first hint lines (the
    kernel not flipped and flipped twice are one mistake, with one hint)."""
    first_hint = {}
    for kind, (name, _, words) in SLIPS.items():
        line = next(line for line in run[1][(name, kind)].splitlines() if "hint:" in line)
        first_hint.setdefault((name, words[0]), set()).add(line.split("hint:")[1])
    for (name, _), lines in first_hint.items():
        assert len(lines) == 1, lines  # the same expected words: the same hint
    for name in BLANKS:
        lines = [next(iter(v)) for (n, _), v in first_hint.items() if n == name]
        assert len(set(lines)) == len(lines), name


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_inputs_stay_away_from_every_kink(seed):
    """No pooling window holds a tie or a near-tie, no PReLU input is near 0, every
    convolution case has a kernel a flip changes, a non-square output and C == F only in its
    last case."""
    rng = np.random.default_rng(seed)
    for case, n in enumerate(pieces.BATCH_SIZES):
        (x,), masks = inputs.draw_maxpool2d(rng, n, case)
        N, C, H, W = x.shape
        windows = np.sort(x[:, :, :H // 2 * 2, :W // 2 * 2].reshape(N, C, H // 2, 2, W // 2, 2)
                          .transpose(0, 1, 2, 4, 3, 5).reshape(N, C, H // 2, W // 2, 4), axis=-1)
        assert np.all(windows[..., 3] - windows[..., 2] >= inputs.KINK_GAP)
        assert (H % 2 == 1) == (case == 0) and (W % 2 == 1) == (case == 1)
        winners = dict(masks)["the entries that win their window (each window's maximum)"]
        assert winners.sum() == N * C * (H // 2) * (W // 2)
        (x, a), _ = inputs.draw_prelu(rng, n, case)
        assert np.min(np.abs(x)) >= inputs.KINK_GAP and (x > 0).any() and (x < 0).any()
        assert a.shape == (1,) and 0.1 <= a[0] <= 0.5
        (x, W, b), _ = inputs.draw_conv2d(rng, n, case)
        k = W.shape[-1]
        assert k >= 2 and not np.allclose(W, W[:, :, ::-1, ::-1])
        assert x.shape[2] - k != x.shape[3] - k
        assert (W.shape[0] == W.shape[1]) == (case == inputs.SQUARE_CASE)


def test_shape_hints_for_the_new_shapes():
    assert "axes 0 and 1 swapped" in hints.shape_hint((3, 2, 5, 5), (2, 3, 5, 5), 7)
    assert "more axes than the parameter" in hints.shape_hint((3,), (3, 4, 2), 7)
    assert "one value per entry" in hints.shape_hint((1,), (7, 2, 4, 4), 7)
    assert "one short along axis 3" in hints.shape_hint((7, 2, 4, 5), (7, 2, 4, 4), 7)
    assert hints.shape_hint((3, 2, 5, 5), (3, 2, 5, 5, 1), 7) is not None
    assert "one short" not in str(hints.shape_hint((4, 3), (3, 3), 7))  # not an image
