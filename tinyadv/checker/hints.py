"""Words for a wrong gradient, measured from it -- never guessed from the student's code.

Every hint compares the student's gradient ``mine`` (the array their backward returned) with
the numerical one ``true`` (pieces.py), both float64, in the checker's own process:

- a constant factor c with mine = c * true, named when it is -1, N, 1/N, 2, or the missing
  upstream ``dloss`` ("it is N = 7 times too large ... (missing 1/N?)");
- a known wrong answer of the piece, computed here (pieces.py ``suspects``);
- outputs in the wrong order, a transposed matrix;
- entry by entry: where mine matches, is 0 where true is not (or the reverse: a mask), or
  has the opposite sign -- and whether those entries are exactly a named set of the case
  ("the rows where cos(a_i, b_i) < 0");
- for a wrong shape, what the shape alone says (a transpose, a missing sum over the batch).
"""
import itertools

import numpy as np

from tinyadv.gradcheck import rel_error

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


def piece_hint(piece, kind):
    return f" ({piece.hints[kind]})" if kind in piece.hints else ""


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
        if wrong[index] is not None and rel_error(mine, wrong[index]) <= HINT_MATCH:
            return description
    for other, other_true in enumerate(case.numeric):
        if other != index and other_true.shape == mine.shape and rel_error(mine, other_true) <= HINT_MATCH:
            return (f"your {name} is what {piece.grads[other]} should be: outputs swapped? "
                    f"Return ({', '.join(piece.grads)}) in that order.")
    c = float(np.sum(mine * true) / np.sum(true * true))
    if rel_error(mine, c * true) <= HINT_MATCH:
        return describe_factor(name, c, case.n, case.dout, piece.scalar)
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
        where = lambda mask: locate(mask, case.masks, mine.shape)  # noqa: E731
        if only_true_zero.any() and only_mine_zero.any() and not flipped.any():
            text = (f"inverted mask: your {name} is non-zero at {where(only_true_zero)}, where the "
                    f"numerical gradient is 0, and 0 at {where(only_mine_zero)}, where it is not.")
            return text + piece_hint(piece, "mask")
        if only_true_zero.any() and not (only_mine_zero.any() or flipped.any()):
            text = (f"missing mask: your {name} is non-zero at {where(only_true_zero)}, where the "
                    f"numerical gradient is exactly 0; everywhere else it matches.")
            return text + piece_hint(piece, "mask")
        if only_mine_zero.any() and not (only_true_zero.any() or flipped.any()):
            text = (f"extra or wrong mask: your {name} is 0 at {where(only_mine_zero)}, where the "
                    f"numerical gradient is not; everywhere else it matches.")
            return text + piece_hint(piece, "mask")
        if flipped.any() and not (only_true_zero.any() or only_mine_zero.any()):
            text = f"the sign is flipped at {where(flipped)}; everywhere else it matches."
            return text + piece_hint(piece, "sign")
    if match.any():
        text = f"wrong at {locate(~match, case.masks, mine.shape)}; everywhere else it matches."
        return text + piece_hint(piece, "where")
    if only_failure:
        text = piece_hint(piece, "only " + name)
        if text:
            return f"{', '.join(g for g in piece.grads if g != name)} are right, {name} is not." + text
    return ("no simple pattern (not a constant factor, a sign, a mask, a transpose or swapped "
            "outputs): re-derive it one step of the forward at a time, checking each shape.")


def shape_hint(expected, got, n):
    """Words for a gradient of the wrong shape, from the shapes alone (or None)."""
    if len(expected) == 2 and got == expected[::-1] and expected[0] != expected[1]:
        return "that is the transpose of the expected shape: a transposed product?"
    if got == (n,) + expected and n > 1:
        return "one per sample: the parameter is shared by all N samples, so sum over the batch axis."
    if expected == (n,) + got and n > 1:
        return "summed over the batch axis, but every sample has its own gradient."
    if int(np.prod(got)) == int(np.prod(expected)):
        return "the same number of entries in another shape (a reshape or keepdims?)."
    return None


def forward_hint(out, reference):
    """Words for a forward whose output is not tinyadv's (same shape, other values)."""
    if not np.all(np.isfinite(out)):
        return "it contains NaN or inf."
    if np.any(reference):
        c = float(np.sum(out * reference) / np.sum(reference * reference))
        if rel_error(out, c * reference) <= HINT_MATCH:
            return f"it is {c:.4g} x tinyadv's output: a constant factor (a mean vs a sum? a 2?)."
    return "compare it with the formula in the docstring, one step at a time."
