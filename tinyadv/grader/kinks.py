"""What a gradient check cannot tell, and the one place it can: right beside a kink.

A file whose backward computes centred differences of the forward -- no derivative worked
out at all -- passes every check: the checker's reference is centred differences too, and
its inputs are kept away from kinks (inputs.py) so that those are exact. Beside a kink they
are not. At an input a hair's breadth from one, x = 1e-12 from ReLU's 0, the derivative is
plain (x > 0: ReLU's slope is 1), but every usable difference step (h from 1e-10 to 1e-3)
straddles the kink, and the centred difference is the mean of the two one-sided slopes:

    ReLU, x = +-1e-12           derived dx: dout or 0         centred: about dout / 2
    PReLU, x = +-1e-12          derived dx: dout or a dout    centred: about (1 + a) dout / 2
    2 x 2 max pool, the         derived: all of dout to the   centred: about half to each
      runner-up 1e-12 below       maximum, none to the other
      the maximum
    angular distance,           derived: -sign(cos) dcos      centred: about 0 (|cos| is
      cos(a_i, b_i) = 1e-12                                     symmetric about 0)
    triplet loss, the hinge     derived: the whole triplet's  centred: about half of it
      D(a,p) - D(a,n) + m        gradient (the hinge is
      = 1e-12                    active)
    FGSM, one hidden unit's     derived: that unit passes     centred: about half of it
      z = x W1 + b1 = 1e-12      its gradient

So each of these six pieces gets one more case, a *probe*, at such inputs (shaped like the
piece's first case). The child calls the file's backward on it as on any case (child.py);
the judge compares the answer, on the entries beside the kink, with tinyadv's backward and
with the checker's own centred differences there (h = 1e-6): a passing answer much nearer
the centred differences gets a note in the report and the gradebook -- never a fail: the
answer may come from a different formula, and the probe is off the exercise's inputs. (A
failing answer gets none: an all-zero gradient is "near" centred differences of |cos| too.) The
other five pieces (linear, softmax cross-entropy, the feature norm, the gather, the
convolution) have no kink, or none a probe can reach: there a numerical answer cannot be
told from a derived one by its values.
"""
import importlib
from dataclasses import dataclass, field

import numpy as np

from tinyadv.gradcheck import numerical_gradient_array

__all__ = ["Probe", "probe", "all_probes", "note", "BESIDE", "WORDS"]

BESIDE = 1e-12  # how far from the kink a probe's inputs are
NEARER = 0.25  # "much nearer": within this fraction of the distance between the two answers

# What each probe is beside, and what derived and centred answers look like there.
WORDS = {
    "relu": ("x within 1e-12 of ReLU's kink (x = 0)", "dout or 0", "about dout / 2"),
    "prelu": ("x within 1e-12 of the PReLU's kink (x = 0)", "dout or a * dout",
              "about (1 + a) dout / 2"),
    "maxpool2d": ("windows whose runner-up is 1e-12 below the maximum",
                  "all of dout to the maximum", "about half to each"),
    "angular_distance": ("rows with cos(a_i, b_i) = 1e-12 (|cos|'s kink is 0)",
                         "-sign(cos) times the cosine's gradient", "about 0"),
    "triplet_loss": ("a triplet whose hinge is 1e-12 (its kink is 0)",
                     "the active triplet's whole gradient", "about half of it"),
    "fgsm_loss": ("an image with a hidden unit at z = 1e-12 (ReLU's kink)",
                  "that unit's whole share", "about half of it"),
}


@dataclass
class Probe:
    """One probe: the forward's arguments, the upstream gradient, and per gradient the
    entries beside the kink (None: that gradient is not looked at)."""

    piece: object  # pieces.Piece
    args: tuple
    dout: object
    marked: list
    _answers: tuple = field(default=None, repr=False)

    def answers(self):
        """(derived, centred) per gradient: tinyadv's backward and the checker's centred
        differences, both at the probe's inputs. Computed when first needed."""
        if self._answers is None:
            home = importlib.import_module(self.piece.home)
            forward = getattr(home, self.piece.forward_name)
            backward = getattr(home, self.piece.backward_name)
            k = len(self.piece.inputs)
            work = [np.array(a, dtype=np.float64) if i < k else a for i, a in enumerate(self.args)]
            _, cache = forward(*[np.copy(a) if isinstance(a, np.ndarray) else a for a in work])
            derived = backward(self.dout, cache)
            derived = list(derived) if isinstance(derived, tuple) else [derived]
            centred = [numerical_gradient_array(lambda: forward(*work)[0], work[i], self.dout)
                       for i in range(k)]
            self._answers = ([np.asarray(d, dtype=np.float64) for d in derived], centred)
        return self._answers


def _near_zero(values):
    """Each value moved to +-BESIDE, keeping its sign."""
    return np.where(values >= 0, BESIDE, -BESIDE)


def _relu(args):
    x = np.array(args[0], dtype=np.float64)
    marked = np.zeros(x.shape, dtype=bool)
    marked.reshape(-1)[::2] = True  # every other entry beside the kink, the rest as drawn
    x[marked] = _near_zero(x[marked])
    return (x,), [marked]


def _prelu(args):
    (x,), (marked,) = _relu(args[:1])
    return (x, np.array(args[1])), [marked, None]


def _maxpool2d(args):
    x = np.array(args[0], dtype=np.float64)
    n, c, h, w = x.shape
    windows = x[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2)
    windows = windows.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
    order = np.argsort(-windows, axis=-1)
    top, second = order[..., 0], order[..., 1]
    best = np.take_along_axis(windows, top[..., None], -1)[..., 0]
    np.put_along_axis(windows, second[..., None], (best - BESIDE)[..., None], -1)
    chosen = np.zeros(windows.shape, dtype=bool)
    np.put_along_axis(chosen, top[..., None], True, -1)
    np.put_along_axis(chosen, second[..., None], True, -1)

    def back(values):  # (n, c, h/2, w/2, 4) -> x's layout, odd rows or columns untouched
        full = np.zeros((n, c, h, w), dtype=values.dtype)
        full[:, :, :h // 2 * 2, :w // 2 * 2] = values.reshape(
            n, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2 * 2, w // 2 * 2)
        return full

    probe_x = x.copy()
    probe_x[:, :, :h // 2 * 2, :w // 2 * 2] = back(windows)[:, :, :h // 2 * 2, :w // 2 * 2]
    return (probe_x,), [back(chosen)]


def _orthogonal_rows(a, b):
    """b changed so that cos(a_i, b_i) = BESIDE in every row, its length kept about."""
    a, b = np.array(a, dtype=np.float64), np.array(b, dtype=np.float64)
    along = np.einsum("ij,ij->i", a, b) / np.einsum("ij,ij->i", a, a)
    across = b - along[:, None] * a
    size = np.linalg.norm(across, axis=1)
    return across + (BESIDE * size / np.linalg.norm(a, axis=1))[:, None] * a


def _angular_distance(args):
    a, b = args[:2]
    b = _orthogonal_rows(a, b)
    everything = np.ones(np.shape(a), dtype=bool)
    return (np.array(a, dtype=np.float64), b), [everything, everything.copy()]


def _triplet_loss(args):
    from tinyadv import losses  # the distances exactly as the forward computes them

    a, p, n, _ = args
    a, p, n = (np.array(v, dtype=np.float64) for v in (a, p, n))
    d_ap = losses.angular_distance_forward(a, p)[0]
    d_an = losses.angular_distance_forward(a, n)[0]
    margin = float(d_an[0] - d_ap[0]) + BESIDE  # the first triplet's hinge: 1e-12
    rows = np.zeros(a.shape, dtype=bool)
    rows[0] = True
    return (a, p, n, margin), [rows, rows.copy(), rows.copy()]


def _fgsm_loss(args):
    x, W1, b1, W2, b2, y = args
    x, W1, b1 = (np.array(v, dtype=np.float64) for v in (x, W1, b1))
    z = x @ W1 + b1
    unit = int(np.argmax(np.abs(W2).sum(axis=1)))  # a unit whose share is large
    b1[unit] -= z[0, unit] - BESIDE  # the first image's z for that unit: 1e-12
    rows = np.zeros(x.shape, dtype=bool)
    rows[0] = True
    return (x, W1, b1, np.array(W2), np.array(b2), np.array(y)), [rows]


MAKERS = {"relu": _relu, "prelu": _prelu, "maxpool2d": _maxpool2d,
          "angular_distance": _angular_distance, "triplet_loss": _triplet_loss,
          "fgsm_loss": _fgsm_loss}


def probe(piece, first_case):
    """The probe of ``piece`` (None for a piece without one), shaped like ``first_case``
    and with its upstream gradient."""
    make = MAKERS.get(piece.name)
    if make is None:
        return None
    args, marked = make(first_case.args)
    return Probe(piece, tuple(args), first_case.dout, marked)


def all_probes(references):
    """{backward name: Probe} for the pieces that have one; ``references``: the cases of
    pieces.all_reference_cases."""
    from tinyadv.grader.pieces import BY_BACKWARD

    found = {}
    for name, cases in references.items():
        made = probe(BY_BACKWARD[name], cases[0])
        if made is not None:
            found[name] = made
    return found


def note(the_probe, analytic):
    """The teacher's note when the file's answers at the probe (``analytic``: its gradients,
    float64 arrays shaped like the inputs) are much nearer centred differences than a derived
    answer, on the entries beside the kink; None otherwise."""
    derived, centred = the_probe.answers()
    gap = nearer = 0.0
    for mine, right, numeric, marked in zip(analytic, derived, centred, the_probe.marked):
        if marked is None or mine.shape != right.shape or not np.all(np.isfinite(mine)):
            continue
        gap += float(np.sum((right[marked] - numeric[marked]) ** 2))
        nearer += float(np.sum((mine[marked] - numeric[marked]) ** 2))
    if gap == 0.0 or nearer > NEARER ** 2 * gap:
        return None
    where, derived_words, centred_words = WORDS[the_probe.piece.name]
    return (f"note: at {where}, this answer is what centred differences give ({centred_words}), "
            f"not what a derived gradient gives ({derived_words}): it may be computed "
            f"numerically rather than worked out (never a fail; the teacher decides)")
