"""Words for a wrong gradient, measured from it -- never guessed from the student's code.

Every hint compares the student's gradient ``mine`` (the array their backward returned) with
the numerical one ``true`` (pieces.py), both float64, in the checker's own process:

- a constant factor c with mine = c * true, named when it is -1, N, 1/N, 2, or the missing
  upstream ``dloss`` ("it is N = 7 times too large ... (missing 1/N?)");
- an upstream gradient that is an array (one value per row or per entry) but was ignored or
  applied as one number: mine * dout (row by row) = c * true;
- a known wrong answer of the piece, computed here (pieces.py ``suspects``);
- a term missing from a sum (the quotient rule's): mine - true is, row by row, a multiple of
  one of the piece's inputs;
- outputs in the wrong order, a transposed matrix, the right numbers in other places;
- entry by entry: where mine matches, is 0 where true is not (or the reverse: a mask), or
  has the opposite sign -- and whether those entries are exactly a named set of the case
  ("the rows where cos(a_i, b_i) < 0");
- for a wrong shape, what the shape alone says (a transpose, axes in another order, a missing
  sum over the batch, the positions or every entry).
"""
import itertools

import numpy as np

from tinyadv.gradcheck import rel_error

__all__ = ["explain", "shape_hint", "forward_hint"]

# Two arrays "match" when they agree to this relative error: loose enough for the ~1e-9 noise
# of centred differences, far tighter than any real mistake.
HINT_MATCH = 1e-5


def describe_factor(name, c, n, dout, scalar):
    """Name the constant c with mine = c * true, as sign * N^i * dloss^j * 2^k if it is one."""
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


def locate(mask, masks, shape):
    """Describe the set of entries ``mask``: by a named set of the case if it is exactly one."""
    for description, named in masks:
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


def piece_hint(piece, kind, name=None):
    """The piece's advice for a kind of mistake, in brackets: the advice for the gradient
    ``name`` itself ("where dW") if the piece has one, else for the piece ("where")."""
    for key in ((f"{kind} {name}", kind) if name else (kind,)):
        if key in piece.hints:
            return f" ({piece.hints[key]})"
    return ""


def explain(piece, index, case, analytic, only_failure=False):
    """A hint for the failing gradient ``index`` of a case, from measurements only.

    analytic: the student's gradients (float64, shapes already checked); ``only_failure``:
    every other gradient of the piece passed, in every case.
    """
    name = piece.grads[index]
    mine, true = analytic[index], case.numeric[index]
    if not np.all(np.isfinite(mine)):
        return (f"your {name} contains NaN or inf ({int(np.sum(~np.isfinite(mine)))} entries): "
                f"a division by zero, or a log or sqrt of something <= 0?")
    if not np.any(true):
        return f"the true {name} is 0 everywhere here, but yours is not."
    if not np.any(mine):
        return f"your {name} is 0 everywhere: is it computed and returned (not a fresh np.zeros)?"
    for description, wrong in (piece.suspects(case) if piece.suspects else []):
        # (a known wrong answer that happens to equal the right one in this case says nothing)
        if (wrong[index] is not None and rel_error(mine, wrong[index]) <= HINT_MATCH
                and rel_error(wrong[index], true) > HINT_MATCH):
            return description
    for other, other_true in enumerate(case.numeric):
        if other != index and other_true.shape == mine.shape and rel_error(mine, other_true) <= HINT_MATCH:
            return (f"your {name} is what {piece.grads[other]} should be: outputs swapped? "
                    f"Return ({', '.join(piece.grads)}) in that order.")
    upstream = upstream_like(case.dout, mine) if not piece.scalar else None
    if upstream is not None and rel_error(mine * upstream, true) <= HINT_MATCH:
        unit = upstream_unit(upstream, mine)
        return (f"your {name} is the numerical one divided, {unit} by {unit}, by the upstream "
                f"gradient (the backward's first argument): it is not applied. Chain rule: each "
                f"{unit} of {name} is scaled by its own upstream value.")
    c = float(np.sum(mine * true) / np.sum(true * true))
    if rel_error(mine, c * true) <= HINT_MATCH:
        return describe_factor(name, c, case.n, case.dout, piece.scalar)
    if upstream is not None:
        text = upstream_as_one_number(name, mine, true, upstream)
        if text:
            return text
    if mine.ndim == 2 and mine.shape[0] == mine.shape[1] and rel_error(mine, true.T) <= HINT_MATCH:
        return f"your {name} is the transpose of the numerical one: a transposed product?"
    if mine.size > 1 and rel_error(np.sort(mine, axis=None), np.sort(true, axis=None)) <= HINT_MATCH:
        return (f"your {name} holds the right numbers in the wrong places (sorted, its entries "
                f"are the numerical one's): an order of axes lost in a reshape or a transpose? "
                f"A reshape keeps the order in which the entries lie.")

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
        where = lambda mask: locate(mask, case.masks, mine.shape)  # noqa: E731
        if only_true_zero.any() and only_mine_zero.any() and not flipped.any():
            text = (f"inverted mask: your {name} is non-zero at {where(only_true_zero)}, where the "
                    f"numerical gradient is 0, and 0 at {where(only_mine_zero)}, where it is not.")
            return text + piece_hint(piece, "mask", name)
        if only_true_zero.any() and not (only_mine_zero.any() or flipped.any()):
            text = (f"missing mask: your {name} is non-zero at {where(only_true_zero)}, where the "
                    f"numerical gradient is exactly 0; everywhere else it matches.")
            return text + piece_hint(piece, "mask", name)
        if only_mine_zero.any() and not (only_true_zero.any() or flipped.any()):
            text = (f"extra or wrong mask: your {name} is 0 at {where(only_mine_zero)}, where the "
                    f"numerical gradient is not; everywhere else it matches.")
            return text + piece_hint(piece, "mask", name)
        if flipped.any() and not (only_true_zero.any() or only_mine_zero.any()):
            text = f"the sign is flipped at {where(flipped)}; everywhere else it matches."
            return text + piece_hint(piece, "sign", name)
    for i, input_name in enumerate(piece.inputs):
        if residual_along(mine, true, case.args[i]):
            text = (f"the difference between your {name} and the numerical one is, row by row, a "
                    f"multiple of {input_name} itself: a term of the form (a number per row) x "
                    f"{input_name} is missing, has the wrong sign or the wrong factor; the rest "
                    f"is right. (Such terms come from a length or a denominator that depends on "
                    f"{input_name}: d||{input_name}_i|| / d{input_name}_i = {input_name}_i / "
                    f"||{input_name}_i||, and the quotient rule has a term for the denominator.)")
            return text + piece_hint(piece, "along " + input_name)
    if match.any():
        text = f"wrong at {locate(~match, case.masks, mine.shape)}; everywhere else it matches."
        return text + piece_hint(piece, "where", name)
    if only_failure:
        text = piece_hint(piece, "only " + name)
        if text:
            others = [g for g in piece.grads if g != name]
            return (f"{', '.join(others)} {'is' if len(others) == 1 else 'are'} right, {name} "
                    f"is not." + text)
    return ("no simple pattern (not a constant factor, a sign, a mask, a transpose or swapped "
            "outputs): re-derive it one step of the forward at a time, checking each shape.")


def upstream_like(dout, mine):
    """The upstream gradient shaped to scale ``mine`` entry by entry, or None.

    An upstream of mine's shape scales entry by entry; a 1-D one with a value per row of
    ``mine`` scales row by row. A constant upstream is None: it is a constant factor, and
    describe_factor words those.
    """
    dout = np.asarray(dout, dtype=np.float64)
    if dout.ndim == 0 or mine.ndim == 0 or np.ptp(dout) <= 1e-12 * np.max(np.abs(dout)):
        return None
    if dout.shape == mine.shape:
        return dout
    if dout.ndim == 1 and mine.ndim >= 2 and dout.shape[0] == mine.shape[0]:
        return dout.reshape((-1,) + (1,) * (mine.ndim - 1))
    return None


def upstream_unit(upstream, mine):
    """What one upstream value scales: an entry of mine, or a whole row."""
    return "entry" if upstream.shape == mine.shape else "row"


def upstream_as_one_number(name, mine, true, upstream):
    """Words for mine = c * true / upstream (row by row) with c != 1, or None.

    That is an upstream applied as one number c (its sum, its mean, ...) to every row instead
    of each row's own value.
    """
    scaled = mine * upstream
    c = float(np.sum(scaled * true) / np.sum(true * true))
    if rel_error(scaled, c * true) > HINT_MATCH:
        return None
    named = ""
    for words, value in (("its sum", np.sum(upstream)), ("its mean", np.mean(upstream)),
                         ("its first value", upstream.flat[0])):
        if abs(c - value) <= 1e-4 * abs(value):
            named = f" ({words})"
            break
    unit = upstream_unit(upstream, mine)
    return (f"your {name} is the numerical one divided, {unit} by {unit}, by the upstream "
            f"gradient, times one number, {c:.4g}{named}: the upstream is applied as a single "
            f"number, but it holds one value per {unit}, and each {unit} of {name} is scaled "
            f"by its own.")


def residual_along(mine, true, x):
    """True if mine - true is, row by row, a multiple of x (and true itself is not).

    For (N, K) arrays with K >= 2: the pattern of a term c_i * x_i missing from a sum (as the
    quotient rule's term from the denominator ||x_i||), there with the wrong sign or factor.
    If true is itself a multiple of x row by row, every wrong per-row factor fits: no hint.
    """
    x = np.asarray(x) if isinstance(x, np.ndarray) else None
    if x is None or x.shape != mine.shape or mine.ndim != 2 or mine.shape[1] < 2:
        return False
    x = x.astype(np.float64)
    if not np.all(np.sum(x * x, axis=1) > 0):
        return False

    def along(v):
        coef = np.sum(v * x, axis=1) / np.sum(x * x, axis=1)  # (N,) least squares, per row
        return rel_error(v, coef[:, None] * x) <= HINT_MATCH

    return along(mine - true) and not along(true)


def shape_hint(expected, got, n):
    """Words for a gradient of the wrong shape, from the shapes alone (or None)."""
    if len(expected) == 2 and got == expected[::-1] and expected[0] != expected[1]:
        return "that is the transpose of the expected shape: a transposed product?"
    if got == (n,) + expected and n > 1:
        return "one per sample: the parameter is shared by all N samples, so sum over the batch axis."
    if expected == (n,) + got and n > 1:
        return "summed over the batch axis, but every sample has its own gradient."
    if len(expected) >= 3 and got != expected and sorted(got) == sorted(expected):
        differ = [i for i, (e, g) in enumerate(zip(expected, got)) if e != g]
        which = (f"with axes {differ[0]} and {differ[1]} swapped" if len(differ) == 2
                 else "in another order")
        return (f"the expected axes {which}: a gradient has the axes of what it is the "
                f"gradient of, in the same order.")
    short = [i for i, (e, g) in enumerate(zip(expected, got)) if g == e - 1]
    if len(expected) == len(got) == 4 and short and set(short) <= {2, 3} and all(  # (N, C, H, W)
            g == e for i, (e, g) in enumerate(zip(expected, got)) if i not in short):
        return (f"one short along axis {' and '.join(map(str, short))}: the gradient has the "
                f"input's shape, every entry included -- the odd row or column that no pooling "
                f"window covers (its gradient is 0), the border pixels few patches read.")
    if int(np.prod(expected)) == 1 and int(np.prod(got)) > 1:
        return ("one value per entry: the parameter is a single number that every entry uses, "
                "so its gradient is one number, the sum of every entry's share.")
    if len(got) > len(expected) and _is_subsequence(expected, got):
        return ("more axes than the parameter has: it is shared across the others (the batch, "
                "the output positions), so sum over them.")
    if int(np.prod(got)) == int(np.prod(expected)):
        return "the same number of entries in another shape (a reshape or keepdims?)."
    return None


def _is_subsequence(short, long):
    """True if the axes ``short`` appear in ``long`` in order (other axes between them)."""
    rest = iter(long)
    return all(any(size == other for other in rest) for size in short)


def forward_hint(out, reference):
    """Words for a forward whose output is not tinyadv's (same shape, other values)."""
    if not np.all(np.isfinite(out)):
        return "it contains NaN or inf."
    if np.any(reference):
        c = float(np.sum(out * reference) / np.sum(reference * reference))
        if rel_error(out, c * reference) <= HINT_MATCH:
            return f"it is {c:.4g} x tinyadv's output: a constant factor (a mean vs a sum? a 2?)."
    return "compare it with the formula in the docstring, one step at a time."
