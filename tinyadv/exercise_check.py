"""The classroom checker behind ``python -m tinyadv.gradcheck FILE [FILE or FOLDER ...]``.

A student writes the backward of a piece (``relu_backward``, ``angular_distance_backward``,
...) in a file. The checker imports the file, finds every function named exactly like one of
tinyadv's backward pieces, and compares what it returns with centred differences of the
forward of the same name -- the one in the file, or tinyadv's when the file has none.

How one piece is checked
------------------------
For each of a few random cases (batch N = 1, 3, 7; other sizes random) it draws float64
inputs kept away from every kink (ReLU at 0, |cos| at 0, the triplet hinge at 0, a norm at 0)
and an upstream gradient: a random array for array outputs, a random float in [1.2, 1.8] for
scalar losses (not 1.0, so a backward that ignores ``dloss`` is caught). Then

    analytic = backward(dout, cache)                                   (the student's)
    numeric  = d/dx sum(forward(x)[0] * dout)  by centred differences  (the reference)

and each returned gradient must satisfy ``rel_error(analytic, numeric) <= tol``.

Why tol = 1e-6: with h = 1e-6 in float64 the centred difference has a truncation error of
order h^2 ~ 1e-12 and a rounding error of order 1e-16 * |f| / h ~ 1e-10 relative, and no
perturbation crosses a kink (every input is >= 0.1 from one, 1e5 steps of h). tinyadv's own
backwards measure at most 1.7e-8 over 200 seeds (a backward that returns float32 measured
2.5e-8), while the mistakes this checker is for (a missing 1/N, a sign, a mask, a transpose)
give errors of order 1e-2 to 1. 1e-6 sits between the two with room on both sides.

The inputs depend only on ``seed`` and the piece, so every submission sees the same numbers
and a rerun prints the same report.
"""
import argparse
import difflib
import importlib.util
import itertools
import sys
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyadv import layers, losses
from tinyadv.gradcheck import compare, numerical_gradient_array, rel_error

CHECK_TOL = 1e-6
KINK_GAP = 0.1  # every input stays at least this far from a kink (h is 1e-6)
BATCH_SIZES = (1, 3, 7)
# A hint says "matches" when two arrays agree to this relative error: loose enough for the
# ~1e-9 noise of centred differences, far tighter than any real mistake.
HINT_MATCH = 1e-5

EXIT_OK, EXIT_FAILED, EXIT_NOTHING = 0, 1, 2


# --------------------------------------------------------------------------- random inputs

def _signed_uniform(rng, shape, low, high):
    """Values with |v| in [low, high] and a random sign: never within ``low`` of 0."""
    return rng.choice(np.array([-1.0, 1.0]), size=shape) * rng.uniform(low, high, size=shape)


def _row_cos(a, b):
    """Row-wise cosine and the smaller of the two norms, for (m, K) arrays."""
    norm_a = np.sqrt(np.einsum("ij,ij->i", a, a))
    norm_b = np.sqrt(np.einsum("ij,ij->i", b, b))
    return np.einsum("ij,ij->i", a, b) / (norm_a * norm_b), np.minimum(norm_a, norm_b)


def _cos_ok(a, b):
    """|cos| in [0.1, 0.95]: away from the kink of |cos| at 0, and from |cos| = 1 where the
    gradient vanishes (a vanishing gradient would let a wrong one pass)."""
    cos, smaller_norm = _row_cos(a, b)
    return (np.abs(cos) >= KINK_GAP) & (np.abs(cos) <= 0.95) & (smaller_norm >= 0.3)


def _draw_rows(rng, n, draw, ok, max_rounds=10_000):
    """Rejection sampling, vectorized over rows.

    draw(rng, m) -> tuple of arrays with m rows; ok(rows, *arrays) -> bool (m,) says which rows
    are acceptable (``rows`` are their final indices). Rejected rows are redrawn together.
    """
    arrays = draw(rng, n)
    good = ok(np.arange(n), *arrays)
    for _ in range(max_rounds):
        if good.all():
            return arrays
        rows = np.flatnonzero(~good)
        fresh = draw(rng, rows.size)
        for array, new in zip(arrays, fresh):
            array[rows] = new
        good[rows] = ok(rows, *fresh)
    raise RuntimeError("could not draw inputs away from the kinks; this is a bug in the checker")


def _sample_linear(rng, n, case):
    d = int(rng.integers(2, 7))
    if case == len(BATCH_SIZES) - 1:
        m = d  # one square W, so a transposed dW has the right shape and is caught by value
    else:
        m = int(rng.integers(2, 6))
        m += m >= d  # any size in 2..6 except d: a transposed dW then has the wrong shape
    x = rng.standard_normal((n, d))
    W = rng.standard_normal((d, m))
    b = rng.standard_normal(m)  # non-zero: there is no kink here, but no special value either
    return (x, W, b), []


def _sample_relu(rng, n, case):
    x = _signed_uniform(rng, (n, int(rng.integers(2, 7))), KINK_GAP, 2.0)
    return (x,), [("the entries where x < 0", x < 0), ("the entries where x > 0", x > 0)]


def _sample_softmax_cross_entropy(rng, n, case):
    c = int(rng.integers(3, 7))
    logits = 2.0 * rng.standard_normal((n, c))
    y = rng.integers(0, c, size=n)
    true_class = np.zeros((n, c), dtype=bool)
    true_class[np.arange(n), y] = True
    return (logits, y), [("the true-class entries (i, y_i)", true_class),
                         ("the entries of the other classes", ~true_class)]


def _sample_angular_distance(rng, n, case):
    k = int(rng.integers(3, 7))  # K >= 3: with K = 1 the distance is constant and says nothing
    a, b = _draw_rows(rng, n, lambda r, m: (r.standard_normal((m, k)), r.standard_normal((m, k))),
                      lambda rows, a, b: _cos_ok(a, b))
    # Alternate the sign of the cosine (row 0 positive, row 1 negative, ...) so the absolute
    # value in D = 1 - |cos| is exercised whenever N > 1. Negating b_i flips only the sign.
    cos, _ = _row_cos(a, b)
    want_negative = np.arange(n) % 2 == 1
    b[np.sign(cos) != np.where(want_negative, -1.0, 1.0)] *= -1.0
    return (a, b), [("the rows where cos(a_i, b_i) < 0", want_negative),
                    ("the rows where cos(a_i, b_i) > 0", ~want_negative)]


def _sample_triplet_loss(rng, n, case):
    k = int(rng.integers(3, 7))
    margin = float(rng.uniform(0.05, 0.3))
    hinge_gap = 0.05  # |D(a,p) - D(a,n) + margin| >= this for every row

    def draw(r, m):
        return tuple(r.standard_normal((m, k)) for _ in range(3))

    def ok(rows, a, p, neg):
        cos_ap, _ = _row_cos(a, p)
        cos_an, _ = _row_cos(a, neg)
        hinge = np.abs(cos_an) - np.abs(cos_ap) + margin  # = D(a,p) - D(a,n) + margin
        # Even rows active, odd rows inactive: a backward without the hinge's mask is caught.
        want_active = rows % 2 == 0
        hinge_ok = np.where(want_active, hinge >= hinge_gap, hinge <= -hinge_gap)
        return _cos_ok(a, p) & _cos_ok(a, neg) & hinge_ok

    a, p, neg = _draw_rows(rng, n, draw, ok)
    inactive = np.arange(n) % 2 == 1
    cos_ap, _ = _row_cos(a, p)
    cos_an, _ = _row_cos(a, neg)
    return (a, p, neg, margin), [
        ("the rows of inactive triplets (hinge <= 0, zero loss)", inactive),
        ("the rows of active triplets (hinge > 0)", ~inactive),
        ("the rows where cos(a_i, p_i) < 0", cos_ap < 0),
        ("the rows where cos(a_i, n_i) < 0", cos_an < 0),
    ]


def _sample_feature_norm(rng, n, case):
    k = int(rng.integers(2, 7))
    (h,) = _draw_rows(rng, n, lambda r, m: (r.standard_normal((m, k)),),
                      lambda rows, h: np.sqrt(np.einsum("ij,ij->i", h, h)) >= 0.3)
    return (h,), []


# --------------------------------------------------------------------------- the pieces

@dataclass(frozen=True)
class Piece:
    """One differentiable piece of tinyadv, as the checker sees it."""

    name: str  # "relu" -> relu_forward / relu_backward
    home: object  # the tinyadv module holding the reference forward and backward
    inputs: tuple  # names of the forward's leading array arguments that get a gradient
    scalar: bool  # the forward returns a scalar loss and the backward takes a float dloss
    sample: object  # sample(rng, n, case) -> (forward args, [(description, bool mask), ...])
    hints: dict = field(default_factory=dict)  # advice for a measured kind of mistake

    @property
    def forward_name(self):
        return f"{self.name}_forward"

    @property
    def backward_name(self):
        return f"{self.name}_backward"

    @property
    def grads(self):
        return tuple("d" + name for name in self.inputs)


_ABS_SIGN = "the derivative of |c| is sign(c), so rows with a negative cosine need the opposite sign"

PIECES = (
    Piece("linear", layers, ("x", "W", "b"), False, _sample_linear),
    Piece("relu", layers, ("x",), False, _sample_relu,
          {"mask": "ReLU lets the gradient through only where its input was positive."}),
    Piece("softmax_cross_entropy", losses, ("logits",), True, _sample_softmax_cross_entropy,
          {"where": "only the true-class entry of each row feels the -log p_{i,y_i} directly; "
                    "every other entry gets just its softmax probability."}),
    Piece("angular_distance", losses, ("a", "b"), False, _sample_angular_distance,
          {"sign": f"D = 1 - |cos|: {_ABS_SIGN}."}),
    Piece("triplet_loss", losses, ("a", "p", "n"), True, _sample_triplet_loss,
          {"mask": "a triplet whose hinge D(a,p) - D(a,n) + margin is <= 0 has zero loss, "
                   "so it gets no gradient at all.",
           "only da": "the anchor a is in both D(a, p) and D(a, n), so da is the sum of two "
                      "contributions, one from each distance.",
           "sign": f"check the signs: the loss grows with D(a, p) and shrinks with D(a, n); and {_ABS_SIGN}."}),
    Piece("feature_norm", losses, ("h",), True, _sample_feature_norm),
)
BACKWARD_NAMES = tuple(piece.backward_name for piece in PIECES)


# --------------------------------------------------------------------------- one case

@dataclass
class CaseOutcome:
    """What happened in one random case of one piece."""

    n: int
    shapes: str  # "x (7, 4), W (4, 3), b (3,), dout (7, 3)", to show with a message
    blank: str = None  # the NotImplementedError's message: the piece is still a blank
    problem: str = None  # a crash or a malformed return value, worded for the student
    hint: str = None
    analytic: list = None  # per gradient, float64 arrays (when the structure was right)
    numeric: list = None
    reports: list = None  # per gradient, GradCheckReport
    meta: list = None
    dout: object = None
    forward_diff: float = 0.0  # max |file's forward - tinyadv's| on these inputs
    forward_dtype: str = None  # set when the file's forward does not compute in float64


def _shape_str(value):
    return "scalar" if np.ndim(value) == 0 else str(tuple(np.shape(value)))


def _where_in_file(exc, source_file):
    """' (line 12, in relu_backward)' for the deepest traceback frame in the student's file."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == source_file]
    return f" (line {frames[-1].lineno}, in {frames[-1].name})" if frames else ""


def _exception_text(exc, source_file):
    message = str(exc).strip()
    return f"{type(exc).__name__}{': ' + message if message else ''}{_where_in_file(exc, source_file)}"


def _shape_hint(piece, expected, got, n):
    """Words for a gradient of the wrong shape, from the shapes alone."""
    if len(expected) == 2 and got == expected[::-1] and expected[0] != expected[1]:
        return "that is the transpose of the expected shape: a transposed product?"
    if got == (n,) + expected and n > 1:
        return "one per sample: the parameter is shared by all N samples, so sum over the batch axis."
    if expected == (n,) + got and n > 1:
        return "summed over the batch axis, but every sample has its own gradient."
    if int(np.prod(got)) == int(np.prod(expected)):
        return "the same number of entries in another shape (a reshape or keepdims?)."
    return None


def _normalize_return(piece, returned, expected_shapes, n):
    """Turn the backward's return value into a list of float64 arrays, or a problem message."""
    grads = piece.grads
    if returned is None:
        return None, "returned None (is the `return` statement missing?)"
    if len(grads) == 1:
        if isinstance(returned, (tuple, list)):
            return None, (f"returned a {type(returned).__name__} of length {len(returned)}; "
                          f"expected the array {grads[0]} itself, shaped {expected_shapes[0]}")
        values = [returned]
    else:
        if not isinstance(returned, (tuple, list)):
            return None, (f"returned a single {type(returned).__name__} of shape {_shape_str(returned)}; "
                          f"expected {len(grads)} arrays ({', '.join(grads)})")
        if len(returned) != len(grads):
            return None, (f"returned {len(returned)} values; expected {len(grads)} "
                          f"arrays ({', '.join(grads)}), in that order")
        values = list(returned)
    arrays, problems = [], []
    for name, value, expected in zip(grads, values, expected_shapes):
        if value is None:
            problems.append(f"{name} is None")
            arrays.append(None)
            continue
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            problems.append(f"{name} cannot be read as an array of numbers ({exc})")
            arrays.append(None)
            continue
        arrays.append(array)
        if array.shape != expected:
            hint = _shape_hint(piece, expected, array.shape, n)
            problems.append(f"{name}: expected shape {expected} (the shape of {name[1:]}), got "
                            f"{array.shape}" + (f"\n  hint: {hint}" if hint else ""))
    got_shapes = [a.shape for a in arrays if a is not None]
    if problems and len(got_shapes) == len(grads) > 1 and got_shapes != list(expected_shapes) \
            and sorted(got_shapes) == sorted(expected_shapes):
        problems.append(f"hint: the shapes are the expected ones in another order: return "
                        f"({', '.join(grads)}) in that order.")
    if problems:
        return None, "\n".join(problems)
    return arrays, None


def run_case(piece, forward, backward, args, meta, dout, tol, source_file):
    """Check ``backward`` on one set of inputs; returns a CaseOutcome (never raises)."""
    k = len(piece.inputs)
    n = args[0].shape[0]
    reference_forward = getattr(piece.home, piece.forward_name)
    reference_out, _ = reference_forward(*[np.copy(a) for a in args])
    shapes = ", ".join(f"{name} {args[i].shape}" for i, name in enumerate(piece.inputs))
    shapes += f", {'dloss ' + format(dout, '.4g') if piece.scalar else 'dout ' + str(np.shape(dout))}"
    outcome = CaseOutcome(n=n, shapes=shapes, meta=meta, dout=dout)

    # The forward (the file's own, or tinyadv's) on a private copy of the inputs.
    try:
        result = forward(*[np.copy(a) if isinstance(a, np.ndarray) else a for a in args])
    except NotImplementedError as exc:
        outcome.blank = f"{piece.forward_name}: {exc}".rstrip(": ")
        return outcome
    except (Exception, SystemExit) as exc:  # a student's file may raise anything: report it
        outcome.problem = f"{piece.forward_name} raised {_exception_text(exc, source_file)}"
        return outcome
    if not (isinstance(result, tuple) and len(result) == 2):
        outcome.problem = f"{piece.forward_name} must return (out, cache); got {type(result).__name__}"
        return outcome
    out, cache = result
    if np.shape(out) != np.shape(reference_out):
        outcome.problem = (f"{piece.forward_name} returned out of shape {_shape_str(out)}; "
                           f"expected {_shape_str(reference_out)}")
        return outcome
    if forward is not reference_forward:
        outcome.forward_diff = float(np.max(np.abs(np.asarray(out, dtype=np.float64) - reference_out))
                                     / (1.0 + np.max(np.abs(reference_out))))
        dtype = getattr(out, "dtype", None)
        if dtype is not None and dtype != np.float64:
            outcome.forward_dtype = str(dtype)

    # The analytic gradients: the backward gets its own copy of dout (it may write into it).
    try:
        returned = backward(np.copy(dout) if isinstance(dout, np.ndarray) else dout, cache)
    except NotImplementedError as exc:
        outcome.blank = str(exc).strip()
        return outcome
    except (Exception, SystemExit) as exc:
        outcome.problem = f"raised {_exception_text(exc, source_file)}"
        return outcome
    expected_shapes = [args[i].shape for i in range(k)]
    analytic, problem = _normalize_return(piece, returned, expected_shapes, n)
    if problem:
        outcome.problem = problem
        return outcome

    # The numerical gradients, perturbing fresh float64 copies of the inputs one entry at a time.
    work = [np.array(a, dtype=np.float64) if i < k else a for i, a in enumerate(args)]
    try:
        numeric = [numerical_gradient_array(lambda: forward(*work)[0], work[i], dout) for i in range(k)]
    except (Exception, SystemExit) as exc:
        outcome.problem = (f"{piece.forward_name} raised {_exception_text(exc, source_file)} "
                           f"while computing the numerical gradient")
        return outcome
    if not all(np.all(np.isfinite(g)) for g in numeric):
        outcome.problem = f"{piece.forward_name} gives NaN or inf near the test inputs"
        return outcome
    outcome.analytic, outcome.numeric = analytic, numeric
    outcome.reports = [compare(name, a, g, tol) for name, a, g in zip(piece.grads, analytic, numeric)]
    return outcome


# --------------------------------------------------------------------------- hints

def _describe_factor(name, c, n, dout, scalar):
    """Name the constant c with your = c * numeric, as sign * N^i * dloss^j * 2^k if it is one."""
    best = None
    dloss = float(dout) if scalar else 1.0
    for sign, i, j, k in itertools.product((1, -1), (0, 1, -1), (0, -1, 1), (0, 1, -1)):
        if (i and n == 1) or (j and not scalar):
            continue
        value = sign * float(n) ** i * dloss ** j * 2.0 ** k
        if abs(c - value) <= 1e-4 * abs(value):
            cost = abs(i) + abs(j) + abs(k) + (sign < 0)
            if best is None or cost < best[0]:
                best = (cost, sign, i, j, k)
    if best is None:
        return (f"your {name} is the numerical one times {c:.4g}: right up to a constant factor. "
                f"Look for a missing or extra constant (the 1/N of a mean, the upstream gradient, a 2).")
    _, sign, i, j, k = best
    parts = []
    if sign < 0:
        parts.append("the sign is flipped")
    if i == 1 and scalar:
        parts.append(f"it is N = {n} times too large: the loss is a mean over the batch, so every "
                     f"sample's gradient carries a 1/N (missing 1/N?)")
    if i == -1 and scalar:
        parts.append(f"it is N = {n} times too small: the 1/N is applied twice?")
    if i and not scalar:
        parts.append(f"it is N = {n} times too {'large' if i == 1 else 'small'}: this piece works "
                     f"sample by sample (no mean over the batch), so no factor N or 1/N belongs here")
    if j == -1:
        parts.append(f"the upstream gradient dloss = {dout:.4g} is not applied: multiply by it (chain rule)")
    if j == 1:
        parts.append("dloss is applied twice")
    if k == 1:
        parts.append("it is 2 times too large: a stray factor 2?")
    if k == -1:
        parts.append("it is 2 times too small: a missing factor 2?")
    if not parts:
        return (f"your {name} is close to the numerical one but not within the tolerance: "
                f"a precision problem (float32 arithmetic somewhere?)")
    text = f"your {name} = {c:.4g} x the numerical one: " + "; ".join(parts)
    return text if text.endswith("?") else text + "."


def _locate(mask, meta, shape):
    """Describe the set of entries ``mask``: by a named set of the case if it is exactly one."""
    for description, named in meta:
        if named.shape == shape:
            full = named
        elif named.ndim == 1 and len(shape) == 2 and named.shape[0] == shape[0]:
            full = np.broadcast_to(named[:, None], shape)
        else:
            continue
        if np.array_equal(full, mask):
            return f"exactly {description}"
    text = f"{int(mask.sum())} of {mask.size} entries"
    if mask.ndim == 2 and mask.shape[0] > 1:
        rows = np.flatnonzero(mask.any(axis=1))
        shown = ", ".join(str(r) for r in rows[:10]) + (", ..." if rows.size > 10 else "")
        text += f" (row{'s' if rows.size > 1 else ''} {shown})"
    return text


def explain(piece, index, outcome, only_failure=False):
    """A hint for the failing gradient ``index`` of a case, from measurements only.

    ``only_failure``: every other gradient of the piece passed (in every case).
    """
    name = piece.grads[index]
    mine, true = outcome.analytic[index], outcome.numeric[index]
    if not np.all(np.isfinite(mine)):
        return (f"your {name} contains NaN or inf ({int(np.sum(~np.isfinite(mine)))} entries): "
                f"a division by zero, or a log or sqrt of something <= 0?")
    if not np.any(true):
        return f"the true {name} is 0 everywhere here, but yours is not."
    if not np.any(mine):
        return f"your {name} is 0 everywhere: is it computed and returned (not a fresh np.zeros)?"
    for other, other_true in enumerate(outcome.numeric):
        if other != index and other_true.shape == mine.shape and rel_error(mine, other_true) <= HINT_MATCH:
            return (f"your {name} is what {piece.grads[other]} should be: outputs swapped? "
                    f"Return ({', '.join(piece.grads)}) in that order.")
    c = float(np.sum(mine * true) / np.sum(true * true))
    if rel_error(mine, c * true) <= HINT_MATCH:
        return _describe_factor(name, c, outcome.n, outcome.dout, piece.scalar)
    if mine.ndim == 2 and mine.shape[0] == mine.shape[1] and rel_error(mine, true.T) <= HINT_MATCH:
        return f"your {name} is the transpose of the numerical one: a transposed product?"

    # Entry by entry: where does it match, where is it zero, where has it the other sign?
    scale = float(np.max(np.abs(mine) + np.abs(true)))
    close = HINT_MATCH * scale
    match = np.abs(mine - true) <= close
    mine_zero, true_zero = np.abs(mine) <= close, np.abs(true) <= close
    flipped = ~match & ~true_zero & (np.abs(mine + true) <= close)
    only_true_zero = ~match & true_zero & ~mine_zero  # yours non-zero where the truth is 0
    only_mine_zero = ~match & mine_zero & ~true_zero  # yours 0 where the truth is not
    other = ~(match | flipped | only_true_zero | only_mine_zero)
    if not other.any():
        where = lambda mask: _locate(mask, outcome.meta, mine.shape)  # noqa: E731
        if only_true_zero.any() and only_mine_zero.any() and not flipped.any():
            text = (f"inverted mask: your {name} is non-zero at {where(only_true_zero)}, where the "
                    f"numerical gradient is 0, and 0 at {where(only_mine_zero)}, where it is not.")
            return text + _piece_hint(piece, "mask")
        if only_true_zero.any() and not (only_mine_zero.any() or flipped.any()):
            text = (f"missing mask: your {name} is non-zero at {where(only_true_zero)}, where the "
                    f"numerical gradient is exactly 0; everywhere else it matches.")
            return text + _piece_hint(piece, "mask")
        if only_mine_zero.any() and not (only_true_zero.any() or flipped.any()):
            text = (f"extra or wrong mask: your {name} is 0 at {where(only_mine_zero)}, where the "
                    f"numerical gradient is not; everywhere else it matches.")
            return text + _piece_hint(piece, "mask")
        if flipped.any() and not (only_true_zero.any() or only_mine_zero.any()):
            text = f"the sign is flipped at {where(flipped)}; everywhere else it matches."
            return text + _piece_hint(piece, "sign")
    if match.any():
        text = f"wrong at {_locate(~match, outcome.meta, mine.shape)}; everywhere else it matches."
        return text + _piece_hint(piece, "where")
    if only_failure:
        text = _piece_hint(piece, "only " + name)
        if text:
            return f"{', '.join(g for g in piece.grads if g != name)} are right, {name} is not." + text
    return ("no simple pattern (not a constant factor, a sign, a mask, a transpose or swapped "
            "outputs): re-derive it one step of the forward at a time, checking each shape.")


def _piece_hint(piece, kind):
    return f" ({piece.hints[kind]})" if kind in piece.hints else ""


# --------------------------------------------------------------------------- one function, one file

def _forward_notes(piece, diff, dtype):
    """Tell a teacher when the file's forward is not tinyadv's (the backward is checked against it)."""
    notes = []
    if dtype:
        notes.append(f"note: this file's {piece.forward_name} returns {dtype}; the numerical gradient "
                     f"needs float64 (float32 keeps ~7 digits, and a centred difference loses most).")
    if diff > 1e-9:
        notes.append(f"note: this file's {piece.forward_name} differs from tinyadv's (relative difference "
                     f"up to {diff:.2g} on the test inputs); the backward is checked against this file's.")
    return notes


@dataclass
class FunctionResult:
    name: str
    status: str  # "pass", "fail" or "blank"
    lines: list  # the report, already worded, one entry per line


def _forward_source(piece, module):
    reference = getattr(piece.home, piece.forward_name)
    mine = getattr(module, piece.forward_name, None)
    if callable(mine) and mine is not reference:
        return mine, f"this file's {piece.forward_name}"
    if mine is reference:
        return reference, f"tinyadv.{piece.home.__name__.split('.')[-1]}.{piece.forward_name} (imported)"
    return reference, f"tinyadv.{piece.home.__name__.split('.')[-1]}.{piece.forward_name} (the file has none)"


def check_function(piece, module, seed, tol, source_file):
    """Run every case of one piece and word the outcome."""
    backward = getattr(module, piece.backward_name)
    forward, forward_source = _forward_source(piece, module)
    rng = np.random.default_rng([seed, PIECES.index(piece)])  # same inputs in every file
    outcomes, forward_diff, forward_dtype = [], 0.0, None
    for case, n in enumerate(BATCH_SIZES):
        args, meta = piece.sample(rng, n, case)
        reference_out, _ = getattr(piece.home, piece.forward_name)(*args)
        dout = float(rng.uniform(1.2, 1.8)) if piece.scalar else rng.standard_normal(np.shape(reference_out))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a NaN is reported below; a warning would only clutter
            outcome = run_case(piece, forward, backward, args, meta, dout, tol, source_file)
        forward_diff = max(forward_diff, outcome.forward_diff)
        forward_dtype = forward_dtype or outcome.forward_dtype
        notes = _forward_notes(piece, forward_diff, forward_dtype)
        if outcome.blank is not None:
            detail = f" ({outcome.blank})" if outcome.blank else ""
            return FunctionResult(piece.backward_name, "blank",
                                  [f"TODO {piece.backward_name}: not implemented yet{detail}"])
        if outcome.problem:
            lines = [f"FAIL {piece.backward_name}  (forward: {forward_source})",
                     f"     case N={n}: {outcome.shapes}"]
            lines += ["     " + line for line in outcome.problem.splitlines()]
            return FunctionResult(piece.backward_name, "fail", lines + ["     " + m for m in notes])
        outcomes.append(outcome)

    # Per gradient, the worst case (the larger batch on a tie: it shows more).
    failing, worst_overall = [], 0.0
    for index, grad in enumerate(piece.grads):
        worst = max(outcomes, key=lambda o: (o.reports[index].rel_error, o.n))
        worst_overall = max(worst_overall, worst.reports[index].rel_error)
        if not worst.reports[index].passed:
            failing.append((index, worst))
    sizes = ", ".join(str(n) for n in BATCH_SIZES)
    if not failing:
        lines = [f"PASS {piece.backward_name}: {', '.join(piece.grads)} within tol {tol:.0e} in "
                 f"{len(outcomes)} cases (N = {sizes}); worst rel_error {worst_overall:.1e}",
                 f"     forward: {forward_source}"]
        return FunctionResult(piece.backward_name, "pass", lines + ["     " + m for m in notes])
    lines = [f"FAIL {piece.backward_name}  (forward: {forward_source})"]
    for index, outcome in failing:
        report = outcome.reports[index]
        where = "[" + ", ".join(str(i) for i in report.worst_index) + "]" if report.worst_index else ""
        lines += [f"     {report.name}: rel_error {report.rel_error:.1e} > tol {tol:.0e}, "
                  f"in the case N={outcome.n}: {outcome.shapes}",
                  f"         worst element {report.name}{where}: analytic {report.analytic_at_worst:.6g}, "
                  f"numeric {report.numeric_at_worst:.6g}",
                  f"         hint: {explain(piece, index, outcome, len(failing) == 1)}"]
    passing = [g for i, g in enumerate(piece.grads) if i not in {f[0] for f in failing}]
    if passing:
        lines.append(f"     ({', '.join(passing)}: correct)")
    return FunctionResult(piece.backward_name, "fail", lines + ["     " + m for m in notes])


_module_counter = itertools.count()


def load_file(path):
    """Import the file at ``path`` as a fresh module: (module, None) or (None, reason)."""
    source_file = str(path.resolve())
    name = f"_tinyadv_submission_{next(_module_counter)}"
    spec = importlib.util.spec_from_file_location(name, source_file)
    if spec is None or spec.loader is None:
        return None, "not a Python source file"
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.resolve().parent))  # so the file can import its own helpers
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:  # IndentationError and TabError included
        return None, f"{type(exc).__name__}: {exc.msg} (line {exc.lineno})"
    except SystemExit as exc:
        return None, f"the file called sys.exit({exc.code!r}) while being imported"
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        return None, _exception_text(exc, source_file)
    finally:
        sys.path.remove(str(path.resolve().parent))
        sys.modules.pop(name, None)
    return module, None


@dataclass
class FileResult:
    path: str
    functions: list = field(default_factory=list)
    error: str = None  # could not be imported or read
    notes: list = field(default_factory=list)

    def count(self, status):
        return sum(f.status == status for f in self.functions)

    @property
    def checked(self):
        return bool(self.functions)

    @property
    def ok(self):
        return self.checked and all(f.status == "pass" for f in self.functions)


def _unknown_backward_notes(module):
    """Notes for functions that look like a backward but are not one the checker knows."""
    notes = []
    for attr in sorted(vars(module)):
        if attr.startswith("_") or attr in BACKWARD_NAMES or attr.endswith("_forward") \
                or not callable(getattr(module, attr)):
            continue
        guess = difflib.get_close_matches(attr, BACKWARD_NAMES, n=1, cutoff=0.85)
        if guess or "backward" in attr.lower():
            notes.append(f"note: {attr} is not a piece the checker knows"
                         + (f"; did you mean {guess[0]}?" if guess else "."))
    return notes


def check_file(path, seed=0, tol=CHECK_TOL):
    """Check every known backward in the file; returns a FileResult."""
    result = FileResult(str(path))
    module, reason = load_file(path)
    if module is None:
        result.error = f"cannot import: {reason}"
        return result
    result.notes = _unknown_backward_notes(module)
    source_file = str(path.resolve())
    for piece in PIECES:
        if callable(getattr(module, piece.backward_name, None)):
            result.functions.append(check_function(piece, module, seed, tol, source_file))
    if not result.functions:
        result.error = ("nothing to check: the file defines none of " + ", ".join(BACKWARD_NAMES))
    return result


def _print_file(result, out):
    print(f"== {result.path}", file=out)
    if result.error:
        print(result.error, file=out)
    for function in result.functions:
        for line in function.lines:
            print(line, file=out)
    for note in result.notes:
        print(note, file=out)
    if result.checked:
        print(f"-> {result.count('pass')} passed, {result.count('fail')} failed, "
              f"{result.count('blank')} not implemented yet", file=out)
    print(file=out)


def _print_summary(results, seed, tol, out):
    width = max(len("file"), *(len(r.path) for r in results))
    print(f"summary (seed {seed}, tol {tol:.0e})", file=out)
    print(f"{'file':<{width}}  pass  fail  todo  result", file=out)
    for r in results:
        if r.checked:
            verdict = "PASS" if r.ok else "FAIL"
            print(f"{r.path:<{width}}  {r.count('pass'):>4}  {r.count('fail'):>4}  "
                  f"{r.count('blank'):>4}  {verdict}", file=out)
        else:
            print(f"{r.path:<{width}}  {'-':>4}  {'-':>4}  {'-':>4}  {r.error}", file=out)


def _collect(paths):
    """Expand folders into their .py files (recursively, sorted); keep files as given."""
    entries = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.py")
                           if not any(part.startswith(".") or part == "__pycache__"
                                      for part in p.relative_to(path).parts))
            if not found:
                entries.append((path, "no .py files in this folder"))
            entries += [(p, None) for p in found]
        elif path.is_file():
            entries.append((path, None))
        else:
            entries.append((path, "no such file or folder"))
    return entries


def main(argv=None, out=None):
    """Command line: check FILEs (or every .py under FOLDERs); return the exit code.

    Exit codes: 0 every checked function passed; 1 one failed or is still a blank (or, among
    several files, one could not be imported); 2 nothing could be checked at all.
    """
    out = sys.stdout if out is None else out
    parser = argparse.ArgumentParser(
        prog="python -m tinyadv.gradcheck",
        description="Check hand-written backward functions (relu_backward, "
                    "angular_distance_backward, ...) against numerical gradients.",
        epilog="exit status: 0 all passed; 1 a function failed or is not implemented yet; "
               "2 nothing to check (or the file cannot be imported).")
    parser.add_argument("paths", nargs="+", metavar="FILE_OR_FOLDER",
                        help="a .py file, or a folder: every .py file in it is checked")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random test inputs (default 0)")
    parser.add_argument("--tol", type=float, default=CHECK_TOL,
                        help=f"largest rel_error that passes (default {CHECK_TOL:.0e})")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the summary table")
    args = parser.parse_args(argv)
    if not (np.isfinite(args.tol) and args.tol > 0):
        parser.error(f"--tol: expected a finite number > 0, got {args.tol}")

    results = []
    for path, problem in _collect(args.paths):
        result = FileResult(str(path), error=problem) if problem else check_file(path, args.seed, args.tol)
        results.append(result)
        if not args.quiet:
            _print_file(result, out)
    if len(results) > 1 or args.quiet:
        _print_summary(results, args.seed, args.tol, out)

    checked = [r for r in results if r.checked]
    if not checked:
        return EXIT_NOTHING
    unreadable = [r for r in results if r.error and not r.error.startswith("nothing to check")]
    if unreadable or not all(r.ok for r in checked):
        return EXIT_FAILED
    return EXIT_OK
