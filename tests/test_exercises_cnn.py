"""Exercises 08 (conv2d_backward) and 09 (maxpool2d_backward, prelu_backward) in the checker.

Each submission is built from the exercise files themselves -- their forwards and caches, the
``raise NotImplementedError`` replaced by a body -- so the tests see what a student sees. The
classic slips of a convolution's, a max pooling's and a PReLU's backward each get a hint that
names them (in words: a hint names the slip, never prints its fix as code); correct answers,
written two ways, pass; answers that call the library pass with a note for the teacher.
Max pooling is also judged at ties, by the convention exercise 09 states (the first maximum
of a window takes its gradient). One file holds one attempt at each of the three functions
(as a student may paste both exercises into one file), so the whole set is one checker run
of a dozen files, two at a time.
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
# The first maximum of each window takes its gradient (the convention exercise 09 states, as
# PyTorch): the entries equal to the window's maximum with no equal one before them.
POOL = """N, C, H, Wd = x.shape
    Ho, Wo = H // 2, Wd // 2
    windows = x[:, :, :2 * Ho, :2 * Wo].reshape(N, C, Ho, 2, Wo, 2)
    tied = windows == out[:, :, :, None, :, None]
    rows = tied.transpose(0, 1, 2, 4, 3, 5).reshape(N, C, Ho, Wo, 4)  # each window row by row
    first = rows & (np.cumsum(rows, axis=-1) == 1)
    mask = first.reshape(N, C, Ho, Wo, 2, 2).transpose(0, 1, 2, 4, 3, 5)
    dx = np.zeros_like(x)
    dx[:, :, :2 * Ho, :2 * Wo] = (mask * dout[:, :, :, None, :, None]).reshape(N, C, 2 * Ho, 2 * Wo)
    return dx"""
POOL_ARGMAX = """N, C, H, Wd = x.shape
    Ho, Wo = H // 2, Wd // 2
    rows = x[:, :, :2 * Ho, :2 * Wo].reshape(N, C, Ho, 2, Wo, 2).transpose(0, 1, 2, 4, 3, 5)
    rows = rows.reshape(N, C, Ho, Wo, 4)
    routed = np.zeros(rows.shape)
    np.put_along_axis(routed, rows.argmax(axis=-1)[..., None], dout[..., None], axis=-1)
    dx = np.zeros_like(x)
    dx[:, :, :2 * Ho, :2 * Wo] = routed.reshape(N, C, Ho, Wo, 2, 2).transpose(
        0, 1, 2, 4, 3, 5).reshape(N, C, 2 * Ho, 2 * Wo)
    return dx"""
LAST = "first = rows & (np.cumsum(rows[..., ::-1], axis=-1)[..., ::-1] == 1)"
IM2COL_DW = """patches = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))
    patches = patches.transpose(0, 2, 3, 1, 4, 5).reshape(N * Ho * Wo, C * k * k)
    g = dout.transpose(0, 2, 3, 1).reshape(N * Ho * Wo, F)
    """
PRELU = "return dout * np.where(x > 0, 1.0, a), np.sum(dout * np.minimum(x, 0)).reshape(1)"

# kind: (function, body, words every one of which a hint line must contain)
SLIPS = {
    "dW averaged over the batch": ("conv2d_backward", CONV + "return dx, dW / N, db",
                                   ["dW is averaged over the batch (divided by N = 7)"]),
    "dW averaged over the positions": ("conv2d_backward", CONV + "return dx, dW / (Ho * Wo), db",
                                       ["dW is averaged over the output positions"]),
    "dW written, not added, at each position": (
        "conv2d_backward", CONV.replace("dW += np", "dW = np") + "return dx, dW, db",
        ["only the last output position's share", "assigned to dW where it must be added"]),
    "dW one per image": ("conv2d_backward", CONV + "return dx, np.einsum('nfij,ncijuv->nfcuv', "
                         "dout, np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))), db",
                         ["more axes than the parameter has", "sum over them"]),
    "dW with its channel axes swapped": ("conv2d_backward",
                                         CONV + "return dx, dW.transpose(1, 0, 2, 3), db",
                                         ["the expected axes with axes 0 and 1 swapped"]),
    "dW turned by 180 degrees": ("conv2d_backward", CONV + "return dx, dW[:, :, ::-1, ::-1], db",
                                 ["dW is turned by 180 degrees", "no turn in dW"]),
    "db without the sum over positions": ("conv2d_backward", CONV + "return dx, dW, dout.sum(axis=0)",
                                          ["more axes than the parameter has"]),
    "db averaged over the batch": ("conv2d_backward", CONV + "return dx, dW, db / N",
                                   ["db is averaged over the batch"]),
    "dx written, not added, where patches overlap": (
        "conv2d_backward", CONV.replace("k] += np", "k] = np") + "return dx, dW, db",
        ["must add it (+=)", "neighbouring patches overlap"]),
    "dx with the kernel not turned, as a correlation of the padded dout": (
        "conv2d_backward", CONV + AS_CORRELATION
        + "return np.einsum('nfpquv,fcuv->ncpq', windows, W), dW, db",
        ["kernel turned the wrong way", "padded with k - 1 zeros", "turned once",
         "exactly as the forward used it"]),
    "dx with the kernel turned inside the scatter loop": (
        "conv2d_backward", CONV.replace("d, W)", "d, W[:, :, ::-1, ::-1])") + "return dx, dW, db",
        ["kernel turned the wrong way", "padded with k - 1 zeros", "turned once",
         "exactly as the forward used it"]),
    "dx with the kernel turned along its rows only": (
        "conv2d_backward", CONV.replace("d, W)", "d, W[:, :, ::-1, :])") + "return dx, dW, db",
        ["one of its two spatial axes reversed", "rows and columns both"]),
    "dx from filter 0 only": (
        "conv2d_backward", CONV.replace("d, W)", "d[:, :1], W[:1])") + "return dx, dW, db",
        ["filter 0 alone", "a sum over the filters"]),
    "dW scrambled by a reshape": (
        "conv2d_backward", CONV + IM2COL_DW + "return dx, (patches.T @ g).reshape(W.shape), db",
        ["your dW holds the right numbers in the wrong places", "(C*k*k, F)"]),
    "dx with its channel axes swapped (C == F)": (
        "conv2d_backward", CONV + """if C == F:  # wrong only where the shapes allow it: caught by value
        dx = np.zeros_like(x)
        for i in range(Ho):
            for j in range(Wo):
                dx[:, :, i:i + k, j:j + k] += np.einsum("nf,cfuv->ncuv", dout[:, :, i, j], W)
    return dx, dW, db""", ["mixes up W's two channel axes", "channel c of every filter"]),
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
    "pooling gradient to every tied maximum (windows == out)": (
        "maxpool2d_backward", POOL.replace("mask = first.reshape", "mask = rows.reshape"),
        ["ties: your dx sends a window's gradient to every entry equal to its maximum",
         "the first maximum of the window"]),
    "pooling gradient to the last tied maximum": (
        "maxpool2d_backward", POOL.replace("first = rows & (np.cumsum(rows, axis=-1) == 1)", LAST),
        ["ties: your dx gives a tied window's gradient to the last of its maxima",
         "the first maximum of the window"]),
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
           "maxpool2d_backward": [POOL, POOL_ARGMAX], "prelu_backward": [PRELU]}


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
    for line in hint_lines:  # words, not code: no slice, index expression or call to copy
        assert "::-1" not in line and "[:, :" not in line and ".transpose(" not in line, line


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


def test_the_tie_case_is_judged_by_the_first_maximum_of_each_window():
    """Max pooling's fourth case is full of ties, and its reference is the convention's
    gradient, computed exactly: on lesson 10's example (one window won by 3, one with three
    equal 5s) the whole 20 goes to the first 5, where centred differences see 10 at each of
    the three (30 in all). Tied maxima sit anywhere in a window, so neither a top-left nor a
    last-maximum rule can pass by chance."""
    from tinyadv.gradcheck import numerical_gradient_array
    from tinyadv import layers

    x_tie = np.array([[[[1.0, 3.0, 5.0, 5.0], [2.0, 0.0, 1.0, 5.0]]]])
    dout = np.array([[[[10.0, 20.0]]]])
    convention = pieces._first_maximum_gradient((x_tie,), dout)[0]
    np.testing.assert_array_equal(convention[0, 0], [[0, 10, 20, 0], [0, 0, 0, 0]])
    numeric = numerical_gradient_array(lambda: layers.maxpool2d_forward(x_tie)[0], x_tie, dout)
    np.testing.assert_allclose(numeric[0, 0], [[0, 10, 10, 10], [0, 0, 0, 10]], atol=1e-6)

    piece = pieces.BY_BACKWARD["maxpool2d_backward"]
    for seed in range(4):
        cases = pieces.reference_cases(piece, seed)
        assert len(cases) == len(pieces.BATCH_SIZES) + 1 and "equal maxima" in cases[-1].shapes
        (x,), dout = cases[-1].args, cases[-1].dout
        rows = pieces._window_entries(x)
        tied = rows == rows.max(axis=-1, keepdims=True)
        counts = tied.sum(axis=-1)
        assert np.mean(counts > 1) >= 0.5 and set(np.unique(counts)) == {1, 2, 3, 4}
        first = np.argmax(tied, axis=-1)
        assert len(np.unique(first[counts > 1])) >= 2  # the first maximum is not always top-left
        assert np.array_equal(cases[-1].numeric[0], layers.maxpool2d_backward(
            dout, layers.maxpool2d_forward(x)[1]))  # the library keeps the same convention
        for case in cases[:-1]:  # the other three stay away from ties
            rows = pieces._window_entries(case.args[0])
            assert np.all((rows == rows.max(axis=-1, keepdims=True)).sum(axis=-1) == 1)


def test_shape_hints_for_the_new_shapes():
    assert "axes 0 and 1 swapped" in hints.shape_hint((3, 2, 5, 5), (2, 3, 5, 5), 7)
    assert "more axes than the parameter" in hints.shape_hint((3,), (3, 4, 2), 7)
    assert "one value per entry" in hints.shape_hint((1,), (7, 2, 4, 4), 7)
    assert "one short along axis 3" in hints.shape_hint((7, 2, 4, 5), (7, 2, 4, 4), 7)
    assert hints.shape_hint((3, 2, 5, 5), (3, 2, 5, 5, 1), 7) is not None
    assert "one short" not in str(hints.shape_hint((4, 3), (3, 3), 7))  # not an image
