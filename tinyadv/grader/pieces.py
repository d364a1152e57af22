"""What the checker can check, and the reference each check is judged against.

A *piece* is a forward/backward pair of tinyadv (``relu_forward``/``relu_backward``, ...).
For every piece the checker draws three cases of float64 inputs (batch N = 1, 3, 7; other
sizes random; every input away from a kink, see inputs.py) and an upstream gradient: a random
array for array outputs, a random float in [1.2, 1.8] for scalar losses (not 1.0, so a
backward that ignores ``dloss`` is caught). The reference of a case is computed here, in the
checker's own process, from tinyadv's forward only:

    out     = tinyadv's forward(args)                                   (the right output)
    numeric = d/dx_i sum(forward(args)[0] * dout), centred differences  (the right gradient)

A case depends only on the seed and the piece, so every submission sees the same numbers and
a rerun prints the same report.
"""
import importlib
from dataclasses import dataclass, field

import numpy as np

from tinyadv.grader import inputs
from tinyadv.gradcheck import numerical_gradient_array

__all__ = ["PIECES", "BY_BACKWARD", "BACKWARD_NAMES", "Piece", "Case", "all_reference_cases",
           "reference_cases"]

BATCH_SIZES = (1, 3, 7)


@dataclass(frozen=True)
class Piece:
    """One differentiable piece of tinyadv, as the checker sees it."""

    name: str  # "relu" -> relu_forward / relu_backward
    home: str  # the tinyadv module holding the reference forward and backward
    inputs: tuple  # names of the forward's leading arguments that get a gradient
    scalar: bool  # the forward returns a scalar loss and the backward takes a float dloss
    draw: object  # draw(rng, n, case) -> (forward args, [(description, bool mask), ...])
    hints: dict = field(default_factory=dict)  # advice for a measured kind of mistake
    # suspects(case) -> [(description, [array or None per gradient])]: known wrong answers,
    # computed here, that a student's gradient is compared with for a precise hint.
    suspects: object = None
    # tinyadv functions that compute this piece's answer outright: calling one from the
    # backward still passes, with a note for the teacher (the library holds every solution).
    solutions: tuple = ()

    @property
    def forward_name(self):
        return f"{self.name}_forward"

    @property
    def backward_name(self):
        return f"{self.name}_backward"

    @property
    def grads(self):
        return tuple("d" + name for name in self.inputs)

    def reference_forward(self):
        return getattr(importlib.import_module(self.home), self.forward_name)


@dataclass
class Case:
    """One set of inputs for a piece, with its reference output and gradients."""

    n: int  # batch size
    args: tuple  # the forward's arguments
    masks: list  # [(description, bool array)], named sets of entries (see inputs.py)
    dout: object  # float for scalar losses, else an array shaped like the output
    out: np.ndarray  # tinyadv's forward output, float64
    numeric: list  # per gradient, the centred-difference gradient, float64
    shapes: str  # "x (7, 4), W (4, 3), b (3,), dout (7, 3)", to show with a message


# --------------------------------------------------------------------------- known mistakes

def _gather_suspects(case):
    h, index = case.args
    overwritten = np.zeros_like(h)
    overwritten[index] = case.dout  # what ``dh[index] = dout`` or ``dh[index] += dout`` give
    return [
        ("a repeated index is written, not added: `dh[index] += dout` (like `dh[index] = dout`) "
         "keeps only one of the rows sent to it; np.add.at(dh, index, dout) adds every one.",
         [overwritten]),
        ("your dh is dout[index]: the forward's gather again. Its backward is a scatter: row i "
         "of dout is added into row index[i] of dh.", [case.dout[index]]),
        ("your dh is dout itself: row i of dout belongs to row index[i] of h, not to row i.",
         [case.dout]),
    ]


def _fgsm_suspects(case):
    x, W1, b1, W2, b2, y = case.args
    z = x @ W1 + b1  # (N, H)
    logits = np.maximum(z, 0) @ W2 + b2  # (N, C)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    onehot = np.eye(W2.shape[1])[y]
    dlogits = case.dout * (probs - onehot) / case.n  # (N, C), the right one

    def dx_from(dlogits, mask, W1_used):
        return ((dlogits @ W2.T) * mask) @ W1_used.T

    found = [
        ("your dx is what the chain rule gives without ReLU's mask: the gradient passes back "
         "only through hidden units with z = x W1 + b1 > 0.", [dx_from(dlogits, 1.0, W1)]),
        ("your dx uses ReLU's mask the wrong way round (z <= 0 instead of z > 0).",
         [dx_from(dlogits, z <= 0, W1)]),
        ("your dx forgets the -onehot(y) of the softmax cross-entropy's gradient: "
         "dlogits = dloss (softmax - onehot(y)) / N.",
         [dx_from(case.dout * probs / case.n, z > 0, W1)]),
    ]
    if W1.shape[0] == W1.shape[1]:
        found.append(("your dx multiplies by W1 where W1.T belongs (the shapes only work "
                      "out because W1 is square here).", [dx_from(dlogits, z > 0, W1.T)]))
    return found


# --------------------------------------------------------------------------- the pieces

_ABS_SIGN = "the derivative of |c| is sign(c), so rows with a negative cosine need the opposite sign"

PIECES = (
    Piece("linear", "tinyadv.layers", ("x", "W", "b"), False, inputs.draw_linear,
          solutions=("tinyadv.layers.linear_backward",)),
    Piece("relu", "tinyadv.layers", ("x",), False, inputs.draw_relu,
          {"mask": "ReLU lets the gradient through only where its input was positive."},
          solutions=("tinyadv.layers.relu_backward",)),
    Piece("softmax_cross_entropy", "tinyadv.losses", ("logits",), True,
          inputs.draw_softmax_cross_entropy,
          {"where": "only the true-class entry of each row feels the -log p_{i,y_i} directly; "
                    "every other entry gets just its softmax probability."},
          solutions=("tinyadv.losses.softmax_cross_entropy_backward",)),
    Piece("angular_distance", "tinyadv.losses", ("a", "b"), False, inputs.draw_angular_distance,
          {"sign": f"D = 1 - |cos|: {_ABS_SIGN}."},
          solutions=("tinyadv.losses.angular_distance_backward",)),
    Piece("triplet_loss", "tinyadv.losses", ("a", "p", "n"), True, inputs.draw_triplet_loss,
          {"mask": "a triplet whose hinge D(a,p) - D(a,n) + margin is <= 0 has zero loss, "
                   "so it gets no gradient at all.",
           "only da": "the anchor a is in both D(a, p) and D(a, n), so da is the sum of two "
                      "contributions, one from each distance.",
           "sign": "check the signs: the loss grows with D(a, p) and shrinks with D(a, n); "
                   f"and {_ABS_SIGN}."},
          solutions=("tinyadv.losses.triplet_loss_backward",)),
    Piece("feature_norm", "tinyadv.losses", ("h",), True, inputs.draw_feature_norm,
          solutions=("tinyadv.losses.feature_norm_backward",)),
    Piece("gather_rows", "tinyadv.layers", ("h",), False, inputs.draw_gather_rows,
          {"where": "row j of dh is the sum of the rows i of dout with index[i] == j: several "
                    "for an anchor picked by several others, none for an anchor never picked.",
           "mask": "a row of h picked by no anchor does not reach the loss: its gradient is 0."},
          suspects=_gather_suspects, solutions=("tinyadv.layers.gather_rows_backward",)),
    Piece("fgsm_loss", "tinyadv.attacks", ("x",), True, inputs.draw_fgsm_loss,
          suspects=_fgsm_suspects,
          solutions=("tinyadv.attacks.fgsm_loss_backward", "tinyadv.mlp.backward")),
)
BY_BACKWARD = {piece.backward_name: piece for piece in PIECES}
BACKWARD_NAMES = tuple(BY_BACKWARD)


def reference_cases(piece, seed):
    """The three cases of ``piece`` for ``seed``, each with tinyadv's output and gradients."""
    rng = np.random.default_rng([seed, PIECES.index(piece)])  # same inputs in every file
    forward = piece.reference_forward()
    k = len(piece.inputs)
    cases = []
    for case_number, n in enumerate(BATCH_SIZES):
        args, masks = piece.draw(rng, n, case_number)
        out = np.asarray(forward(*[np.copy(a) if isinstance(a, np.ndarray) else a for a in args])[0],
                         dtype=np.float64)
        dout = float(rng.uniform(1.2, 1.8)) if piece.scalar else rng.standard_normal(out.shape)
        # Centred differences of tinyadv's forward, on private float64 copies of the inputs.
        work = [np.array(a, dtype=np.float64) if i < k else a for i, a in enumerate(args)]
        numeric = [numerical_gradient_array(lambda: forward(*work)[0], work[i], dout)
                   for i in range(k)]
        shapes = ", ".join(f"{name} {args[i].shape}" for i, name in enumerate(piece.inputs))
        shapes += (f", dloss {dout:.4g}" if piece.scalar else f", dout {np.shape(dout)}")
        cases.append(Case(n, tuple(args), masks, dout, out, numeric, shapes))
    return cases


def all_reference_cases(seed):
    """{backward name: [Case, Case, Case]} for every piece."""
    return {piece.backward_name: reference_cases(piece, seed) for piece in PIECES}
