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

One piece also has a case *at* its kink, where no derivative exists and the exercise states a
convention instead: max pooling, whose fourth case holds windows with tied maxima (as a
CNN's windows often do: lesson 10). There the reference is the convention's gradient --
each window's whole upstream gradient to its first maximum, reading the window row by row,
as PyTorch does -- computed exactly, not by centred differences (which see half the slope
at each tied entry).

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
    # at_kink(rng) -> (args, masks, what, convention): one more case, drawn on the kink on
    # purpose; ``what`` says so in the report, and convention(args, dout) -> [gradient per
    # input] is the gradient the exercise's stated convention gives there, computed exactly.
    at_kink: object = None

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


# --------------------------------------------------------------------------- max pooling's ties

TIE_CASE_SHAPE = (2, 2, 4, 6)  # N, C, H, W: 2 x 3 windows per channel, 24 in all


def _window_entries(x):
    """(N, C, Ho, Wo, 4): each 2 x 2 window's entries read row by row (top-left, top-right,
    bottom-left, bottom-right); a copy."""
    n, c, height, width = x.shape
    ho, wo = height // 2, width // 2
    return (x[:, :, :2 * ho, :2 * wo].reshape(n, c, ho, 2, wo, 2)
            .transpose(0, 1, 2, 4, 3, 5).reshape(n, c, ho, wo, 4))


def _from_window_entries(per_entry, shape):
    """The inverse of _window_entries: an array shaped like x, 0 where no window reaches."""
    n, c, ho, wo, _ = per_entry.shape
    full = np.zeros(shape, dtype=per_entry.dtype)
    full[:, :, :2 * ho, :2 * wo] = (per_entry.reshape(n, c, ho, wo, 2, 2)
                                    .transpose(0, 1, 2, 4, 3, 5).reshape(n, c, 2 * ho, 2 * wo))
    return full


def _draw_maxpool_ties(rng):
    """x (2, 2, 4, 6) whose windows hold one, two, three or four equal maxima (about a
    quarter each), the tied ones anywhere in the window -- not always first or last."""
    x = rng.standard_normal(TIE_CASE_SHAPE)
    entries = _window_entries(x)  # (2, 2, 2, 3, 4)
    how_many = rng.permutation(np.resize([1, 2, 3, 4], entries.shape[:-1]).ravel())
    tied = np.zeros(entries.shape, dtype=bool)
    for window, m in zip(tied.reshape(-1, 4), how_many):
        window[rng.choice(4, size=m, replace=False)] = True
    top = entries.max(axis=-1) + 0.1 + rng.uniform(0.0, 0.5, size=entries.shape[:-1])
    entries = np.where(tied, top[..., None], entries)  # the same float in every tied entry
    x = _from_window_entries(entries, x.shape)
    first = tied & (np.cumsum(tied, axis=-1) == 1)
    ties = int(np.sum(how_many > 1))
    masks = [("the entries that win their window (each window's first maximum)",
              _from_window_entries(first, x.shape)),
             ("the tied maxima after the first of their window",
              _from_window_entries(tied & ~first, x.shape)),
             ("the entries below their window's maximum", _from_window_entries(~tied, x.shape))]
    what = (f"{ties} of its {how_many.size} windows hold two to four equal maxima, where "
            f"the max has no derivative: here 'numeric' is the convention's gradient (the "
            f"first maximum of each window takes it all), computed exactly")
    return (x,), masks, what, _first_maximum_gradient


def _first_maximum_gradient(args, dout):
    """Max pooling's gradient by the convention of exercise 09 and PyTorch: each window's
    dout goes, whole, to the first of its maxima reading the window row by row (np.argmax
    returns the first), the window's other entries get 0."""
    (x,) = args
    entries = _window_entries(x)
    routed = np.zeros(entries.shape)
    np.put_along_axis(routed, entries.argmax(axis=-1)[..., None], dout[..., None], axis=-1)
    return [_from_window_entries(routed, x.shape)]


# --------------------------------------------------------------------------- known mistakes

def _gather_suspects(case):
    h, index = case.args
    overwritten = np.zeros_like(h)
    overwritten[index] = case.dout  # what ``dh[index] = dout`` or ``dh[index] += dout`` give
    return [
        ("a repeated index is written, not added: `dh[index] += dout` (like `dh[index] = dout`) "
         "keeps only one of the rows sent to it; np.add.at adds every one.",
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
    # A turned kernel and the padded dout: a loop that adds each output's share into its
    # patch (W as the forward used it) and a correlation of the zero-padded dout (W turned by
    # 180 degrees) compute the same dx, so each wrong turn gives the same numbers both ways.
    # The words name both ways; they cannot be told apart by value.
    one_axis = ("your dx reads W with one of its two spatial axes reversed -- its rows or its "
                "columns, not both. Adding each output's share into the patch it read, the "
                "share goes back through W exactly as the forward used it (no turn); sliding a "
                "kernel over the zero-padded dout, the kernel is W turned by 180 degrees, rows "
                "and columns both.")
    found = [
        ("your dx has the kernel turned the wrong way: it is the right dx with W's row and "
         "column offsets read backwards. If you add each output's share into the patch it "
         "read (a loop over positions), that share goes back through W exactly as the forward "
         "used it -- no turn. If you slide a kernel over dout padded with k - 1 zeros, that "
         "kernel is W turned by 180 degrees -- turned once (a routine that turns it by itself "
         "and a turn of your own cancel).", [_full_correlation(dout, W), None, None]),
        (one_axis, [_full_correlation(dout, W[:, :, ::-1, :]), None, None]),
        (one_axis, [_full_correlation(dout, W[:, :, :, ::-1]), None, None]),
        ("your dx writes each patch's gradient (=) where it must add it (+=): neighbouring "
         "patches overlap, and a pixel read by several output positions gets the sum of what "
         "each of them sends back.", [overwritten(rows_first), None, None]),
        ("your dx writes each patch's gradient (=) where it must add it (+=): neighbouring "
         "patches overlap, and a pixel read by several output positions gets the sum of what "
         "each of them sends back.",
         [overwritten([(i, j) for j in range(wo) for i in range(ho)]), None, None]),
        ("your dW is turned by 180 degrees: dW[f, c, u, v] collects x[n, c, i+u, j+v] -- the "
         "pixel at offset (u, v) of each patch, as the forward read it; no turn in dW.",
         [None, dW[:, :, ::-1, ::-1], None]),
        ("your dW has its two spatial axes swapped: dW[f, c, u, v] belongs to row offset u and "
         "column offset v, as W[f, c, u, v] does.", [None, dW.transpose(0, 1, 3, 2), None]),
        ("your dW holds the right numbers in the wrong places: they are dW's entries laid out "
         "as a (C*k*k, F) matrix -- one row per pixel of a patch, one column per filter, as a "
         "product of the patches' transpose with dout gives them -- and reshaped to (F, C, k, "
         "k) as they lie. A reshape keeps the order in which the entries lie: the filters' "
         "axis has to come first before it.", [None, dW.reshape(f, -1).T.reshape(W.shape), None]),
        ("your dW holds only the last output position's share: in a loop over positions, "
         "each position's share is assigned to dW where it must be added to it -- every weight "
         "is used at every position.",
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
    if f > 1:
        for which, index in (("0", 0), (f"{f - 1} (the last)", f - 1)):
            alone = _full_correlation(dout[:, index:index + 1], W[index:index + 1, :, ::-1, ::-1])
            found.append((
                f"your dx is what filter {which} alone sends back: all F = {f} filters read "
                f"every pixel, each through its own weights, so dx[n, c] is a sum over the "
                f"filters f as well as over the output positions.", [alone, None, None]))
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
            ("your dx mixes up W's two channel axes: W is (F, C, k, k), and dx[n, c] gathers "
             "from every output channel f through W[f, c] -- channel c of every filter, not "
             "the channels of filter c.",
             [_full_correlation(dout, W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)), None, None]),
            ("your dW has its channel axes swapped: it is (F, C, k, k), the shape of W -- "
             "dW[f, c] pairs output channel f of dout with input channel c of x.",
             [None, dW.transpose(1, 0, 2, 3), None]),
        ]
    return found


def _maxpool_suspects(case):
    (x,) = case.args
    dout = case.dout  # (N, C, Ho, Wo)
    entries = _window_entries(x)  # (N, C, Ho, Wo, 4), row by row
    maxima = entries == entries.max(axis=-1, keepdims=True)  # every tied maximum
    first = maxima & (np.cumsum(maxima, axis=-1) == 1)
    last = maxima & (np.cumsum(maxima[..., ::-1], axis=-1)[..., ::-1] == 1)
    per_window = dout[..., None]

    def routed(mask):
        return _from_window_entries(mask * per_window, x.shape)

    swapped = first.reshape(first.shape[:-1] + (2, 2)).swapaxes(-1, -2).reshape(first.shape)
    top_left = np.zeros(entries.shape, dtype=bool)
    top_left[..., 0] = True
    found = [
        ("your dx spreads each window's gradient over the whole window: only the entry that "
         "won the max changed the output, so only it gets the gradient (the whole of it); the "
         "three others get 0.", [routed(np.ones(entries.shape))]),
        ("your dx averages each window's gradient over its four entries (dout / 4 each): that "
         "is the backward of *average* pooling. The max is the winner's value alone, so the "
         "winner gets the whole gradient and the three others 0.", [routed(np.ones(entries.shape) / 4)]),
        ("your dx always sends the gradient to the top-left entry of each window: it belongs "
         "to the entry that won the max, wherever it is in the window.", [routed(top_left)]),
        ("your dx sends each window's gradient to the right window but to the wrong entry of "
         "it: the winner's row and column within the window are swapped (a transpose in "
         "reshaping the windows back?).", [routed(swapped)]),
    ]
    ties = int(np.sum(maxima.sum(axis=-1) > 1))
    if ties:  # the case at the kink: windows whose maximum is held by several entries
        rule = ("At a tie the max has no derivative, and exercise 09 states the convention "
                "(PyTorch's): the first maximum of the window, reading it row by row, takes "
                "the whole gradient; the other tied entries get 0.")
        found += [
            (f"ties: your dx sends a window's gradient to every entry equal to its maximum, "
             f"so each of the {ties} windows here whose maximum is held by two to four entries "
             f"passes it back two to four times over. " + rule, [routed(maxima)]),
            ("ties: your dx gives a tied window's gradient to the last of its maxima. " + rule,
             [routed(last)]),
            ("ties: your dx shares a tied window's gradient among its maxima. " + rule,
             [routed(maxima / maxima.sum(axis=-1, keepdims=True))]),
        ]
    return found


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
          {"where dx": "each pixel x[n, c, p, q] is read by every output position whose k x k "
                       "patch covers it (fewer near the border), through every filter, and "
                       "gets back what each of them sends.",
           "where dW": "a weight W[f, c, u, v] meets the pixel at offset (u, v) of every patch "
                       "of channel c, in every image, and each of those meetings sends back "
                       "dout of filter f at that position times that pixel.",
           "where db": "b[f] is added at every output position of filter f, in every image.",
           "only dx": "write dx one output position at a time, as the forward reads x, and "
                      "add what each position sends back into its patch, from every filter.",
           "only dW": "a weight W[f, c, u, v] meets the pixel at offset (u, v) of every patch, "
                      "in every image."},
          suspects=_conv_suspects,
          solutions=("tinyadv.cnn_layers.conv2d_backward", "tinyadv.layers.conv2d_backward",
                     "tinyadv.fast.conv.conv2d_im2col_backward",
                     "tinyadv.fast.conv.conv2d_fft_backward")),
    Piece("maxpool2d", "tinyadv.cnn_layers", ("x",), False, inputs.draw_maxpool2d,
          {"mask": "each window's output is its largest entry; moving any other entry a little "
                   "changes nothing, so the gradient goes to that one entry alone (at a tie, "
                   "to the first maximum of the window, reading it row by row).",
           "where": "each window's gradient dout[n, c, i, j] belongs to one entry of window "
                    "(i, j): the one whose value is the output (at a tie, the first of them, "
                    "reading the window row by row)."},
          suspects=_maxpool_suspects,
          solutions=("tinyadv.cnn_layers.maxpool2d_backward", "tinyadv.layers.maxpool2d_backward"),
          at_kink=_draw_maxpool_ties),
    Piece("prelu", "tinyadv.cnn_layers", ("x", "a"), False, inputs.draw_prelu,
          {"mask": "the PReLU is x where x > 0 and a * x elsewhere: both sides pass a gradient.",
           "only da": "a is one number used by every entry with x <= 0: each such entry adds "
                      "its own share to da."},
          suspects=_prelu_suspects,
          solutions=("tinyadv.cnn_layers.prelu_backward", "tinyadv.layers.prelu_backward")),
)
BY_BACKWARD = {piece.backward_name: piece for piece in PIECES}
BACKWARD_NAMES = tuple(BY_BACKWARD)


def reference_cases(piece, seed):
    """The cases of ``piece`` for ``seed`` (three, and one at the kink for a piece that has
    one), each with tinyadv's output and the reference gradients."""
    rng = np.random.default_rng([seed, PIECES.index(piece)])  # same inputs in every file
    forward = piece.reference_forward()
    k = len(piece.inputs)
    cases = []

    def add_case(n, args, masks, convention=None, what=""):
        out = np.asarray(forward(*[np.copy(a) if isinstance(a, np.ndarray) else a for a in args])[0],
                         dtype=np.float64)
        dout = float(rng.uniform(1.2, 1.8)) if piece.scalar else rng.standard_normal(out.shape)
        shapes = ", ".join(f"{name} {args[i].shape}" for i, name in enumerate(piece.inputs))
        shapes += (f", dloss {dout:.4g}" if piece.scalar else f", dout {np.shape(dout)}")
        snapshot = [np.array(a, dtype=np.float64) if i < k else a for i, a in enumerate(args)]
        if convention is None:
            gradients = functools.partial(_centred_differences, forward, snapshot, k, dout)
        else:
            shapes += f"; {what}"
            gradients = functools.partial(convention, snapshot, dout)
        cases.append(Case(n, tuple(args), masks, dout, out, shapes, gradients))

    for case_number, n in enumerate(BATCH_SIZES):
        add_case(n, *piece.draw(rng, n, case_number))
    if piece.at_kink is not None:
        args, masks, what, convention = piece.at_kink(rng)
        add_case(len(args[0]), args, masks, convention, what)
    return cases


def _centred_differences(forward, snapshot, k, dout):
    """d/dx_i sum(forward(*args)[0] * dout) for the first k arguments, on private float64
    copies of the inputs (each perturbed in place, entry by entry)."""
    work = [np.copy(a) if i < k else a for i, a in enumerate(snapshot)]
    return [numerical_gradient_array(lambda: forward(*work)[0], work[i], dout) for i in range(k)]


def all_reference_cases(seed):
    """{backward name: [Case, ...]} for every piece: three cases each, four for max pooling."""
    return {piece.backward_name: reference_cases(piece, seed) for piece in PIECES}
