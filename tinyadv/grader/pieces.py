"""What the checker can check, and the reference each check is judged against.

A *piece* is a forward/backward pair of tinyadv (``relu_forward``/``relu_backward``, ...).
For every piece the checker draws three cases of float64 inputs (batch N = 1, 3, 7; other
sizes random; every input away from a kink, see inputs.py) and an upstream gradient: a random
array for array outputs, a random float in [1.2, 1.8] for scalar losses (not 1.0, so a
backward that ignores ``dloss`` is caught). The reference of a case is computed here, in the
checker's own process, from tinyadv's forward only:

    out     = tinyadv's forward(args)                                   (the right output)
    numeric = d/dx_i sum(forward(args)[0] * dout), centred differences  (the right gradient)

(``numeric`` when a file's backward of the piece is first judged: most runs check a few
pieces of the eleven.)

A case depends only on the seed and the piece, so every submission sees the same numbers and
a rerun prints the same report.
"""
import functools
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
    shapes: str  # "x (7, 4), W (4, 3), b (3,), dout (7, 3)", to show with a message
    gradients: object = field(default=None, repr=False)  # () -> the list ``numeric`` holds
    _numeric: list = field(default=None, init=False, repr=False)

    @property
    def numeric(self):
        """Per gradient, the centred-difference gradient, float64. Computed the first time a
        file's backward of this piece is judged, then kept: a run that checks two pieces
        does not pay for the other nine."""
        if self._numeric is None:
            self._numeric = self.gradients()
        return self._numeric


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


def _patches(x, k):
    """(N, C, Ho, Wo, k, k): the k x k patch of x that each output position reads."""
    return np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))


def _full_correlation(dout, kernel):
    """dx[n, c, p, q] = sum_{f,u,v} dout_padded[n, f, p+u, q+v] kernel[f, c, u, v], dout
    padded with k - 1 zeros on every side: the right dx for kernel = W turned by 180 degrees."""
    k = kernel.shape[-1]
    padded = np.pad(dout, ((0, 0), (0, 0), (k - 1, k - 1), (k - 1, k - 1)))
    return np.einsum("nfpquv,fcuv->ncpq", _patches(padded, k), kernel)


def _conv_suspects(case):
    x, W, b = case.args
    dout = case.dout  # (N, F, Ho, Wo)
    n, (f, c, k, _) = case.n, W.shape
    ho, wo = dout.shape[2:]
    patches = _patches(x, k)  # (N, C, Ho, Wo, k, k)
    dW = np.einsum("nfij,ncijuv->fcuv", dout, patches)
    db = dout.sum(axis=(0, 2, 3))

    def overwritten(positions):
        """dx of a loop over output positions that writes each patch's gradient (=) where it
        should add it (+=): where patches overlap, only the last one written stays."""
        dx = np.zeros_like(x)
        for i, j in positions:
            dx[:, :, i:i + k, j:j + k] = np.einsum("nf,fcuv->ncuv", dout[:, :, i, j], W)
        return dx

    rows_first = [(i, j) for i in range(ho) for j in range(wo)]
    found = [
        ("your dx uses the kernel turned the wrong way: as a correlation of dout (padded with "
         "k - 1 zeros on every side) dx needs W turned by 180 degrees, W[:, :, ::-1, ::-1] -- "
         "once: not at all, or twice (a routine that flips by itself, and a flip of your own), "
         "gives this. (In a loop that adds dout[n, f, i, j] * W[f] into the patch at (i, j), W "
         "goes in as it is.)", [_full_correlation(dout, W), None, None]),
        ("your dx uses W flipped along one spatial axis only: turn it by 180 degrees, both "
         "axes (W[:, :, ::-1, ::-1]).",
         [_full_correlation(dout, W[:, :, ::-1, :]), None, None]),
        ("your dx uses W flipped along one spatial axis only: turn it by 180 degrees, both "
         "axes (W[:, :, ::-1, ::-1]).",
         [_full_correlation(dout, W[:, :, :, ::-1]), None, None]),
        ("your dx writes each patch's gradient (=) where it must add it (+=): neighbouring "
         "patches overlap, and a pixel read by several output positions gets the sum of what "
         "each of them sends back.", [overwritten(rows_first), None, None]),
        ("your dx writes each patch's gradient (=) where it must add it (+=): neighbouring "
         "patches overlap, and a pixel read by several output positions gets the sum of what "
         "each of them sends back.",
         [overwritten([(i, j) for j in range(wo) for i in range(ho)]), None, None]),
        ("your dW is turned by 180 degrees: dW[f, c, u, v] collects x[n, c, i+u, j+v] -- the "
         "pixel at offset (u, v) of each patch, as the forward read it; no flip in dW.",
         [None, dW[:, :, ::-1, ::-1], None]),
        ("your dW has its two spatial axes swapped: dW[f, c, u, v] belongs to row offset u and "
         "column offset v, as W[f, c, u, v] does.", [None, dW.transpose(0, 1, 3, 2), None]),
        ("your dW holds only the last output position's share: `dW = ...` inside the loop over "
         "positions where it must add up (`dW += ...`): every weight is used at every position.",
         [None, np.einsum("nf,ncuv->fcuv", dout[:, :, -1, -1], patches[:, :, -1, -1]), None]),
        ("your dW is averaged over the output positions (divided by Ho * Wo = "
         f"{ho * wo}): a weight used at every position gets the sum of their gradients.",
         [None, dW / (ho * wo), None]),
        ("your db is averaged over the output positions (divided by Ho * Wo = "
         f"{ho * wo}): the bias is added at every position, so its gradient is the sum.",
         [None, None, db / (ho * wo)]),
        ("your db holds only the last output position's share: sum dout over the positions "
         "(i, j) too, not only over the batch.", [None, None, dout[:, :, -1, -1].sum(axis=0)]),
    ]
    if n > 1:
        found += [
            (f"your dW is averaged over the batch (divided by N = {n}): every image uses the "
             "same filters, so dW is the sum of each image's share (dout already carries "
             "whatever mean the loss takes).", [None, dW / n, None]),
            (f"your db is averaged over the batch (divided by N = {n}): it is the sum of "
             "every image's share.", [None, None, db / n]),
            ("your dW comes from the last image of the batch only: sum over the batch.",
             [None, np.einsum("fij,cijuv->fcuv", dout[-1], patches[-1]), None]),
        ]
    if c == f:  # channel axes swapped: the right shape only when C == F, caught by value
        found += [
            ("your dx mixes up W's two channel axes: W is (F, C, k, k); dx[n, c] gathers from "
             "every output channel f through W[f, c] -- as a correlation of dout that is the "
             "kernel W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3), its F and C exchanged.",
             [_full_correlation(dout, W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)), None, None]),
            ("your dW has its channel axes swapped: it is (F, C, k, k), the shape of W -- "
             "dW[f, c] pairs output channel f of dout with input channel c of x.",
             [None, dW.transpose(1, 0, 2, 3), None]),
        ]
    return found


def _maxpool_suspects(case):
    (x,) = case.args
    dout = case.dout  # (N, C, Ho, Wo)
    n, c, height, width = x.shape
    ho, wo = dout.shape[2:]

    def spread(values):
        dx = np.zeros_like(x)
        dx[:, :, :2 * ho, :2 * wo] = np.repeat(np.repeat(values, 2, axis=2), 2, axis=3)
        return dx

    windows = x[:, :, :2 * ho, :2 * wo].reshape(n, c, ho, 2, wo, 2)
    win = windows == windows.max(axis=(3, 5), keepdims=True)  # no ties in these inputs
    swapped = np.zeros_like(x)  # the winner's row and column within its window swapped
    swapped[:, :, :2 * ho, :2 * wo] = (win.transpose(0, 1, 2, 5, 4, 3) * dout[:, :, :, None, :, None]
                                       ).reshape(n, c, 2 * ho, 2 * wo)
    top_left = np.zeros_like(x)
    top_left[:, :, 0:2 * ho:2, 0:2 * wo:2] = dout
    return [
        ("your dx spreads each window's gradient over the whole window: only the entry that "
         "won the max changed the output, so only it gets the gradient (the whole of it); the "
         "three others get 0.", [spread(dout)]),
        ("your dx averages each window's gradient over its four entries (dout / 4 each): that "
         "is the backward of *average* pooling. The max is the winner's value alone, so the "
         "winner gets the whole gradient and the three others 0.", [spread(dout / 4)]),
        ("your dx always sends the gradient to the top-left entry of each window: it belongs "
         "to the entry that won the max, wherever it is in the window.", [top_left]),
        ("your dx sends each window's gradient to the right window but to the wrong entry of "
         "it: the winner's row and column within the window are swapped (a transpose in "
         "reshaping the windows back?).", [swapped]),
    ]


def _prelu_suspects(case):
    x, a = case.args
    dout = case.dout
    negative = x <= 0
    da = np.sum(dout * np.minimum(x, 0)).reshape(a.shape)
    found = [
        ("your dx is ReLU's backward: on the negative side the PReLU's output is a * x, not 0, "
         "so the gradient there is a * dout.", [dout * ~negative, None]),
        ("your dx uses the slope on the wrong side: where x > 0 the output is x itself "
         "(slope 1), where x <= 0 it is a * x (slope a).", [dout * np.where(negative, 1.0, a), None]),
        ("your da counts every entry: where x > 0 the output is x, which does not depend on a, "
         "so only the entries with x <= 0 add to da.",
         [None, np.sum(dout * x).reshape(a.shape)]),
        ("your da adds up dout where x <= 0 but forgets x: the derivative of a * x with "
         "respect to a is x, so each such entry adds dout * x.",
         [None, np.sum(dout * negative).reshape(a.shape)]),
        (f"your da is the mean over the {x.size} entries, not their sum: the one slope is used "
         f"by every entry, and each adds its own share.", [None, da / x.size]),
    ]
    if case.n > 1:
        found.append((f"your da is averaged over the batch (divided by N = {case.n}): every image "
                      f"uses the same slope, so da is the sum of each image's share.",
                      [None, da / case.n]))
    if x.ndim == 4:
        found.append(("your da is summed over the batch and averaged over the rest (channels "
                      "and positions): sum over every entry.",
                      [None, da / int(np.prod(x.shape[1:]))]))
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
    Piece("fgsm_loss", "tinyadv.grader.answers", ("x",), True, inputs.draw_fgsm_loss,
          suspects=_fgsm_suspects,
          solutions=("tinyadv.grader.answers.fgsm_loss_backward", "tinyadv.mlp.backward")),
    # The CNN's pieces (exercises 08 and 09).
    Piece("conv2d", "tinyadv.cnn_layers", ("x", "W", "b"), False, inputs.draw_conv2d,
          {"where": "each pixel x[n, c, p, q] is read by every output position whose k x k patch "
                    "covers it (fewer near the border), and gets back what each of them sends.",
           "only dx": "dW and db are right: write dx one output position at a time, as the "
                      "forward reads x, and add what each position sends back into its patch.",
           "only dW": "dx and db are right: a weight W[f, c, u, v] meets the pixel at offset "
                      "(u, v) of every patch, in every image."},
          suspects=_conv_suspects,
          solutions=("tinyadv.cnn_layers.conv2d_backward", "tinyadv.layers.conv2d_backward",
                     "tinyadv.fast.conv.conv2d_im2col_backward",
                     "tinyadv.fast.conv.conv2d_fft_backward")),
    Piece("maxpool2d", "tinyadv.cnn_layers", ("x",), False, inputs.draw_maxpool2d,
          {"mask": "each window's output is its largest entry; moving any other entry a little "
                   "changes nothing, so the gradient goes to that one entry alone.",
           "where": "each window's gradient dout[n, c, i, j] belongs to one entry of window "
                    "(i, j): the one whose value is the output."},
          suspects=_maxpool_suspects,
          solutions=("tinyadv.cnn_layers.maxpool2d_backward", "tinyadv.layers.maxpool2d_backward")),
    Piece("prelu", "tinyadv.cnn_layers", ("x", "a"), False, inputs.draw_prelu,
          {"mask": "the PReLU is x where x > 0 and a * x elsewhere: both sides pass a gradient.",
           "only da": "dx is right. a is one number used by every entry with x <= 0: each such "
                      "entry adds its own share to da."},
          suspects=_prelu_suspects,
          solutions=("tinyadv.cnn_layers.prelu_backward", "tinyadv.layers.prelu_backward")),
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
        shapes = ", ".join(f"{name} {args[i].shape}" for i, name in enumerate(piece.inputs))
        shapes += (f", dloss {dout:.4g}" if piece.scalar else f", dout {np.shape(dout)}")
        snapshot = [np.array(a, dtype=np.float64) if i < k else a for i, a in enumerate(args)]
        cases.append(Case(n, tuple(args), masks, dout, out, shapes,
                          functools.partial(_centred_differences, forward, snapshot, k, dout)))
    return cases


def _centred_differences(forward, snapshot, k, dout):
    """d/dx_i sum(forward(*args)[0] * dout) for the first k arguments, on private float64
    copies of the inputs (each perturbed in place, entry by entry)."""
    work = [np.copy(a) if i < k else a for i, a in enumerate(snapshot)]
    return [numerical_gradient_array(lambda: forward(*work)[0], work[i], dout) for i in range(k)]


def all_reference_cases(seed):
    """{backward name: [Case, Case, Case]} for every piece."""
    return {piece.backward_name: reference_cases(piece, seed) for piece in PIECES}
